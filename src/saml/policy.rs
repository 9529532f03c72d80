//! Who signs in where, decided by the email domain alone.
//!
//! A domain verified by the operator for an entity belongs to that entity. While the entity's
//! SSO configuration is enabled, every address in the domain signs in through its IdP and only
//! there (passwords, password sessions and password-born grants are refused), and its IdP signs
//! in no address outside its verified domains. Nothing here reads the account's stored home
//! (`users.entity_id`): who created an account, or which entity's license it uses, never decides
//! which IdP may sign it in. And because the answer depends on the domain, not on the account,
//! it tells nobody whether an address has an account.

use sqlx::AnyExecutor;

use crate::{
    clock::Millis,
    error::{ApiError, Result},
    state::AppState,
    store,
    store::accounts::User,
};

/// The domain of a (normalised) address: what follows its last `@`.
pub fn domain_of(email: &str) -> &str {
    email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
}

/// The entity (id, slug) whose IdP must sign `email` in, when there is one.
pub async fn sso_entity_of<'e>(db: impl AnyExecutor<'e>, email: &str) -> Result<Option<(String, String)>> {
    let domain = domain_of(email);
    if domain.is_empty() {
        return Ok(None);
    }
    Ok(store::sso::enabled_entity_for_domain(db, domain).await?)
}

pub fn login_url(state: &AppState, slug: &str) -> String {
    state.url(&format!("/saml/{slug}/login"))
}

/// Where the owner of `email` must sign in when SSO governs it; `None` when passwords are allowed.
pub async fn sso_login_url_for_email<'e>(
    db: impl AnyExecutor<'e>,
    state: &AppState,
    email: &str,
) -> Result<Option<String>> {
    Ok(sso_entity_of(db, email).await?.map(|(_, slug)| login_url(state, &slug)))
}

/// Where `user` must sign in when SSO governs their address; `None` when passwords are allowed.
pub async fn sso_login_url_for<'e>(db: impl AnyExecutor<'e>, state: &AppState, user: &User) -> Result<Option<String>> {
    sso_login_url_for_email(db, state, &user.email).await
}

/// The OAuth refusal of a password sign-in, or of a grant that stems from one, for an address
/// that SSO governs: where to go instead.
pub fn sso_required(login_url: String) -> ApiError {
    ApiError::oauth(
        axum::http::StatusCode::BAD_REQUEST,
        "sso_required",
        "your organisation signs you in with its company account",
    )
    .with("login_url", login_url)
}

/// Refuse a grant that stems from a password sign-in (`amr`) of `user` once SSO governs them.
pub async fn check_grant(state: &AppState, user: &User, amr: &str) -> Result<()> {
    if amr == "pwd"
        && let Some(url) = sso_login_url_for(&state.db.pool, state, user).await?
    {
        return Err(sso_required(url));
    }
    Ok(())
}

/// The slug of the entity whose IdP signs `email` in (for routing at `/login`).
pub async fn sso_entity_for_email(state: &AppState, email: &str) -> Result<Option<String>> {
    Ok(sso_entity_of(&state.db.pool, email).await?.map(|(_, slug)| slug))
}

/// End the sessions and refresh families of the accounts in `domain` that were signed in by
/// `amr`: `pwd` when SSO starts to govern the domain, `saml` when an IdP stops being trusted
/// for it. Returns how many refresh families were revoked.
pub async fn end_sessions_in_domain(
    tx: &mut store::Tx,
    domain: &str,
    amr: &str,
    reason: &str,
    now: Millis,
) -> Result<u64> {
    let mut revoked = 0;
    for uid in store::accounts::user_ids_in_domain(&mut **tx, domain).await? {
        revoked += store::tokens::revoke_families_of_user(tx, &uid, Some(amr), reason, now).await?;
        store::sessions::delete_sessions_of_user(&mut **tx, &uid, amr).await?;
    }
    Ok(revoked)
}
