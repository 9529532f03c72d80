//! The JSON bodies of the SCIM token endpoints, as the handlers build them and the OpenAPI
//! document describes them.

use serde::Serialize;
use utoipa::ToSchema;

/// A SCIM token just made (members in alphabetical order, as `json!` sent them before).
#[derive(Serialize, ToSchema)]
pub struct ScimTokenCreated {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// identifier (UUID)
    pub id: String,
    pub name: String,
    /// where the IdP sends its SCIM requests
    #[schema(format = "uri")]
    pub scim_base_url: String,
    /// `lk_scim_...`, shown once
    pub token: String,
}

/// A SCIM token as listed (never the token itself).
#[derive(Serialize, ToSchema)]
pub struct ScimToken {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// identifier (UUID)
    pub id: String,
    /// RFC 3339, UTC, second precision; null: never used
    #[schema(format = DateTime, required = true)]
    pub last_used_at: Option<String>,
    pub name: String,
    /// RFC 3339, UTC, second precision; null: live
    #[schema(format = DateTime, required = true)]
    pub revoked_at: Option<String>,
}
