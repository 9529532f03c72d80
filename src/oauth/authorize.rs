//! The authorization-code flow for products (RFC 6749 §4.1 with PKCE S256, RFC 7636, and loopback
//! redirects, RFC 8252): `/oauth/authorize` signs the user in through the browser (password or
//! SSO) and redirects to the product's loopback address with a single-use code.

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use base64::Engine;
use serde::Deserialize;

use crate::{
    browser::{login_path, message, session},
    clock::Millis,
    crypto::{ct_eq, random_secret, secret_hash},
    error::{ApiError, ApiQuery, Result},
    state::AppState,
    store::{self, sessions::AuthzRequest},
    tokens::{self, Amr, TokenResponse},
};

const CODE_TTL_MS: Millis = 60_000;
const REQUEST_TTL_MS: Millis = 15 * 60_000;

#[derive(Deserialize)]
pub struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    state: Option<String>,
    login_hint: Option<String>,
}

/// A loopback redirect URI (RFC 8252 §7.3): `http://127.0.0.1:{port}/...` or `http://[::1]:{port}/...`.
pub fn is_loopback_redirect(raw: &str) -> bool {
    let Ok(u) = url::Url::parse(raw) else { return false };
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    };
    u.scheme() == "http"
        && loopback
        && u.username().is_empty()
        && u.password().is_none()
        && u.fragment().is_none()
        && raw.len() <= 2048
}

fn valid_challenge(c: &str) -> bool {
    (43..=128).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Redirect back to the product with `params` added to its redirect URI.
fn back_to_client(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut u) = url::Url::parse(redirect_uri) else {
        return message(StatusCode::BAD_REQUEST, "Sign-in failed", "The product's return address is not valid.");
    };
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Redirect::to(u.as_str()).into_response()
}

fn client_error(redirect_uri: &str, state: Option<&str>, error: &str, description: &str) -> Response {
    let mut p = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        p.push(("state", s));
    }
    back_to_client(redirect_uri, &p)
}

