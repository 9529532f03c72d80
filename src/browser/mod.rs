//! What every browser-facing area shares: page rendering with the page security headers, message
//! pages, cookies, browser sessions, the CSRF tokens of every form (`csrf`, before and after
//! sign-in), and the paths of the sign-in pages.
//! It sits below `web/`, `oauth/`, `saml/` and `portal/`, so none of them reaches into another
//! for these.

pub mod cookies;
pub mod csrf;
pub mod session;

use askama::Template;
use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::error::ApiError;

/// The policy of the other pages outside the portal (messages, password links, share links, the
/// device page): inline styles only, forms post to this site only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

/// The policy of the sign-in steps whose forms legitimately end on another origin: `CSP` without
/// `form-action`. The email step posts to `/login`, answered 303 to `/saml/{slug}/login`, answered
/// 302 to the entity's IdP; the password and code steps of a product's sign-in are answered 303 to
/// `/oauth/authorize/resume`, answered 302 to the product's loopback `redirect_uri`. Chromium
/// checks `form-action` on every redirect of a form's navigation, so with `'self'` those sign-ins
/// stop at the hop to the other origin. That origin cannot be named instead: the IdP is known only
/// once the email is typed (and listing every entity's IdP would publish them), a loopback port is
/// any port, and `http://[::1]` has no source expression. What `form-action` adds, a form injected
/// into the page posting elsewhere, the templates' escaping already prevents; what the forms post
/// stays guarded by the CSRF token and the Origin check, and the rest of the policy (no script, no
/// plugin, no framing, no `<base>`) is unchanged. Portal pages keep `form-action 'self'`.
pub const SIGN_IN_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The portal's policy: its one stylesheet and its scripts come from this site's own static files;
/// nothing inline, no event-handler attributes, no framing.
pub const STRICT_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                              connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Render a page with a status and the page security headers.
pub fn page(status: StatusCode, t: &impl Template) -> Response {
    page_with_csp(status, t, CSP)
}

/// Render a sign-in step whose form may end on another origin (see `SIGN_IN_CSP`).
pub fn sign_in_page(status: StatusCode, t: &impl Template) -> Response {
    page_with_csp(status, t, SIGN_IN_CSP)
}

/// Render a page under the strict policy (no inline style or script at all).
pub fn strict_page(status: StatusCode, t: &impl Template) -> Response {
    page_with_csp(status, t, STRICT_CSP)
}

fn page_with_csp(status: StatusCode, t: &impl Template, csp: &'static str) -> Response {
    match t.render() {
        Ok(html) => {
            let mut resp = (status, html).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
            // Our own form posts then carry our Origin (with no-referrer browsers send `null`,
            // which `csrf` cannot tell from a forged post); other sites still get no referrer.
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
            resp
        }
        Err(e) => ApiError::Internal(anyhow::Error::new(e).context("rendering page")).into_response(),
    }
}

#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct Message<'a> {
    pub heading: &'a str,
    pub text: &'a str,
    pub error: bool,
    pub link: Option<(&'a str, &'a str)>,
}

pub fn message(status: StatusCode, heading: &str, text: &str) -> Response {
    page(status, &Message { heading, text, error: status.is_client_error() || status.is_server_error(), link: None })
}

/// A client error as a page; internal errors keep their generic answer.
pub fn error_page(heading: &str, e: ApiError) -> Response {
    match e {
        ApiError::Problem(p) => message(p.status, heading, &p.detail),
        ApiError::OAuth(o) => message(o.status, heading, &o.description),
        e @ ApiError::Internal(_) => e.into_response(),
    }
}

/// `/login?return_to=/...` as a path, for redirects from pages that need a signed-in user.
pub fn login_path(return_to: &str, login_hint: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("return_to", return_to);
    if let Some(h) = login_hint {
        q.append_pair("login_hint", h);
    }
    format!("/login?{}", q.finish())
}

/// Where an SSO user goes to sign in, carrying where to return afterwards.
pub fn sso_path(slug: &str, return_to: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("return_to", return_to).finish();
    format!("/saml/{slug}/login?{q}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directives(csp: &str) -> Vec<&str> {
        csp.split(';').map(str::trim).collect()
    }

    #[test]
    fn sign_in_pages_let_their_forms_end_elsewhere_and_keep_everything_else() {
        let d = directives(SIGN_IN_CSP);
        assert!(!SIGN_IN_CSP.contains("form-action"), "{SIGN_IN_CSP}");
        for kept in ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"] {
            assert!(d.contains(&kept), "{kept}: {SIGN_IN_CSP}");
        }
        assert!(!SIGN_IN_CSP.contains("script-src"), "no script on sign-in pages: {SIGN_IN_CSP}");
        // It is the other pages' policy less form-action, nothing else.
        let without: Vec<&str> = directives(CSP).into_iter().filter(|d| !d.starts_with("form-action")).collect();
        assert_eq!(d, without);
        for other in [CSP, STRICT_CSP] {
            assert!(directives(other).contains(&"form-action 'self'"), "{other}");
        }
    }
}
