//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI document, and the fallbacks
//! that keep unknown routes in problem+json.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};

use crate::{error::ApiError, state::AppState, store};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
}

async fn healthz() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(serde_json::json!({ "status": "ok" })))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({ "status": "database unreachable" })))
        }
    }
}

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

const OPENAPI: &str = include_str!("openapi.json");

async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    let mut doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
    doc["servers"] = serde_json::json!([{ "url": state.base_url }]);
    ([(header::CACHE_CONTROL, "public, max-age=300")], axum::Json(doc))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}
