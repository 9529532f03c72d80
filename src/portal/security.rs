//! A user's second factor: enrol a TOTP authenticator (QR code and secret, confirmed by a first
//! code), see the ten recovery codes once, and (except operators) remove it with a code. Users of
//! an entity whose IdP signs them in get their second factor there, not here.

use std::fmt::Write;

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use qrcodegen::{QrCode, QrCodeEcc};
use serde::Deserialize;

use super::{Posted, Shell, Viewer, fail, see_other, show, view};
use crate::{
    accounts::mfa,
    auth::ClientIp,
    error::{ApiError, ApiQuery},
    state::AppState,
    store,
};

/// A QR code as inline SVG (one path; no script, no style attribute).
pub fn qr_svg(text: &str) -> Option<String> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).ok()?;
    let (size, border) = (qr.size(), 4);
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + border, y + border);
            }
        }
    }
    let dim = size + 2 * border;
    Some(format!(
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" role=\"img\" \
         aria-label=\"QR code to scan with your authenticator app\" shape-rendering=\"crispEdges\">\
         <rect width=\"{dim}\" height=\"{dim}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[derive(Template)]
#[template(path = "portal/security.html")]
struct SecurityPage {
    shell: Shell,
    /// Signed in through the entity's IdP: nothing to set here.
    sso: bool,
    operator: bool,
    first: bool,
    enrolled: Option<view::When>,
    codes_left: i64,
    secret: String,
    qr: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/recovery_codes.html")]
struct RecoveryCodes {
    shell: Shell,
    codes: Vec<String>,
}

#[derive(Deserialize, Default)]
pub struct SecurityQuery {
    first: Option<String>,
}

async fn render(state: &AppState, headers: &HeaderMap, v: &Viewer, first: bool, error: Option<String>) -> Response {
    let now = state.now();
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let sso = v.bu.amr == "saml";
    let totp = match store::mfa::totp_of(&state.db.pool, &v.bu.user.id).await {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let enrolled = totp.as_ref().and_then(|t| t.confirmed_at).map(view::when);
    let (mut secret, mut qr) = (String::new(), String::new());
    if enrolled.is_none() && !sso {
        match mfa::enrolment(state, &v.bu.user, now).await {
            Ok(Some(e)) => {
                qr = qr_svg(&e.uri).unwrap_or_default();
                secret = e.secret;
            }
            Ok(None) => {}
            Err(e) => return fail(e),
        }
    }
    let codes_left = match store::mfa::recovery_codes_left(&state.db.pool, &v.bu.user.id).await {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let page = SecurityPage {
        shell: Shell::new(state, headers, v, "security", None),
        sso,
        operator: v.operator,
        first,
        enrolled,
        codes_left,
        // Grouped by four for reading aloud or typing.
        secret: secret
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        qr,
        error,
    };
    show(state, status, &page.shell, &page)
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiQuery(q): ApiQuery<SecurityQuery>,
) -> Response {
    render(&state, &headers, &v, q.first.is_some(), None).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    code: Option<String>,
}

fn problem_text(e: &ApiError) -> Option<String> {
    match e {
        ApiError::Problem(p) => Some(p.detail.clone()),
        ApiError::OAuth(o) => Some(format!("Too many attempts. {}", o.description)),
        ApiError::Internal(_) => None,
    }
}

/// Confirm the enrolment with a first code; answers with the recovery codes, shown this once.
pub async fn enrol(
    State(state): State<AppState>,
    headers: HeaderMap,
    ip: ClientIp,
    Posted { v, form: f }: Posted<CodeForm>,
) -> Response {
    if v.bu.amr == "saml" {
        return see_other(&state, "/portal/security", false, "Your identity provider gives your second factor.");
    }
    let code = f.and_then(|f| f.code).unwrap_or_default();
    match mfa::confirm(&state, &v.bu.user, &v.bu.session_hash, &code, ip.0, state.now()).await {
        Ok(codes) => {
            let page = RecoveryCodes { shell: Shell::new(&state, &headers, &v, "security", None), codes };
            show(&state, StatusCode::OK, &page.shell, &page)
        }
        Err(e) => match problem_text(&e) {
            Some(text) => render(&state, &headers, &v, false, Some(text)).await,
            None => e.into_response(),
        },
    }
}

/// Remove the authenticator (needs a current code or a recovery code). Operators keep theirs.
pub async fn remove(State(state): State<AppState>, ip: ClientIp, Posted { v, form: f }: Posted<CodeForm>) -> Response {
    if v.operator {
        return see_other(&state, "/portal/security", false, "Operators must keep a second factor.");
    }
    let code = f.and_then(|f| f.code).unwrap_or_default();
    match mfa::remove(&state, &v.bu.user, &code, ip.0, state.now()).await {
        Ok(()) => see_other(
            &state,
            "/portal/security",
            true,
            "Your authenticator is removed: sign-ins ask only for your password again.",
        ),
        Err(e) => match problem_text(&e) {
            Some(text) => see_other(&state, "/portal/security", false, &text),
            None => e.into_response(),
        },
    }
}

super::csrf_forms!(CodeForm);
