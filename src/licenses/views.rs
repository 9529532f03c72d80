//! The JSON bodies this area answers with, as the OpenAPI document describes them. The handlers
//! build their answers as these types, so the document and the answer are one definition.
//!
//! Members are declared in alphabetical order (of their names in JSON): the answers were built
//! with `json!` before, whose objects serialise their members sorted, and the same order keeps
//! them byte for byte as they were (the tests below check it).

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

/// A share link just made.
#[derive(Serialize, ToSchema)]
pub struct ShareLinkCreated {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// the link's identifier (UUID)
    pub id: String,
    /// identifier (UUID)
    pub license_id: String,
    /// the page to hand out (`/share/lk_sh_...`); shown once
    #[schema(format = "uri")]
    pub url: String,
}

/// A share link of a license (its secret is never shown again).
#[derive(Serialize, ToSchema)]
pub struct ShareLink {
    /// neither stopped nor expired
    pub active: bool,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// identifier (UUID)
    pub id: String,
}

/// What accepting a share link did.
#[derive(Serialize, ToSchema)]
pub struct ShareAccepted {
    /// the signed-in user's address
    pub email: String,
    /// identifier (UUID)
    pub license_id: String,
    /// the product's SKU
    pub product: String,
    /// one of: `assigned`, `already_assigned`
    #[schema(value_type = String, pattern = "^(assigned|already_assigned)$")]
    pub status: &'static str,
}

/// A user of the entity: its own accounts and those assigned one of its licenses.
#[derive(Serialize, ToSchema)]
pub struct User {
    /// an administrator of the entity
    pub admin: bool,
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    pub email: String,
    /// identifier (UUID)
    pub id: String,
    /// ids of the entity's licenses assigned to the user
    pub licenses: Vec<String>,
    /// `invited`: no password set yet; one of: `active`, `invited`
    #[schema(value_type = String, pattern = "^(active|invited)$")]
    pub status: &'static str,
}

/// An administrator added (or one already).
#[derive(Serialize, ToSchema)]
pub struct AdminAdded {
    /// always `true`
    pub admin: bool,
    /// the address, normalised (lower case)
    pub email: String,
    /// the entity's slug
    pub entity: String,
}

/// An administrator of the entity.
#[derive(Serialize, ToSchema)]
pub struct AdminEntry {
    pub email: String,
    /// when they became one; RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub since: String,
}

/// A license group (business unit) of the entity.
#[derive(Serialize, ToSchema)]
pub struct Group {
    /// RFC 3339, UTC, second precision
    #[schema(format = DateTime)]
    pub created_at: String,
    /// identifier (UUID)
    pub id: String,
    /// the group's name, unique in the entity
    pub name: String,
}

impl Group {
    pub fn of(g: &crate::store::entities::Group) -> Self {
        Group { created_at: crate::clock::rfc3339(g.created_at), id: g.id.clone(), name: g.name.clone() }
    }
}

/// A license the caller holds.
#[derive(Serialize, ToSchema)]
pub struct MeLicensesItem {
    /// the slug of the entity that owns the license
    pub entity: String,
    /// RFC 3339, UTC, second precision; null: never
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
    /// identifier (UUID)
    pub id: String,
    /// the product's SKU
    pub product: String,
    /// one of: `fixed`, `floating`
    #[serde(rename = "type")]
    pub kind: String,
}

/// The caller: who they are, what they administer, which licenses they hold.
#[derive(Serialize, ToSchema)]
pub struct Me {
    /// slugs of the entities the user administers
    pub admin_of: Vec<String>,
    /// how the user signed in; items one of: `pwd`, `saml`
    pub amr: Vec<String>,
    pub email: String,
    /// slug of the user's home entity
    pub entity: String,
    /// identifier (UUID)
    pub id: String,
    /// by product SKU
    pub licenses: Vec<MeLicensesItem>,
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

/// One license's use on one day (of the report's time zone).
#[derive(Serialize, ToSchema)]
pub struct UsageRow {
    /// the day in `tz`, YYYY-MM-DD
    #[schema(format = Date)]
    pub date: String,
    /// checkouts refused for want of a seat
    pub denials: i64,
    /// how many users held a seat that day
    pub distinct_users: i64,
    /// the license's group; null: none
    #[schema(required = true)]
    pub group: Option<String>,
    /// identifier (UUID)
    pub license_id: String,
    /// most seats in use at once that day
    pub peak_concurrent: i64,
    /// the product's SKU
    pub product: String,
    /// hours of seat use that day, 2 decimals
    pub seat_hours: f64,
    /// the license's seats
    pub seats: i64,
    /// the IANA zone whose days the row counts
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api_doc::assert_as_json_macro;

