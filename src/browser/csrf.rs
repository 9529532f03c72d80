//! Cross-site request forgery defence for every state-changing browser form.
//!
//! Each such form carries a token in a hidden field named `csrf` ([`FIELD`]), and its POST handler
//! checks it before doing anything. Two kinds of token, one rule for where a request comes from:
//!
//! - **Before sign-in** (sign-in, password setup and reset, forgot password, accepting a share
//!   link): a double-submit token bound to a pre-session cookie. The cookie (`lk_csrf`, or
//!   `__Host-lk_csrf` under HTTPS; HttpOnly, SameSite=Lax) holds a random value the server never
//!   stores; the token is a keyed hash of it. Another site can read neither, cannot set the cookie,
//!   and SameSite keeps the cookie off its cross-site POSTs anyway. Without this, a forged POST of
//!   the attacker's own email and password signs the victim's browser into the attacker's account
//!   (login CSRF).
//! - **Signed in**: a token bound to the session (`session::csrf_token`).
//! - **Origin**: whatever the token, a request that says it comes from elsewhere is refused: an
//!   `Origin` other than the public URL's (`null` included), `Sec-Fetch-Site: cross-site` or
//!   `same-site`, or, without `Origin`, a `Referer` from another origin. Pages send
//!   `Referrer-Policy: same-origin` so that browsers name our origin on our own form posts.
//!
//! Using it in a page:
//! ```ignore
//! // GET: make (or reuse) the browser's token and render it into the form.
//! let t = csrf::issue(&state, &headers);
//! let resp = page(StatusCode::OK, &MyForm { csrf: t.token(), .. });
//! t.attach(resp)                       // sets the cookie when the browser had none
//! // POST, before anything else:
//! if let Err(refused) = csrf::check(&state, &headers, form.csrf.as_deref()) {
//!     return refused.into_response();  // 403 page, nothing changed
//! }
//! // A signed-in form: csrf::check_session(&state, &headers, &bu.session_hash, form.csrf.as_deref())
//! ```

use axum::{
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{cookies, message, session};
use crate::{
    crypto::{ct_eq, random_secret},
    state::AppState,
};

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

fn cookie_name(state: &AppState) -> &'static str {
    // `__Host-`: only a secure, host-only, Path=/ cookie may have this name, so nothing on a
    // sibling domain can plant one.
    if state.is_https() { "__Host-lk_csrf" } else { "lk_csrf" }
}

fn valid_cookie(v: &str) -> bool {
    (20..100).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn token_for(state: &AppState, cookie: &str) -> String {
    state.master.keyed_hash(&[b"csrf-pre-session", cookie.as_bytes()])
}

/// The token of a form shown before sign-in, and the cookie to set when the browser has none.
pub struct FormToken {
    token: String,
    set_cookie: Option<HeaderValue>,
}

impl FormToken {
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Add the pre-session cookie to the response that shows the form (when it is new).
    pub fn attach(&self, mut resp: Response) -> Response {
        if let Some(c) = &self.set_cookie {
            resp.headers_mut().append(header::SET_COOKIE, c.clone());
        }
        resp
    }
}

/// The pre-session token of this browser, making its cookie when it has none (or a malformed one).
pub fn issue(state: &AppState, headers: &HeaderMap) -> FormToken {
    if let Some(c) = cookies::get(headers, cookie_name(state)).filter(|c| valid_cookie(c)) {
        return FormToken { token: token_for(state, &c), set_cookie: None };
    }
    let value = random_secret("");
    // A browser-session cookie (no Max-Age): it names nobody and is not stored on our side.
    let cookie = cookie::Cookie::build((cookie_name(state), value.as_str()))
        .path("/")
        .http_only(true)
        .secure(state.is_https())
        .same_site(cookie::SameSite::Lax)
        .build();
    FormToken { token: token_for(state, &value), set_cookie: HeaderValue::from_str(&cookie.to_string()).ok() }
}

/// A form refused as forged (or stale): answered with a 403 page; nothing was done.
#[derive(Debug)]
pub struct Refused;

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        message(
            StatusCode::FORBIDDEN,
            "This form was not accepted",
            "It did not come from this site's own page, or the page is too old. Go back, reload it and try again.",
        )
    }
}

/// Check a form shown before sign-in: its origin and its pre-session token.
pub fn check(state: &AppState, headers: &HeaderMap, presented: Option<&str>) -> Result<(), Refused> {
    if !same_origin(state, headers) {
        return Err(Refused);
    }
    let cookie = cookies::get(headers, cookie_name(state)).filter(|c| valid_cookie(c)).ok_or(Refused)?;
    let presented = presented.unwrap_or_default();
    if ct_eq(token_for(state, &cookie).as_bytes(), presented.as_bytes()) { Ok(()) } else { Err(Refused) }
}

/// Check a form of a signed-in page: its origin and the session's token.
pub fn check_session(
    state: &AppState,
    headers: &HeaderMap,
    session_hash: &str,
    presented: Option<&str>,
) -> Result<(), Refused> {
    if same_origin(state, headers) && session::csrf_ok(state, session_hash, presented.unwrap_or_default()) {
        Ok(())
    } else {
        Err(Refused)
    }
}

/// The origin (`scheme://host[:port]`) of a URL, as browsers serialise it.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.origin() {
        o @ url::Origin::Tuple(..) => Some(o.ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// False when the request says it comes from another site. Requests that say nothing (scripts,
/// older browsers) pass here and are judged by their token alone.
pub fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}").trim().to_string());
    if let Some(site) = text("sec-fetch-site")
        && (site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site"))
    {
        return false;
    }
    let ours = origin_of(&state.base_url);
    if let Some(origin) = text(header::ORIGIN.as_str()) {
        return ours.is_some() && origin_of(&origin) == ours;
    }
    if let Some(referer) = text(header::REFERER.as_str()) {
        return ours.is_some() && origin_of(&referer) == ours;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_as_browsers_serialise_them() {
        assert_eq!(origin_of("https://id.example.com/"), Some("https://id.example.com".into()));
        assert_eq!(origin_of("https://id.example.com:443"), Some("https://id.example.com".into()));
        assert_eq!(origin_of("http://127.0.0.1:8080/login?x=1"), Some("http://127.0.0.1:8080".into()));
        assert_ne!(origin_of("http://127.0.0.1:8081"), origin_of("http://127.0.0.1:8080"));
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("data:text/html,x"), None);
    }
}
