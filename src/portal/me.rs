//! Every user's own page: the licenses they hold and their live seats, which they may release.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};

use super::{Posted, Shell, TokenForm, Viewer, fail, not_found, see_other, show, view};
use crate::{error::ApiPath, licenses, state::AppState, store};

pub struct HeldRow {
    pub product: String,
    pub kind: String,
    pub entity: String,
    pub expiry: String,
}

pub struct OwnSeatRow {
    pub id: String,
    pub product: String,
    pub computer: String,
    pub since: view::When,
    pub last: view::When,
    pub idle: String,
}

#[derive(Template)]
#[template(path = "portal/home.html")]
struct Home {
    shell: Shell,
    licenses: Vec<HeldRow>,
    seats: Vec<OwnSeatRow>,
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap, v: Viewer) -> Response {
    let now = state.now();
    let pool = &state.db.pool;
    let held = match store::licenses::licenses_held_by(pool, &v.bu.user.id).await {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let seats = match store::leases::live_seats_of_user(pool, &v.bu.user.id, now).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let page = Home {
        shell: Shell::new(&state, &headers, &v, "me", None),
        licenses: held
            .into_iter()
            .map(|l| HeldRow {
                product: l.product_name,
                kind: l.kind,
                entity: l.entity_slug,
                expiry: view::expiry(l.expires_at, now),
            })
            .collect(),
        seats: seats
            .into_iter()
            .map(|s| OwnSeatRow {
                id: s.id,
                product: s.product_name,
                computer: s.machine.unwrap_or_else(|| "(not recorded for fixed seats)".into()),
                since: view::when(s.created_at),
                last: view::when(s.last_heartbeat_at),
                idle: view::duration(s.idle_seconds),
            })
            .collect(),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

/// The owner releases one of their seats (as the product does when it exits).
pub async fn release(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiPath(lease_id): ApiPath<String>,
    Posted { v, .. }: Posted<TokenForm>,
) -> Response {
    let lease = match store::leases::by_id(&state.db.pool, &lease_id).await {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let Some(lease) = lease.filter(|l| l.user_id == v.bu.user.id) else { return not_found() };
    match licenses::seats::release(&state, &ctx.by(v.actor()), &lease, state.now()).await {
        Ok(true) => see_other(&state, "/portal", true, "Seat released. The product on that computer stops using it."),
        Ok(false) => see_other(&state, "/portal", false, "That seat had already ended."),
        Err(e) => fail(e),
    }
}
