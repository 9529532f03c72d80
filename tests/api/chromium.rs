//! The portal in a real browser: Debian's headless Chromium driven over WebDriver (its
//! `chromedriver`), on whichever backend the suite runs. Screenshots of each page at desktop width
//! and at 375 px go to `target/portal-screenshots/<backend>/` for a reviewer to look at.

use std::{path::PathBuf, process::Stdio, time::Duration};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session of it.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    shots: PathBuf,
    /// Where the browser saves downloads (a folder of its own).
    downloads: PathBuf,
    driver: tokio::process::Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Browser {
    async fn start(shots: PathBuf) -> Browser {
        let driver_bin = std::env::var("LATCHKEY_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("LATCHKEY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port();
        let driver = tokio::process::Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            // The viewer's zone is not UTC, so the page's script has something to show.
            .env("TZ", "Europe/Berlin")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver_bin} (`./x setup` installs chromium-driver): {e}"));
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--lang=en-GB"],
            },
        }}});
        let r: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_string();
        std::fs::create_dir_all(&shots).unwrap();
        let downloads = std::env::temp_dir().join(format!("latchkey-downloads-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&downloads).unwrap();
        let b = Browser { http, base, session, shots, downloads, driver };
        // Downloads go to that folder without asking (headless Chromium refuses them otherwise).
        let params = json!({ "behavior": "allow", "downloadPath": b.downloads.to_str().unwrap() });
        b.cmd(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({ "cmd": "Browser.setDownloadBehavior", "params": params })),
        )
        .await;
        b
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap().to_string()
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None).await.as_str().unwrap().to_string()
    }

    /// The element `css` selects, waiting a little for a page that is still loading.
    async fn find(&self, css: &str) -> String {
        for _ in 0..50 {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let r = self.http.post(url).json(&json!({ "using": "css selector", "value": css })).send().await.unwrap();
            let v: Value = r.json().await.unwrap();
            if let Some(id) = v["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css} on {}: {}", self.url().await, self.source().await)
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/value"), Some(json!({ "text": text }))).await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    /// The page once it holds `text` (a click's navigation may still be under way when it returns).
    async fn wait_for(&self, text: &str) -> String {
        for _ in 0..100 {
            let html = self.source().await;
            if html.contains(text) {
                return html;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no {text:?} on {}: {}", self.url().await, self.source().await)
    }

    async fn script(&self, js: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": js, "args": [] }))).await
    }

    /// Fill a field as a paste would (long texts such as metadata documents, at once).
    async fn paste_into(&self, css: &str, text: &str) {
        self.find(css).await;
        let js = "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
                  e.dispatchEvent(new Event('input', { bubbles: true }));";
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": js, "args": [css, text] }))).await;
    }

    /// The text of the element `css` selects.
    async fn text_of(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None).await.as_str().unwrap().to_string()
    }

    /// `fetch(path)` from the current page, with its session (same origin): status, content type
    /// and body text.
    async fn fetch(&self, method: &str, path: &str, form: Value) -> (u16, String, String) {
        let js = "const done = arguments[arguments.length - 1]; \
                  const init = { method: arguments[1], credentials: 'same-origin', redirect: 'manual' }; \
                  if (arguments[1] === 'POST') init.body = new URLSearchParams(arguments[2]); \
                  fetch(arguments[0], init) \
                    .then(r => r.text().then(t => done([r.status, r.headers.get('content-type') || '', t]))) \
                    .catch(e => done([0, '', String(e)]));";
        let v = self
            .cmd(reqwest::Method::POST, "/execute/async", Some(json!({ "script": js, "args": [path, method, form] })))
            .await;
        (v[0].as_u64().unwrap() as u16, v[1].as_str().unwrap().to_string(), v[2].as_str().unwrap().to_string())
    }

    /// The file the browser downloaded whose name starts with `prefix`, once it is complete.
    async fn downloaded(&self, prefix: &str) -> (String, String) {
        for _ in 0..100 {
            let done = std::fs::read_dir(&self.downloads).unwrap().filter_map(Result::ok).find(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.starts_with(prefix) && !name.ends_with(".crdownload")
            });
            if let Some(f) = done {
                return (f.file_name().to_string_lossy().to_string(), std::fs::read_to_string(f.path()).unwrap());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no download {prefix}* in {}", self.downloads.display())
    }

    /// Sign in at /login with email and password (the second factor, when asked, is the caller's).
    async fn sign_in(&self, app: &TestApp, email: &str) {
        self.goto(&app.url("/login")).await;
        self.type_into("#email", email).await;
        self.click("button[type=submit]").await;
        self.type_into("#password", PASSWORD).await;
        self.click("button[type=submit]").await;
    }

    async fn sign_out(&self) {
        self.click("form.signout button[type=submit]").await;
        self.wait_for("You are signed out").await;
    }

    async fn resize(&self, width: u32, height: u32) {
        self.cmd(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// Screenshots of the current page at desktop width and at 375 px, and a check that at 375 px
    /// nothing but the tables' own scrolling areas is wider than the screen.
    async fn shots(&self, name: &str) {
        for (width, label) in [(1280, "desktop"), (375, "375px")] {
            self.resize(width, if width == 375 { 812 } else { 900 }).await;
            // Whole-page height, so the screenshot shows everything: the window's height holds its
            // own frame too (outer less inner height), which the page does not get.
            let h = self.script("return document.documentElement.scrollHeight").await.as_u64().unwrap_or(900);
            let frame = self.script("return window.outerHeight - window.innerHeight").await.as_u64().unwrap_or(0);
            self.resize(width, (h.clamp(600, 4000) + frame) as u32).await;
            let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
            let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap()).unwrap();
            std::fs::write(self.shots.join(format!("{name}-{label}.png")), bytes).unwrap();
            if width == 375 {
                let overflow = self
                    .script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
                    .await;
                if overflow.as_i64().unwrap() > 0 {
                    let culprits = self
                        .script(
                            "return Array.from(document.querySelectorAll('body *'))\
                               .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth)\
                               .slice(0, 8).map(e => e.tagName + '.' + e.className).join(' ')",
                        )
                        .await;
                    panic!("{name} is wider than 375 px by {overflow} px: {culprits}");
                }
            }
        }
        self.resize(1280, 900).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
        let _ = std::fs::remove_dir_all(&self.downloads);
    }
}

fn backend() -> &'static str {
    if std::env::var("LATCHKEY_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "postgres"
    } else {
        "sqlite"
    }
}

#[tokio::test]
async fn an_administrator_assigns_sees_an_idle_seat_and_disconnects_it_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let admin = app.email("admin-acme");
    app.set_password_from_mail(&admin, PASSWORD).await;
    let license = app.create_license("acme", "readyapi", "floating", 10).await;
    let shots = repo_path("target/portal-screenshots").join(backend());
    let b = Browser::start(shots).await;

    // Signing in lands on the portal.
    b.sign_in(&app, &admin).await;
    let html = b.wait_for("You hold no license yet").await;
    assert_eq!(b.url().await, app.url("/portal"));
    assert!(html.contains("Europe/Berlin"), "the page's script ran under the policy: {html}");
    b.shots("01-my-licenses").await;

    b.click("nav a[href='/portal/entities/acme/licenses']").await;
    b.wait_for("READYAPI").await;
    b.shots("02-licenses").await;
    b.click(&format!("a[href='/portal/licenses/{license}']")).await;
    b.wait_for("Nobody holds this license yet").await;
    b.shots("03-license-empty").await;

    // One address, then two in bulk: one pasted, one from a CSV file.
    let (ada, bob, cy) = (app.email("ada"), app.email("bob"), app.email("cy"));
    b.type_into("#emails", &ada).await;
    b.click("form[action$='/assign'] button[type=submit]").await;
    b.wait_for(&format!("{ada} is assigned")).await;
    let csv = std::env::temp_dir().join(format!("latchkey-{}.csv", uuid::Uuid::new_v4()));
    std::fs::write(&csv, format!("email,name\n{cy},Cy\n")).unwrap();
    b.type_into("#emails", &format!("{bob}\nnot-an-address")).await;
    b.type_into("#file", csv.to_str().unwrap()).await;
    b.click("form[action$='/assign'] button[type=submit]").await;
    b.wait_for("2 assigned, 0 already assigned, 1 not assigned").await;
    b.shots("04-assign-results").await;
    let _ = std::fs::remove_file(&csv);
    b.goto(&app.url(&format!("/portal/licenses/{license}"))).await;
    let html = b.source().await;
    for e in [&ada, &bob, &cy] {
        assert!(html.contains(e.as_str()), "{e} listed: {html}");
    }
    b.shots("05-license").await;

    // The idle policy, set through the license's settings form in the browser.
    b.type_into("#idle-minutes", "30").await;
    b.click("form[action$='/settings'] button[type=submit]").await;
    let html = b.wait_for("seats idle for 30 min are disconnected.").await;
    assert!(html.contains("Saved: READYAPI is in no group"), "{html}");
    let admin_token = app.token_for(&admin, "portal").await;
    let l: Value = app.get(&format!("/api/v1/licenses/{license}"), Some(&admin_token)).await.json().await.unwrap();
    assert_eq!(l["idle_timeout_minutes"], 30, "{l}");
    b.shots("05b-license-settings").await;

    // A product checks out a seat for bob and reports him idle.
    let token = app.token_for(&bob, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&token), json!({ "product": "readyapi", "machine": "qa-laptop-7" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let lease: Value = r.json().await.unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();
    let beat_path = format!("/api/v1/seats/{lease_id}/heartbeat");
    let beat = || app.post(&beat_path, Some(&token), json!({ "idle_seconds": 1500 }));
    // The seat is in use for a while before the administrator looks (for the usage report).
    app.advance(Duration::from_secs(120));
    assert_eq!(beat().await.status(), StatusCode::OK);

    b.click(&format!("a[href='/portal/licenses/{license}/seats']")).await;
    let html = b.wait_for("qa-laptop-7").await;
    assert!(html.contains(&bob) && html.contains("qa-laptop-7") && html.contains("25 min"), "{html}");
    b.shots("06-seats").await;
    b.click(&format!("a[href='/portal/seats/{lease_id}/disconnect']")).await;
    b.wait_for(&format!("Disconnect {bob}?")).await;
    b.shots("07-disconnect-confirm").await;
    b.click("button.danger").await;
    let html = b.wait_for("Seat disconnected").await;
    assert!(html.contains("No seat is in use right now"), "{html}");
    b.shots("08-seat-disconnected").await;
    assert_problem(beat().await, StatusCode::GONE, "lease_revoked").await;

    // Users and administrators, for the screenshots.
    b.click("nav a[href='/portal/entities/acme/users']").await;
    let html = b.wait_for("Add an administrator").await;
    assert!(html.contains(cy.as_str()), "{html}");
    b.shots("09-users").await;

    // The usage report, single sign-on set-up, audit log and sign-in security pages, for the
    // screenshots and the 375 px check.
    b.click("nav a[href^='/portal/entities/acme/usage']").await;
    b.wait_for("Download CSV").await;
    b.shots("10-usage").await;
    // The CSV, downloaded by the browser: the day of bob's seat in the viewer's zone.
    b.click("a[href*='/usage.csv']").await;
    let (name, csv) = b.downloaded("latchkey-usage-acme-").await;
    assert!(name.ends_with("-Europe_Berlin.csv"), "{name}");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(latchkey::licenses::reports::CSV_HEADER));
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().all(|r| r.contains(&license) && r.ends_with(",Europe/Berlin")), "{csv}");
    let today = rows.last().unwrap().split(',').collect::<Vec<_>>();
    assert_eq!((today[4], today[5], today[8]), ("10", "1", "1"), "10 seats, a peak of 1, one user: {csv}");
    b.click("nav a[href='/portal/entities/acme/sso']").await;
    b.wait_for("Your service provider values").await;
    b.shots("11-sso").await;
    b.click("nav a[href='/portal/entities/acme/audit']").await;
    b.wait_for("<code>assignment.created</code>").await;
    b.shots("12-audit").await;
    b.click("a[href='/portal/security']").await;
    b.wait_for("Code from the app").await;
    b.shots("13-security").await;
    // Groups and provisioning: a group made, a SCIM token made (for the screenshots and 375 px).
    b.click("nav a[href='/portal/entities/acme/groups']").await;
    b.wait_for("No group yet").await;
    b.type_into("#group-name", "Berlin office").await;
    b.click("form[action$='/groups'] button[type=submit]").await;
    b.wait_for("The group Berlin office is made").await;
    b.shots("14-groups").await;
    b.click("nav a[href='/portal/entities/acme/scim']").await;
    b.wait_for("No SCIM token yet").await;
    b.type_into("#token-name", "okta").await;
    b.click("form[action$='/scim/tokens'] button[type=submit]").await;
    b.wait_for("shown only on this page").await;
    b.shots("15-scim-token").await;
    b.click("a.button[href='/portal/entities/acme/scim']").await;
    b.wait_for("1 live of 1").await;
    b.shots("16-scim").await;
}

/// A test identity provider on a port of its own: its sign-in page answers latchkey's real
/// AuthnRequest (HTTP-Redirect) with pysaml2 (tests/support/saml_idp.py `idp-login`), as `email`
/// with a `department` attribute, and shows a button that posts the answer to latchkey.
async fn start_idp(app: &TestApp, slug: &str, email: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sso_url = format!("http://127.0.0.1:{port}/sso");
    let (app_state, metadata_url) = (app.state.clone(), app.url(&format!("/saml/{slug}/metadata")));
    let email = email.to_string();
    let sign_in = move |uri: axum::http::Uri| {
        let (state, metadata_url, email) = (app_state.clone(), metadata_url.clone(), email.clone());
        let url = format!("http://127.0.0.1:{port}{uri}");
        async move { idp_page(&state, &metadata_url, &email, json!({ "url": url })).await }
    };
    let router = axum::Router::new().route("/sso", axum::routing::get(sign_in));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    sso_url
}

/// A test identity provider that takes only HTTP-POST at its endpoint, and then, as IdPs that pass
/// the browser on to a sign-in host of their own do, answers 303 to its sign-in page on another
/// origin (another port), where pysaml2 answers the posted request as `start_idp`'s page does.
async fn start_post_idp(app: &TestApp, slug: &str, email: &str) -> String {
    let endpoint = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sso_url = format!("http://127.0.0.1:{}/sso", endpoint.local_addr().unwrap().port());
    let pages = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pages_url = format!("http://127.0.0.1:{}/sign-in", pages.local_addr().unwrap().port());
    type Posted = std::sync::Arc<std::sync::Mutex<Vec<Vec<(String, String)>>>>;
    let posted: Posted = Default::default();
    let keep = posted.clone();
    let take = move |axum::Form(form): axum::Form<Vec<(String, String)>>| {
        let (keep, pages_url) = (keep.clone(), pages_url.clone());
        async move {
            let mut all = keep.lock().unwrap();
            all.push(form);
            axum::response::Redirect::to(&format!("{pages_url}?n={}", all.len() - 1))
        }
    };
    let (app_state, metadata_url) = (app.state.clone(), app.url(&format!("/saml/{slug}/metadata")));
    let (email, url) = (email.to_string(), sso_url.clone());
    let sign_in = move |axum::extract::Query(q): axum::extract::Query<Vec<(String, String)>>| {
        let (state, metadata_url, email, sso_url) =
            (app_state.clone(), metadata_url.clone(), email.clone(), url.clone());
        let n: usize = q.iter().find(|(k, _)| k == "n").unwrap().1.parse().unwrap();
        let form = posted.lock().unwrap()[n].clone();
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let request =
            json!({ "saml_request": field("SAMLRequest"), "relay_state": field("RelayState"), "sso_url": sso_url });
        async move { idp_page(&state, &metadata_url, &email, request).await }
    };
    let endpoint_router = axum::Router::new().route("/sso", axum::routing::post(take));
    let pages_router = axum::Router::new().route("/sign-in", axum::routing::get(sign_in));
    tokio::spawn(async move { axum::serve(endpoint, endpoint_router).await.unwrap() });
    tokio::spawn(async move { axum::serve(pages, pages_router).await.unwrap() });
    sso_url
}

/// The test IdP's page: pysaml2's answer to `request` (`url` of an HTTP-Redirect request, or the
/// posted `saml_request` and `relay_state`) as `email`, and a button that posts it to latchkey.
async fn idp_page(
    state: &latchkey::state::AppState,
    metadata_url: &str,
    email: &str,
    mut request: Value,
) -> axum::response::Html<String> {
    let sp_metadata = reqwest::get(metadata_url).await.unwrap().text().await.unwrap();
    let params = request.as_object_mut().unwrap();
    params.insert("vendor".into(), json!("okta"));
    params.insert("sp_metadata_xml".into(), json!(sp_metadata));
    params.insert("email".into(), json!(email));
    params.insert("attributes".into(), json!({ "department": "Sales" }));
    params.insert("now".into(), json!(state.now() / 1000));
    let answer = crate::sso::idp("idp-login", &request).await;
    let field = |name: &str, v: &Value| match v.as_str() {
        Some(v) => format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", v.replace('"', "&quot;")),
        None => String::new(),
    };
    axum::response::Html(format!(
        "<!doctype html><title>Test IdP</title><h1>Test identity provider</h1><p>Signed in as {email}.</p>\
         <form method=\"post\" action=\"{}\">{}{}<button id=\"continue\" type=\"submit\">Continue</button></form>",
        answer["acs_url"].as_str().unwrap(),
        field("SAMLResponse", &answer["saml_response"]),
        field("RelayState", &answer["relay_state"]),
    ))
}

#[tokio::test]
async fn an_administrator_sets_up_tests_and_enables_single_sign_on_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let admin = app.email("admin-acme");
    app.set_password_from_mail(&admin, PASSWORD).await;
    let sso_url = start_idp(&app, "acme", &admin).await;
    // The IdP's metadata as Okta shapes it, signing in at the test IdP (HTTP-Redirect).
    let md =
        crate::sso::idp("metadata", &json!({ "vendor": "okta", "sso_url": sso_url, "sso_bindings": ["redirect"] }))
            .await;
    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("sso")).await;
    b.sign_in(&app, &admin).await;
    b.wait_for("You hold no license yet").await;

    b.click("nav a[href='/portal/entities/acme/sso']").await;
    b.wait_for("Single sign-on is not set up").await;
    b.shots("01-sso-not-set-up").await;
    b.click("#vendor-okta").await;
    b.paste_into("#metadata-xml", md["xml"].as_str().unwrap()).await;
    b.type_into("#domains", &app.domain).await;
    b.click("form[action='/portal/entities/acme/sso'] button[type=submit]").await;
    let html = b.wait_for("set up but off").await;
    assert!(html.contains("claimed, not verified") && html.contains("not yet passed"), "{html}");
    b.shots("02-sso-saved").await;

    // Enabling first is refused with what to do.
    b.click("form[action$='/sso/enabled'] button[type=submit]").await;
    b.wait_for("Run Test sign-in with these identity provider settings first").await;

    // Test sign-in: to the IdP, and back to what it sent.
    b.click("a[href='/portal/entities/acme/sso/test']").await;
    b.wait_for("Test identity provider").await;
    assert!(b.url().await.starts_with(&sso_url), "{}", b.url().await);
    b.click("#continue").await;
    let report = b.wait_for("Test passed").await;
    for needle in ["http://www.okta.com/", "department", "Sales", admin.as_str()] {
        assert!(report.contains(needle), "{needle}: {report}");
    }
    b.shots("03-sso-test-report").await;
    // The report leads back to the SSO page, which now shows the passed test.
    b.click("a[href='/portal/entities/acme/sso']").await;
    b.wait_for("passed <time").await;
    assert_eq!(b.url().await, app.url("/portal/entities/acme/sso"));

    // The vendor verifies the domain (operator API), then the administrator enables.
    let r = app.patch("/api/v1/entities/acme/sso", app.op(), json!({ "email_domains": [app.domain] })).await;
    assert_eq!(r.status(), StatusCode::OK);
    b.goto(&app.url("/portal/entities/acme/sso")).await;
    b.wait_for("<span class=\"tag\">verified</span>").await;
    b.shots("04-sso-verified").await;
    b.click("form[action$='/sso/enabled'] button[type=submit]").await;
    // The administrator's password session ended with it: the page asks to sign in again (from
    // here on, through the IdP).
    b.wait_for("id=\"email\"").await;
    assert!(b.url().await.starts_with(&app.url("/login?return_to=%2Fportal%2Fentities%2Facme%2Fsso")));
    let view: Value = app.get("/api/v1/entities/acme/sso", app.op()).await.json().await.unwrap();
    assert_eq!(view["enabled"], true, "{view}");
}

