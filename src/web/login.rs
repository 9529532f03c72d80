//! Browser sign-in: `/login` asks for the email and sends users of an SSO entity to their IdP,
//! others to a password form; `/logout`; `/account`, the page a signed-in user lands on.

use askama::Template;
use axum::{
    Form,
    extract::{State, rejection::FormRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::{
    accounts,
    auth::ClientIp,
    browser::{
        csrf, login_path, message, page,
        session::{self, safe_return_to},
        sign_in_page, sso_path,
    },
    error::{ApiError, ApiQuery},
    state::AppState,
};

#[derive(Template)]
#[template(path = "pages/login.html")]
struct LoginPage<'a> {
    email: &'a str,
    return_to: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "pages/login_password.html")]
struct PasswordPage<'a> {
    email: &'a str,
    return_to: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage<'a> {
    email: &'a str,
    entity: &'a str,
    sso: bool,
    licenses: Vec<String>,
    csrf: &'a str,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    return_to: Option<String>,
    login_hint: Option<String>,
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<LoginQuery>,
) -> Response {
    let return_to = safe_return_to(q.return_to.as_deref()).unwrap_or_else(|| "/portal".into());
    if let Ok(Some(_)) = session::current(&state, &headers).await {
        return Redirect::to(&return_to).into_response();
    }
    let email = q.login_hint.unwrap_or_default();
    // A product's login_hint of an SSO user goes straight on to the IdP.
    if let Ok(e) = accounts::normalize_email(&email)
        && let Ok(Some(slug)) = crate::saml::sso_entity_for_email(&state, &e).await
    {
        return Redirect::to(&sso_path(&slug, &return_to)).into_response();
    }
    let t = csrf::issue(&state, &headers);
    t.attach(sign_in_page(
        StatusCode::OK,
        &LoginPage { email: &email, return_to: &return_to, csrf: t.token(), error: None },
    ))
}

#[derive(Deserialize)]
pub struct EmailStep {
    email: String,
    return_to: Option<String>,
    csrf: Option<String>,
}

