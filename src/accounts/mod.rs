//! Accounts: an email (unique, case-insensitive), an optional password hash, a home entity.
//! Accounts are made the first time an email is assigned a license (or made an administrator);
//! their owner then sets a password through a single-use, expiring link sent by mail.

pub mod mfa;
pub mod operator_keys;
pub mod operators;
pub mod password;
pub mod throttle;

use axum::{Router, extract::State, http::StatusCode, routing::post};
use serde::Deserialize;

use crate::{
    clock::Millis,
    crypto::{random_secret, secret_hash},
    error::{ApiError, ApiJson, Result},
    mail::{self, Mail},
    state::AppState,
    store::{self, Tx, accounts::LinkPurpose, accounts::User},
};

pub const LINK_PREFIX: &str = "lk_ln_";

/// Lower-case and check an email address; `invalid_email` otherwise.
pub fn normalize_email(raw: &str) -> Result<String> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| {
        Err(ApiError::unprocessable("invalid_email", format!("`{}` is not an email address: {why}", raw.trim())))
    };
    if email.is_empty() {
        return bad("it is empty");
    }
    if email.len() > 254 {
        return bad("it is longer than 254 characters");
    }
    let Some((local, domain)) = email.rsplit_once('@') else { return bad("it has no @") };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return bad("the part before @ is empty, too long or holds another @");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control() || "\"(),:;<>[]\\".contains(c)) {
        return bad("it holds spaces or characters not allowed in an address");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| l.is_empty() || l.len() > 63 || l.starts_with('-') || l.ends_with('-'))
        || !domain.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
    {
        return bad("the domain is not a valid host name");
    }
    if email.parse::<lettre::Address>().is_err() {
        return bad("mail cannot be sent to it");
    }
    Ok(email)
}

/// The account of `email`, created (no password) when there is none. Its home is the entity
/// holding its domain verified, else `entity_id` (who brings it in); an existing account is never
/// moved. Returns the account and whether it was created now.
pub async fn find_or_create(tx: &mut Tx, email: &str, entity_id: &str, now: Millis) -> Result<(User, bool)> {
    if let Some(u) = store::accounts::user_by_email(&mut **tx, email).await? {
        return Ok((u, false));
    }
    let domain = crate::saml::policy::domain_of(email);
    let home = store::sso::verified_owner(&mut **tx, domain).await?.unwrap_or_else(|| entity_id.to_string());
    let user = User {
        id: store::new_id(),
        email: email.to_string(),
        entity_id: home,
        password_hash: None,
        password_changed_at: None,
        created_at: now,
        deactivated_at: None,
    };
    // ON CONFLICT DO NOTHING: a concurrent request creating the same account wins quietly and we
    // read its row instead.
    if store::accounts::insert_user_if_absent(&mut **tx, &user).await? {
        return Ok((user, true));
    }
    let existing = store::accounts::user_by_email(&mut **tx, email).await?;
    existing.map(|u| (u, false)).ok_or_else(|| ApiError::internal("account vanished while being created"))
}

/// Make a single-use link for `user` and queue its mail, inside the caller's transaction. When
/// the address is over its mail quota nothing is made and `false` returned.
pub async fn send_link(
    tx: &mut Tx,
    state: &AppState,
    user: &User,
    purpose: LinkPurpose,
    inviter: &str,
    now: Millis,
) -> Result<bool> {
    let secret = random_secret(LINK_PREFIX);
    let ttl = state.config.setup_link_ttl;
    let hours = (ttl.secs() / 3600).max(1);
    let link = match purpose {
        LinkPurpose::Setup => state.url(&format!("/account/setup?token={secret}")),
        LinkPurpose::Reset => state.url(&format!("/account/reset?token={secret}")),
    };
    let m = match purpose {
        LinkPurpose::Setup => Mail::Setup { email: &user.email, inviter, link: &link, hours },
        LinkPurpose::Reset => Mail::Reset { email: &user.email, link: &link, hours },
    };
    // The link exists only if its mail goes out: a pending link means a mail was sent.
    if !mail::enqueue(tx, &state.master, m, now).await? {
        return Ok(false);
    }
    store::accounts::insert_link(&mut **tx, &secret_hash(&secret), &user.id, purpose, now, now + ttl.ms()).await?;
    Ok(true)
}