#[tokio::test]
async fn an_operator_enrols_an_authenticator_and_creates_an_entity_and_a_license_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let ops = app.email("ops");
    latchkey::accounts::operators::add(&app.state, &ops, app.clock_now()).await.unwrap();
    app.set_password_from_mail(&ops, PASSWORD).await;
    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("operator")).await;

    // First sign-in: an operator enrols an authenticator before the console opens.
    b.sign_in(&app, &ops).await;
    b.wait_for("Operators need a second factor").await;
    assert_eq!(b.url().await, app.url("/portal/security?first=1"));
    b.shots("01-enrol").await;
    let secret = crate::mfa::base32_decode(&b.text_of("#totp-secret").await);
    b.type_into("#code", &crate::mfa::code_now(&app, &secret)).await;
    b.click("form[action='/portal/security/totp'] button[type=submit]").await;
    b.wait_for("recovery codes").await;
    b.shots("02-recovery-codes").await;

    // Signing in again asks for a code; a wrong one is refused (and recorded), the next one works.
    b.sign_out().await;
    b.sign_in(&app, &ops).await;
    b.wait_for("name=\"code\"").await;
    b.shots("03-sign-in-code").await;
    b.type_into("#code", "000000").await;
    b.click("form[action='/login/code'] button[type=submit]").await;
    b.wait_for("That code is wrong, expired or already used").await;
    app.advance(Duration::from_secs(30));
    b.type_into("#code", &crate::mfa::code_now(&app, &secret)).await;
    b.click("form[action='/login/code'] button[type=submit]").await;
    b.wait_for("You hold no license yet").await;

    // The console: an entity, then a license of it.
    b.click("nav a[href='/portal/operator/entities']").await;
    b.wait_for("Create an entity").await;
    let admin = app.email("admin-globex");
    b.type_into("#slug", "globex").await;
    b.type_into("#name", "Globex Corporation").await;
    b.type_into("#admin-email", &admin).await;
    b.click("form[action='/portal/operator/entities'] button[type=submit]").await;
    let html = b.wait_for("Globex Corporation is created").await;
    assert!(html.contains("holds no license yet"), "{html}");
    assert_eq!(b.url().await, app.url("/portal/operator/entities/globex"));
    b.type_into("#new-seats", "25").await;
    b.click("form[action='/portal/operator/entities/globex/licenses'] button[type=submit]").await;
    let html = b.wait_for("license is created").await;
    assert!(html.contains("0 of 25"), "{html}");
    b.shots("04-entity-with-license").await;
    let licenses: Value = app.get("/api/v1/entities/globex/licenses", app.op()).await.json().await.unwrap();
    let list = licenses.as_array().unwrap_or_else(|| licenses["licenses"].as_array().unwrap());
    assert_eq!(list.len(), 1, "{licenses}");
    assert_eq!((list[0]["product"].as_str(), list[0]["seats"].as_i64()), (Some("readyapi"), Some(25)), "{licenses}");
    b.click("a[href='/portal/operator/entities']").await;
    b.wait_for("Globex Corporation").await;
    b.shots("05-entities").await;

    // The audit log of everything names the operator user, and the refused code.
    b.click("a[href='/portal/operator/audit']").await;
    let html = b.wait_for("<code>license.created</code>").await;
    assert!(html.contains("<code>entity.created</code>") && html.contains(&ops), "{html}");
    assert!(html.contains("<code>user.sign_in_failed</code>"), "{html}");
    b.shots("06-audit").await;
}

