//! The JSON bodies this area answers with, as the OpenAPI document describes them. Introspection,
//! device authorization and the server metadata are built as these types by their handlers, so
//! the document and the answer are one definition. The key sets ([`JWKS`]) describe documents
//! made of the public keys as stored (JSON text, written when a key is made): they are served as
//! they are kept.
//!
//! Members of the types that handlers build are declared in alphabetical order (of their names in
//! JSON): the answers were built with `json!` before, whose objects serialise their members
//! sorted, and the same order keeps them byte for byte as they were (the tests below check it).

use serde::Serialize;
use utoipa::ToSchema;

/// RFC 7662 answer. Inactive tokens (unknown, expired, revoked, spent) answer only `{"active": false}`.
#[derive(Serialize, ToSchema, Default)]
pub struct Introspection {
    pub active: bool,
    /// how the user signed in; items one of: `pwd`, `saml`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub amr: Option<Vec<String>>,
    /// access tokens only: the audience (= `client_id`)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub aud: Option<String>,
    /// the client (product SKU or `portal`) the token was issued to
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// access tokens only
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    /// access tokens only: the user's home entity (slug)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub entity: Option<String>,
    /// expiry, seconds since the epoch
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exp: Option<i64>,
    /// access tokens only: issued at, seconds since the epoch
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iat: Option<i64>,
    /// the issuer
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iss: Option<String>,
    /// access tokens only: the token's id
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jti: Option<String>,
    /// the user's id
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// one of: `Bearer`, `refresh_token`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, nullable = false, pattern = "^(Bearer|refresh_token)$")]
    pub token_type: Option<&'static str>,
    /// the user's email
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub username: Option<String>,
}

/// RFC 8628 device authorization answer.
#[derive(Serialize, ToSchema)]
pub struct DeviceAuthorization {
    /// what the device polls /oauth/token with
    pub device_code: String,
    /// seconds the codes stay valid
    pub expires_in: i64,
    /// seconds to wait between polls
    pub interval: i64,
    /// what the user types at `verification_uri`
    #[schema(pattern = "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")]
    pub user_code: String,
    /// where the user goes
    #[schema(format = "uri")]
    pub verification_uri: String,
    /// the same with the user code filled in (for a QR code or a link)
    #[schema(format = "uri")]
    pub verification_uri_complete: String,
}

/// RFC 8414 authorization server metadata
#[derive(Serialize, ToSchema)]
pub struct ServerMetadata {
    #[schema(format = "uri")]
    pub authorization_endpoint: String,
    #[schema(value_type = Vec<String>)]
    pub code_challenge_methods_supported: Vec<&'static str>,
    #[schema(format = "uri")]
    pub device_authorization_endpoint: String,
    #[schema(value_type = Vec<String>)]
    pub grant_types_supported: Vec<&'static str>,
    #[schema(format = "uri")]
    pub introspection_endpoint: String,
    #[schema(value_type = Vec<String>)]
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    #[schema(format = "uri")]
    pub issuer: String,
    #[schema(format = "uri")]
    pub jwks_uri: String,
    #[schema(value_type = Vec<String>)]
    pub response_modes_supported: Vec<&'static str>,
    #[schema(value_type = Vec<String>)]
    pub response_types_supported: Vec<&'static str>,
    #[schema(format = "uri")]
    pub revocation_endpoint: String,
    #[schema(value_type = Vec<String>)]
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// the OpenAPI document
    #[schema(format = "uri")]
    pub service_documentation: String,
    #[schema(format = "uri")]
    pub token_endpoint: String,
    #[schema(value_type = Vec<String>)]
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    #[schema(value_type = Vec<String>)]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<&'static str>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_doc::assert_as_json_macro;

    #[test]
    fn views_serialise_their_members_sorted() {
        let s = |v: &str| v.to_string();
        assert_as_json_macro(&Introspection::default());
        assert_as_json_macro(&Introspection {
            active: true,
            amr: Some(vec![s("pwd")]),
            aud: Some(s("p")),
            client_id: Some(s("p")),
            email: Some(s("a@b.c")),
            entity: Some(s("acme")),
            exp: Some(2),
            iat: Some(1),
            iss: Some(s("https://id")),
            jti: Some(s("j")),
            sub: Some(s("u")),
            token_type: Some("Bearer"),
            username: Some(s("a@b.c")),
        });
        assert_as_json_macro(&DeviceAuthorization {
            device_code: s("lk_dc_x"),
            expires_in: 600,
            interval: 5,
            user_code: s("BCDF-GHJK"),
            verification_uri: s("https://id/device"),
            verification_uri_complete: s("https://id/device?user_code=BCDF-GHJK"),
        });
        assert_as_json_macro(&ServerMetadata {
            authorization_endpoint: s("a"),
            code_challenge_methods_supported: vec!["S256"],
            device_authorization_endpoint: s("d"),
            grant_types_supported: vec!["password"],
            introspection_endpoint: s("i"),
            introspection_endpoint_auth_methods_supported: vec!["bearer"],
            issuer: s("i"),
            jwks_uri: s("j"),
            response_modes_supported: vec!["query"],
            response_types_supported: vec!["code"],
            revocation_endpoint: s("r"),
            revocation_endpoint_auth_methods_supported: vec!["none"],
            service_documentation: s("s"),
            token_endpoint: s("t"),
            token_endpoint_auth_methods_supported: vec!["none"],
            token_endpoint_auth_signing_alg_values_supported: vec!["EdDSA", "ES256"],
        });
    }
}
