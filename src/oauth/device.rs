//! The device authorization grant (RFC 8628) for headless machines: the product shows a short
//! code, the user signs in on any browser at `/device` (password or SSO) and approves it, and the
//! product, polling the token endpoint, receives its tokens.

use askama::Template;
use axum::{
    Form, Json,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::views::DeviceAuthorization;
use crate::{
    accounts::throttle,
    auth::ClientIp,
    browser::{csrf, login_path, message, page, session},
    clock::Millis,
    crypto::{random_bytes, random_secret, secret_hash},
    error::{ApiError, ApiQuery, OAuthForm, Result},
    state::AppState,
    store,
    tokens::{self, Amr, TokenResponse},
};

const DEVICE_TTL_MS: Millis = 10 * 60_000;
const INTERVAL_S: i64 = 5;
/// RFC 8628 §6.1: consonants only (no vowels, so no words), 20^8 codes.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

fn user_code() -> String {
    loop {
        if let Some(code) = code_from(random_bytes::<16>()) {
            return code;
        }
    }
}

/// Eight letters from random bytes by rejection sampling: a byte of 240 or more (240 = 12 × 20)
/// is skipped, so every letter is equally likely (a plain `% 20` favours the first 16 letters).
/// `None` when the bytes run out first (about once in 10^6 draws of 16 bytes).
fn code_from(raw: impl IntoIterator<Item = u8>) -> Option<String> {
    const LIMIT: u8 = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
    let c: Vec<char> =
        raw.into_iter().filter(|b| *b < LIMIT).take(8).map(|b| ALPHABET[b as usize % ALPHABET.len()] as char).collect();
    (c.len() == 8).then(|| format!("{}-{}", c[..4].iter().collect::<String>(), c[4..].iter().collect::<String>()))
}

/// Accept what a person types: lower case, spaces, missing dash.
fn normalize_user_code(raw: &str) -> Option<String> {
    let c: String = raw.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect();
    (c.len() == 8 && c.bytes().all(|b| ALPHABET.contains(&b))).then(|| format!("{}-{}", &c[..4], &c[4..]))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = DeviceAuthorizationRequest)]
pub struct DeviceAuthorizationForm {
    #[schema(min_length = 1, required = true, nullable = false)]
    client_id: Option<String>,
}

/// The OAuth errors of this endpoint (RFC 6749 §5.2 form).
pub struct DeviceAuthorizationErrors;
impl utoipa::IntoResponses for DeviceAuthorizationErrors {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        crate::api_doc::oauth_errors(&[
            (400, "Malformed request", &[("invalid_request", "the body is not a form")]),
            (401, "Unknown client", &[("invalid_client", "`client_id` missing or not a known client")]),
        ])
    }
}
problems!(DeviceAuthorizationProblems:
    500 internal,
);
#[utoipa::path(
    post,
    path = "/oauth/device_authorization",
    operation_id = "deviceAuthorization",
    tag = "oauth",
    summary = "Start a device authorization (RFC 8628)",
    request_body(content = DeviceAuthorizationForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "the codes; show `user_code` and `verification_uri` to the user, then poll /oauth/token every `interval` seconds", body = crate::oauth::views::DeviceAuthorization, headers(("Cache-Control" = String, description = "`no-store`"))),
        DeviceAuthorizationProblems,
        DeviceAuthorizationErrors,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn device_authorization(
    State(state): State<AppState>,
    OAuthForm(form): OAuthForm<DeviceAuthorizationForm>,
) -> Response {
    let run = async {
        let client_id = crate::oauth::check_client(&state, form.client_id.as_deref()).await?;
        let now = state.now();
        let device_code = random_secret("lk_dc_");
        // A fresh user code; on the rare collision with a live one, draw again.
        for _ in 0..5 {
            let code = user_code();
            match store::sessions::insert_device(
                &state.db.pool,
                &secret_hash(&device_code),
                &code,
                &client_id,
                now,
                now + DEVICE_TTL_MS,
                INTERVAL_S,
            )
            .await
            {
                Ok(()) => {
                    let complete = format!("{}?user_code={}", state.url("/device"), code);
                    return Ok(DeviceAuthorization {
                        device_code,
                        expires_in: DEVICE_TTL_MS / 1000,
                        interval: INTERVAL_S,
                        user_code: code,
                        verification_uri: state.url("/device"),
                        verification_uri_complete: complete,
                    });
                }
                Err(e) if store::is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::internal("could not draw a free user code"))
    };
    match run.await {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], Json(v)).into_response(),
        Err(e) => e.into_oauth().into_response(),
    }
}

