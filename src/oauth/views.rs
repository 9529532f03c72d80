//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! still build these bodies with `json!`: moving them onto these types (so the compiler keeps the
//! two equal) is open work of issue 9.

use serde::Serialize;
use utoipa::ToSchema;

/// RFC 7662 answer. Inactive tokens (unknown, expired, revoked, spent) answer only `{"active": false}`.
#[derive(Serialize, ToSchema)]
pub struct Introspection {
    pub active: bool,
    /// one of: `Bearer`, `refresh_token`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// access tokens only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iss: Option<String>,
    /// access tokens only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exp: Option<i64>,
    /// access tokens only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jti: Option<String>,
    /// access tokens only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    /// access tokens only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub entity: Option<String>,
    /// items one of: `pwd`, `saml`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub amr: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct DeviceAuthorization {
    pub device_code: String,
    #[schema(pattern = "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")]
    pub user_code: String,
    #[schema(format = "uri")]
    pub verification_uri: String,
    #[schema(format = "uri")]
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// RFC 8414 authorization server metadata
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    #[schema(format = "uri")]
    pub issuer: String,
    #[schema(format = "uri")]
    pub authorization_endpoint: String,
    #[schema(format = "uri")]
    pub token_endpoint: String,
    #[schema(format = "uri")]
    pub device_authorization_endpoint: String,
    #[schema(format = "uri")]
    pub revocation_endpoint: String,
    #[schema(format = "uri")]
    pub introspection_endpoint: String,
    #[schema(format = "uri")]
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub response_modes_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub code_challenge_methods_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    #[schema(format = "uri")]
    pub service_documentation: String,
}

#[derive(Serialize, ToSchema)]
pub struct JWKSKeysItem {
    /// one of: `OKP`, `EC`
    pub kty: String,
    /// one of: `Ed25519`, `P-256`
    pub crv: String,
    pub x: String,
    /// EC keys only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub y: Option<String>,
    pub kid: String,
    /// always `sig`
    #[serde(rename = "use")]
    pub usage: String,
    /// one of: `EdDSA`, `ES256`
    pub alg: String,
}

/// RFC 7517 key set: the current signing key and the older ones whose tokens may still be live
#[derive(Serialize, ToSchema)]
pub struct JWKS {
    pub keys: Vec<JWKSKeysItem>,
}
