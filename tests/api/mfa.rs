//! The second factor: enrolling a TOTP authenticator in the portal, the code at every password
//! sign-in (each code once, throttled like passwords), recovery codes, the password grant's
//! `mfa_required`, operators made to enrol, and SSO users never asked.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

pub fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c).expect("base32") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// The code an authenticator app shows at the test clock's now.
pub fn code_now(app: &TestApp, secret: &[u8]) -> String {
    let t = totp_rs::Builder::new().with_secret(secret.to_vec()).build().unwrap();
    t.generate((app.clock_now() / 1000) as u64).to_string()
}

fn fresh_browser() -> Client {
    Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

async fn html(app: &TestApp, b: &Client, path: &str) -> (StatusCode, String) {
    let r = b.get(app.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Enrol in the portal in browser `b`: returns the secret and the recovery codes.
pub async fn enrol(app: &TestApp, b: &Client) -> (Vec<u8>, Vec<String>) {
    let (status, page) = html(app, b, "/portal/security").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<svg class=\"qr\""), "a QR code: {page}");
    let secret = page.split("id=\"totp-secret\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    let secret = base32_decode(&secret);
    assert_eq!(secret.len(), 20, "160 bits");
    // A wrong code first: refused, nothing enrolled.
    let csrf = csrf_of(&page);
    let r = b
        .post(app.url("/portal/security/totp"))
        .form(&[("csrf", csrf.as_str()), ("code", "000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let code = code_now(app, &secret);
    let r = b
        .post(app.url("/portal/security/totp"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    let codes: Vec<String> =
        page.split("<li><code>").skip(1).map(|s| s.split('<').next().unwrap().to_string()).collect();
    assert_eq!(codes.len(), 10, "{page}");
    (secret, codes)
}

/// Email and password through the sign-in pages in a fresh browser; returns it and the answer.
async fn password_step(app: &TestApp, email: &str) -> (Client, reqwest::Response) {
    let b = fresh_browser();
    let (_, page) = html(app, &b, "/login?return_to=%2Fportal").await;
    let csrf = csrf_of(&page);
    let r = b
        .post(app.url("/login/password"))
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", PASSWORD), ("return_to", "/portal")])
        .send()
        .await
        .unwrap();
    (b, r)
}

async fn give_code(app: &TestApp, b: &Client, page: &str, code: &str) -> reqwest::Response {
    let csrf = csrf_of(page);
    b.post(app.url("/login/code")).form(&[("csrf", csrf.as_str()), ("code", code)]).send().await.unwrap()
}

fn has_session(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|v| {
        let v = v.to_str().unwrap_or_default();
        v.starts_with("lk_session=") && !v.starts_with("lk_session=;")
    })
}

#[tokio::test]
async fn an_enrolled_user_gives_a_code_at_every_password_sign_in_and_each_code_works_once() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let _admin = app.entity_with_admin("acme").await;
    let email = app.email("admin-acme");
    let b = app.signed_in_browser(&email).await;
    let other = app.signed_in_browser(&email).await;
    let (secret, recovery) = enrol(&app, &b).await;
    let enrol_code = code_now(&app, &secret);
    let (_, page) = html(&app, &b, "/portal/security").await;
    assert!(page.contains("10 of 10") && page.contains("on since"), "{page}");
    // Enrolling signed the other browsers out.
    assert!(html(&app, &other, "/portal").await.0.is_redirection());
    let (status, _) = html(&app, &b, "/portal").await;
    assert_eq!(status, StatusCode::OK, "the enrolling browser stays signed in");

    // The password alone starts no session: a code is asked.
    let (b1, r) = password_step(&app, &email).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!has_session(&r));
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"code\""), "{page}");
    assert!(html(&app, &b1, "/portal").await.0.is_redirection(), "not signed in yet");
    // The code that confirmed the enrolment does not work again (same time step).
    let r = give_code(&app, &b1, &page, &enrol_code).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(!has_session(&r));
    // The next step's code signs in, once.
    app.advance(Duration::from_secs(30));
    let code = code_now(&app, &secret);
    let page = r.text().await.unwrap();
    let r = give_code(&app, &b1, &page, &code).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    assert!(has_session(&r));
    assert_eq!(r.headers()["location"], "/portal");
    assert_eq!(html(&app, &b1, "/portal").await.0, StatusCode::OK);
    let (b2, r) = password_step(&app, &email).await;
    let page = r.text().await.unwrap();
    let r = give_code(&app, &b2, &page, &code).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a replayed code is refused");
    // An earlier step's code (still within the skew window) is refused too.
    let r = give_code(&app, &b2, &r.text().await.unwrap(), &enrol_code).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A recovery code works once, typed in any case.
    let page = r.text().await.unwrap();
    let r = give_code(&app, &b2, &page, &recovery[3].to_uppercase()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (b3, r) = password_step(&app, &email).await;
    let r = give_code(&app, &b3, &r.text().await.unwrap(), &recovery[3]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a spent recovery code is refused");
    let (_, page) = html(&app, &b1, "/portal/security").await;
    assert!(page.contains("9 of 10"), "{page}");

    // The code step cannot be skipped, nor reached without the password step's cookie.
    let lone = fresh_browser();
    let (_, login) = html(&app, &lone, "/login").await;
    app.advance(Duration::from_secs(30));
    let r = give_code(&app, &lone, &login, &code_now(&app, &secret)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(!has_session(&r));
    // It expires after five minutes.
    let (b4, r) = password_step(&app, &email).await;
    let page = r.text().await.unwrap();
    app.advance(Duration::from_secs(6 * 60));
    let r = give_code(&app, &b4, &page, &code_now(&app, &secret)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Products cannot sign in with the password alone.
    let r = app.password_grant(&email, PASSWORD, "readyapi").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "mfa_required", "{v}");
    assert!(v["error_description"].as_str().unwrap().contains("/oauth/authorize"), "{v}");
    // A wrong password still answers as a wrong password (no hint that TOTP is on).
    let r = app.password_grant(&email, "wrong password here", "readyapi").await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");

    // Removing it takes a code; then the password alone works again.
    let (_, page) = html(&app, &b1, "/portal/security").await;
    let csrf = csrf_of(&page);
    let r = b1
        .post(app.url("/portal/security/remove"))
        .form(&[("csrf", csrf.as_str()), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(latchkey::store::mfa::has_totp(&app.state.db.pool, &user_id(&app, &email).await).await.unwrap());
    app.advance(Duration::from_secs(30));
    let code = code_now(&app, &secret);
    let r = b1
        .post(app.url("/portal/security/remove"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!latchkey::store::mfa::has_totp(&app.state.db.pool, &user_id(&app, &email).await).await.unwrap());
    assert_eq!(app.password_grant(&email, PASSWORD, "readyapi").await.status(), StatusCode::OK);
}

async fn user_id(app: &TestApp, email: &str) -> String {
    latchkey::store::accounts::user_by_email(&app.state.db.pool, email).await.unwrap().unwrap().id
}

#[tokio::test]
async fn guessing_codes_is_throttled_like_passwords_and_a_throttled_guess_is_not_evaluated() {
    let app = spawn_app().await;
    let _admin = app.entity_with_admin("acme").await;
    let email = app.email("admin-acme");
    let b = app.signed_in_browser(&email).await;
    let (secret, _) = enrol(&app, &b).await;
    app.advance(Duration::from_secs(30));
    let (b1, r) = password_step(&app, &email).await;
    let mut page = r.text().await.unwrap();
    let (mut throttled, mut wrong) = (false, 0);
    for i in 0..12 {
        let r = give_code(&app, &b1, &page, &format!("{:06}", 100_000 + i)).await;
        let status = r.status();
        page = r.text().await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
        wrong += 1;
    }
    assert!(throttled, "a dozen wrong codes in a row are throttled");
    // While throttled, even the right code is not evaluated.
    let r = give_code(&app, &b1, &page, &code_now(&app, &secret)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(!has_session(&r));
    // The throttle is the account's: passing the password again in another browser does not
    // reset it, and the right code is still not evaluated there.
    let (b_again, r) = password_step(&app, &email).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = give_code(&app, &b_again, &r.text().await.unwrap(), &code_now(&app, &secret)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!has_session(&r));

    // Each wrong code was recorded as a failed sign-in of the account, on its entity's log; the
    // codes themselves are not in the log.
    let r = app.get("/api/v1/entities/acme/audit?limit=1000&action=user.sign_in_failed", app.op()).await;
    let events: Value = r.json().await.unwrap();
    let failed = events["events"].as_array().unwrap();
    assert_eq!(failed.len(), wrong, "each evaluated wrong code, not the throttled ones: {events}");
    let id = user_id(&app, &email).await;
    for e in failed {
        assert_eq!(e["details"], json!({ "method": "totp", "reason": "wrong_code" }), "{e}");
        assert_eq!(e["actor"], json!({ "type": "user", "id": id, "name": email }), "{e}");
        assert_eq!(e["targets"][0]["id"], id.as_str(), "{e}");
        assert_eq!(e["entity"], "acme");
        assert!(!e.to_string().contains("100000"), "no code in the event: {e}");
    }
    // After the wait, the right code works.
    app.advance(Duration::from_secs(16 * 60));
    let (b2, r) = password_step(&app, &email).await;
    let r = give_code(&app, &b2, &r.text().await.unwrap(), &code_now(&app, &secret)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn users_of_an_sso_entity_are_not_asked_for_a_code_their_idp_gives_the_second_factor() {
    use crate::sso::*;
    let s = sso_entity("okta", |_| {}).await;
    let email = member(&s, "alice").await;
    // An authenticator enrolled while the account still used a password.
    let user = latchkey::store::accounts::user_by_email(&s.app.state.db.pool, &email).await.unwrap().unwrap();
    let e = latchkey::accounts::mfa::enrolment(&s.app.state, &user, s.app.clock_now()).await.unwrap().unwrap();
    let secret = base32_decode(&e.secret);
    latchkey::accounts::mfa::confirm(&s.app.state, &user, "", &code_now(&s.app, &secret), None, s.app.clock_now())
        .await
        .unwrap();
    let req = start_login(&s, "/portal").await;
    let answer = pysaml2_answer(&s, &req, &email, false).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    assert!(signed_in(&r), "signed in by the IdP alone");
    let (_, page) = html(&s.app, &s.app.client, "/portal/security").await;
    assert!(page.contains("identity provider"), "{page}");
}

/// Run the `latchkey` binary on `app`'s database, master key and public URL.
async fn cli(app: &TestApp, args: &[&str]) -> (bool, String) {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") {
            c.env_remove(k);
        }
    }
    let dir = std::env::temp_dir().join(format!("lk-op-{}", uuid::Uuid::new_v4().simple()));
    let out = c
        .args(args)
        .env("LATCHKEY_DATABASE_URL", &app.state.config.database_url)
        .env("LATCHKEY_MASTER_KEY_FILE", &app.state.config.master_key_file)
        .env("LATCHKEY_PUBLIC_URL", app.url(""))
        .env("LATCHKEY_MAIL_DIR", &dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
}

#[tokio::test]
async fn an_operator_made_on_the_command_line_sets_a_password_and_must_enrol_at_first_sign_in() {
    let app = spawn_app().await;
    let email = app.email("ops");
    // On the command line: the account is made and its setup mail queued (the command's clock is
    // the real one, the test server's is not, so the mail is read from one made in-process).
    let other = app.email("ops2");
    let (ok, err) = cli(&app, &["operator", "add", "--email", &other]).await;
    assert!(ok, "{err}");
    assert!(err.contains("password-setup mail is queued"), "{err}");
    assert_eq!(app.mails_queued(&other, "setup").await, 1);
    let u = latchkey::store::accounts::user_by_email(&app.state.db.pool, &other).await.unwrap().unwrap();
    assert!(latchkey::store::mfa::is_operator(&app.state.db.pool, &u.id).await.unwrap());
    let added = latchkey::accounts::operators::add(&app.state, &email, app.clock_now()).await.unwrap();
    assert!(added.account_created && added.newly_operator);
    app.set_password_from_mail(&email, PASSWORD).await;
    let (ok, err) = cli(&app, &["operator", "add", "--email", &email.to_uppercase()]).await;
    assert!(ok && err.contains("already"), "{err}");

    // First sign-in: straight to enrolment.
    let (b, r) = password_step(&app, &email).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/portal/security?first=1");
    let (_, page) = html(&app, &b, "/portal/security?first=1").await;
    assert!(page.contains("Operators need a second factor"), "{page}");
    let (secret, _) = enrol(&app, &b).await;
    // Operators keep their authenticator.
    let (_, page) = html(&app, &b, "/portal/security").await;
    assert!(!page.contains("/portal/security/remove"), "{page}");
    app.advance(Duration::from_secs(30));
    let code = code_now(&app, &secret);
    let csrf = csrf_of(&page);
    let r = b
        .post(app.url("/portal/security/remove"))
        .form(&[("csrf", csrf.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(latchkey::store::mfa::has_totp(&app.state.db.pool, &user_id(&app, &email).await).await.unwrap());
    // From now on a code is asked.
    let (b2, r) = password_step(&app, &email).await;
    let r = give_code(&app, &b2, &r.text().await.unwrap(), &code).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/portal");

    let (ok, err) = cli(&app, &["operator", "remove", "--email", &email]).await;
    assert!(ok, "{err}");
    let (ok, err) = cli(&app, &["operator", "remove", "--email", &email]).await;
    assert!(!ok && err.contains("not an operator"), "{err}");
}

/// Open `path` in `b`, then post `fields` (with the page's form token) to `action`.
async fn post(app: &TestApp, b: &Client, path: &str, action: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (_, page) = html(app, b, path).await;
    let csrf = csrf_of(&page);
    let mut all = fields.to_vec();
    all.push(("csrf", &csrf));
    b.post(app.url(action)).form(&all).send().await.unwrap()
}

#[tokio::test]
async fn an_operator_with_an_authenticator_creates_an_entity_a_product_and_a_license_and_changes_it() {
    let app = spawn_app().await;
    let email = app.email("ops");
    latchkey::accounts::operators::add(&app.state, &email, app.clock_now()).await.unwrap();
    app.set_password_from_mail(&email, PASSWORD).await;
    let b = app.signed_in_browser(&email).await;
    // No console before an authenticator.
    let r = b.get(app.url("/portal/operator/entities")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers()["location"].to_str().unwrap().starts_with("/portal/security"));
    enrol(&app, &b).await;
    let (status, page) = html(&app, &b, "/portal/operator/entities").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("latchkey-operators"), "the operators' own entity is listed: {page}");

    let products = "/portal/operator/products";
    let r = post(&app, &b, products, products, &[("sku", "readyapi"), ("name", "ReadyAPI")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = html(&app, &b, products).await;
    assert!(page.contains("is registered") && page.contains("<code>readyapi</code>"), "{page}");
    let r = post(&app, &b, products, products, &[("sku", "portal"), ("name", "Mine")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(html(&app, &b, products).await.1.contains("built-in client"), "the API's refusal is shown");

    let entities = "/portal/operator/entities";
    let admin = app.email("admin-acme");
    let r =
        post(&app, &b, entities, entities, &[("slug", "Not A Slug"), ("name", "Acme"), ("admin_email", &admin)]).await;
    assert_eq!(r.headers()["location"], entities);
    assert!(html(&app, &b, entities).await.1.contains("a slug has 2 to 63"));
    let r =
        post(&app, &b, entities, entities, &[("slug", "acme"), ("name", "Acme Inc."), ("admin_email", &admin)]).await;
    assert_eq!(r.headers()["location"], "/portal/operator/entities/acme");
    app.set_password_from_mail(&admin, PASSWORD).await;

    let acme = "/portal/operator/entities/acme";
    let fields =
        [("product", "readyapi"), ("kind", "floating"), ("seats", "5"), ("expires", "2099-01-31"), ("group", "")];
    let r = post(&app, &b, acme, "/portal/operator/entities/acme/licenses", &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let list: Value = app.get("/api/v1/entities/acme/licenses", app.op()).await.json().await.unwrap();
    let l = &list.as_array().unwrap()[0];
    assert_eq!((l["seats"].as_i64(), l["type"].as_str()), (Some(5), Some("floating")));
    assert_eq!(l["expires_at"], "2099-01-31T23:59:59Z");
    let id = l["id"].as_str().unwrap().to_string();
    let change = format!("/portal/operator/licenses/{id}");
    let r = post(&app, &b, acme, &change, &[("seats", "7"), ("expires", "2099-01-31"), ("onprem_allowed", "on")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let l: Value = app.get(&format!("/api/v1/licenses/{id}"), app.op()).await.json().await.unwrap();
    assert_eq!((l["seats"].as_i64(), l["onprem_allowed"].as_bool()), (Some(7), Some(true)), "{l}");
    let r = post(&app, &b, acme, &change, &[("seats", "0"), ("expires", "")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(html(&app, &b, acme).await.1.contains("`seats` must be between"), "refused, with the API's reason");
    let l: Value = app.get(&format!("/api/v1/licenses/{id}"), app.op()).await.json().await.unwrap();
    assert_eq!((l["seats"].as_i64(), &l["expires_at"]), (Some(7), &json!("2099-01-31T23:59:59Z")), "nothing changed");

    // An administrator (or anyone else) gets 404 for the console, and changes nothing.
    let a = app.signed_in_browser(&admin).await;
    for path in [entities, products, acme] {
        assert_eq!(html(&app, &a, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let r = post(&app, &a, "/portal", &change, &[("seats", "100"), ("expires", "2099-01-31")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post(&app, &a, "/portal", entities, &[("slug", "evil"), ("name", "Evil"), ("admin_email", &admin)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(app.get("/api/v1/entities/evil/licenses", app.op()).await.status().is_client_error());
    let l: Value = app.get(&format!("/api/v1/licenses/{id}"), app.op()).await.json().await.unwrap();
    assert_eq!(l["seats"].as_i64(), Some(7));

    // The audit log of everything names the operator user who acted.
    let (status, page) = html(&app, &b, "/portal/operator/audit?action=license.updated").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("<code>license.updated</code>") && page.contains(&format!("{email} (user)")), "{page}");
    let r = b.get(app.url("/portal/operator/audit.csv?action=entity.created")).send().await.unwrap();
    let csv = r.text().await.unwrap();
    assert!(csv.contains("entity.created") && csv.contains(&email), "{csv}");
}

/// An operator user with an authenticator, signed in: the app, their browser and their email.
async fn operator_in_console() -> (TestApp, Client, String) {
    let app = spawn_app().await;
    let email = app.email("ops");
    latchkey::accounts::operators::add(&app.state, &email, app.clock_now()).await.unwrap();
    app.set_password_from_mail(&email, PASSWORD).await;
    let b = app.signed_in_browser(&email).await;
    enrol(&app, &b).await;
    (app, b, email)
}

#[tokio::test]
async fn an_operator_makes_an_operator_key_seen_once_and_revokes_it_in_the_console() {
    let (app, b, email) = operator_in_console().await;
    let keys = "/portal/operator/keys";
    let (status, page) = html(&app, &b, keys).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // The test harness's own key is there already.
    let before = latchkey::store::keys::list_operator_keys(&app.state.db.pool).await.unwrap().len();
    assert!(page.contains(&format!("{before} active of {before}")), "{page}");
    // A name is needed; a bad one changes nothing.
    let r = post(&app, &b, keys, keys, &[("name", "  ")]).await;
    assert_eq!(r.headers()["location"], keys);
    assert!(html(&app, &b, keys).await.1.contains("give the key a name of 1 to 100 characters"));
    let r = post(&app, &b, keys, keys, &[("name", "billing-sync")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let page = r.text().await.unwrap();
    let key = page.split("value=\"lk_op_").nth(1).unwrap().split('"').next().unwrap();
    let key = format!("lk_op_{key}");
    // It works for the operator API, it is listed by name only, and only its hash is stored.
    assert_eq!(app.get("/api/v1/entities", Some(&key)).await.status(), StatusCode::OK);
    let (_, page) = html(&app, &b, keys).await;
    let counts = format!("{} active of {}", before + 1, before + 1);
    assert!(page.contains("billing-sync") && page.contains(&counts) && !page.contains(&key), "{page}");
    assert!(!app.database_text().await.contains(&key), "the key is not stored");
    let id = page.split("/portal/operator/keys/").skip(1).find(|r| r.contains("> billing-sync</span>")).unwrap();
    let id = id.split('/').next().unwrap().to_string();
    let revoke = format!("/portal/operator/keys/{id}/revoke");

    // Nobody else reaches these pages or revokes the key.
    let admin = app.entity_with_admin("acme").await;
    let a = app.signed_in_browser(&app.email("admin-acme")).await;
    for path in [keys, revoke.as_str()] {
        assert_eq!(html(&app, &a, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(post(&app, &a, "/portal", &revoke, &[]).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(post(&app, &a, "/portal", keys, &[("name", "mine")]).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/api/v1/entities", Some(&key)).await.status(), StatusCode::OK);
    assert_eq!(app.get("/api/v1/entities", Some(&admin)).await.status(), StatusCode::UNAUTHORIZED);

    // Revoking asks first, then the key no longer works.
    let (status, page) = html(&app, &b, &revoke).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Revoke the operator key billing-sync?"), "{page}");
    let r = post(&app, &b, &revoke, &revoke, &[]).await;
    assert_eq!(r.headers()["location"], keys);
    let (_, page) = html(&app, &b, keys).await;
    let counts = format!("{before} active of {}", before + 1);
    assert!(page.contains("is revoked") && page.contains(&counts), "{page}");
    assert_eq!(app.get("/api/v1/entities", Some(&key)).await.status(), StatusCode::UNAUTHORIZED);
    let r = post(&app, &b, keys, &revoke, &[]).await;
    assert_eq!(r.headers()["location"], keys);
    assert!(html(&app, &b, keys).await.1.contains("was revoked already"));
    let r = post(&app, &b, keys, "/portal/operator/keys/no-such-key/revoke", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Both are in the audit log of everything, by the operator user.
    let (_, page) = html(&app, &b, "/portal/operator/audit?action=operator_key.created").await;
    assert!(page.contains("<code>operator_key.created</code>") && page.contains(&format!("{email} (user)")), "{page}");
    let (_, page) = html(&app, &b, "/portal/operator/audit?action=operator_key.revoked").await;
    assert!(page.contains("<code>operator_key.revoked</code>") && page.contains("billing-sync"), "{page}");
}

/// A server fingerprint as `latchkey onprem fingerprint` prints it (RFC 8032's first test key).
fn server_fingerprint() -> String {
    use base64::Engine;
    const PUBLIC: [u8; 32] = [
        0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1,
        0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
    ];
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(PUBLIC);
    latchkey::onprem::jws::encode_b64_json(&json!({
        "server_id": "srv-build-1",
        "host": "build-farm",
        "key": { "kty": "OKP", "crv": "Ed25519", "x": x },
    }))
}

#[tokio::test]
async fn an_operator_moves_licenses_on_premise_and_offline_in_the_console() {
    let (app, b, _) = operator_in_console().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let floating = app.create_license("acme", "readyapi", "floating", 5).await;
    let fixed = app.create_license("acme", "readyapi", "fixed", 2).await;
    let private = "/portal/operator/private";
    let (status, page) = html(&app, &b, private).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("No license may leave the service yet"), "{page}");
    let fpage = format!("/portal/operator/licenses/{floating}");
    assert!(html(&app, &b, &fpage).await.1.contains("may not move to an on-premise server"));
    for (id, field) in [(&floating, "onprem_allowed"), (&fixed, "offline_allowed")] {
        let r = app.patch(&format!("/api/v1/licenses/{id}"), app.op(), json!({ field: true })).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let (_, page) = html(&app, &b, private).await;
    assert!(page.contains("2 licenses") && page.contains(">online<"), "{page}");

    // On-premise: a fingerprint that is not one is refused with the API's reason.
    let onprem = format!("{fpage}/onprem");
    let r = post(&app, &b, &fpage, &onprem, &[("text", "not a fingerprint")]).await;
    assert_eq!(r.headers()["location"], fpage.as_str());
    assert!(html(&app, &b, &fpage).await.1.contains("not a server fingerprint"));
    let fp = server_fingerprint();
    let r = post(&app, &b, &fpage, &onprem, &[("text", &fp)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("shown only on this page") && page.contains("latchkey onprem import"), "{page}");
    let entitlement = page.split("id=\"signed-file\"").nth(1).unwrap().split('>').nth(1).unwrap().split('<').next();
    assert_eq!(entitlement.unwrap().split('.').count(), 3, "a compact JWS: {page}");
    let (_, page) = html(&app, &b, &fpage).await;
    assert!(page.contains("build-farm") && page.contains("in force") && page.contains("Return file"), "{page}");
    assert!(!page.contains("id=\"fingerprint\""), "no second export while one is in force: {page}");
    let (_, page) = html(&app, &b, private).await;
    assert!(page.contains("on the on-premise server build-farm until"), "{page}");
    let ada = app.licensed_user(&floating, "ada", &admin).await;
    let token = app.token_for(&ada, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&token), json!({ "product": "readyapi", "machine": "m" })).await;
    assert_problem(r, StatusCode::CONFLICT, "license_on_premise").await;
    let r = post(&app, &b, &fpage, &format!("{fpage}/onprem/return"), &[("text", "bm90IGEgZmlsZQ")]).await;
    assert_eq!(r.headers()["location"], fpage.as_str());
    assert!(html(&app, &b, &fpage).await.1.contains("flash error"), "a bad return file is refused");

    // Offline: an activation request of an assigned user becomes a license file, shown once.
    let gus = app.licensed_user(&fixed, "gus", &admin).await;
    let xpage = format!("/portal/operator/licenses/{fixed}");
    let request = latchkey::onprem::jws::encode_b64_json(
        &json!({ "fingerprint": "fp-gus-laptop", "user": gus, "product": "readyapi" }),
    );
    let r = post(&app, &b, &xpage, &format!("{xpage}/offline"), &[("text", &request)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("Offline license file for") && page.contains("latchkey product run"), "{page}");
    let (_, page) = html(&app, &b, &xpage).await;
    assert!(page.contains(&gus) && page.contains("in force"), "{page}");
    let files = latchkey::store::onprem::offline_of(&app.state.db.pool, &fixed).await.unwrap();
    let code = latchkey::onprem::offline::deactivation_code(&files[0].jti, &fixed, "fp-gus-laptop");
    let r = post(&app, &b, &xpage, &format!("{xpage}/offline/return"), &[("text", &code)]).await;
    assert_eq!(r.headers()["location"], xpage.as_str());
    let (_, page) = html(&app, &b, &xpage).await;
    assert!(page.contains("The offline license is returned") && page.contains("returned 20"), "{page}");
    let r = post(&app, &b, &xpage, &format!("{xpage}/offline/return"), &[("text", &code)]).await;
    assert_eq!(r.headers()["location"], xpage.as_str());
    assert!(html(&app, &b, &xpage).await.1.contains("returned already"), "a code works once");

    // An administrator of the entity gets none of it.
    let a = app.signed_in_browser(&app.email("admin-acme")).await;
    for path in [private, fpage.as_str(), xpage.as_str()] {
        assert_eq!(html(&app, &a, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let r = post(&app, &a, "/portal", &format!("{xpage}/offline"), &[("text", &request)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}
