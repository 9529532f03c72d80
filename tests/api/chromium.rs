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
        Browser { http, base, session, shots, driver }
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

    async fn resize(&self, width: u32, height: u32) {
        self.cmd(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height }))).await;
    }

    /// Screenshots of the current page at desktop width and at 375 px, and a check that at 375 px
    /// nothing but the tables' own scrolling areas is wider than the screen.
    async fn shots(&self, name: &str) {
        for (width, label) in [(1280, "desktop"), (375, "375px")] {
            self.resize(width, if width == 375 { 812 } else { 900 }).await;
            // Whole-page height, so the screenshot shows everything.
            let h = self.script("return document.documentElement.scrollHeight").await.as_u64().unwrap_or(900);
            self.resize(width, h.clamp(600, 4000) as u32).await;
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
    b.goto(&app.url("/login")).await;
    b.type_into("#email", &admin).await;
    b.click("button[type=submit]").await;
    b.type_into("#password", PASSWORD).await;
    b.click("button[type=submit]").await;
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

    // A product checks out a seat for bob and reports him idle.
    let token = app.token_for(&bob, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&token), json!({ "product": "readyapi", "machine": "qa-laptop-7" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let lease: Value = r.json().await.unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();
    let beat_path = format!("/api/v1/seats/{lease_id}/heartbeat");
    let beat = || app.post(&beat_path, Some(&token), json!({ "idle_seconds": 1500 }));
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
    b.click("nav a[href='/portal/entities/acme/sso']").await;
    b.wait_for("Your service provider values").await;
    b.shots("11-sso").await;
    b.click("nav a[href='/portal/entities/acme/audit']").await;
    b.wait_for("<code>assignment.created</code>").await;
    b.shots("12-audit").await;
    b.click("a[href='/portal/security']").await;
    b.wait_for("Code from the app").await;
    b.shots("13-security").await;
}
