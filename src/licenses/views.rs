//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! still build these bodies with `json!`: moving them onto these types (so the compiler keeps the
//! two equal) is open work of issue 9.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct Entity {
    /// identifier (UUID)
    pub id: String,
    pub slug: String,
    pub name: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EntityCreated {
    /// identifier (UUID)
    pub id: String,
    pub slug: String,
    pub name: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    pub admin_email: String,
}

#[derive(Serialize, ToSchema)]
pub struct Product {
    /// identifier (UUID)
    pub id: String,
    pub sku: String,
    pub name: String,
    /// = sku: the product's OAuth client_id
    pub client_id: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct License {
    /// identifier (UUID)
    pub id: String,
    /// the entity's slug
    pub entity: String,
    /// the product's SKU
    pub product: String,
    /// one of: `fixed`, `floating`
    #[serde(rename = "type")]
    pub kind: String,
    pub seats: i64,
    /// how many users are assigned (fixed) or in the pool (floating)
    pub assigned: i64,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
    #[schema(required = true)]
    pub group: Option<String>,
    /// fixed licenses: revokes or reassignments left; null for floating
    #[schema(required = true)]
    pub reassignments_left: Option<i64>,
    /// seats idle this long are disconnected at their next heartbeat
    #[schema(required = true)]
    pub idle_timeout_minutes: Option<i64>,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub offline_allowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub onprem_allowed: Option<bool>,
    /// the SCIM group this license follows
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scim_group: Option<String>,
    /// what the last synchronisation with the SCIM group could not do
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub scim_sync_failures: Option<Vec<ScimSyncFailure>>,
}

#[derive(Serialize, ToSchema)]
pub struct ScimSyncFailure {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub email: Option<String>,
    /// one of: `assign`, `revoke`
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AssignResult {
    /// identifier (UUID)
    pub license_id: String,
    pub email: String,
    /// one of: `assigned`, `already_assigned`
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Assignment {
    pub email: String,
    /// identifier (UUID)
    pub user_id: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub assigned_at: String,
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
    pub email: String,
    /// one of: `assigned`, `already_assigned`, `error`
    pub status: String,
    /// what the single assignment would have answered
    pub http_status: u16,
    /// errors only: the problem code (`invalid_email`, `seats_exhausted`, `license_expired`, ...)
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub code: Option<String>,
    /// errors only: the problem detail
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub detail: Option<String>,
}

/// A single assignment's result (`email`) or the per-email results (`emails`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum AssignAnswer {
    One(AssignResult),
    Many(Vec<BulkAssignEntry>),
}
