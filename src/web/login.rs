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
        sso_path,
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
    t.attach(page(StatusCode::OK, &LoginPage { email: &email, return_to: &return_to, csrf: t.token(), error: None }))
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
        return t.attach(page(
            StatusCode::BAD_REQUEST,
            &LoginPage { email: "", return_to: "/portal", csrf: t.token(), error: Some("Enter your email.") },
        ));
    };
    if let Err(refused) = csrf::check(&state, &headers, f.csrf.as_deref()) {
        return refused.into_response();
    }
    let return_to = safe_return_to(f.return_to.as_deref()).unwrap_or_else(|| "/portal".into());
    let Ok(email) = accounts::normalize_email(&f.email) else {
        return page(
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
        Ok(None) => {
            page(StatusCode::OK, &PasswordPage { email: &email, return_to: &return_to, csrf: t.token(), error: None })
        }
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
        return t.attach(page(
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
        page(status, &PasswordPage { email: &f.email, return_to: &return_to, csrf: t.token(), error: Some(msg) })
    };
    match crate::oauth::password_login(&state, ip, &ctx, &f.email, &f.password).await {
        Ok((user, entity_slug)) => match session::start_signed_in(
            &state,
            &ctx.as_actor(crate::audit::Actor::user(&user.id, &user.email)),
            crate::oauth::signed_in(&user, &entity_slug, "password", "browser"),
            &user.id,
            "pwd",
        )
        .await
        {
            Ok(cookie) => (
                StatusCode::SEE_OTHER,
                [
                    (header::SET_COOKIE, cookie),
                    (header::LOCATION, return_to.parse().unwrap_or(header::HeaderValue::from_static("/portal"))),
                ],
            )
                .into_response(),
            Err(e) => e.into_response(),
        },
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
