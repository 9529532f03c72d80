//! The JSON bodies this area answers with, as the OpenAPI document describes them. Entities,
//! products, licenses, assignments and seats are built as these types by their handlers, so the
//! document and the answer are one definition; the other types here are still descriptions of
//! bodies built with `json!` (the integration tests hold those to what they expect).
//!
//! Members of the types that handlers build are declared in alphabetical order: the answers were
//! built with `json!` before, whose objects serialise their members sorted, and the same order
//! keeps them byte for byte as they were.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Entity {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// identifier (UUID)
    pub id: String,
    pub name: String,
    pub slug: String,
}

impl Entity {
    pub fn of(e: &crate::store::entities::Entity) -> Self {
        Entity {
            created_at: crate::clock::rfc3339(e.created_at),
            id: e.id.clone(),
            name: e.name.clone(),
            slug: e.slug.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EntityCreated {
    /// the first administrator's address
    pub admin_email: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// identifier (UUID)
    pub id: String,
    pub name: String,
    pub slug: String,
}

#[derive(Serialize, ToSchema)]
pub struct Product {
    /// = sku: the product's OAuth client_id
    pub client_id: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// identifier (UUID)
    pub id: String,
    pub name: String,
    pub sku: String,
}

impl Product {
    pub fn of(p: &crate::store::entities::Product) -> Self {
        Product {
            client_id: p.sku.clone(),
            created_at: crate::clock::rfc3339(p.created_at),
            id: p.id.clone(),
            name: p.name.clone(),
            sku: p.sku.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct License {
    /// how many users are assigned (fixed) or in the pool (floating)
    pub assigned: i64,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// the entity's slug
    pub entity: String,
    /// RFC 3339, UTC, second precision; null: never
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
    #[schema(required = true)]
    pub group: Option<String>,
    /// identifier (UUID)
    pub id: String,
    /// seats idle this long are disconnected at their next heartbeat
    #[schema(required = true)]
    pub idle_timeout_minutes: Option<i64>,
    /// the license may be issued as offline licenses (set by the operator)
    pub offline_allowed: bool,
    /// the license may go to an on-premise server (set by the operator)
    pub onprem_allowed: bool,
    /// the product's SKU
    pub product: String,
    /// fixed licenses: revokes or reassignments left; null for floating
    #[schema(required = true)]
    pub reassignments_left: Option<i64>,
    /// the SCIM group (id) this license follows; null: none
    #[schema(required = true)]
    pub scim_group: Option<String>,
    /// only in the answer of a PATCH that binds the license to a SCIM group: what its first
    /// synchronisation did
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = ScimSync, nullable = false)]
    pub scim_sync: Option<serde_json::Value>,
    /// what the last synchronisation with the SCIM group could not do (empty: everything was done)
    #[schema(value_type = Vec<ScimSyncFailure>)]
    pub scim_sync_failures: serde_json::Value,
    pub seats: i64,
    /// one of: `fixed`, `floating`
    #[serde(rename = "type")]
    #[schema(pattern = "^(fixed|floating)$")]
    pub kind: String,
}

/// One change a SCIM group synchronisation could not make.
#[derive(Serialize, ToSchema)]
pub struct ScimSyncFailure {
    pub email: String,
    /// one of: `assign`, `revoke`
    pub action: String,
    /// the problem code the change was refused with
    pub code: String,
    pub detail: String,
}

/// What a SCIM group synchronisation did.
#[derive(Serialize, ToSchema)]
pub struct ScimSync {
    /// addresses assigned
    pub assigned: Vec<String>,
    /// addresses revoked
    pub revoked: Vec<String>,
    pub failed: Vec<ScimSyncFailure>,
}

#[derive(Serialize, ToSchema)]
pub struct AssignResult {
    pub email: String,
    /// identifier (UUID)
    pub license_id: String,
    /// one of: `assigned`, `already_assigned`
    #[schema(value_type = String, pattern = "^(assigned|already_assigned)$")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Assignment {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub assigned_at: String,
    pub email: String,
    /// identifier (UUID)
    pub user_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ShareLinkCreated {
    /// identifier (UUID)
    pub id: String,
    /// identifier (UUID)
    pub license_id: String,
    /// the page to hand out (`/share/lk_sh_...`); shown once
    #[schema(format = "uri")]
    pub url: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct ShareLink {
    /// identifier (UUID)
    pub id: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// neither stopped nor expired
    pub active: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ShareAccepted {
    /// identifier (UUID)
    pub license_id: String,
    pub product: String,
    pub email: String,
    /// one of: `assigned`, `already_assigned`
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct User {
    /// identifier (UUID)
    pub id: String,
    pub email: String,
    pub admin: bool,
    /// `invited`: no password set yet; one of: `active`, `invited`
    pub status: String,
    /// ids of the entity's licenses assigned to the user
    pub licenses: Vec<String>,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct AdminAdded {
    pub entity: String,
    pub email: String,
    /// always `True`
    pub admin: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AdminEntry {
    pub email: String,
    #[schema(format = DateTime)]
    pub since: String,
}

#[derive(Serialize, ToSchema)]
pub struct Group {
    /// identifier (UUID)
    pub id: String,
    pub name: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeLicensesItem {
    /// identifier (UUID)
    pub id: String,
    pub product: String,
    /// one of: `fixed`, `floating`
    #[serde(rename = "type")]
    pub kind: String,
    pub entity: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    /// identifier (UUID)
    pub id: String,
    pub email: String,
    /// slug of the user's home entity
    pub entity: String,
    /// slugs of the entities the user administers
    pub admin_of: Vec<String>,
    pub licenses: Vec<MeLicensesItem>,
    /// items one of: `pwd`, `saml`
    pub amr: Vec<String>,
}

/// A seat checked out (members in alphabetical order, as the answer has always had them).
#[derive(Serialize, ToSchema)]
pub struct Lease {
    /// when the seat frees itself without a heartbeat
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub heartbeat_interval_s: i64,
    /// identifier (UUID)
    pub lease_id: String,
    /// JWT, `typ` `lease+jwt`, claims `lease_id`, `license_id`, `product`, `machine`, `sub`, `exp` = now + offline grace; lets the product run offline until then
    pub lease_token: String,
    pub lease_ttl_s: i64,
    /// identifier (UUID)
    pub license_id: String,
    pub machine: String,
    pub offline_grace_s: i64,
    pub product: String,
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatResponse {
    /// when the seat frees itself without a heartbeat
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub heartbeat_interval_s: i64,
    /// identifier (UUID)
    pub lease_id: String,
    /// JWT, `typ` `lease+jwt`, claims `lease_id`, `license_id`, `product`, `machine`, `sub`, `exp` = now + offline grace; lets the product run offline until then
    pub lease_token: String,
    pub lease_ttl_s: i64,
    /// identifier (UUID)
    pub license_id: String,
    pub offline_grace_s: i64,
}

/// A live seat as an administrator sees it.
#[derive(Serialize, ToSchema)]
pub struct SeatView {
    pub email: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub idle_seconds: i64,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub last_heartbeat: String,
    /// identifier (UUID)
    pub lease_id: String,
    /// floating licenses only (absent for fixed ones)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub machine: Option<String>,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub since: String,
}

#[derive(Serialize, ToSchema)]
pub struct UsageRow {
    /// UTC day, YYYY-MM-DD
    pub date: String,
    /// identifier (UUID)
    pub license_id: String,
    pub product: String,
    #[schema(required = true)]
    pub group: Option<String>,
    pub seats: i64,
    /// most seats in use at once that day
    pub peak_concurrent: i64,
    /// hours of seat use that day, 2 decimals
    pub seat_hours: f64,
    /// checkouts refused for want of a seat
    pub denials: i64,
    pub distinct_users: i64,
    /// the zone whose days the row counts
    pub tz: String,
}

/// One email's result of a bulk assignment (`emails`), in the order given.
#[derive(Serialize, ToSchema)]
pub struct BulkAssignEntry {
    /// errors only: the problem code (`invalid_email`, `seats_exhausted`, `license_expired`, ...)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, nullable = false)]
    pub code: Option<&'static str>,
    /// errors only: the problem detail
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
    pub email: String,
    /// what the single assignment would have answered
    pub http_status: u16,
    /// one of: `assigned`, `already_assigned`, `error`
    #[schema(value_type = String, pattern = "^(assigned|already_assigned|error)$")]
    pub status: &'static str,
}

/// A single assignment's result (`email`) or the per-email results (`emails`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AssignAnswer {
    One(AssignResult),
    Many(Vec<BulkAssignEntry>),
}
