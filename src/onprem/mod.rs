//! Licensing in private networks. The vendor's service signs files with its long-lived license
//! key (`tokens::license_keys`): entitlements that move a floating license to an on-premise server
//! inside a customer's network, and offline license files for one computer. The on-premise server
//! (the same binary, with `LATCHKEY_LICENSE_PUBLIC_KEY_FILE` set) takes its seat limit only from
//! entitlements it verifies, and answers with files signed by its own key (usage, return).
//! Files are compact JWS (`jws`), so any JWT library reads them.

pub mod everyone;
pub mod jws;
pub mod offline;
pub mod server;
pub mod vendor;
pub mod views;

use axum::{
    Router,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{ApiError, Result},
    store::licenses::License,
};

pub use server::{Local, SeatRule, seat_rule, served_on_premise};

/// Longest an entitlement or offline license file is valid: one year (less when the license ends
/// sooner). A new file is one request away.
pub const MAX_FILE_LIFE_MS: i64 = 365 * 86_400_000;

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    vendor::license_jwks,
    vendor::export_json,
    vendor::usage_json,
    vendor::return_json,
    offline::issue_json,
    offline::return_json,
    server::import_json,
))]
pub struct Doc;

pub fn router() -> axum::Router<crate::state::AppState> {
    Router::new()
        .route("/.well-known/latchkey-license-keys.json", get(vendor::license_jwks))
        .route("/api/v1/licenses/{id}/onprem", post(vendor::export_json))
        .route("/api/v1/licenses/{id}/onprem/usage", post(vendor::usage_json))
        .route("/api/v1/licenses/{id}/onprem/return", post(vendor::return_json))
        .route("/api/v1/licenses/{id}/offline", post(offline::issue_json))
        .route("/api/v1/licenses/{id}/offline/return", post(offline::return_json))
        .route("/api/v1/onprem/entitlements", post(server::import_json))
}

/// An on-premise server's entitlement to a license (signed by the vendor's license key).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntitlementClaims {
    pub iss: String,
    pub license_id: String,
    pub entity: String,
    #[serde(default)]
    pub entity_name: String,
    pub product: String,
    #[serde(default)]
    pub product_name: String,
    pub seats: i64,
    /// The server it is bound to: the RFC 7638 thumbprint of the server's key.
    pub server: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// An offline license file for one computer (signed by the vendor's license key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OfflineClaims {
    pub iss: String,
    pub license_id: String,
    pub entity: String,
    pub product: String,
    /// The user's email.
    pub sub: String,
    /// The computer's fingerprint (see `latchkey product offline-request`).
    pub fingerprint: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// A usage file from an on-premise server (signed by that server's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageClaims {
    pub server: String,
    pub from: String,
    pub to: String,
    pub licenses: Vec<UsageLicense>,
    pub iat: i64,
    pub jti: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageLicense {
    pub license_id: String,
    pub days: Vec<UsageDay>,
}

/// What leaves the customer's network about its users: counts per day, nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageDay {
    pub date: String,
    pub peak_seats: i64,
    pub denials: i64,
    pub distinct_users: i64,
}

/// A return file from an on-premise server (signed by that server's key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReturnClaims {
    pub server: String,
    pub license_id: String,
    /// The `jti` of the entitlement given back.
    pub entitlement: String,
    pub iat: i64,
    pub jti: String,
}

/// A file that did not verify, as the API answers it.
pub fn file_error(what: &str, e: jws::FileError) -> ApiError {
    match e {
        jws::FileError::Malformed | jws::FileError::WrongType => {
            ApiError::unprocessable("invalid_file", format!("this is not {what}: {e}"))
        }
        jws::FileError::UnknownKey | jws::FileError::BadSignature => {
            ApiError::unprocessable("invalid_signature", format!("{what} refused: {e}"))
        }
    }
}

/// Validate the operator's private-network switches against the license's kind.
pub fn check_switches(license: &License, offline: Option<bool>, onprem: Option<bool>) -> Result<()> {
    if offline == Some(true) && !license.is_fixed() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`offline_allowed` is for fixed licenses (an offline license binds one user to one computer)",
        ));
    }
    if onprem == Some(true) && license.is_fixed() {
        return Err(ApiError::unprocessable(
            "invalid_request",
            "`onprem_allowed` is for floating licenses (an on-premise server shares a pool of seats)",
        ));
    }
    Ok(())
}

/// Seconds of a file's `exp`/`iat` from unix milliseconds.
pub fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}
