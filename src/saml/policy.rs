//! Who must sign in through SSO: the users whose entity has SSO enabled, and (for addresses that
//! have no account yet) the addresses in a domain claimed by such an entity.

use sqlx::AnyExecutor;

use crate::{error::Result, state::AppState, store, store::accounts::User};

/// Where `user` must sign in when their entity requires SSO; `None` when passwords are allowed.
pub async fn sso_login_url_for<'e>(db: impl AnyExecutor<'e>, state: &AppState, user: &User) -> Result<Option<String>> {
    let slug = store::sso::enabled_for_entity(db, &user.entity_id).await?;
    Ok(slug.map(|s| state.url(&format!("/saml/{s}/login"))))
}

/// The slug of the SSO entity that signs `email` in (by account, else by claimed domain).
pub async fn sso_entity_for_email(state: &AppState, email: &str) -> Result<Option<String>> {
    if let Some(u) = store::accounts::user_by_email(&state.db.pool, email).await? {
        return Ok(store::sso::enabled_for_entity(&state.db.pool, &u.entity_id).await?);
    }
    let Some((_, domain)) = email.rsplit_once('@') else { return Ok(None) };
    // Only a verified claim routes an address without an account to an entity's IdP.
    match store::sso::domain_owner(&state.db.pool, domain).await? {
        Some((entity_id, true)) => Ok(store::sso::enabled_for_entity(&state.db.pool, &entity_id).await?),
        _ => Ok(None),
    }
}