problems!(AuthorizeProblems:
    500 internal,
);
#[utoipa::path(
    get,
    path = "/oauth/authorize",
    operation_id = "authorize",
    tag = "oauth",
    summary = "Authorization endpoint (authorization code + PKCE, loopback redirect)",
    description = "Browser endpoint. Shows an email page; an SSO user goes to the IdP, others get a password form; ends with a redirect to `redirect_uri` with a single-use code (valid 60 s) for `grant_type=authorization_code`.",
    params(
        ("response_type" = String, Query, description = "must be `code`", /*enum ['code']*/),
        ("client_id" = String, Query, description = "the product's SKU or `portal`"),
        ("redirect_uri" = String, Query, description = "a loopback URI: `http://127.0.0.1:{port}/...` or `http://[::1]:{port}/...` (RFC 8252), no fragment", format = "uri", max_length = 2048),
        ("code_challenge" = String, Query, description = "PKCE: BASE64URL(SHA-256(code_verifier)), 43 to 128 unreserved characters", min_length = 43, max_length = 128, pattern = "^[A-Za-z0-9._~-]+$"),
        ("code_challenge_method" = String, Query, description = "must be `S256`", /*enum ['S256']*/),
        ("state" = Option<String>, Query, description = "returned unchanged; at most 1024 bytes", max_length = 1024),
        ("login_hint" = Option<String>, Query, description = "the email to sign in with; an SSO user goes straight to the IdP", max_length = 254),
    ),
    responses(
        (status = 303, description = "A redirect (always 303 See Other):\n- to `/login?return_to=/oauth/authorize/resume?request=...` (with `login_hint`) when the browser has no session;\n- to `redirect_uri?code=...&state=...` when the browser is already signed in (as the hinted user);\n- to `redirect_uri?error=...&error_description=...&state=...` for a bad request once the client and redirect URI are known good (`unsupported_response_type`; `invalid_request`: PKCE missing or not S256, or `state` longer than 1024 bytes, in which case `state` is not echoed).", headers(("Location" = String, description = "where the browser goes next"))),
        (status = 400, description = "Unknown `client_id` or a `redirect_uri` that is not a loopback URI: an HTML page, never a redirect. A malformed query string (e.g. a repeated parameter) answers problem+json `invalid_query`.", content((String = "text/html"), (crate::api_doc::Problem = "application/problem+json"))),
        AuthorizeProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<AuthorizeQuery>,
) -> Response {
    // Until the client and its redirect URI are known good, errors are shown here, never redirected.
    let client_id = q.client_id.clone().unwrap_or_default();
    match crate::oauth::is_known_client(&state, &client_id).await {
        Ok(true) => {}
        Ok(false) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Unknown product",
                "This product is not registered with latchkey.",
            );
        }
        Err(e) => return e.into_response(),
    }
    let redirect_uri = q.redirect_uri.clone().unwrap_or_default();
    if !is_loopback_redirect(&redirect_uri) {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The product's return address must be a loopback address such as http://127.0.0.1:PORT/callback.",
        );
    }
    let st = q.state.as_deref();
    if st.is_some_and(|s| s.len() > 1024) {
        return client_error(&redirect_uri, None, "invalid_request", "state is too long");
    }
    if q.response_type.as_deref() != Some("code") {
        return client_error(&redirect_uri, st, "unsupported_response_type", "only response_type=code is supported");
    }
    let challenge = q.code_challenge.clone().unwrap_or_default();
    if q.code_challenge_method.as_deref() != Some("S256") || !valid_challenge(&challenge) {
        return client_error(
            &redirect_uri,
            st,
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        );
    }
    let now = state.now();
    let request = AuthzRequest {
        id: random_secret("az_"),
        client_id,
        redirect_uri,
        code_challenge: challenge,
        state: q.state.clone(),
        login_hint: q.login_hint.clone().filter(|h| h.len() <= 254),
        expires_at: now + REQUEST_TTL_MS,
    };
    // Already signed in as the hinted user (or with no hint): answer at once.
    match session::current(&state, &headers).await {
        Ok(Some(bu)) if request.login_hint.as_deref().is_none_or(|h| h.eq_ignore_ascii_case(&bu.user.email)) => {
            return finish(&state, &request, &bu.user.id, &bu.amr).await;
        }
        Ok(_) => {}
        Err(e) => return e.into_response(),
    }
    if let Err(e) = store::sessions::insert_authz(&state.db.pool, &request, now).await {
        return ApiError::from(e).into_response();
    }
    let resume = format!("/oauth/authorize/resume?request={}", request.id);
    Redirect::to(&login_path(&resume, request.login_hint.as_deref())).into_response()
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    request: Option<String>,
}