pub async fn login_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<EmailStep>, FormRejection>,
) -> Response {
    let t = csrf::issue(&state, &headers);
    let Ok(Form(f)) = form else {
        return t.attach(sign_in_page(
            StatusCode::BAD_REQUEST,
            &LoginPage { email: "", return_to: "/portal", csrf: t.token(), error: Some("Enter your email.") },
        ));
    };
    if let Err(refused) = csrf::check(&state, &headers, f.csrf.as_deref()) {
        return refused.into_response();
    }
    let return_to = safe_return_to(f.return_to.as_deref()).unwrap_or_else(|| "/portal".into());
    let Ok(email) = accounts::normalize_email(&f.email) else {
        return sign_in_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &LoginPage {
                email: &f.email,
                return_to: &return_to,
                csrf: t.token(),
                error: Some("That is not an email address."),
            },
        );
    };
    match crate::saml::sso_entity_for_email(&state, &email).await {
        Ok(Some(slug)) => Redirect::to(&sso_path(&slug, &return_to)).into_response(),
        Ok(None) => sign_in_page(
            StatusCode::OK,
            &PasswordPage { email: &email, return_to: &return_to, csrf: t.token(), error: None },
        ),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct PasswordStep {
    email: String,
    password: String,
    return_to: Option<String>,
    csrf: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn login_password(
    State(state): State<AppState>,
    ip: ClientIp,
    ctx: crate::audit::Context,
    headers: HeaderMap,
    form: Result<Form<PasswordStep>, FormRejection>,
) -> Response {
    let t = csrf::issue(&state, &headers);
    let Ok(Form(f)) = form else {
        return t.attach(sign_in_page(
            StatusCode::BAD_REQUEST,
            &PasswordPage {
                email: "",
                return_to: "/portal",
                csrf: t.token(),
                error: Some("Enter your email and password."),
            },
        ));
    };
    // Before anything else (no throttle count, no hash): a forged sign-in does nothing at all.
    if let Err(refused) = csrf::check(&state, &headers, f.csrf.as_deref()) {
        return refused.into_response();
    }
    let return_to = safe_return_to(f.return_to.as_deref()).unwrap_or_else(|| "/portal".into());
    let again = |status, msg: &str| {
        sign_in_page(
            status,
            &PasswordPage { email: &f.email, return_to: &return_to, csrf: t.token(), error: Some(msg) },
        )
    };
    match crate::oauth::password_login(&state, ip, &ctx, &f.email, &f.password).await {
        Ok((user, entity_slug)) => {
            // An enrolled authenticator: the session starts only after its code.
            match crate::accounts::mfa::required(&state, &user.id).await {
                Ok(true) => return ask_code(&state, &headers, &user.id, &return_to),
                Ok(false) => {}
                Err(e) => return e.into_response(),
            }
            let to = match landing(&state, &user.id, &return_to).await {
                Ok(to) => to,
                Err(e) => return e.into_response(),
            };
            match session::start_signed_in(
                &state,
                &ctx.as_actor(crate::audit::Actor::user(&user.id, &user.email)),
                crate::oauth::signed_in(&user, &entity_slug, "password", "browser"),
                &user.id,
                "pwd",
            )
            .await
            {
                Ok(cookie) => signed_in(cookie, &to),
                Err(e) => e.into_response(),
            }
        }
        Err(ApiError::OAuth(o)) if o.error == "sso_required" => {
            match crate::saml::sso_entity_for_email(&state, &f.email.to_lowercase()).await {
                Ok(Some(slug)) => Redirect::to(&sso_path(&slug, &return_to)).into_response(),
                _ => again(StatusCode::FORBIDDEN, "Your organisation signs you in with its company account."),
            }
        }
        Err(ApiError::OAuth(o)) if o.error == "slow_down" => {
            let mut r = again(StatusCode::TOO_MANY_REQUESTS, &format!("Too many attempts. {}", o.description));
            if let Some(s) = o.retry_after
                && let Ok(v) = s.to_string().parse()
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(ApiError::OAuth(_)) => again(StatusCode::UNAUTHORIZED, "Wrong email or password."),
        Err(e) => e.into_response(),
    }
}

pub async fn account_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bu = match session::current(&state, &headers).await {
        Ok(Some(bu)) => bu,
        Ok(None) => return Redirect::to(&login_path("/account", None)).into_response(),
        Err(e) => return e.into_response(),
    };
    let licenses = match crate::store::licenses::licenses_held_by(&state.db.pool, &bu.user.id).await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let csrf = session::csrf_token(&state, &bu.session_hash);
    page(
        StatusCode::OK,
        &AccountPage {
            email: &bu.user.email,
            entity: &bu.entity_slug,
            sso: bu.amr == "saml",
            licenses: licenses.into_iter().map(|l| format!("{} ({})", l.product_name, l.kind)).collect(),
            csrf: &csrf,
        },
    )
}

#[derive(Deserialize)]
pub struct LogoutForm {
    csrf: Option<String>,
}

pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    if let Ok(Some(bu)) = session::current(&state, &headers).await {
        let presented = form.ok().and_then(|Form(f)| f.csrf);
        if csrf::check_session(&state, &headers, &bu.session_hash, presented.as_deref()).is_err() {
            return message(
                StatusCode::FORBIDDEN,
                "Not signed out",
                "The sign-out form was not ours. Use the button on your account page.",
            );
        }
    }
    match session::end(&state, &headers).await {
        Ok(cookie) => {
            let mut r = message(StatusCode::OK, "Signed out", "You are signed out of latchkey in this browser.");
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        Err(e) => e.into_response(),
    }
}

// ---- second factor at sign-in -----------------------------------------------------------------

const MFA_COOKIE: &str = "lk_mfa";
const MFA_TTL_MS: crate::clock::Millis = 5 * 60_000;

#[derive(Template)]
#[template(path = "pages/login_code.html")]
struct CodePage<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
}

fn mfa_mac(state: &AppState, payload: &str) -> String {
    state.master.keyed_hash(&[b"login-second-factor", payload.as_bytes()])
}

/// The sign-in waiting for its second factor: who passed the password, until when, and where to go.
fn mfa_cookie(state: &AppState, user_id: &str, return_to: &str, now: crate::clock::Millis) -> header::HeaderValue {
    let payload =
        crate::crypto::b64url(serde_json::json!([user_id, now + MFA_TTL_MS, return_to]).to_string().as_bytes());
    let value = format!("{payload}.{}", mfa_mac(state, &payload));
    crate::browser::cookies::set(state, MFA_COOKIE, &value, MFA_TTL_MS / 1000, false)
}

fn read_mfa(state: &AppState, headers: &HeaderMap, now: crate::clock::Millis) -> Option<(String, String)> {
    let raw = crate::browser::cookies::get(headers, MFA_COOKIE)?;
    let (payload, mac) = raw.split_once('.')?;
    if !crate::crypto::ct_eq(mfa_mac(state, payload).as_bytes(), mac.as_bytes()) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&crate::crypto::b64url_decode(payload)?).ok()?;
    let (user_id, expires, return_to) = (v.get(0)?.as_str()?, v.get(1)?.as_i64()?, v.get(2)?.as_str()?);
    (expires > now).then(|| (user_id.to_string(), return_to.to_string()))
}

