//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document, and the fallbacks
//! that keep unknown routes in problem+json.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use serde::Serialize;
use utoipa::ToSchema;

use crate::{error::ApiError, state::AppState, store};

/// The answer of the health and readiness checks.
#[derive(Serialize, ToSchema)]
pub struct Status {
    status: &'static str,
}

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz, metrics, openapi,))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Process is up",
    responses(
        (status = 200, description = "the process is up", body = crate::ops::Status),
    ),
)]
async fn healthz() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(Status { status: "ok" }))
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Database is reachable",
    responses(
        (status = 200, description = "the database answers (`{\"status\":\"ready\"}`)", body = crate::ops::Status),
        (status = 503, description = "the database is unreachable (`{\"status\":\"database unreachable\"}`)", body = crate::ops::Status),
    ),
)]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(Status { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Status { status: "database unreachable" }))
        }
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
    ),
)]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pending = store::outbox::pending_count(&state.db.pool).await.unwrap_or(-1);
    let pool_size = i64::from(state.db.pool.size());
    let idle = i64::try_from(state.db.pool.num_idle()).unwrap_or(0);
    let body = state.metrics.render(&[
        ("latchkey_mail_outbox_pending", "Mails waiting to be sent.", pending),
        ("latchkey_db_pool_connections", "Open database connections.", pool_size),
        ("latchkey_db_pool_idle_connections", "Idle database connections.", idle),
    ]);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document",
    responses(
        (status = 200, description = "the OpenAPI 3.1 document, with `servers` set to this server's public URL", body = Object),
    ),
)]
async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")],
        state.openapi.clone(),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