    fn s(v: &str) -> String {
        v.to_string()
    }

    #[test]
    fn views_serialise_their_members_sorted() {
        let at = s("2026-11-30T09:00:00Z");
        assert_as_json_macro(&Entity { created_at: at.clone(), id: s("e"), name: s("Acme"), slug: s("acme") });
        assert_as_json_macro(&EntityCreated {
            admin_email: s("a@acme.example"),
            created_at: at.clone(),
            id: s("e"),
            name: s("Acme"),
            slug: s("acme"),
        });
        assert_as_json_macro(&Product {
            client_id: s("p"),
            created_at: at.clone(),
            id: s("i"),
            name: s("P"),
            sku: s("p"),
        });
        assert_as_json_macro(&License {
            assigned: 1,
            created_at: at.clone(),
            entity: s("acme"),
            expires_at: None,
            group: Some(s("g")),
            id: s("l"),
            idle_timeout_minutes: None,
            offline_allowed: false,
            onprem_allowed: true,
            product: s("p"),
            reassignments_left: Some(5),
            scim_group: None,
            scim_sync: Some(serde_json::json!({ "assigned": [], "failed": [], "revoked": [] })),
            scim_sync_failures: serde_json::json!([]),
            seats: 5,
            kind: s("fixed"),
        });
        assert_as_json_macro(&AssignAnswer::One(AssignResult {
            email: s("a@b.c"),
            license_id: s("l"),
            status: "assigned",
        }));
        assert_as_json_macro(&AssignAnswer::Many(vec![BulkAssignEntry {
            code: Some("invalid_email"),
            detail: Some(s("d")),
            email: s("x"),
            http_status: 422,
            status: "error",
        }]));
        assert_as_json_macro(&Assignment { assigned_at: at.clone(), email: s("a@b.c"), user_id: s("u") });
        assert_as_json_macro(&ShareLinkCreated {
            expires_at: at.clone(),
            id: s("i"),
            license_id: s("l"),
            url: s("https://x/share/lk_sh_1"),
        });
        assert_as_json_macro(&ShareLink { active: true, created_at: at.clone(), expires_at: at.clone(), id: s("i") });
        assert_as_json_macro(&ShareAccepted {
            email: s("a@b.c"),
            license_id: s("l"),
            product: s("p"),
            status: "already_assigned",
        });
        assert_as_json_macro(&User {
            admin: false,
            created_at: at.clone(),
            email: s("a@b.c"),
            id: s("u"),
            licenses: vec![s("l")],
            status: "invited",
        });
        assert_as_json_macro(&AdminAdded { admin: true, email: s("a@b.c"), entity: s("acme") });
        assert_as_json_macro(&AdminEntry { email: s("a@b.c"), since: at.clone() });
        assert_as_json_macro(&Group { created_at: at.clone(), id: s("g"), name: s("R&D") });
        assert_as_json_macro(&Me {
            admin_of: vec![s("acme")],
            amr: vec![s("pwd")],
            email: s("a@b.c"),
            entity: s("acme"),
            id: s("u"),
            licenses: vec![MeLicensesItem {
                entity: s("acme"),
                expires_at: Some(at.clone()),
                id: s("l"),
                product: s("p"),
                kind: s("floating"),
            }],
        });
        assert_as_json_macro(&Lease {
            expires_at: at.clone(),
            heartbeat_interval_s: 60,
            lease_id: s("l"),
            lease_token: s("t"),
            lease_ttl_s: 300,
            license_id: s("l"),
            machine: s("m"),
            offline_grace_s: 86400,
            product: s("p"),
        });
        assert_as_json_macro(&HeartbeatResponse {
            expires_at: at.clone(),
            heartbeat_interval_s: 60,
            lease_id: s("l"),
            lease_token: s("t"),
            lease_ttl_s: 300,
            license_id: s("l"),
            offline_grace_s: 86400,
        });
        assert_as_json_macro(&SeatView {
            email: s("a@b.c"),
            expires_at: at.clone(),
            idle_seconds: 3,
            last_heartbeat: at.clone(),
            lease_id: s("l"),
            machine: Some(s("m")),
            since: at.clone(),
        });
        assert_as_json_macro(&UsageRow {
            date: s("2026-11-30"),
            denials: 0,
            distinct_users: 2,
            group: None,
            license_id: s("l"),
            peak_concurrent: 2,
            product: s("p"),
            seat_hours: 1.25,
            seats: 5,
            tz: s("Europe/Berlin"),
        });
    }
}