/// After the password: ask for the second factor (the session starts only once it is given).
fn ask_code(state: &AppState, headers: &HeaderMap, user_id: &str, return_to: &str) -> Response {
    let t = csrf::issue(state, headers);
    let mut r = t.attach(sign_in_page(StatusCode::OK, &CodePage { csrf: t.token(), error: None }));
    r.headers_mut().append(header::SET_COOKIE, mfa_cookie(state, user_id, return_to, state.now()));
    r
}

/// Where a fresh session goes: an operator without an authenticator enrols first.
async fn landing(state: &AppState, user_id: &str, return_to: &str) -> Result<String, ApiError> {
    let pool = &state.db.pool;
    if crate::store::mfa::is_operator(pool, user_id).await? && !crate::store::mfa::has_totp(pool, user_id).await? {
        return Ok("/portal/security?first=1".into());
    }
    Ok(return_to.to_string())
}

fn signed_in(cookie: header::HeaderValue, to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, to.parse().unwrap_or(header::HeaderValue::from_static("/portal"))),
        ],
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct CodeStep {
    code: Option<String>,
    csrf: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn login_code(
    State(state): State<AppState>,
    ip: ClientIp,
    ctx: crate::audit::Context,
    headers: HeaderMap,
    form: Result<Form<CodeStep>, FormRejection>,
) -> Response {
    let f = form.ok().map(|Form(f)| f);
    if let Err(refused) = csrf::check(&state, &headers, f.as_ref().and_then(|f| f.csrf.as_deref())) {
        return refused.into_response();
    }
    let now = state.now();
    let Some((user_id, return_to)) = read_mfa(&state, &headers, now) else {
        return message(
            StatusCode::BAD_REQUEST,
            "Sign in again",
            "This sign-in took too long or was not started here. Sign in again with your email and password.",
        );
    };
    let user = match crate::store::accounts::user_by_id(&state.db.pool, &user_id).await {
        Ok(Some(u)) => u,
        Ok(None) => return message(StatusCode::BAD_REQUEST, "Sign in again", "Sign in again."),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let t = csrf::issue(&state, &headers);
    let code = f.and_then(|f| f.code).unwrap_or_default();
    match crate::accounts::mfa::verify(&state, &user, &code, ip.0, now).await {
        Ok(()) => {
            let to = match landing(&state, &user.id, &return_to).await {
                Ok(to) => to,
                Err(e) => return e.into_response(),
            };
            let slug = match crate::store::entities::entity_by_id(&state.db.pool, &user.entity_id).await {
                Ok(e) => e.map(|e| e.slug).unwrap_or_default(),
                Err(e) => return ApiError::from(e).into_response(),
            };
            let started = session::start_signed_in(
                &state,
                &ctx.as_actor(crate::audit::Actor::user(&user.id, &user.email)),
                crate::oauth::signed_in(&user, &slug, "password+totp", "browser"),
                &user.id,
                "pwd",
            )
            .await;
            match started {
                Ok(cookie) => {
                    let mut r = signed_in(cookie, &to);
                    r.headers_mut()
                        .append(header::SET_COOKIE, crate::browser::cookies::set(&state, MFA_COOKIE, "", 0, false));
                    r
                }
                Err(e) => e.into_response(),
            }
        }
        Err(ApiError::OAuth(o)) if o.error == "slow_down" => {
            let text = format!("Too many attempts. {}", o.description);
            let mut r = sign_in_page(StatusCode::TOO_MANY_REQUESTS, &CodePage { csrf: t.token(), error: Some(&text) });
            if let Some(s) = o.retry_after
                && let Ok(v) = s.to_string().parse()
            {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            t.attach(r)
        }
        Err(ApiError::Problem(_)) => {
            // Recorded like a wrong password, on the account's entity chain (never the code).
            let event = crate::audit::Event::new("user.sign_in_failed")
                .target(crate::audit::Target::user(&user.id, &user.email))
                .details(serde_json::json!({ "method": "totp", "reason": "wrong_code" }));
            let event = match crate::store::entities::entity_by_id(&state.db.pool, &user.entity_id).await {
                Ok(Some(e)) => event.entity(&e.id, &e.slug),
                Ok(None) => event,
                Err(e) => return ApiError::from(e).into_response(),
            };
            let actor = ctx.as_actor(crate::audit::Actor::user(&user.id, &user.email));
            if let Err(e) = event.record_alone(&state, &actor, now).await {
                return ApiError::from(e).into_response();
            }
            t.attach(sign_in_page(
                StatusCode::UNAUTHORIZED,
                &CodePage {
                    csrf: t.token(),
                    error: Some("That code is wrong, expired or already used. Try the next one."),
                },
            ))
        }
        Err(e) => e.into_response(),
    }
}
