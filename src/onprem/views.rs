//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! still build these bodies with `json!`: moving them onto these types (so the compiler keeps the
//! two equal) is open work of issue 9.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct OnPremEntitlement {
    /// compact JWS, `typ` `entitlement+jwt`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub entitlement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_id: Option<String>,
    /// RFC 7638 thumbprint of the server's key
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub server_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub seats: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OnPremUsageImported {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OnPremReturned {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub returned_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OfflineLicense {
    /// compact JWS, `typ` `offline-license+jwt`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub lease_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OfflineReturned {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub returned_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EntitlementImported {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub license_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub entity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub product: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub seats: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime, nullable = false)]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub created_license: Option<bool>,
}
