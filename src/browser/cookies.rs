//! Reading the `Cookie` header and writing `Set-Cookie` values (the `cookie` crate does the
//! parsing and formatting). Every cookie we set is HttpOnly, on path `/`, and Secure under HTTPS.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite, time::Duration};

use crate::state::AppState;

/// The value of cookie `name` sent by the browser (the first one when it sends several).
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().trim().to_string())
}

/// A `Set-Cookie` value. `cross_site_post`: the cookie must come back on an IdP's POST to the ACS
/// (SameSite=None under HTTPS; no attribute over plain HTTP, where browsers allow a fresh cookie
/// on a top-level cross-site POST).
pub fn set(state: &AppState, name: &str, value: &str, max_age_s: i64, cross_site_post: bool) -> HeaderValue {
    build(state.is_https(), name, value, max_age_s, cross_site_post)
}

fn build(secure: bool, name: &str, value: &str, max_age_s: i64, cross_site_post: bool) -> HeaderValue {
    let mut c = Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .http_only(true)
        .max_age(Duration::seconds(max_age_s))
        .secure(secure)
        .build();
    match (cross_site_post, secure) {
        (false, _) => c.set_same_site(SameSite::Lax),
        (true, true) => c.set_same_site(SameSite::None),
        (true, false) => c.set_same_site(None),
    }
    HeaderValue::from_str(&c.to_string()).unwrap_or_else(|_| HeaderValue::from_static("lk_invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_the_header() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; lk_session=abc ; b=2"));
        assert_eq!(get(&h, "lk_session").as_deref(), Some("abc"));
        assert_eq!(get(&h, "c"), None);
    }

    #[test]
    fn set_cookie_values_carry_the_security_attributes() {
        let v = build(true, "lk_session", "s3cret", 60, false);
        let v = v.to_str().unwrap();
        for part in ["lk_session=s3cret", "HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(v.contains(part), "{v} lacks {part}");
        }
        let plain = build(false, "lk_sso_bind", "x", 60, true);
        let plain = plain.to_str().unwrap();
        assert!(!plain.contains("Secure") && !plain.contains("SameSite"), "{plain}");
        let cross = build(true, "lk_sso_bind", "x", 60, true);
        assert!(cross.to_str().unwrap().contains("SameSite=None"));
    }
}
