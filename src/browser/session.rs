//! Browser sessions: an opaque cookie (HttpOnly, SameSite=Lax, Secure under HTTPS) whose hash names
//! a row. A password session of a user whose entity has since turned SSO on no longer counts.

use axum::http::{HeaderMap, HeaderValue};

use super::cookies;

use crate::{
    clock::Millis,
    crypto::{ct_eq, random_secret, secret_hash},
    error::Result,
    state::AppState,
    store::{self, accounts::User},
};

pub const SESSION_COOKIE: &str = "lk_session";
pub const SESSION_TTL_MS: Millis = 8 * 3_600_000;

pub struct BrowserUser {
    pub user: User,
    pub amr: String,
    pub entity_slug: String,
    pub session_hash: String,
}

/// The signed-in user of this browser, if any.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<BrowserUser>> {
    let Some(secret) = cookies::get(headers, SESSION_COOKIE).filter(|s| s.len() < 100) else { return Ok(None) };
    let hash = secret_hash(&secret);
    let now = state.now();
    let Some(s) = store::sessions::session(&state.db.pool, &hash, now).await? else { return Ok(None) };
    let Some(user) = store::accounts::user_by_id(&state.db.pool, &s.user_id).await? else { return Ok(None) };
    if user.deactivated_at.is_some() {
        return Ok(None);
    }
    if s.amr == "pwd" && crate::saml::sso_login_url_for(&state.db.pool, state, &user).await?.is_some() {
        return Ok(None);
    }
    let Some(entity) = store::entities::entity_by_id(&state.db.pool, &user.entity_id).await? else { return Ok(None) };
    Ok(Some(BrowserUser { user, amr: s.amr, entity_slug: entity.slug, session_hash: hash }))
}

/// Start a session; returns the `Set-Cookie` value.
pub async fn start(state: &AppState, user_id: &str, amr: &str) -> Result<HeaderValue> {
    let secret = random_secret("lk_ss_");
    let now = state.now();
    store::sessions::insert_session(&state.db.pool, &secret_hash(&secret), user_id, amr, now, now + SESSION_TTL_MS)
        .await?;
    Ok(cookies::set(state, SESSION_COOKIE, &secret, SESSION_TTL_MS / 1000, false))
}

/// Start a session for a sign-in, recording `event` (`user.signed_in`) in the same transaction.
pub async fn start_signed_in(
    state: &AppState,
    ctx: &crate::audit::Context,
    event: crate::audit::Event,
    user_id: &str,
    amr: &str,
) -> Result<HeaderValue> {
    let secret = random_secret("lk_ss_");
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    store::sessions::insert_session(&mut *tx, &secret_hash(&secret), user_id, amr, now, now + SESSION_TTL_MS).await?;
    event.record(&mut tx, ctx, now).await?;
    tx.commit().await?;
    Ok(cookies::set(state, SESSION_COOKIE, &secret, SESSION_TTL_MS / 1000, false))
}

pub async fn end(state: &AppState, headers: &HeaderMap) -> Result<HeaderValue> {
    if let Some(secret) = cookies::get(headers, SESSION_COOKIE) {
        store::sessions::delete_session(&state.db.pool, &secret_hash(&secret)).await?;
    }
    Ok(cookies::set(state, SESSION_COOKIE, "", 0, false))
}

/// A token for forms of a signed-in page, bound to the session (defence beside SameSite=Lax).
pub fn csrf_token(state: &AppState, session_hash: &str) -> String {
    state.master.keyed_hash(&[b"csrf", session_hash.as_bytes()])
}

pub fn csrf_ok(state: &AppState, session_hash: &str, presented: &str) -> bool {
    ct_eq(csrf_token(state, session_hash).as_bytes(), presented.as_bytes())
}

/// A local path to return to after signing in; anything else (absolute URLs, `//host`, `/\host`)
/// is refused so sign-in can never redirect off-site.
pub fn safe_return_to(raw: Option<&str>) -> Option<String> {
    let r = raw?.trim();
    let ok = r.starts_with('/')
        && !r.starts_with("//")
        && !r.contains('\\')
        && r.len() <= 2048
        && r.chars().all(|c| !c.is_control() && !c.is_whitespace());
    ok.then(|| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(
            safe_return_to(Some("/oauth/authorize/resume?request=x")),
            Some("/oauth/authorize/resume?request=x".into())
        );
        for bad in
            ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/a b", "evil", ""]
        {
            assert_eq!(safe_return_to(Some(bad)), None, "{bad}");
        }
    }
}
