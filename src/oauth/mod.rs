//! OAuth 2.0 endpoints: token (password, refresh_token, authorization_code, device_code grants),
//! revocation (RFC 7009), introspection (RFC 7662), server metadata (RFC 8414) and JWKS.

pub mod authorize;
pub mod device;
mod revoke;
mod token;
pub mod views;

use axum::{
    Json, Router,
    extract::State,
    http::header,
    response::IntoResponse,
    routing::{get, post},
};

use crate::{auth::PORTAL_CLIENT, error::Result, state::AppState, store};

pub use token::{check_client, password_login, signed_in};

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    metadata,
    jwks,
    token::token,
    revoke::revoke,
    revoke::introspect,
    authorize::authorize,
    authorize::resume,
    device::device_authorization,
))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/introspect", post(revoke::introspect))
        .route("/oauth/authorize", get(authorize::authorize))
        .route("/oauth/authorize/resume", get(authorize::resume))
        .route("/oauth/device_authorization", post(device::device_authorization))
        .route("/device", get(device::device_page).post(device::device_decide))
}

#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    operation_id = "serverMetadata",
    tag = "oauth",
    summary = "Authorization server metadata (RFC 8414)",
    responses(
        (status = 200, description = "metadata", body = crate::oauth::views::ServerMetadata),
    ),
)]
async fn metadata(State(state): State<AppState>) -> impl IntoResponse {
    let body = views::ServerMetadata {
        authorization_endpoint: state.url("/oauth/authorize"),
        code_challenge_methods_supported: vec!["S256"],
        device_authorization_endpoint: state.url("/oauth/device_authorization"),
        grant_types_supported: vec![
            "password",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        introspection_endpoint: state.url("/oauth/introspect"),
        introspection_endpoint_auth_methods_supported: vec!["bearer"],
        issuer: state.issuer().to_string(),
        jwks_uri: state.url("/.well-known/jwks.json"),
        response_modes_supported: vec!["query"],
        response_types_supported: vec!["code"],
        revocation_endpoint: state.url("/oauth/revoke"),
        revocation_endpoint_auth_methods_supported: vec!["none"],
        service_documentation: state.url("/openapi.json"),
        token_endpoint: state.url("/oauth/token"),
        token_endpoint_auth_methods_supported: vec!["none"],
        token_endpoint_auth_signing_alg_values_supported: vec!["EdDSA", "ES256"],
    };
    ([(header::CACHE_CONTROL, "public, max-age=300")], Json(body))
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks",
    tag = "oauth",
    summary = "Token-signing public keys (JWKS)",
    responses(
        (status = 200, description = "the key set", body = crate::oauth::views::JWKS, content_type = "application/jwk-set+json"),
    ),
)]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json"), (header::CACHE_CONTROL, "public, max-age=300")],
        state.keys.jwks_json(),
    )
}

/// `portal`, or the SKU of a registered product.
pub async fn is_known_client(state: &AppState, client_id: &str) -> Result<bool> {
    if client_id == PORTAL_CLIENT {
        return Ok(true);
    }
    if client_id.is_empty() || client_id.len() > 64 {
        return Ok(false);
    }
    // Registered clients never disappear, so a positive answer can be remembered.
    if let Ok(g) = state.known_clients.read()
        && g.contains(client_id)
    {
        return Ok(true);
    }
    let known = store::entities::product_by_sku(&state.db.pool, client_id).await?.is_some();
    if known && let Ok(mut g) = state.known_clients.write() {
        g.insert(client_id.to_string());
    }
    Ok(known)
}