#[tokio::test]
async fn a_user_releases_their_own_seat_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 3).await;
    let ada = app.licensed_user(&license, "ada", &admin).await;
    let token = app.token_for(&ada, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&token), json!({ "product": "readyapi", "machine": "ada-desktop" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let lease: Value = r.json().await.unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();

    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("user")).await;
    b.sign_in(&app, &ada).await;
    let html = b.wait_for("ada-desktop").await;
    assert!(html.contains("READYAPI") || html.contains("readyapi"), "{html}");
    assert!(!html.contains("/portal/entities/"), "a user has no administration pages: {html}");
    b.shots("01-my-licenses-with-seat").await;
    b.click(&format!("form[action='/portal/seats/{lease_id}/release'] button[type=submit]")).await;
    let html = b.wait_for("Seat released").await;
    assert!(!html.contains("ada-desktop"), "{html}");
    b.shots("02-seat-released").await;
    let r = app.post(&format!("/api/v1/seats/{lease_id}/heartbeat"), Some(&token), json!({ "idle_seconds": 0 })).await;
    assert_eq!(r.status(), StatusCode::GONE);
}

#[tokio::test]
async fn an_administrator_cannot_reach_another_entitys_pages_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let acme_admin = app.entity_with_admin("acme").await;
    let globex_admin = app.entity_with_admin("globex").await;
    let acme_license = app.create_license("acme", "readyapi", "floating", 3).await;
    let globex_license = app.create_license("globex", "readyapi", "floating", 3).await;
    app.licensed_user(&acme_license, "ada", &acme_admin).await;
    let gus = app.licensed_user(&globex_license, "gus", &globex_admin).await;
    let token = app.token_for(&gus, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&token), json!({ "product": "readyapi", "machine": "gus-pc" })).await;
    let lease: Value = r.json().await.unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();

    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("isolation")).await;
    b.sign_in(&app, &app.email("admin-acme")).await;
    b.wait_for("You hold no license yet").await;
    // Guessed addresses of globex's pages answer exactly as pages that do not exist.
    let guessed = [
        format!("/portal/licenses/{globex_license}"),
        format!("/portal/licenses/{globex_license}/seats"),
        format!("/portal/licenses/{globex_license}/revoke?email={gus}"),
        format!("/portal/seats/{lease_id}/disconnect"),
        "/portal/entities/globex/licenses".into(),
        "/portal/entities/globex/users".into(),
        "/portal/entities/globex/usage".into(),
        "/portal/entities/globex/usage.csv".into(),
        "/portal/entities/globex/sso".into(),
        "/portal/entities/globex/audit".into(),
        "/portal/operator/entities".into(),
        "/portal/licenses/00000000-0000-0000-0000-000000000000".into(),
    ];
    for (i, path) in guessed.iter().enumerate() {
        b.goto(&app.url(path)).await;
        let html = b.wait_for("There is no such page, or it is not yours to see.").await;
        assert!(!html.contains(&gus) && !html.contains("gus-pc"), "{path}: {html}");
        if i == 0 {
            b.shots("01-not-found").await;
        }
    }
    // Their status, fetched from a portal page (whose policy lets its own scripts connect).
    b.goto(&app.url("/portal")).await;
    b.wait_for("You hold no license yet").await;
    for path in &guessed {
        let (status, _, _) = b.fetch("GET", path, Value::Null).await;
        assert_eq!(status, 404, "{path}");
    }
    // Forms posted with acme's own valid token change nothing of globex's.
    b.goto(&app.url(&format!("/portal/licenses/{acme_license}"))).await;
    b.wait_for("ada").await;
    let csrf = b.script("return document.querySelector('input[name=csrf]').value").await;
    let csrf = csrf.as_str().unwrap();
    let posts = [
        (format!("/portal/licenses/{globex_license}/revoke"), json!({ "csrf": csrf, "email": gus })),
        (format!("/portal/seats/{lease_id}/disconnect"), json!({ "csrf": csrf })),
        (format!("/portal/licenses/{globex_license}/share-links"), json!({ "csrf": csrf, "days": "7" })),
        ("/portal/entities/globex/admins".into(), json!({ "csrf": csrf, "email": app.email("mallory") })),
        ("/portal/entities/globex/sso/enabled".into(), json!({ "csrf": csrf, "enabled": "false" })),
    ];
    for (path, form) in posts {
        let (status, _, _) = b.fetch("POST", &path, form).await;
        assert_eq!(status, 404, "{path}");
    }
    let r = app.post(&format!("/api/v1/seats/{lease_id}/heartbeat"), Some(&token), json!({ "idle_seconds": 0 })).await;
    assert_eq!(r.status(), StatusCode::OK, "globex's seat still runs");
    let assignees: Value = app
        .get(&format!("/api/v1/licenses/{globex_license}/assignments"), Some(&globex_admin))
        .await
        .json()
        .await
        .unwrap();
    assert!(assignees.to_string().contains(&gus), "gus still assigned: {assignees}");
    let admins = latchkey::store::entities::admins_of(
        &app.state.db.pool,
        &latchkey::store::entities::entity_by_slug(&app.state.db.pool, "globex").await.unwrap().unwrap().id,
    )
    .await
    .unwrap();
    assert_eq!(admins.len(), 1, "no administrator added: {admins:?}");
}

