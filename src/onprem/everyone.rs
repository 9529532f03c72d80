//! `LATCHKEY_ONPREM_ACCESS=everyone` on an on-premise server: any caller on the customer's network
//! takes a floating seat without a token (`POST /api/v1/seats {"product","machine"}`), heartbeats
//! and releases it by its lease id. The machine name is the identity; the seats belong to one
//! account per entity that cannot sign in (`everyone@<slug>.onprem.invalid`, no password).
//! A request with an `Authorization` header takes the ordinary, signed-in path.

use axum::{
    Json,
    extract::{Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    clock,
    config::OnpremAccess,
    error::{ApiError, Result},
    licenses::seats,
    state::AppState,
    store::{self, accounts::User},
};

/// The middleware: answers the seat calls without a token, passes everything else on.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let on = state.onprem.is_some() && state.config.onprem_access == OnpremAccess::Everyone;
    if !on || req.headers().contains_key(header::AUTHORIZATION) {
        return next.run(req).await;
    }
    let parts: Vec<String> = req.uri().path().trim_matches('/').split('/').map(str::to_string).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let result = match (method, parts.as_slice()) {
        (Method::POST, ["api", "v1", "seats"]) => checkout(&state, req).await,
        (Method::POST, ["api", "v1", "seats", id, "heartbeat"]) => heartbeat(&state, id).await,
        (Method::DELETE, ["api", "v1", "seats", id]) => release(&state, id).await,
        _ => return next.run(req).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Checkout {
    product: String,
    machine: String,
}

async fn checkout(state: &AppState, req: Request) -> Result<Response> {
    let (mut parts, body) = req.into_parts();
    let Ok(ctx) =
        <crate::audit::Context as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, state)
            .await;
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::bad_request("invalid_request", "the body is too large or unreadable"))?;
    let body: Checkout = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::unprocessable("invalid_request", format!("expected {{\"product\",\"machine\"}}: {e}"))
    })?;
    let machine = seats::check_machine(&body.machine)?;
    let now = state.now();
    let licenses = store::onprem::entitled_licenses_of_product(&state.db.pool, &body.product).await?;
    let Some((_, entity_id)) = licenses.first() else {
        return Err(ApiError::forbidden("not_licensed", format!("this server holds no license of `{}`", body.product)));
    };
    let user_id = everyone_account(state, entity_id, &licenses, now).await?;
    // No token: the product on that computer is the actor.
    let actor =
        crate::audit::Actor { kind: "product", id: Some(body.product.clone()), name: Some(machine.to_string()) };
    let (lease, token) = seats::checkout(state, &ctx.by(actor), &user_id, None, &body.product, machine).await?;
    Ok((StatusCode::CREATED, Json(seats::lease_response(state, &lease, &body.product, machine, token))).into_response())
}

/// The entity's "everyone" account, assigned every license of the entity in `licenses`.
async fn everyone_account(
    state: &AppState,
    entity_id: &str,
    licenses: &[(String, String)],
    now: i64,
) -> Result<String> {
    let mut tx = state.db.begin_write().await?;
    store::entities::lock_entity(&mut *tx, entity_id).await?;
    let user_id = match store::onprem::everyone_user(&mut *tx, entity_id).await? {
        Some(u) => u,
        None => {
            let entity = store::entities::entity_by_id(&mut *tx, entity_id)
                .await?
                .ok_or_else(|| ApiError::internal("entity vanished"))?;
            let u = User {
                id: store::new_id(),
                email: format!("everyone@{}.onprem.invalid", entity.slug),
                entity_id: entity_id.to_string(),
                password_hash: None,
                password_changed_at: None,
                created_at: now,
                deactivated_at: None,
            };
            if !store::accounts::insert_user_if_absent(&mut *tx, &u).await? {
                return Err(ApiError::internal("the everyone account's address is taken"));
            }
            store::onprem::insert_everyone(&mut *tx, entity_id, &u.id).await?;
            u.id
        }
    };
    for (license_id, eid) in licenses {
        if eid == entity_id && !store::licenses::is_assigned(&mut *tx, license_id, &user_id).await? {
            store::licenses::insert_assignment(&mut *tx, license_id, &user_id, now).await?;
        }
    }
    tx.commit().await?;
    Ok(user_id)
}

/// The lease, when it is a seat taken without a token.
async fn everyone_lease(state: &AppState, lease_id: &str) -> Result<store::leases::Lease> {
    let lease = store::leases::by_id(&state.db.pool, lease_id).await?;
    let everyone = store::onprem::everyone_users(&state.db.pool).await?;
    lease.filter(|l| everyone.contains(&l.user_id)).ok_or_else(|| ApiError::not_found("no such lease"))
}

async fn heartbeat(state: &AppState, lease_id: &str) -> Result<Response> {
    let lease = everyone_lease(state, lease_id).await?;
    let now = state.now();
    let expires_at = now + state.config.lease_ttl.ms();
    if !store::leases::extend(&state.db.pool, &lease.id, now, expires_at, 0).await? {
        return Err(match lease.end_reason.as_deref() {
            None => ApiError::gone("lease_expired", "this lease lapsed without heartbeats; check out a seat again"),
            Some(_) => ApiError::gone("lease_revoked", "this seat was released or disconnected"),
        });
    }
    let license = store::licenses::license_by_id(&state.db.pool, &lease.license_id)
        .await?
        .ok_or_else(|| ApiError::internal("license vanished"))?;
    let machine = lease.machine.clone().unwrap_or_default();
    let token =
        seats::sign_lease(state, &lease.user_id, &lease.id, &lease.license_id, &license.product_sku, &machine, now)?;
    Ok(Json(crate::licenses::views::HeartbeatResponse {
        expires_at: clock::rfc3339(expires_at),
        heartbeat_interval_s: state.config.heartbeat_interval.secs(),
        lease_id: lease.id,
        lease_token: token,
        lease_ttl_s: state.config.lease_ttl.secs(),
        license_id: lease.license_id,
        offline_grace_s: state.config.offline_grace.secs(),
    })
    .into_response())
}

async fn release(state: &AppState, lease_id: &str) -> Result<Response> {
    let lease = everyone_lease(state, lease_id).await?;
    let ctx = crate::audit::Context::system("on-premise open access");
    let actor = crate::audit::Actor { kind: "product", id: None, name: lease.machine.clone() };
    seats::release(state, &ctx.by(actor), &lease, state.now()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
