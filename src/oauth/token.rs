//! `POST /oauth/token`.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    accounts::{self, password, throttle},
    audit::{self, Actor, Target},
    auth::ClientIp,
    error::{ApiError, OAuthForm, Result},
    state::AppState,
    store,
    tokens::{self, Amr, TokenResponse},
};

/// The form of every grant; which fields a grant takes is in the request body's description.
/// `refresh_token` spends the token and returns a new pair (a spent token presented again revokes
/// its whole family); the password grant is refused with `sso_required` for users of an entity with
/// SSO enabled; the device grant answers `authorization_pending` until the user decides.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TokenRequest)]
pub struct TokenForm {
    /// `password`, `refresh_token`, `authorization_code` or `urn:ietf:params:oauth:grant-type:device_code`
    grant_type: Option<String>,
    /// the product's SKU, or `portal`
    #[schema(min_length = 1)]
    client_id: Option<String>,
    /// password grant: the email
    #[schema(min_length = 1)]
    username: Option<String>,
    /// password grant
    #[schema(min_length = 1)]
    password: Option<String>,
    /// refresh_token grant
    #[schema(min_length = 1)]
    refresh_token: Option<String>,
    /// authorization_code grant
    #[schema(min_length = 1)]
    code: Option<String>,
    /// authorization_code grant: the PKCE verifier
    #[schema(min_length = 43, max_length = 128)]
    code_verifier: Option<String>,
    /// authorization_code grant
    #[schema(min_length = 1)]
    redirect_uri: Option<String>,
    /// device_code grant
    #[schema(min_length = 1)]
    device_code: Option<String>,
}

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str> {
    v.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| ApiError::invalid_request(format!("`{name}` is required")))
}

/// The OAuth errors of this endpoint (RFC 6749 §5.2 form).
pub struct TokenErrors;
impl utoipa::IntoResponses for TokenErrors {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        crate::api_doc::oauth_errors(&[
            (
                400,
                "The grant was refused",
                &[
                    ("invalid_request", "a required field is missing, or the body is not a form"),
                    (
                        "invalid_grant",
                        "wrong email or password; unknown, spent, expired, revoked or other-client refresh token, code or device code; PKCE verifier mismatch; account gone",
                    ),
                    ("unsupported_grant_type", "`grant_type` is none of the four"),
                    (
                        "sso_required",
                        "the address is in a verified domain of an entity with SSO on: a password grant, or an authorization code, device code or refresh token that stems from a password sign-in; `login_url` says where",
                    ),
                    ("authorization_pending", "device grant: the user has not approved yet"),
                    ("slow_down", "device grant: polled faster than `interval`; the body carries the new `interval`"),
                    ("access_denied", "device grant: the user denied the request"),
                    ("expired_token", "device grant: the device code expired"),
                ],
            ),
            (
                401,
                "Unknown client",
                &[(
                    "invalid_client",
                    "`client_id` missing (where required) or not `portal` nor a registered product's SKU",
                )],
            ),
            (429, "Password grant throttled after repeated failures", &[("slow_down", "wait `Retry-After` seconds")]),
        ])
    }
}
problems!(TokenProblems:
    500 internal,
);
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "token",
    tag = "oauth",
    summary = "Token endpoint (password, refresh_token, authorization_code, device_code grants)",
    description = "Public clients (no client authentication). Products use their SKU as `client_id`; the web portal and admin scripts use `portal`.",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded", description = "Form fields per grant:\n- `password`: `username` (email), `password`, `client_id`\n- `refresh_token`: `refresh_token`, optional `client_id`\n- `authorization_code`: `code`, `code_verifier` (PKCE S256), `redirect_uri`, `client_id`\n- `urn:ietf:params:oauth:grant-type:device_code`: `device_code`, `client_id`"),
    responses(
        (status = 200, description = "tokens issued (`Cache-Control: no-store`)", body = crate::tokens::TokenResponse, headers(("Cache-Control" = String, description = "`no-store`"))),
        TokenProblems,
        TokenErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(grant_type))]