/// The mail a newly assigned or invited person gets: a setup link when they have no way to sign in
/// yet (unless one is still pending: its mail is in their inbox), otherwise a note (with the
/// company sign-in address for SSO entities). Every mail is under the per-address quotas of
/// `mail::enqueue`, so assigning and revoking in a loop cannot flood anyone.
pub async fn welcome(
    tx: &mut Tx,
    state: &AppState,
    user: &User,
    created: bool,
    inviter: &str,
    product: Option<&str>,
    now: Millis,
) -> Result<()> {
    let sso_login = crate::saml::sso_login_url_for(&mut **tx, state, user).await?;
    match (sso_login, created || user.password_hash.is_none(), product) {
        (Some(url), true, _) => {
            mail::enqueue(tx, &state.master, Mail::SsoWelcome { email: &user.email, inviter, login_url: &url }, now)
                .await?;
        }
        (None, true, _) => {
            // Serialise with other invitations of this account, then look for a pending link.
            store::accounts::lock_user(&mut **tx, &user.id).await?;
            if store::accounts::has_live_link(&mut **tx, &user.id, LinkPurpose::Setup, now).await? {
                tracing::info!(user = %user.id, "setup mail not sent again: a link is pending");
            } else {
                send_link(tx, state, user, LinkPurpose::Setup, inviter, now).await?;
            }
        }
        (url, false, Some(product)) => {
            let m = Mail::Assigned { email: &user.email, inviter, product, login_url: url.as_deref() };
            mail::enqueue(tx, &state.master, m, now).await?;
        }
        (_, false, None) => {}
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum LinkProblem {
    Unknown,
    Used,
    Expired,
}

impl From<LinkProblem> for ApiError {
    fn from(p: LinkProblem) -> Self {
        match p {
            LinkProblem::Unknown => ApiError::bad_request("invalid_link", "this link is not valid; ask for a new one"),
            LinkProblem::Used => ApiError::gone("link_used", "this link was already used; ask for a new one"),
            LinkProblem::Expired => ApiError::gone("link_expired", "this link has expired; ask for a new one"),
        }
    }
}

/// Look a link up without spending it (to show the page, or to check before hashing).
pub async fn peek_link(state: &AppState, token: &str, now: Millis) -> Result<(store::accounts::Link, User), ApiError> {
    if !token.starts_with(LINK_PREFIX) || token.len() > 100 {
        return Err(LinkProblem::Unknown.into());
    }
    let link = store::accounts::link_by_hash(&state.db.pool, &secret_hash(token)).await?.ok_or(LinkProblem::Unknown)?;
    if link.used_at.is_some() {
        return Err(LinkProblem::Used.into());
    }
    if link.expires_at <= now {
        return Err(LinkProblem::Expired.into());
    }
    let user = store::accounts::user_by_id(&state.db.pool, &link.user_id).await?.ok_or(LinkProblem::Unknown)?;
    Ok((link, user))
}

/// A password was set or changed: whoever signed in before (with the old password, or a stolen
/// session) is out. Every browser session, every refresh family (its access tokens are refused
/// with it), unexchanged authorization codes and approved device codes of the user end, and past
/// failed attempts on the account stop counting. Call it in the transaction that stores the hash.
pub async fn end_sign_ins(tx: &mut Tx, state: &AppState, user: &User, now: Millis) -> Result<()> {
    store::tokens::revoke_families_of_user(tx, &user.id, None, "password changed", now).await?;
    store::sessions::end_sign_ins_of_user(tx, &user.id, now).await?;
    throttle::clear_account(&mut **tx, state, &user.email).await?;
    Ok(())
}

/// Set a password through a setup or reset link. The link is spent only when the password is
/// accepted; every other link of the account and every sign-in before it end with it.
pub async fn set_password_with_link(
    state: &AppState,
    ctx: &crate::audit::Context,
    token: &str,
    password: &str,
) -> Result<User> {
    let now = state.now();
    let (_, user) = peek_link(state, token, now).await?;
    password::check_policy(password, &user.email)?;
    if crate::saml::sso_login_url_for(&state.db.pool, state, &user).await?.is_some() {
        return Err(ApiError::conflict(
            "sso_required",
            "your organisation signs you in with its company account; there is no password to set",
        ));
    }
    let hash = state.hasher.hash(password).await?;
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    if !store::accounts::spend_link(&mut *tx, &secret_hash(token), now).await? {
        return Err(LinkProblem::Used.into());
    }
    store::accounts::set_password(&mut *tx, &user.id, &hash, now).await?;
    store::accounts::spend_all_links(&mut *tx, &user.id, now).await?;
    end_sign_ins(&mut tx, state, &user, now).await?;
    let mut event =
        crate::audit::Event::new("user.password_set").target(crate::audit::Target::user(&user.id, &user.email));
    if let Some(e) = store::entities::entity_by_id(&mut *tx, &user.entity_id).await? {
        event = event.entity(&e.id, &e.slug);
    }
    let first = user.password_hash.is_none();
    event
        .details(serde_json::json!({ "first_password": first }))
        .record(&mut tx, &ctx.as_actor(crate::audit::Actor::user(&user.id, &user.email)), now)
        .await?;
    tx.commit().await?;
    tracing::info!(user = %user.id, "password set");
    Ok(user)
}

/// Mail a reset link when the account exists and may use a password. Says nothing either way.
/// The mail quota bounds how many an address gets (`mail::PER_KIND_PER_HOUR`).
pub async fn forgot(state: &AppState, email: &str) -> Result<()> {
    let now = state.now();
    let Some(user) = store::accounts::user_by_email(&state.db.pool, email).await? else { return Ok(()) };
    if crate::saml::sso_login_url_for(&state.db.pool, state, &user).await?.is_some() {
        return Ok(());
    }
    let mut tx = state.db.begin_write().await?;
    if !send_link(&mut tx, state, &user, LinkPurpose::Reset, "latchkey", now).await? {
        tracing::info!(user = %user.id, "reset link not sent: hourly limit");
        return Ok(());
    }
    tx.commit().await?;
    state.wake_mailer();
    Ok(())
}

/// Answer at once and do the work behind: the response time must not tell whether the account exists.
pub fn forgot_in_background(state: &AppState, email: String) {
    let s = state.clone();
    state.background.spawn(async move {
        if let Err(e) = forgot(&s, &email).await {
            tracing::error!(error = ?e, "forgot-password");
        }
    });
}

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(set_password_json, forgot_json,))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/account/password", post(set_password_json))
        .route("/api/v1/account/forgot", post(forgot_json))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    /// the `lk_ln_...` token of a setup or reset link
    token: String,
    /// at least 12 characters, at most 1024 bytes, not trivially guessable
    #[schema(min_length = 12)]
    password: String,
}