#[derive(Template)]
#[template(path = "pages/device.html")]
struct DevicePage<'a> {
    user_code: &'a str,
    product: Option<&'a str>,
    email: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct DeviceQuery {
    user_code: Option<String>,
}

pub async fn device_page(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<DeviceQuery>,
) -> Response {
    let typed = q.user_code.clone().unwrap_or_default();
    let here = match normalize_user_code(&typed) {
        Some(c) => format!("/device?user_code={c}"),
        None => "/device".to_string(),
    };
    let bu = match session::current(&state, &headers).await {
        Ok(Some(bu)) => bu,
        Ok(None) => return Redirect::to(&login_path(&here, None)).into_response(),
        Err(e) => return e.into_response(),
    };
    let csrf = session::csrf_token(&state, &bu.session_hash);
    let ask = |status, error: Option<&str>| {
        page(status, &DevicePage { user_code: &typed, product: None, email: &bu.user.email, csrf: &csrf, error })
    };
    if typed.is_empty() {
        return ask(StatusCode::OK, None);
    }
    let Some(code) = normalize_user_code(&typed) else {
        return ask(StatusCode::UNPROCESSABLE_ENTITY, Some("That code is not valid; check it on your device."));
    };
    let limits = throttle::device_code_limits(&state, &bu.user.id, ip.0);
    let attempt = match throttle::attempt(&state, &limits, state.now()).await {
        Ok(a) => a,
        Err(e) => return too_many_guesses(e),
    };
    match live_device(&state, &code).await {
        Ok(Some(d)) => {
            if let Err(e) = attempt.succeeded(&state).await {
                return e.into_response();
            }
            let product = match store::entities::product_by_sku(&state.db.pool, &d.client_id).await {
                Ok(p) => p.map(|p| p.name).unwrap_or_else(|| d.client_id.clone()),
                Err(e) => return ApiError::from(e).into_response(),
            };
            page(
                StatusCode::OK,
                &DevicePage {
                    user_code: &code,
                    product: Some(&product),
                    email: &bu.user.email,
                    csrf: &csrf,
                    error: None,
                },
            )
        }
        Ok(None) => {
            attempt.failed(&state);
            ask(StatusCode::NOT_FOUND, Some("That code is unknown or has expired; start again on your device."))
        }
        Err(e) => e.into_response(),
    }
}

