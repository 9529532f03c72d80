//! SAML 2.0 single sign-on per entity: the service-provider core as pure functions (no HTTP, no
//! database). `metadata` imports an IdP's metadata, `sp` makes the entity's own key pair and SP
//! metadata, `authn` builds the AuthnRequest, `acs` validates the Response that comes back, and
//! `vendors` finds the user's email where each IdP puts it.
//!
//! What the caller owns (state and I/O):
//! - Blocking work: `acs::validate_response` (xmlsec, ~1 ms), `metadata::parse_idp_metadata`,
//!   `sp::generate_sp_keys` (RSA 3072) and a signed POST-binding `authn::build_authn_request`
//!   run in `spawn_blocking`; they return only owned `Send` types. Call [`warm_up`] at start-up.
//! - SP-initiated logins: store `BuiltRequest::id` as a pending request bound to the browser
//!   (and RelayState, kept to `[A-Za-z0-9._-]`); on the ACS, `in_response_to` must be `Some` of
//!   that id (delete it on use). `None` means IdP-initiated: accept only where the entity allows it.
//! - Replay: insert `assertion_id` into a shared cache until `not_on_or_after_ms`; refuse a second use.
//! - Error pages: `AcsError::code()` is stable; its `Display` may quote document values (clipped
//!   to one line): HTML-escape it. xmlsec writes `func=xmlSec...` lines to stderr on every failed
//!   signature check (samael offers no switch and the crate forbids `unsafe`): expect them in logs.

pub mod acs;
pub mod authn;
pub mod config;
pub mod fetch;
pub mod metadata;
pub mod policy;
pub mod refresh;
pub mod sp;
pub mod vendors;
pub mod web;

mod scan;
mod xml;

#[cfg(test)]
mod test_support;
pub mod views;

use axum::{
    Router,
    routing::{get, post},
};

/// libxml2 (2.9) initialises its global parser state lazily on first use, and that first use is
/// not thread-safe: under helgrind, two threads' first `xmlReadMemory` race on the parser's
/// global defaults (`xmlInitParser`, the default SAX handler, the main-thread record), and the
/// symptom was a valid response found "not well-formed" now and then when several servers or
/// test threads started at once. samael parses before it takes its own initialisation lock. So
/// every path of ours into libxml2 or xmlsec calls this first: the first use happens on one
/// thread while the others wait, and costs nothing after.
pub(crate) fn libxml_ready() {
    static READY: std::sync::Once = std::sync::Once::new();
    // Parses a tiny document (libxml2 starts) and loads a certificate (xmlsec starts, under
    // samael's lock). A valid certificate, so that xmlsec has nothing to print on stderr.
    READY.call_once(|| {
        let _ = metadata::load_probe(probe_certificate().map(Vec::as_slice).unwrap_or_default());
    });
}

/// A throw-away self-signed certificate (P-256), DER: made once, for the start-up probe and
/// [`warm_up`] both.
fn probe_certificate() -> Option<&'static Vec<u8>> {
    static CERT: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    CERT.get_or_init(|| make_probe_certificate().ok()).as_ref()
}

fn make_probe_certificate() -> anyhow::Result<Vec<u8>> {
    use openssl::{
        asn1::Asn1Time,
        ec::{EcGroup, EcKey},
        hash::MessageDigest,
        nid::Nid,
        pkey::PKey,
        x509::{X509Builder, X509NameBuilder},
    };
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "latchkey xmlsec warm-up")?;
    let name = name.build();
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::from_unix(0)?, Asn1Time::from_unix(86_400)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok(b.build().to_der()?)
}

/// Initialises libxml2 and xmlsec (they start lazily, under a global lock, on first use) and
/// proves xmlsec can load a certificate. Call once at start-up, off the async executor, and
/// fail readiness if it errs. Silent on success.
pub fn warm_up() -> anyhow::Result<()> {
    let cert = probe_certificate().ok_or_else(|| anyhow::anyhow!("openssl cannot make a certificate"))?;
    anyhow::ensure!(metadata::xmlsec_can_load(cert), "xmlsec cannot load a certificate");
    Ok(())
}

use crate::state::AppState;

pub use policy::{sso_entity_for_email, sso_login_url_for, sso_login_url_for_email};

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    config::get_sso,
    config::put_sso,
    config::patch_sso,
    config::delete_sso,
    config::start_test,
    config::list_failures,
))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/entities/{slug}/sso",
            get(config::get_sso).put(config::put_sso).patch(config::patch_sso).delete(config::delete_sso),
        )
        .route("/api/v1/entities/{slug}/sso/test", post(config::start_test))
        .route("/api/v1/entities/{slug}/sso/failures", get(config::list_failures))
        .route("/saml/{slug}/metadata", get(web::metadata))
        .route("/saml/{slug}/login", get(web::login))
        .route("/saml/{slug}/test", get(web::test_login))
        .route("/saml/{slug}/acs", post(web::acs))
}