problems!(SetPasswordProblems [json_body]:
    400 invalid_link,
    409 sso_required,
    410 link_used,
    410 link_expired,
    422 invalid_request,
    422 weak_password,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/account/password",
    operation_id = "setPassword",
    tag = "accounts",
    summary = "Set a password with a setup or reset link",
    description = "The JSON twin of the form at /account/setup and /account/reset.",
    request_body(content = SetPassword),
    responses(
        (status = 204, description = "set; the link is spent, the account's other links too, and its password sessions end"),
        SetPasswordProblems,
    ),
)]
#[tracing::instrument(skip_all)]
async fn set_password_json(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    ApiJson(body): ApiJson<SetPassword>,
) -> Result<StatusCode> {
    set_password_with_link(&state, &ctx, &body.token, &body.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Forgot {
    /// an email address; compared case-insensitively and answered in lower case
    #[schema(format = Email, max_length = 254)]
    email: String,
}

problems!(ForgotPasswordProblems:
    400 invalid_json,
    415 unsupported_media_type,
    500 internal,
);
#[utoipa::path(
    post,
    path = "/api/v1/account/forgot",
    operation_id = "forgotPassword",
    tag = "accounts",
    summary = "Ask for a password reset link",
    request_body(content = Forgot),
    responses(
        (status = 202, description = "always, whether or not the address has an account (or is an address at all)"),
        ForgotPasswordProblems,
    ),
)]
#[tracing::instrument(skip_all)]
async fn forgot_json(State(state): State<AppState>, ApiJson(body): ApiJson<Forgot>) -> Result<StatusCode> {
    // Always 202, even for something that is not an address: the answer says nothing.
    let Ok(email) = normalize_email(&body.email) else { return Ok(StatusCode::ACCEPTED) };
    forgot_in_background(&state, email);
    Ok(StatusCode::ACCEPTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(normalize_email("  Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a b@example.com",
            "alice@exa_mple.com",
            "alice@-x.com",
            "a\"b@example.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
