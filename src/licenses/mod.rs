//! Licenses: what the vendor sold an entity (operator API), and what the entity's administrators do
//! with it (assignments, share links, users, administrators, groups).

pub mod admin;
pub mod operator;
pub mod reports;
pub mod seats;
pub mod views;

use axum::{
    Router,
    routing::{delete, get, post},
};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::{
    clock::{self, Millis},
    error::{ApiError, Result},
    state::AppState,
    store::licenses::License,
};

pub use admin::{AssignOutcome, accept_share_link, assign, revoke, share_link_license};
pub use operator::check_slug;

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    operator::create_entity,
    operator::list_entities,
    admin::get_entity,
    operator::create_product,
    operator::list_products,
    operator::create_license,
    admin::list_licenses,
    admin::get_license,
    admin::patch_license,
    admin::assign_json,
    admin::list_assignments,
    admin::revoke_json,
    admin::create_share_link,
    admin::list_share_links,
    admin::delete_share_link,
    admin::accept_share_link_json,
    admin::list_users,
    admin::add_admin,
    admin::list_admins,
    admin::remove_admin,
    admin::create_group,
    admin::list_groups,
    admin::me,
    seats::checkout_json,
    seats::heartbeat_json,
    seats::release_json,
    seats::list_seats,
    reports::usage,
))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/entities", post(operator::create_entity).get(operator::list_entities))
        .route("/api/v1/entities/{slug}", get(admin::get_entity))
        .route("/api/v1/products", post(operator::create_product).get(operator::list_products))
        .route("/api/v1/entities/{slug}/licenses", post(operator::create_license).get(admin::list_licenses))
        .route("/api/v1/licenses/{id}", get(admin::get_license).patch(admin::patch_license))
        .route("/api/v1/licenses/{id}/assignments", post(admin::assign_json).get(admin::list_assignments))
        .route("/api/v1/licenses/{id}/assignments/{email}", delete(admin::revoke_json))
        .route("/api/v1/licenses/{id}/share-links", post(admin::create_share_link).get(admin::list_share_links))
        .route("/api/v1/licenses/{id}/share-links/{link_id}", delete(admin::delete_share_link))
        .route("/api/v1/share-links/{token}/accept", post(admin::accept_share_link_json))
        .route("/api/v1/entities/{slug}/users", get(admin::list_users))
        .route("/api/v1/entities/{slug}/admins", post(admin::add_admin).get(admin::list_admins))
        .route("/api/v1/entities/{slug}/admins/{email}", delete(admin::remove_admin))
        .route("/api/v1/entities/{slug}/groups", post(admin::create_group).get(admin::list_groups))
        .route("/api/v1/me", get(admin::me))
        .route("/api/v1/seats", post(seats::checkout_json))
        .route("/api/v1/seats/{lease_id}/heartbeat", post(seats::heartbeat_json))
        .route("/api/v1/seats/{lease_id}", delete(seats::release_json))
        .route("/api/v1/licenses/{id}/seats", get(seats::list_seats))
        .route("/api/v1/entities/{slug}/reports/usage", get(reports::usage))
}

pub fn license_view(l: &License) -> views::License {
    views::License {
        id: l.id.clone(),
        entity: l.entity_slug.clone(),
        product: l.product_sku.clone(),
        kind: l.kind.clone(),
        seats: l.seats,
        assigned: l.assigned,
        expires_at: l.expires_at.map(clock::rfc3339),
        group: l.group_name.clone(),
        reassignments_left: if l.is_fixed() { Some((l.seats - l.changes_used).max(0)) } else { None },
        idle_timeout_minutes: l.idle_timeout_s.map(|s| s / 60),
        offline_allowed: l.offline_allowed != 0,
        onprem_allowed: l.onprem_allowed != 0,
        scim_group: l.scim_group_id.clone(),
        scim_sync: None,
        // What the last synchronisation with the SCIM group could not do (none: everything was done).
        scim_sync_failures: l
            .scim_sync_report
            .as_deref()
            .and_then(|r| serde_json::from_str::<Value>(r).ok())
            .unwrap_or_else(|| Value::Array(Vec::new())),
        created_at: clock::rfc3339(l.created_at),
    }
}

/// `Some(None)` for an explicit `null`, `None` when the member is absent (PATCH semantics).
pub fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

pub fn parse_time(field: &str, s: &str) -> Result<Millis> {
    // 1970 to 9999 in UTC: what every client can read back.
    const LAST: Millis = 253_402_300_799_000; // 9999-12-31T23:59:59Z
    clock::parse_rfc3339(s).filter(|t| (0..=LAST).contains(t)).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_request",
            format!("`{field}` must be an RFC 3339 time between 1970 and 9999, such as 2027-01-31T00:00:00Z"),
        )
    })
}

pub fn check_seats(seats: i64) -> Result<i64> {
    if !(1..=1_000_000).contains(&seats) {
        return Err(ApiError::unprocessable("invalid_request", "`seats` must be between 1 and 1000000"));
    }
    Ok(seats)
}

pub fn check_idle_minutes(m: i64) -> Result<i64> {
    if !(1..=10_080).contains(&m) {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`idle_timeout_minutes` must be between 1 and 10080 (a week)",
        ));
    }
    Ok(m * 60)
}

pub fn check_group_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(ApiError::unprocessable("invalid_request", "a group name has 1 to 64 printable characters"));
    }
    Ok(n.to_string())
}
