//! SAML 2.0 single sign-on per entity.

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