/// A user of an entity whose single sign-on is on: `acme`'s IdP is the test IdP of `start_idp`
/// (HTTP-Redirect), or with `post` of `start_post_idp`, signing in carol (a member with a
/// license). Returns carol's email.
async fn sso_on_with_test_idp(app: &TestApp, post: bool) -> String {
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let carol = app.email("carol");
    app.assign(&license, &carol).await;
    let (sso_url, binding) = if post {
        (start_post_idp(app, "acme", &carol).await, "post")
    } else {
        (start_idp(app, "acme", &carol).await, "redirect")
    };
    let md =
        crate::sso::idp("metadata", &json!({ "vendor": "okta", "sso_url": sso_url, "sso_bindings": [binding] })).await;
    let body = json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [app.domain] });
    let r = app.put("/api/v1/entities/acme/sso", Some(&admin), body).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = app
        .patch("/api/v1/entities/acme/sso", app.op(), json!({ "email_domains": [app.domain], "enabled": true }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    carol
}

/// Carol types her email on /login and comes back from the IdP signed in, on /portal.
async fn sso_sign_in_from_the_email_step(app: &TestApp, b: &Browser, carol: &str) {
    b.goto(&app.url("/login")).await;
    b.type_into("#email", carol).await;
    b.click("button[type=submit]").await;
    b.wait_for("Test identity provider").await;
    let at = b.url().await;
    assert!(at.starts_with("http://127.0.0.1:") && !at.starts_with(&app.url("/")), "at the IdP: {at}");
    b.click("#continue").await;
    // (The IdP's page names carol too: wait for the portal's own line.)
    let html = b.wait_for(&format!("<span class=\"who\">{carol}</span>")).await;
    assert_eq!(b.url().await, app.url("/portal"));
    assert!(html.contains("READYAPI") || html.contains("readyapi"), "{html}");
}

#[tokio::test]
async fn an_sso_user_types_their_email_and_signs_in_through_their_idp_in_chromium() {
    let app = spawn_app().await;
    let carol = sso_on_with_test_idp(&app, false).await;
    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("signin")).await;
    // The email form posts to /login, which sends the browser on to /saml/acme/login and from
    // there to the IdP, on another origin: the page's policy must let the form's navigation go
    // there.
    sso_sign_in_from_the_email_step(&app, &b, &carol).await;
}

