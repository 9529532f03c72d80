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
pub mod metadata;
pub mod sp;
pub mod vendors;

mod scan;
mod xml;

#[cfg(test)]
mod test_support;

use sqlx::AnyExecutor;

use crate::{app::AppState, error::Result, store::accounts::User};

/// Where `user` must sign in when their entity requires SSO; `None` when passwords are allowed.
pub async fn sso_login_url_for<'e>(
    _db: impl AnyExecutor<'e>,
    _state: &AppState,
    _user: &User,
) -> Result<Option<String>> {
    Ok(None)
}
