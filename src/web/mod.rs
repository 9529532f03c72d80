//! HTML pages (askama templates in `templates/pages/`). They work without JavaScript, send a
//! referrer only to this site itself (their URLs can hold single-use tokens; our own form posts
//! must name their origin, see `browser::csrf`) and are never cached. Every form that changes
//! anything carries a CSRF token (`browser::csrf`).

pub mod login;

use askama::Template;
use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    accounts,
    browser::{Message, csrf, error_page, login_path, message, page, session},
    error::{ApiError, ApiPath, ApiQuery},
    licenses,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/account/setup", get(setup_page).post(password_submit))
        .route("/account/reset", get(reset_page).post(password_submit))
        .route("/account/forgot", get(forgot_page).post(forgot_submit))
        .route("/share/{token}", get(share_page).post(share_submit))
        .route("/login", get(login::login_page).post(login::login_email))
        .route("/login/password", post(login::login_password))
        .route("/login/code", post(login::login_code))
        .route("/logout", post(login::logout))
        .route("/account", get(login::account_page))
}

#[derive(Template)]
#[template(path = "pages/password.html")]
struct PasswordForm<'a> {
    heading: &'a str,
    action: &'a str,
    email: &'a str,
    token: &'a str,
    csrf: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn setup_page(State(state): State<AppState>, headers: HeaderMap, ApiQuery(q): ApiQuery<TokenQuery>) -> Response {
    let token = q.token.as_deref().unwrap_or_default();
    password_page(&state, &headers, token, "Choose your password", "/account/setup").await
}

async fn reset_page(State(state): State<AppState>, headers: HeaderMap, ApiQuery(q): ApiQuery<TokenQuery>) -> Response {
    let token = q.token.as_deref().unwrap_or_default();
    password_page(&state, &headers, token, "Choose a new password", "/account/reset").await
}

async fn password_page(state: &AppState, headers: &HeaderMap, token: &str, heading: &str, action: &str) -> Response {
    match accounts::peek_link(state, token, state.now()).await {
        Ok((_, user)) => {
            let t = csrf::issue(state, headers);
            let form = PasswordForm { heading, action, email: &user.email, token, csrf: t.token(), error: None };
            t.attach(page(StatusCode::OK, &form))
        }
        Err(e) => link_error(e),
    }
}

fn link_error(e: ApiError) -> Response {
    let resp = error_page("This link does not work", e);
    let mut resp = resp;
    if resp.status().is_client_error() {
        // Offer the way out.
        let body = Message {
            heading: "This link does not work",
            text: "It was already used, it expired, or it was mistyped. Ask for a new one below.",
            error: true,
            link: Some(("/account/forgot", "Mail me a new link")),
        };
        let status = resp.status();
        resp = page(status, &body);
    }
    resp
}

#[derive(Deserialize)]
struct PasswordSubmit {
    token: String,
    password: String,
    confirm: Option<String>,
    csrf: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn password_submit(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    uri: axum::http::Uri,
    headers: HeaderMap,
    form: Result<Form<PasswordSubmit>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return message(
            StatusCode::BAD_REQUEST,
            "Something is missing",
            "The form was incomplete; open the link from your mail again.",
        );
    };
    if let Err(refused) = csrf::check(&state, &headers, form.csrf.as_deref()) {
        return refused.into_response();
    }
    let t = csrf::issue(&state, &headers);
    let (heading, action) = if uri.path() == "/account/reset" {
        ("Choose a new password", "/account/reset")
    } else {
        ("Choose your password", "/account/setup")
    };
    let (_, user) = match accounts::peek_link(&state, &form.token, state.now()).await {
        Ok(x) => x,
        Err(e) => return link_error(e),
    };
    let again = |status: StatusCode, msg: &str| {
        let again =
            PasswordForm { heading, action, email: &user.email, token: &form.token, csrf: t.token(), error: Some(msg) };
        page(status, &again)
    };
    if form.confirm.as_deref().is_some_and(|c| c != form.password) {
        return again(StatusCode::UNPROCESSABLE_ENTITY, "The two passwords differ.");
    }
    match accounts::set_password_with_link(&state, &ctx, &form.token, &form.password).await {
        Ok(u) => page(
            StatusCode::OK,
            &Message {
                heading: "Your password is set",
                text: &format!("Sign in to your product with {} and this password.", u.email),
                error: false,
                link: None,
            },
        ),
        Err(ApiError::Problem(p)) if p.code == "weak_password" => again(StatusCode::UNPROCESSABLE_ENTITY, &p.detail),
        Err(e) => link_error(e),
    }
}

#[derive(Template)]
#[template(path = "pages/forgot.html")]
struct ForgotForm<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
}

async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = csrf::issue(&state, &headers);
    t.attach(page(StatusCode::OK, &ForgotForm { csrf: t.token(), error: None }))
}

#[derive(Deserialize)]
struct EmailForm {
    email: String,
    csrf: Option<String>,
}