#[tokio::test]
async fn an_sso_user_signs_in_through_an_idp_that_takes_post_and_moves_on_to_another_host_in_chromium() {
    let app = spawn_app().await;
    let carol = sso_on_with_test_idp(&app, true).await;
    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("signin")).await;
    // /login → /saml/acme/login, a page whose form posts itself to the IdP, which answers 303 to
    // its sign-in page on another origin.
    sso_sign_in_from_the_email_step(&app, &b, &carol).await;
}

/// A product's loopback listener (RFC 8252): answers `/callback` with a page and keeps the query
/// it was called with. Returns its redirect URI and what it received.
async fn loopback_product() -> (String, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = received.clone();
    let callback = move |uri: axum::http::Uri| {
        let keep = keep.clone();
        async move {
            let q = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned();
            keep.lock().unwrap().extend(q);
            axum::response::Html("<!doctype html><title>Product</title><h1>Product signed in</h1>")
        }
    };
    let router = axum::Router::new().route("/callback", axum::routing::get(callback));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://127.0.0.1:{port}/callback"), received)
}

/// A product signs `email` in through Chromium with the authorization code and PKCE: opens
/// /oauth/authorize on its loopback redirect, the user gives email and password (and, with
/// `totp`, a code from the authenticator), the listener receives code and state, and the code
/// becomes tokens of `email`.
async fn product_sign_in_in_chromium(app: &TestApp, b: &Browser, email: &str, totp: Option<&[u8]>) {
    let (redirect, received) = loopback_product().await;
    let verifier = crate::browser::VERIFIER;
    b.goto(&app.url(&crate::browser::authorize_path("readyapi", &redirect, "st-42", verifier))).await;
    b.type_into("#email", email).await;
    b.click("button[type=submit]").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
    if let Some(secret) = totp {
        b.wait_for("name=\"code\"").await;
        b.type_into("#code", &crate::mfa::code_now(app, secret)).await;
        b.click("form[action='/login/code'] button[type=submit]").await;
    }
    // The password (or code) form's answer is 303 to /oauth/authorize/resume, then 302 to the
    // product on another origin.
    b.wait_for("Product signed in").await;
    assert!(b.url().await.starts_with(&redirect), "{}", b.url().await);
    let got = received.lock().unwrap().clone();
    let param = |name: &str| got.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(param("state").as_deref(), Some("st-42"), "{got:?}");
    let code = param("code").unwrap_or_else(|| panic!("no code: {got:?}"));
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect),
            ("code_verifier", verifier),
            ("client_id", "readyapi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let me: Value = app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["email"], email, "{me}");
}

#[tokio::test]
async fn a_product_signs_a_password_user_in_on_its_loopback_address_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 3).await;
    let ada = app.licensed_user(&license, "ada", &admin).await;
    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("signin")).await;
    product_sign_in_in_chromium(&app, &b, &ada, None).await;
}

#[tokio::test]
async fn a_product_signs_a_user_with_an_authenticator_in_on_its_loopback_address_in_chromium() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 3).await;
    let ada = app.licensed_user(&license, "ada", &admin).await;
    let (secret, _) = crate::mfa::enrol(&app, &app.signed_in_browser(&ada).await).await;
    // The enrolment's code is spent: the sign-in's comes from the next time step.
    app.advance(Duration::from_secs(30));
    let b = Browser::start(repo_path("target/portal-screenshots").join(backend()).join("signin")).await;
    product_sign_in_in_chromium(&app, &b, &ada, Some(&secret)).await;
}
