//! SAML 2.0 single sign-on per entity: the service-provider core as pure functions (no HTTP, no
//! database). `metadata` imports an IdP's metadata, `sp` makes the entity's own key pair and SP
//! metadata, `authn` builds the AuthnRequest, `acs` validates the Response that comes back, and
//! `vendors` finds the user's email where each IdP puts it.
//!
//! Signature checks go through samael's xmlsec binding. They are blocking (about 1 ms each):
//! call `acs::validate_response` and `authn::build_authn_request` (POST binding, signed) from
//! `spawn_blocking`.

pub mod acs;
pub mod authn;
pub mod config;
pub mod metadata;
pub mod policy;
pub mod sp;
pub mod vendors;
pub mod web;

mod scan;
mod xml;

#[cfg(test)]
mod test_support;

use axum::{
    Router,
    routing::{get, post},
};

use crate::app::AppState;

pub use policy::{sso_entity_for_email, sso_login_url_for};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/entities/{slug}/sso", get(config::get_sso).put(config::put_sso))
        .route("/saml/{slug}/metadata", get(web::metadata))
        .route("/saml/{slug}/login", get(web::login))
        .route("/saml/{slug}/acs", post(web::acs))
}
