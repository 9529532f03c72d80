//! Browser sign-in, the authorization-code flow with PKCE on a loopback redirect, and the device
//! flow, for password users (SSO users go through the same flows; see sso.rs).

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-extra-entropy";

pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()))
}

pub fn location(r: &reqwest::Response) -> String {
    assert!(r.status().is_redirection(), "expected a redirect, got {}", r.status());
    r.headers()["location"].to_str().unwrap().to_string()
}

/// An absolute URL for a Location that may be relative.
pub fn absolute(app: &TestApp, loc: &str) -> String {
    if loc.starts_with('/') { app.url(loc) } else { loc.to_string() }
}

pub fn authorize_path(client: &str, redirect: &str, state: &str, verifier: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", redirect)
        .append_pair("code_challenge", &challenge(verifier))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", state)
        .finish();
    format!("/oauth/authorize?{q}")
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url).ok()?.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.to_string())
}

/// Sign in through the login pages with a password; returns where the browser ends up.
pub async fn password_sign_in(app: &TestApp, login_url: &str, email: &str, password: &str) -> reqwest::Response {
    let page = app.client.get(absolute(app, login_url)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let return_to = html
        .split("name=\"return_to\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#x3d;", "=")
        .replace("&#61;", "=");
    let r = app.form("/login", &[("email", email), ("return_to", &return_to), ("csrf", &csrf_of(&html))]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("type=\"password\""));
    let fields = [("email", email), ("password", password), ("return_to", &return_to), ("csrf", &csrf_of(&html))];
    app.form("/login/password", &fields).await
}

async fn exchange(app: &TestApp, code: &str, redirect: &str, verifier: &str, client: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
            ("client_id", client),
        ])
        .send()
        .await
        .unwrap()
}

async fn licensed_user(app: &TestApp) -> String {
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    app.licensed_user(&license, "bob", &admin).await
}