async fn forgot_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<EmailForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = form.ok().map(|Form(f)| f);
    if let Err(refused) = csrf::check(&state, &headers, f.as_ref().and_then(|f| f.csrf.as_deref())) {
        return refused.into_response();
    }
    let Some(email) = f.and_then(|f| accounts::normalize_email(&f.email).ok()) else {
        let t = csrf::issue(&state, &headers);
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &ForgotForm { csrf: t.token(), error: Some("Enter the email address of your account.") },
        );
    };
    accounts::forgot_in_background(&state, email);
    message(
        StatusCode::ACCEPTED,
        "Check your mail",
        "If that address has an account that signs in with a password, a reset link is on its way.",
    )
}

#[derive(Template)]
#[template(path = "pages/share.html")]
struct SharePage<'a> {
    product: &'a str,
    entity: &'a str,
    action: &'a str,
    /// The signed-in user (and the form token) when the browser has a session.
    signed_in: Option<(&'a str, &'a str)>,
    /// The pre-session form token, for the newcomer's form.
    form_csrf: &'a str,
    login: &'a str,
    error: Option<&'a str>,
}

/// The license behind a live share link and the name of the entity sharing it.
async fn share_context(state: &AppState, token: &str) -> Result<(crate::store::licenses::License, String), ApiError> {
    let license = licenses::share_link_license(state, token, state.now()).await?;
    let entity = crate::store::entities::entity_by_id(&state.db.pool, &license.entity_id).await?;
    Ok((license, entity.map(|e| e.name).unwrap_or_else(|| "Your organisation".into())))
}

async fn share_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiPath(token): ApiPath<String>,
) -> Response {
    let (license, entity) = match share_context(&state, &token).await {
        Ok(x) => x,
        Err(e) => return error_page("This share link does not work", e),
    };
    let action = format!("/share/{token}");
    let me = session::current(&state, &headers).await.ok().flatten();
    let csrf = me.as_ref().map(|bu| session::csrf_token(&state, &bu.session_hash)).unwrap_or_default();
    let login = login_path(&action, None);
    let t = csrf::issue(&state, &headers);
    t.attach(page(
        StatusCode::OK,
        &SharePage {
            product: &license.product_name,
            entity: &entity,
            action: &action,
            signed_in: me.as_ref().map(|bu| (bu.user.email.as_str(), csrf.as_str())),
            form_csrf: t.token(),
            login: &login,
            error: None,
        },
    ))
}

#[derive(Deserialize)]
struct ShareForm {
    email: Option<String>,
    csrf: Option<String>,
}

/// Accept a share link: the signed-in user (with the page's form token), or a newcomer by email,
/// who gets the mail to set a password (or, in an SSO entity, to sign in with the company account).
#[tracing::instrument(skip_all)]
async fn share_submit(
    State(state): State<AppState>,
    ctx: crate::audit::Context,
    headers: axum::http::HeaderMap,
    ApiPath(token): ApiPath<String>,
    form: Result<Form<ShareForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (license, entity) = match share_context(&state, &token).await {
        Ok(x) => x,
        Err(e) => return error_page("This share link does not work", e),
    };
    let action = format!("/share/{token}");
    let login = login_path(&action, None);
    let t = csrf::issue(&state, &headers);
    let retry = |status, msg: &str| {
        page(
            status,
            &SharePage {
                product: &license.product_name,
                entity: &entity,
                action: &action,
                signed_in: None,
                form_csrf: t.token(),
                login: &login,
                error: Some(msg),
            },
        )
    };
    let Ok(Form(f)) = form else { return retry(StatusCode::UNPROCESSABLE_ENTITY, "Enter a valid email address.") };
    let (email, ctx) = match f.email {
        // The signed-in user's form (the session's token).
        None => match session::current(&state, &headers).await {
            Ok(Some(bu)) => {
                if let Err(refused) = csrf::check_session(&state, &headers, &bu.session_hash, f.csrf.as_deref()) {
                    return refused.into_response();
                }
                let ctx = ctx.by(crate::audit::Actor::user(&bu.user.id, &bu.user.email));
                (bu.user.email, ctx)
            }
            Ok(None) => return retry(StatusCode::FORBIDDEN, "Your session ended; sign in again or enter your email."),
            Err(e) => return e.into_response(),
        },
        // A newcomer's form (the pre-session token).
        Some(raw) => {
            if let Err(refused) = csrf::check(&state, &headers, f.csrf.as_deref()) {
                return refused.into_response();
            }
            match accounts::normalize_email(&raw) {
                Ok(e) => {
                    let ctx = ctx.by(crate::audit::Actor::claimed(&e));
                    (e, ctx)
                }
                Err(_) => return retry(StatusCode::UNPROCESSABLE_ENTITY, "Enter a valid email address."),
            }
        }
    };
    match licenses::accept_share_link(&state, &ctx, &token, &email).await {
        Ok((l, _)) => message(
            StatusCode::OK,
            "Done",
            &format!("{email} has a license of {}. Check your mail for how to sign in.", l.product_name),
        ),
        Err(ApiError::Problem(p)) if p.code == "seats_exhausted" => {
            retry(StatusCode::CONFLICT, "Every seat of this license is taken. Ask your administrator for one.")
        }
        Err(e) => error_page("This share link does not work", e),
    }
}