problems!(AuthorizeResumeProblems:
    500 internal,
);
#[utoipa::path(
    get,
    path = "/oauth/authorize/resume",
    operation_id = "authorizeResume",
    tag = "oauth",
    summary = "Finish an authorization request after sign-in (browser)",
    description = "Where /login sends the browser back to. Not called by products.",
    params(
        ("request" = String, Query, description = "the pending request's id (from the redirect of /oauth/authorize)"),
    ),
    responses(
        (status = 303, description = "to `redirect_uri?code=...&state=...`, or back to `/login` when the browser is not signed in", headers(("Location" = String, description = "where the browser goes next"))),
        (status = 400, description = "unknown or expired request (HTML page); a malformed query answers problem+json `invalid_query`", content((String = "text/html"), (crate::api_doc::Problem = "application/problem+json"))),
        AuthorizeResumeProblems,
    ),
)]
/// Back from signing in: finish the authorization request.
pub async fn resume(State(state): State<AppState>, headers: HeaderMap, ApiQuery(q): ApiQuery<ResumeQuery>) -> Response {
    let id = q.request.unwrap_or_default();
    let request = match store::sessions::authz(&state.db.pool, &id, state.now()).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return message(StatusCode::BAD_REQUEST, "Sign-in expired", "Start signing in again from your product.");
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let bu = match session::current(&state, &headers).await {
        Ok(Some(bu)) => bu,
        Ok(None) => {
            return Redirect::to(&login_path(
                &format!("/oauth/authorize/resume?request={id}"),
                request.login_hint.as_deref(),
            ))
            .into_response();
        }
        Err(e) => return e.into_response(),
    };
    match store::sessions::delete_authz(&state.db.pool, &id).await {
        Ok(true) => finish(&state, &request, &bu.user.id, &bu.amr).await,
        Ok(false) => message(StatusCode::BAD_REQUEST, "Sign-in expired", "Start signing in again from your product."),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn finish(state: &AppState, r: &AuthzRequest, user_id: &str, amr: &str) -> Response {
    let code = random_secret("lk_ac_");
    let now = state.now();
    let row = store::sessions::NewCode {
        code_hash: &secret_hash(&code),
        client_id: &r.client_id,
        redirect_uri: &r.redirect_uri,
        code_challenge: &r.code_challenge,
        user_id,
        amr,
        now,
        expires_at: now + CODE_TTL_MS,
    };
    if let Err(e) = store::sessions::insert_code(&state.db.pool, &row).await {
        return ApiError::from(e).into_response();
    }
    let mut p = vec![("code", code.as_str())];
    if let Some(s) = r.state.as_deref() {
        p.push(("state", s));
    }
    back_to_client(&r.redirect_uri, &p)
}

/// `grant_type=authorization_code`: exchange a code and its PKCE verifier for tokens.
pub async fn code_grant(
    state: &AppState,
    ctx: &crate::audit::Context,
    client_id: Option<&str>,
    code: Option<&str>,
    verifier: Option<&str>,
    redirect_uri: Option<&str>,
) -> Result<TokenResponse> {
    let client_id = crate::oauth::check_client(state, client_id).await?;
    let need = |v: Option<&str>, name: &str| {
        v.filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid_request(format!("`{name}` is required")))
    };
    let (code, verifier, redirect_uri) =
        (need(code, "code")?, need(verifier, "code_verifier")?, need(redirect_uri, "redirect_uri")?);
    let now = state.now();
    let hash = secret_hash(&code);
    let row = store::sessions::code(&state.db.pool, &hash)
        .await?
        .ok_or_else(|| ApiError::invalid_grant("unknown authorization code"))?;
    if row.used_at.is_some() {
        // A code used twice: someone else has it. End whatever its first use started (RFC 6749 §4.1.2).
        if let Some(f) = &row.family_id {
            let mut tx = state.db.begin_write().await?;
            store::tokens::revoke_family(&mut tx, f, "authorization code reused", now).await?;
            tokens::reuse_detected(&mut tx, ctx, &row.user_id, f, "authorization_code", now).await?;
            tx.commit().await?;
        }
        return Err(ApiError::invalid_grant("the authorization code was already used"));
    }
    if row.expires_at <= now {
        return Err(ApiError::invalid_grant("the authorization code has expired"));
    }
    if row.client_id != client_id || row.redirect_uri != redirect_uri {
        return Err(ApiError::invalid_grant("the code was issued to another client or redirect_uri"));
    }
    if !valid_challenge(&verifier) {
        return Err(ApiError::invalid_grant("code_verifier must be 43 to 128 unreserved characters"));
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
    if !ct_eq(computed.as_bytes(), row.code_challenge.as_bytes()) {
        return Err(ApiError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    let user = store::accounts::user_by_id(&state.db.pool, &row.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_grant("the account no longer exists"))?;
    // A code from a password sign-in is worthless once SSO governs the address.
    crate::saml::policy::check_grant(state, &user, &row.amr).await?;
    let entity = store::entities::entity_by_id(&state.db.pool, &user.entity_id)
        .await?
        .ok_or_else(|| ApiError::internal("account without entity"))?;
    let amr = if row.amr == "saml" { Amr::Saml } else { Amr::Pwd };
    let mut tx = state.db.begin_write().await?;
    if !store::sessions::spend_code(&mut *tx, &hash, now).await? {
        return Err(ApiError::invalid_grant("the authorization code was already used"));
    }
    let t = tokens::issue_in(&mut tx, state, &user, &entity.slug, &client_id, amr, now).await?;
    store::sessions::set_code_family(&mut *tx, &hash, &t.family_id).await?;
    tx.commit().await?;
    state.metrics.token_issued("authorization_code");
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_redirects_are_accepted() {
        for ok in ["http://127.0.0.1:53117/callback", "http://127.0.0.1/cb", "http://[::1]:8000/cb?x=1"] {
            assert!(is_loopback_redirect(ok), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:5000/cb",
            "http://localhost:5000/cb",
            "http://127.0.0.2:5000/cb",
            "http://evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://user@127.0.0.1:5/cb",
            "http://127.0.0.1:5/cb#frag",
            "custom://cb",
        ] {
            assert!(!is_loopback_redirect(bad), "{bad}");
        }
    }
}