/// Too many wrong codes from this address or this user: a page with the wait (and Retry-After).
fn too_many_guesses(e: ApiError) -> Response {
    let ApiError::OAuth(o) = &e else { return e.into_response() };
    let wait = o.retry_after.unwrap_or(1);
    let mut r = message(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many wrong codes",
        &format!("Wait {wait} seconds, then type the code shown on your device again."),
    );
    if let Ok(v) = wait.to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

async fn live_device(state: &AppState, code: &str) -> Result<Option<store::sessions::Device>> {
    let d = store::sessions::device_by_user_code(&state.db.pool, code).await?;
    let now = state.now();
    Ok(d.filter(|d| d.expires_at > now && d.approved_at.is_none() && d.denied_at.is_none()))
}

#[derive(Deserialize)]
pub struct DecisionForm {
    user_code: String,
    decision: String,
    csrf: String,
}

#[tracing::instrument(skip_all)]
pub async fn device_decide(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return message(StatusCode::BAD_REQUEST, "Something is missing", "Open the device page again.");
    };
    let bu = match session::current(&state, &headers).await {
        Ok(Some(bu)) => bu,
        Ok(None) => return Redirect::to(&login_path("/device", None)).into_response(),
        Err(e) => return e.into_response(),
    };
    if csrf::check_session(&state, &headers, &bu.session_hash, Some(&f.csrf)).is_err() {
        return message(StatusCode::FORBIDDEN, "Not approved", "The form was not ours. Open the device page again.");
    }
    let Some(code) = normalize_user_code(&f.user_code) else {
        return message(StatusCode::UNPROCESSABLE_ENTITY, "Not approved", "That code is not valid.");
    };
    let approve = f.decision == "approve";
    // A decision names a code too: it is a guess like any other.
    let limits = throttle::device_code_limits(&state, &bu.user.id, ip.0);
    let attempt = match throttle::attempt(&state, &limits, state.now()).await {
        Ok(a) => a,
        Err(e) => return too_many_guesses(e),
    };
    match store::sessions::decide_device(&state.db.pool, &code, &bu.user.id, &bu.amr, approve, state.now()).await {
        Ok(true) => {
            if let Err(e) = attempt.succeeded(&state).await {
                return e.into_response();
            }
            if approve {
                message(StatusCode::OK, "Device signed in", "You can return to your device; it continues on its own.")
            } else {
                message(StatusCode::OK, "Request denied", "The device was not signed in.")
            }
        }
        Ok(false) => {
            attempt.failed(&state);
            message(StatusCode::NOT_FOUND, "Not approved", "That code is unknown, expired or already used.")
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4-3.5).
pub async fn device_grant(
    state: &AppState,
    client_id: Option<&str>,
    device_code: Option<&str>,
) -> Result<TokenResponse> {
    let client_id = crate::oauth::check_client(state, client_id).await?;
    let device_code =
        device_code.filter(|c| !c.is_empty()).ok_or_else(|| ApiError::invalid_request("`device_code` is required"))?;
    let hash = secret_hash(device_code);
    let now = state.now();
    let d = store::sessions::device_by_hash(&state.db.pool, &hash)
        .await?
        .ok_or_else(|| ApiError::invalid_grant("unknown device code"))?;
    let bad = |code: &'static str, why: &str| ApiError::oauth(StatusCode::BAD_REQUEST, code, why);
    if d.client_id != client_id {
        return Err(ApiError::invalid_grant("the device code was issued to another client"));
    }
    if d.used_at.is_some() {
        return Err(ApiError::invalid_grant("the device code was already used"));
    }
    if d.denied_at.is_some() {
        return Err(bad("access_denied", "the user denied the request"));
    }
    if d.expires_at <= now {
        return Err(bad("expired_token", "the device code has expired; start again"));
    }
    if d.approved_at.is_none() {
        // Polling faster than the interval earns a longer one (§3.5).
        let too_fast = d.last_poll_at.is_some_and(|t| now - t < d.interval_s * 1000);
        let interval = if too_fast { d.interval_s + 5 } else { d.interval_s };
        store::sessions::note_poll(&state.db.pool, &hash, now, interval).await?;
        return Err(if too_fast {
            bad("slow_down", &format!("poll at most every {interval} seconds")).with("interval", interval)
        } else {
            bad("authorization_pending", "the user has not approved yet")
        });
    }
    let user_id = d.user_id.ok_or_else(|| ApiError::internal("approved device code without user"))?;
    let user = store::accounts::user_by_id(&state.db.pool, &user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_grant("the account no longer exists"))?;
    let entity = store::entities::entity_by_id(&state.db.pool, &user.entity_id)
        .await?
        .ok_or_else(|| ApiError::internal("account without entity"))?;
    // Approved in a password session just before SSO came to govern the address: refused now.
    crate::saml::policy::check_grant(state, &user, d.amr.as_deref().unwrap_or("pwd")).await?;
    let amr = if d.amr.as_deref() == Some("saml") { Amr::Saml } else { Amr::Pwd };
    let mut tx = state.db.begin_write().await?;
    if !store::sessions::spend_device(&mut *tx, &hash, now).await? {
        return Err(ApiError::invalid_grant("the device code was already used"));
    }
    let t = tokens::issue_in(&mut tx, state, &user, &entity.slug, &client_id, amr, now).await?;
    tx.commit().await?;
    state.metrics.token_issued("device_code");
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_consonants_and_typing_is_forgiven() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(normalize_user_code(&c), Some(c.clone()));
        assert_eq!(normalize_user_code(&c.to_lowercase().replace('-', " ")), Some(c));
        assert_eq!(normalize_user_code("ABCD-EFGH"), None, "vowels are not in the alphabet");
        assert_eq!(normalize_user_code("BCDF"), None);
    }

    #[test]
    fn every_letter_of_a_user_code_is_equally_likely() {
        // Bytes 240..=255 would favour B..T under a plain modulo: they are skipped.
        assert_eq!(code_from([240, 255, 0, 1, 2, 3, 4, 5, 6, 19, 239]), Some("BCDF-GHJZ".to_string()));
        assert_eq!(code_from([250; 16]), None);
        // Each byte value below 240 maps to a letter exactly 12 times.
        let mut seen = [0usize; 20];
        for b in 0..=255u8 {
            if let Some(code) = code_from(std::iter::repeat_n(b, 8)) {
                seen[ALPHABET.iter().position(|&l| l as char == code.chars().next().unwrap()).unwrap()] += 1;
            }
        }
        assert_eq!(seen, [12; 20]);
    }
}