#[tokio::test]
async fn a_product_signs_a_password_user_in_through_the_browser_with_pkce() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;
    let redirect = "http://127.0.0.1:53117/callback";

    let r = app.get(&authorize_path("readyapi", redirect, "xyz-state", VERIFIER), None).await;
    let login = location(&r);
    assert!(login.starts_with("/login?return_to="), "{login}");
    let r = password_sign_in(&app, &login, &email, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    let resume = location(&r);
    let r = app.get(&resume, None).await;
    let back = location(&r);
    assert!(back.starts_with(redirect), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("xyz-state"));
    let code = query_param(&back, "code").unwrap();

    let r = exchange(&app, &code, redirect, VERIFIER, "readyapi").await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let me: Value = app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert_eq!(me["amr"], json!(["pwd"]));

    // The code works once; its second use also ends the session it started.
    assert_oauth_error(
        exchange(&app, &code, redirect, VERIFIER, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        app.refresh_grant(t["refresh_token"].as_str().unwrap(), "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // The browser is signed in now: the next product sign-in needs no page, on any port.
    let other = "http://[::1]:40001/cb";
    let r = app.get(&authorize_path("readyapi", other, "s2", VERIFIER), None).await;
    let back = location(&r);
    assert!(back.starts_with(other), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("s2"));
}

#[tokio::test]
async fn the_code_exchange_checks_pkce_client_redirect_and_time() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;
    let redirect = "http://127.0.0.1:5000/cb";
    let r = password_sign_in(&app, "/login", &email, PASSWORD).await;
    assert_eq!(location(&r), "/portal");
    let code = || async {
        let r = app.get(&authorize_path("readyapi", redirect, "s", VERIFIER), None).await;
        query_param(&location(&r), "code").unwrap()
    };
    let c = code().await;
    assert_oauth_error(
        exchange(&app, &c, redirect, "wrong-verifier-wrong-verifier-wrong-verifier-x", "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = code().await;
    assert_oauth_error(
        exchange(&app, &c, "http://127.0.0.1:5000/other", VERIFIER, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = code().await;
    assert_oauth_error(
        exchange(&app, &c, redirect, VERIFIER, "portal").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = code().await;
    app.advance(Duration::from_secs(61));
    assert_oauth_error(
        exchange(&app, &c, redirect, VERIFIER, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "authorization_code"), ("code", "x"), ("client_id", "readyapi")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert_oauth_error(
        exchange(&app, "lk_ac_unknown", redirect, VERIFIER, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn authorize_refuses_bad_requests_without_redirecting_to_unchecked_addresses() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    // Not a loopback address, or an unknown client: an error page here, never a redirect there.
    for (client, redirect) in [
        ("readyapi", "https://evil.example/cb"),
        ("readyapi", "http://localhost:5000/cb"),
        ("readyapi", "http://127.0.0.1.evil.example/cb"),
        ("nope", "http://127.0.0.1:5000/cb"),
    ] {
        let r = app.get(&authorize_path(client, redirect, "s", VERIFIER), None).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{client} {redirect}");
    }
    // PKCE is required, S256 only: the error goes back to the (valid) loopback address.
    let redirect = "http://127.0.0.1:5000/cb";
    let plain = format!(
        "/oauth/authorize?response_type=code&client_id=readyapi&redirect_uri={}&code_challenge={}&code_challenge_method=plain&state=s",
        urlencode(redirect),
        challenge(VERIFIER)
    );
    let none =
        format!("/oauth/authorize?response_type=code&client_id=readyapi&redirect_uri={}&state=s", urlencode(redirect));
    let token = format!(
        "/oauth/authorize?response_type=token&client_id=readyapi&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        urlencode(redirect),
        challenge(VERIFIER)
    );
    for (path, error) in [(plain, "invalid_request"), (none, "invalid_request"), (token, "unsupported_response_type")] {
        let r = app.get(&path, None).await;
        let back = location(&r);
        assert!(back.starts_with(redirect), "{back}");
        assert_eq!(query_param(&back, "error").as_deref(), Some(error), "{back}");
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn sign_in_never_redirects_off_site_and_sign_out_needs_the_form() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;
    for evil in ["https://evil.example/", "//evil.example/x", "/\\evil.example"] {
        // (The sign-in page itself redirects once signed in; every pre-session form has the same token.)
        let r = app
            .submit(
                "/account/forgot",
                "/login/password",
                &[("email", &email), ("password", PASSWORD), ("return_to", evil)],
            )
            .await;
        assert_eq!(location(&r), "/portal", "{evil}");
    }
    let account = app.get("/account", None).await.text().await.unwrap();
    assert!(account.contains(&email));
    // Signing out needs the page's token (no cross-site sign-out).
    let r = app.form("/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let csrf = account.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let r = app.form("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get("/account", None).await;
    assert!(location(&r).starts_with("/login"));
    // A wrong password is refused on the page too, with the same words for an unknown account.
    let r = app
        .submit(
            "/login",
            "/login/password",
            &[("email", &email), ("password", "not my password at all"), ("return_to", "/account")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let a = r.text().await.unwrap();
    let r = app
        .submit(
            "/login",
            "/login/password",
            &[("email", &app.email("nobody")), ("password", "not my password at all"), ("return_to", "/account")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(a.contains("Wrong email or password") && r.text().await.unwrap().contains("Wrong email or password"));
}

async fn device_start(app: &TestApp, client: &str) -> Value {
    let r =
        app.client.post(app.url("/oauth/device_authorization")).form(&[("client_id", client)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn device_poll(app: &TestApp, device_code: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", "readyapi"),
        ])
        .send()
        .await
        .unwrap()
}

/// Approve (or deny) a device code in the signed-in browser.
pub async fn device_decide(app: &TestApp, user_code: &str, decision: &str) -> reqwest::Response {
    let page = app.get(&format!("/device?user_code={}", user_code.to_lowercase()), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("READYAPI") && html.contains(user_code), "{html}");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    app.form("/device", &[("csrf", &csrf), ("user_code", user_code), ("decision", decision)]).await
}

#[tokio::test]
async fn a_headless_product_signs_in_with_the_device_flow() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;
    let d = device_start(&app, "readyapi").await;
    assert_eq!(d["verification_uri"], app.url("/device"));
    assert_eq!(d["interval"], 5);
    let (device_code, user_code) = (d["device_code"].as_str().unwrap(), d["user_code"].as_str().unwrap());
    assert_oauth_error(device_poll(&app, device_code).await, StatusCode::BAD_REQUEST, "authorization_pending").await;
    let v = assert_oauth_error(device_poll(&app, device_code).await, StatusCode::BAD_REQUEST, "slow_down").await;
    assert_eq!(v["interval"], 10);

    // The user opens the page: signing in first, then approving.
    let r = app.get(&format!("/device?user_code={user_code}"), None).await;
    let login = location(&r);
    password_sign_in(&app, &login, &email, PASSWORD).await;
    let r = device_decide(&app, user_code, "approve").await;
    assert_eq!(r.status(), StatusCode::OK);
    app.advance(Duration::from_secs(11));
    let r = device_poll(&app, device_code).await;
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let me: Value = app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    // Once only.
    assert_oauth_error(device_poll(&app, device_code).await, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Denied, and expired.
    let d = device_start(&app, "readyapi").await;
    device_decide(&app, d["user_code"].as_str().unwrap(), "deny").await;
    assert_oauth_error(
        device_poll(&app, d["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;
    let d = device_start(&app, "readyapi").await;
    app.advance(Duration::from_secs(601));
    assert_oauth_error(
        device_poll(&app, d["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "expired_token",
    )
    .await;
    let r = app.get(&format!("/device?user_code={}", d["user_code"].as_str().unwrap()), None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Without the page's token nothing is approved.
    let d = device_start(&app, "readyapi").await;
    let r = app
        .form(
            "/device",
            &[("csrf", "forged"), ("user_code", d["user_code"].as_str().unwrap()), ("decision", "approve")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_oauth_error(
        device_poll(&app, d["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
    let r =
        app.client.post(app.url("/oauth/device_authorization")).form(&[("client_id", "nope")]).send().await.unwrap();
    assert_oauth_error(r, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

/// Wrong user codes are guesses at someone else's device: counted per client address and per
/// signed-in user, in the database, before the code is looked up. A burst gets only the budget
/// looked up, and while the wait lasts even a right code is refused; then it works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guessing_device_user_codes_is_throttled_per_address_and_per_user() {
    let app = spawn_app_with(Options { tweak: Box::new(|c| c.trust_forwarded_for = true), ..Default::default() }).await;
    let email = licensed_user(&app).await;
    let other = app.email("carol");
    app.assign(&app.create_license("acme", "readyapi", "floating", 1).await, &other).await;
    let mallory = app.signed_in_browser(&email).await;
    let carol = app.signed_in_browser(&other).await;
    let look = |browser: &reqwest::Client, from: &str, code: &str| {
        browser.get(app.url(&format!("/device?user_code={code}"))).header("x-forwarded-for", from).send()
    };
    let real = device_start(&app, "readyapi").await;
    let real_code = real["user_code"].as_str().unwrap().to_string();
    // Codes that differ from the real one in their last letter: all well-formed, all wrong.
    let wrong: Vec<String> = (0..100)
        .map(|i| {
            let c = ["B", "C", "D", "F", "G", "H", "J", "K", "L", "M"][i % 10];
            let two = ["N", "P", "Q", "R", "S", "T", "V", "W", "X", "Z"][i / 10];
            format!("{}{two}{c}", &real_code[..7])
        })
        .filter(|c| *c != real_code)
        .collect();
    // The page of a right code, before guessing starts (it holds the form's token).
    let page = look(&mallory, "192.0.2.1", &real_code).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let mut tasks = Vec::new();
    for code in &wrong {
        let (b, url) = (mallory.clone(), app.url(&format!("/device?user_code={code}")));
        tasks
            .push(tokio::spawn(async move { b.get(url).header("x-forwarded-for", "192.0.2.1").send().await.unwrap() }));
    }
    let (mut looked_up, mut refused) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status() {
            StatusCode::NOT_FOUND => looked_up += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(r.headers().contains_key("retry-after"));
                refused += 1
            }
            s => panic!("unexpected {s}"),
        }
    }
    // Ten free guesses and the eleventh, which starts the wait.
    assert_eq!((looked_up, refused), (11, wrong.len() - 11));
    // The wait binds the address (another user there) and the user (from another address) ...
    assert_eq!(look(&mallory, "192.0.2.1", &real_code).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(look(&carol, "192.0.2.1", &real_code).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(look(&mallory, "198.51.100.7", &real_code).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    // ... the approving form as well as the page ...
    let r = mallory
        .post(app.url("/device"))
        .header("x-forwarded-for", "198.51.100.7")
        .form(&[("csrf", csrf.as_str()), ("user_code", real_code.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ... but nobody else: another user at another address finds the code.
    assert_eq!(look(&carol, "198.51.100.8", &real_code).await.unwrap().status(), StatusCode::OK);
    // Backoff, not a lock: after the wait, the right code is found again.
    app.advance(Duration::from_secs(1));
    assert_eq!(look(&mallory, "192.0.2.1", &real_code).await.unwrap().status(), StatusCode::OK);
}

/// A reset ends whatever signed in before it: a thief's browser session, the sessions of every
/// other browser, refresh families (and their access tokens), a code not yet exchanged and a
/// device approved but not yet polled.
#[tokio::test]
async fn a_password_reset_ends_every_session_family_and_pending_code_of_the_account() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;
    let thief = app.signed_in_browser(&email).await;
    let other = app.signed_in_browser(&email).await;
    for b in [&thief, &other] {
        assert_eq!(b.get(app.url("/account")).send().await.unwrap().status(), StatusCode::OK);
    }
    let tokens = app.tokens(&email, PASSWORD, "readyapi").await;
    let redirect = "http://127.0.0.1:5000/cb";
    let r = thief.get(app.url(&authorize_path("readyapi", redirect, "s", VERIFIER))).send().await.unwrap();
    let pending_code = query_param(&location(&r), "code").expect("a code while signed in");
    let device = device_start(&app, "readyapi").await;
    let user_code = device["user_code"].as_str().unwrap();
    let page =
        other.get(app.url(&format!("/device?user_code={user_code}"))).send().await.unwrap().text().await.unwrap();
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let r = other
        .post(app.url("/device"))
        .form(&[("csrf", csrf), ("user_code", user_code), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The owner resets the password from the mail.
    let r = app.post("/api/v1/account/forgot", None, json!({ "email": email })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let mails = app.mails_to(&email, 2).await;
    let token = mails.iter().find(|m| m.subject() == "Reset your latchkey password").unwrap().token().unwrap();
    let r = app
        .post("/api/v1/account/password", None, json!({ "token": token, "password": "a brand new passphrase" }))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    for b in [&thief, &other] {
        let r = b.get(app.url("/account")).send().await.unwrap();
        assert!(location(&r).starts_with("/login"), "the session ended");
    }
    let r = thief.get(app.url(&authorize_path("readyapi", redirect, "s", VERIFIER))).send().await.unwrap();
    let next = location(&r);
    assert!(next.starts_with("/login") && query_param(&absolute(&app, &next), "code").is_none(), "{next}");
    assert_oauth_error(
        exchange(&app, &pending_code, redirect, VERIFIER, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_oauth_error(
        app.refresh_grant(tokens["refresh_token"].as_str().unwrap(), "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(app.get("/api/v1/me", tokens["access_token"].as_str()).await.status(), StatusCode::UNAUTHORIZED);
    app.advance(Duration::from_secs(6));
    assert_oauth_error(
        device_poll(&app, device["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "access_denied",
    )
    .await;
    // The new password signs in as usual.
    app.tokens(&email, "a brand new passphrase", "readyapi").await;
}

/// A browser of its own: a cookie jar, no redirects followed.
fn new_browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

async fn token_in(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    let r = browser.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    csrf_of(&r.text().await.unwrap())
}

/// Login CSRF: a page on another site makes the victim's browser POST the attacker's email and
/// password to the sign-in form. Were it accepted, the victim would work in the attacker's account
/// (and a product's sign-in in that browser would get a code for it). Refused without the
/// browser's own token, and refused from a foreign origin even with it; nothing is counted or hashed.
#[tokio::test]
async fn a_cross_site_sign_in_post_does_not_sign_the_browser_in() {
    let app = spawn_app().await;
    let attacker = licensed_user(&app).await;
    let victim = new_browser();
    let victim_token = token_in(&app, &victim, "/login").await;
    let attacker_token = token_in(&app, &new_browser(), "/login").await;
    let evaluated = app.event_count("password_attempt", "evaluated").await;
    let forged = |token: Option<&str>, headers: &[(&str, &str)]| {
        let mut fields = vec![("email", attacker.as_str()), ("password", PASSWORD), ("return_to", "/account")];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        let mut r = victim.post(app.url("/login/password")).form(&fields);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.send()
    };
    let evil = ("origin", "https://evil.example");
    for (token, headers) in [
        // The attack as reported: no token, a foreign Origin.
        (None, vec![evil]),
        (None, vec![]),
        // The attacker's own valid token belongs to the attacker's cookie, not the victim's.
        (Some(attacker_token.as_str()), vec![]),
        // Even the victim's own token does not pass from another site.
        (Some(victim_token.as_str()), vec![evil]),
        (Some(victim_token.as_str()), vec![("origin", "null")]),
        (Some(victim_token.as_str()), vec![("sec-fetch-site", "cross-site")]),
        (Some(victim_token.as_str()), vec![("referer", "https://evil.example/page")]),
        (Some("forged"), vec![]),
    ] {
        let r = forged(token, &headers).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?} {headers:?}");
        assert!(r.headers().get_all("set-cookie").iter().all(|c| !c.to_str().unwrap().starts_with("lk_session=")));
    }
    assert_eq!(app.event_count("password_attempt", "evaluated").await, evaluated, "nothing was evaluated");
    // The victim's browser is not signed in, and a product's sign-in there yields no code.
    let r = victim.get(app.url("/account")).send().await.unwrap();
    assert!(location(&r).starts_with("/login"));
    let redirect = "http://127.0.0.1:5000/cb";
    let r = victim.get(app.url(&authorize_path("readyapi", redirect, "s", VERIFIER))).send().await.unwrap();
    let next = location(&r);
    assert!(next.starts_with("/login?") && !next.contains("code="), "{next}");
    // The same browser, from its own page and origin, signs in (the refusals above were not luck).
    let r = forged(Some(&victim_token), &[("origin", app.base.as_str())]).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(victim.get(app.url("/account")).send().await.unwrap().status(), StatusCode::OK);
}

/// Every other form shown before sign-in refuses a post without its token, and changes nothing.
#[tokio::test]
async fn every_pre_session_form_refuses_a_post_without_its_token() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let email = app.email("dave");
    app.assign(&license, &email).await;
    let link = app.mails_to(&email, 1).await[0].token().unwrap();
    let share: Value = app
        .post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin), json!({}))
        .await
        .json()
        .await
        .unwrap();
    let share_path = share["url"].as_str().unwrap().strip_prefix(&app.base).unwrap().to_string();
    let newcomer = app.email("newcomer");
    let browser = new_browser();
    let other_token = token_in(&app, &new_browser(), "/login").await;
    let setup_page = format!("/account/setup?token={link}");
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/login".into(), vec![("email", &email), ("return_to", "/account")]),
        ("/account/setup".into(), vec![("token", &link), ("password", PASSWORD), ("confirm", PASSWORD)]),
        ("/account/reset".into(), vec![("token", &link), ("password", PASSWORD), ("confirm", PASSWORD)]),
        ("/account/forgot".into(), vec![("email", &email)]),
        (share_path.clone(), vec![("email", &newcomer)]),
    ];
    for (path, fields) in &forms {
        // The browser has visited the site (it holds the cookie), but posts without its token, or
        // with another browser's.
        token_in(&app, &browser, &setup_page).await;
        for token in [None, Some(other_token.as_str())] {
            let mut f = fields.clone();
            f.extend(token.map(|t| ("csrf", t)));
            let r = browser.post(app.url(path)).form(&f).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    // Nothing changed: no password, the link unspent, no assignment, no reset mail.
    assert_oauth_error(
        app.password_grant(&email, PASSWORD, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let assigned: Value =
        app.get(&format!("/api/v1/licenses/{license}/assignments"), Some(&admin)).await.json().await.unwrap();
    assert!(!assigned.to_string().contains(&newcomer), "{assigned}");
    // With the page's own token each form works.
    let r = app.submit(&setup_page, "/account/setup", &forms[1].1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.submit(&share_path, &share_path, &forms[4].1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.submit("/account/forgot", "/account/forgot", &forms[3].1).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.mails_to(&email, 2).await;
    assert_eq!(app.mails_queued(&email, "reset").await, 1, "only the form with its token mailed");
}

/// Forms of a signed-in browser (sign out, approve a device) keep their session token and also
/// refuse a foreign origin.
#[tokio::test]
async fn signed_in_forms_refuse_a_foreign_origin_even_with_the_token() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;
    let browser = app.signed_in_browser(&email).await;
    let d = device_start(&app, "readyapi").await;
    let user_code = d["user_code"].as_str().unwrap();
    let csrf = token_in(&app, &browser, &format!("/device?user_code={user_code}")).await;
    let post = |path: &str, fields: Vec<(&str, &str)>, origin: &str| {
        browser.post(app.url(path)).header("origin", origin).form(&fields).send()
    };
    let approve = vec![("csrf", csrf.as_str()), ("user_code", user_code), ("decision", "approve")];
    let r = post("/device", approve.clone(), "https://evil.example").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post("/logout", vec![("csrf", &csrf)], "https://evil.example").await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_oauth_error(
        device_poll(&app, d["device_code"].as_str().unwrap()).await,
        StatusCode::BAD_REQUEST,
        "authorization_pending",
    )
    .await;
    assert_eq!(browser.get(app.url("/account")).send().await.unwrap().status(), StatusCode::OK, "still signed in");
    let r = post("/device", approve, &app.base).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = post("/logout", vec![("csrf", &csrf)], &app.base).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// The Content-Security-Policy of an answer.
fn policy(r: &reqwest::Response) -> String {
    r.headers()["content-security-policy"].to_str().unwrap().to_string()
}

/// The sign-in steps' policy: no `form-action` (their forms' navigations end at an IdP or at a
/// product's loopback address, on another origin, and Chromium checks every redirect), the rest
/// as strict as elsewhere.
fn assert_sign_in_policy(csp: &str, what: &str) {
    assert!(!csp.contains("form-action"), "{what}: {csp}");
    for kept in ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"] {
        assert!(csp.contains(kept), "{what}: {kept} in {csp}");
    }
    assert!(!csp.contains("script-src"), "{what}: {csp}");
}

#[tokio::test]
async fn sign_in_steps_may_lead_to_another_origin_and_every_other_page_posts_only_here() {
    let app = spawn_app().await;
    let email = licensed_user(&app).await;

    // The email step, the password step it answers with, and each step again after a mistake.
    let r = app.get("/login?return_to=%2Fportal", None).await;
    assert_sign_in_policy(&policy(&r), "GET /login");
    let html = r.text().await.unwrap();
    let csrf = csrf_of(&html);
    let r = app.form("/login", &[("email", "not an address"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_sign_in_policy(&policy(&r), "a refused email");
    let r = app.form("/login", &[("email", &email), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_sign_in_policy(&policy(&r), "the password step");
    let wrong = [("email", email.as_str()), ("password", "not the password"), ("csrf", &csrf)];
    let r = app.form("/login/password", &wrong).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_sign_in_policy(&policy(&r), "a wrong password");

    // The code step of an account with an authenticator, and after a wrong code.
    crate::mfa::enrol(&app, &app.signed_in_browser(&email).await).await;
    let r = app.form("/login/password", &[("email", &email), ("password", PASSWORD), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_sign_in_policy(&policy(&r), "the code step");
    let r = app.form("/login/code", &[("code", "000000"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_sign_in_policy(&policy(&r), "a wrong code");

    // Every other page still lets its forms post only here: pages before sign-in, the account and
    // device pages, and the portal.
    for path in ["/account/forgot", "/account/setup?token=nothing"] {
        let csp = policy(&app.get(path, None).await);
        assert!(csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    }
    let signed_in = app.signed_in_browser(&email).await;
    for path in ["/account", "/device", "/portal", "/portal/security"] {
        let r = signed_in.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(policy(&r).contains("form-action 'self'"), "{path}: {}", policy(&r));
    }
}
