//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! still build these bodies with `json!`: moving them onto these types (so the compiler keeps the
//! two equal) is open work of issue 9.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct AuditEventActor {
    /// one of: `operator_key`, `user`, `system`, `product`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEventTargetsItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    /// position in its chain (the entity's, or the operator's)
    pub seq: i64,
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(required = true)]
    pub entity: Option<String>,
    pub actor: AuditEventActor,
    pub action: String,
    pub targets: Vec<AuditEventTargetsItem>,
    #[schema(required = true)]
    pub ip: Option<String>,
    #[schema(required = true)]
    pub user_agent: Option<String>,
    #[schema(required = true)]
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    /// hex SHA-256 of the previous event's hash and this event's canonical JSON
    pub hash: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// pass as `after`; null on the last page
    #[schema(required = true)]
    pub next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditCheckpoint {
    #[schema(required = true)]
    pub entity: Option<String>,
    pub seq: i64,
    pub hash: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// compact JWS, typ `audit-checkpoint+jwt`, claims entity/seq/hash; keys in /.well-known/jwks.json
    pub signature: String,
}