pub async fn token(
    State(state): State<AppState>,
    ip: ClientIp,
    ctx: audit::Context,
    OAuthForm(form): OAuthForm<TokenForm>,
) -> Response {
    let grant = form.grant_type.clone().unwrap_or_default();
    tracing::Span::current().record("grant_type", grant.as_str());
    let result = match grant.as_str() {
        "password" => password_grant(&state, ip, &ctx, &form).await,
        "refresh_token" => refresh_grant(&state, &ctx, &form).await,
        "authorization_code" => {
            super::authorize::code_grant(
                &state,
                &ctx,
                form.client_id.as_deref(),
                form.code.as_deref(),
                form.code_verifier.as_deref(),
                form.redirect_uri.as_deref(),
            )
            .await
        }
        DEVICE_GRANT => {
            super::device::device_grant(&state, form.client_id.as_deref(), form.device_code.as_deref()).await
        }
        "" => Err(ApiError::invalid_request("`grant_type` is required")),
        _ => Err(ApiError::oauth(
            axum::http::StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("grant type `{grant}` is not supported"),
        )),
    };
    match result {
        Ok(t) => {
            let mut resp = Json(t).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => e.into_oauth().into_response(),
    }
}

pub async fn check_client(state: &AppState, client_id: Option<&str>) -> Result<String> {
    let cid = client_id.filter(|c| !c.is_empty()).ok_or_else(|| ApiError::invalid_client("`client_id` is required"))?;
    if !super::is_known_client(state, cid).await? {
        return Err(ApiError::invalid_client(format!("unknown client `{cid}`")));
    }
    Ok(cid.to_string())
}

async fn password_grant(
    state: &AppState,
    ip: ClientIp,
    ctx: &audit::Context,
    form: &TokenForm,
) -> Result<TokenResponse> {
    let client_id = check_client(state, form.client_id.as_deref()).await?;
    let username = required(&form.username, "username")?;
    let pw = required(&form.password, "password")?;
    let (user, entity_slug) = password_login(state, ip, ctx, username, pw).await?;
    // Told only to whoever knows the password: the product must use the browser, which asks for the code.
    if accounts::mfa::required(state, &user.id).await? {
        return Err(ApiError::oauth(
            axum::http::StatusCode::BAD_REQUEST,
            "mfa_required",
            "this account signs in with a second factor: sign in through the browser (/oauth/authorize with PKCE, or the device flow)",
        ));
    }
    let now = state.now();
    let mut tx = state.db.begin_write().await?;
    let t = tokens::issue_in(&mut tx, state, &user, &entity_slug, &client_id, Amr::Pwd, now).await?;
    signed_in(&user, &entity_slug, "password", &client_id)
        .record(&mut tx, &ctx.as_actor(Actor::user(&user.id, &user.email)), now)
        .await?;
    tx.commit().await?;
    state.metrics.token_issued("new");
    Ok(t)
}

/// `user.signed_in`, on the chain of the user's entity.
pub fn signed_in(user: &store::accounts::User, entity_slug: &str, method: &str, client: &str) -> audit::Event {
    audit::Event::new("user.signed_in")
        .entity(&user.entity_id, entity_slug)
        .target(Target::user(&user.id, &user.email))
        .details(serde_json::json!({ "method": method, "client": client }))
}

/// A refused password: on the account's entity chain when the account exists, else the operator's.
async fn sign_in_failed(
    state: &AppState,
    ctx: &audit::Context,
    email: &str,
    user: Option<&store::accounts::User>,
    now: crate::clock::Millis,
) -> Result<()> {
    let mut event = audit::Event::new("user.sign_in_failed")
        .details(serde_json::json!({ "method": "password", "reason": "wrong_credentials" }));
    if let Some(u) = user {
        event = event.target(Target::user(&u.id, &u.email));
        if let Some(e) = store::entities::entity_by_id(&state.db.pool, &u.entity_id).await? {
            event = event.entity(&e.id, &e.slug);
        }
    }
    event.record_alone(state, &ctx.as_actor(Actor::claimed(email)), now).await?;
    Ok(())
}

const WRONG_CREDENTIALS: &str = "wrong email or password";

/// Check an email and password, with throttling and without revealing whether the account exists.
/// Shared by the password grant and the browser sign-in form.
pub async fn password_login(
    state: &AppState,
    ip: ClientIp,
    ctx: &audit::Context,
    username: &str,
    pw: &str,
) -> Result<(store::accounts::User, String)> {
    let now = state.now();
    let Ok(email) = accounts::normalize_email(username) else {
        return Err(ApiError::invalid_grant(WRONG_CREDENTIALS));
    };
    // Decided by the address's verified domain, before any account is looked at or any attempt
    // counted: every address there gets the same answer, whether it has an account or not.
    if let Some(login_url) = crate::saml::sso_login_url_for_email(&state.db.pool, state, &email).await? {
        return Err(crate::saml::policy::sso_required(login_url));
    }
    // Counted before anything is evaluated: a burst of guesses gets only the budget evaluated.
    let limits = throttle::password_limits(state, &email, ip.0);
    let attempt = throttle::attempt(state, &limits, now).await?;
    let user = store::accounts::user_by_email(&state.db.pool, &email).await?;
    if pw.len() > password::MAX_BYTES {
        attempt.failed(state);
        sign_in_failed(state, ctx, &email, user.as_ref(), now).await?;
        return Err(ApiError::invalid_grant(WRONG_CREDENTIALS));
    }
    // Always pay for one hash, so an unknown email answers as slowly as a wrong password.
    let ok = state.hasher.verify(pw, user.as_ref().and_then(|u| u.password_hash.as_deref())).await?;
    if !ok {
        attempt.failed(state);
        sign_in_failed(state, ctx, &email, user.as_ref(), now).await?;
        return Err(ApiError::invalid_grant(WRONG_CREDENTIALS));
    }
    let Some(user) = user else {
        attempt.failed(state);
        return Err(ApiError::invalid_grant(WRONG_CREDENTIALS));
    };
    attempt.succeeded(state).await?;
    if user.deactivated_at.is_some() {
        // Said only to whoever knows the password.
        return Err(ApiError::invalid_grant("this account has been deactivated by your organisation"));
    }
    let entity = store::entities::entity_by_id(&state.db.pool, &user.entity_id)
        .await?
        .ok_or_else(|| ApiError::internal("account without entity"))?;
    Ok((user, entity.slug))
}

async fn refresh_grant(state: &AppState, ctx: &audit::Context, form: &TokenForm) -> Result<TokenResponse> {
    let presented = required(&form.refresh_token, "refresh_token")?;
    if let Some(cid) = form.client_id.as_deref().filter(|c| !c.is_empty()) {
        check_client(state, Some(cid)).await?;
    }
    if !presented.starts_with(tokens::REFRESH_PREFIX) || presented.len() > 100 {
        return Err(ApiError::invalid_grant("unknown or revoked refresh token"));
    }
    tokens::refresh(state, ctx, presented, form.client_id.as_deref().filter(|c| !c.is_empty()), state.now()).await
}
