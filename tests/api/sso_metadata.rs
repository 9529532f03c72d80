//! IdP metadata from a URL: fetched at configuration, refreshed once per period across replicas,
//! certificates rolled over while sign-ins keep working (a local HTTP server plays the IdP's
//! metadata endpoint, pysaml2/signxml sign the responses), the last good configuration kept when a
//! refresh serves garbage, the fetch guarded, and administrators warned before the certificate
//! expires.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode as AxStatus, header},
    response::{IntoResponse, Response},
    routing::get,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{helpers::*, sso::*};

#[derive(Clone)]
enum Served {
    Doc(String),
    Status(u16),
    Redirect(String),
    Big(usize),
}

#[derive(Clone)]
struct MetadataServer {
    url: String,
    served: Arc<Mutex<Served>>,
    fetches: Arc<AtomicUsize>,
}

impl MetadataServer {
    async fn start() -> MetadataServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/federationmetadata.xml", listener.local_addr().unwrap());
        let s = MetadataServer {
            url,
            served: Arc::new(Mutex::new(Served::Status(404))),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let router = Router::new().route("/{*path}", get(serve)).with_state(s.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        s
    }
    fn serve(&self, what: Served) {
        *self.served.lock().unwrap() = what;
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn serve(State(s): State<MetadataServer>) -> Response {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    let what = s.served.lock().unwrap().clone();
    match what {
        Served::Doc(xml) => ([(header::CONTENT_TYPE, "application/samlmetadata+xml")], xml).into_response(),
        Served::Status(code) => AxStatus::from_u16(code).unwrap().into_response(),
        Served::Redirect(to) => (AxStatus::FOUND, [(header::LOCATION, to)]).into_response(),
        Served::Big(n) => ([(header::CONTENT_TYPE, "application/xml")], "<".repeat(n)).into_response(),
    }
}

async fn okta_metadata(certs: Value) -> String {
    idp("metadata", &json!({ "vendor": "okta", "certs": certs })).await["xml"].as_str().unwrap().to_string()
}

fn insecure() -> Options {
    Options { tweak: Box::new(|c| c.insecure_metadata_urls = true), ..Default::default() }
}

/// Sign `email` in with a response signed by `key` (IdP-initiated); true when signed in.
async fn sign_in_with(s: &Sso, email: &str, key: &str) -> bool {
    let mut p = response_params(s, email);
    p["key"] = json!(key);
    let doc = idp("response", &p).await;
    let r = post_acs(s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    signed_in(&r)
}

async fn sso_view(s: &Sso) -> Value {
    let r = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn refresh(app: &TestApp) -> usize {
    latchkey::saml::refresh::refresh_due(&app.state).await.unwrap()
}

/// Let every replica refresh at once (their housekeeping may also have done it in the meantime):
/// how many fetches the IdP's server saw since `before`.
async fn refresh_everywhere(apps: &[&TestApp], server: &MetadataServer, before: usize) -> usize {
    let runs: Vec<_> = apps
        .iter()
        .map(|a| {
            let state = a.state.clone();
            async move { latchkey::saml::refresh::refresh_due(&state).await.unwrap() }
        })
        .collect();
    let fetched: usize = futures_join_all(runs).await.into_iter().sum();
    let seen = server.fetches() - before;
    let view = apps[0].get("/api/v1/entities/acme/sso", apps[0].op()).await.text().await.unwrap();
    assert!(fetched <= seen, "{fetched} refreshes reported, {seen} fetches seen: {view}");
    seen
}

#[tokio::test]
async fn a_metadata_url_rolls_certificates_over_while_sign_ins_keep_working() {
    let app = spawn_app_with(insecure()).await;
    app.create_product("readyapi").await;
    app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 10).await;
    let server = MetadataServer::start().await;
    server.serve(Served::Doc(okta_metadata(json!(["idp"])).await));
    let body =
        json!({ "vendor": "okta", "idp_metadata_url": server.url, "email_domains": [app.domain], "enabled": true });
    let r = app.put("/api/v1/entities/acme/sso", app.op(), body).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(server.fetches(), 1, "fetched at configuration");
    let s = Sso { app, slug: "acme".into(), vendor: "okta".into(), license };
    let v = sso_view(&s).await;
    assert_eq!(v["idp_metadata_url"], server.url.as_str());
    assert!(v["metadata_fetched_at"].is_string() && v["metadata_error"].is_null(), "{v}");
    assert_eq!(v["idp_certificates"].as_array().unwrap().len(), 1);
    assert_eq!(v["warnings"], json!([]));
    let email = member(&s, "alice").await;
    assert!(sign_in_with(&s, &email, "idp").await);
    assert!(!sign_in_with(&s, &email, "idp2").await, "the next key is not trusted yet");

    // The IdP publishes its next certificate beside the current one. Nothing is due yet.
    server.serve(Served::Doc(okta_metadata(json!(["idp", "idp2"])).await));
    let replica = s.app.replica().await;
    assert_eq!(refresh_everywhere(&[&s.app, &replica], &server, 1).await, 0);
    // A day later two replicas look at once: one fetches.
    s.app.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(
        refresh_everywhere(&[&s.app, &replica, &s.app], &server, 1).await,
        1,
        "one fetch per period, not one per replica"
    );
    assert!(sign_in_with(&s, &email, "idp").await, "the old certificate still signs in");
    assert!(sign_in_with(&s, &email, "idp2").await, "and the new one too");
    let both = fingerprints(&sso_view(&s).await);
    assert_eq!(both.len(), 2);

    // The IdP drops the old certificate.
    server.serve(Served::Doc(okta_metadata(json!(["idp2"])).await));
    s.app.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(refresh_everywhere(&[&replica, &s.app], &server, 2).await, 1);
    assert!(sign_in_with(&s, &email, "idp2").await);
    assert!(!sign_in_with(&s, &email, "idp").await, "a certificate the IdP dropped is not trusted any more");
    let newest = fingerprints(&sso_view(&s).await);
    assert_eq!(newest.len(), 1);

    // A refresh that serves garbage keeps the last good configuration, and says so.
    server.serve(Served::Doc("<html><body>Service Unavailable</body></html>".into()));
    s.app.advance(Duration::from_secs(24 * 3600 + 1));
    assert_eq!(refresh_everywhere(&[&s.app, &replica], &server, 3).await, 1);
    let v = sso_view(&s).await;
    assert!(v["metadata_error"].as_str().unwrap().contains("not usable IdP metadata"), "{v}");
    assert_eq!(v["warnings"][0]["code"], "metadata_refresh_failed", "{v}");
    assert_eq!(v["idp_certificates"].as_array().unwrap().len(), 1);
    assert!(sign_in_with(&s, &email, "idp2").await, "sign-ins go on with the last good metadata");
    // It is tried again within the hour, not a day later; an HTTP error is recorded the same way.
    server.serve(Served::Status(503));
    s.app.advance(Duration::from_secs(3601));
    assert_eq!(refresh_everywhere(&[&s.app, &replica], &server, 4).await, 1);
    assert!(sso_view(&s).await["metadata_error"].as_str().unwrap().contains("503"));
    // Metadata that names another IdP is not taken from a refresh.
    let other =
        idp("metadata", &json!({ "vendor": "okta", "certs": ["attacker"], "entity_id": "http://www.okta.com/evil" }))
            .await;
    server.serve(Served::Doc(other["xml"].as_str().unwrap().into()));
    s.app.advance(Duration::from_secs(3601));
    assert_eq!(refresh_everywhere(&[&s.app, &replica], &server, 5).await, 1);
    assert!(sso_view(&s).await["metadata_error"].as_str().unwrap().contains("names the IdP"));
    assert!(!sign_in_with(&s, &email, "attacker").await);
    // Recovered: the error clears.
    server.serve(Served::Doc(okta_metadata(json!(["idp2"])).await));
    s.app.advance(Duration::from_secs(3601));
    assert_eq!(refresh_everywhere(&[&s.app, &replica], &server, 6).await, 1);
    let v = sso_view(&s).await;
    assert!(v["metadata_error"].is_null() && v["warnings"] == json!([]), "{v}");
    assert!(sign_in_with(&s, &email, "idp2").await);

    // Each fetch of a refresh is in the entity's audit log, by latchkey's `metadata refresh`:
    // what it took (the certificates' fingerprints, whether they changed), or why it took nothing.
    let refreshed = s.app.audited(Some("acme"), "sso.metadata_refreshed").await;
    let seen: Vec<(Value, Value)> = refreshed
        .iter()
        .map(|e| (e["details"]["certificates"].clone(), e["details"]["certificates_changed"].clone()))
        .collect();
    assert_eq!(seen, [(json!(both), json!(true)), (json!(newest), json!(true)), (json!(newest), json!(false))]);
    let failed = s.app.audited(Some("acme"), "sso.metadata_refresh_failed").await;
    let errors: Vec<&str> = failed.iter().map(|e| e["details"]["error"].as_str().unwrap()).collect();
    assert_eq!(errors.len(), 3, "{failed:#?}");
    for (error, needle) in errors.iter().zip(["not usable IdP metadata", "503", "names the IdP"]) {
        assert!(error.contains(needle), "{needle}: {error}");
    }
    for e in refreshed.iter().chain(&failed) {
        assert_eq!(e["actor"], system_actor("metadata refresh"), "{e}");
        assert_eq!((&e["entity"], &e["details"]["url"]), (&json!("acme"), &json!(server.url)), "{e}");
    }
}

/// The SHA-256 fingerprints of the IdP certificates an SSO view shows, in its order.
fn fingerprints(view: &Value) -> Vec<String> {
    view["idp_certificates"].as_array().unwrap().iter().map(|c| c["sha256"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn metadata_is_fetched_only_from_safe_places() {
    // The default (secure) mode.
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    for (url, code, needle) in [
        ("http://idp.example.com/metadata", "invalid_metadata_url", "https"),
        ("file:///etc/passwd", "invalid_metadata_url", "https"),
        ("https://user:secret@idp.example.com/metadata", "invalid_metadata_url", "credentials"),
        ("https://127.0.0.1:9/metadata", "invalid_metadata", "loopback"),
        ("https://[::1]:9/metadata", "invalid_metadata", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "invalid_metadata", "link-local"),
        ("https://localhost:9/metadata", "invalid_metadata", "loopback"),
    ] {
        let r = app
            .put("/api/v1/entities/acme/sso", Some(&admin), json!({ "vendor": "okta", "idp_metadata_url": url }))
            .await;
        let v = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, code).await;
        assert!(v["detail"].as_str().unwrap().contains(needle), "{url}: {v}");
    }
    let r = app
        .put(
            "/api/v1/entities/acme/sso",
            Some(&admin),
            json!({ "vendor": "okta", "idp_metadata_url": "https://idp.example.com/m", "idp_metadata_xml": "<x/>" }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    assert_eq!(app.get("/api/v1/entities/acme/sso", Some(&admin)).await.status(), StatusCode::NOT_FOUND);

    // Insecure mode (tests) allows a local http server, and still guards the rest.
    let app = spawn_app_with(insecure()).await;
    let admin = app.entity_with_admin("acme").await;
    let server = MetadataServer::start().await;
    for (served, needle) in [
        (Served::Redirect("file:///etc/passwd".into()), "redirected to a file"),
        (Served::Redirect("ftp://idp.example.com/metadata".into()), "redirected to a ftp"),
        (Served::Redirect(server.url.clone()), "redirects"),
        (Served::Big(3 * 1024 * 1024), "larger than"),
        (Served::Status(404), "404"),
        (Served::Doc("not xml at all".into()), "not usable IdP metadata"),
        (Served::Doc(okta_metadata(json!([])).await), "not usable IdP metadata"),
    ] {
        server.serve(served);
        let r = app
            .put("/api/v1/entities/acme/sso", Some(&admin), json!({ "vendor": "okta", "idp_metadata_url": server.url }))
            .await;
        let v = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_metadata").await;
        assert!(v["detail"].as_str().unwrap().contains(needle), "{needle}: {v}");
    }
    assert_eq!(app.get("/api/v1/entities/acme/sso", Some(&admin)).await.status(), StatusCode::NOT_FOUND);
}

/// A self-signed certificate valid from yesterday until `days` after the test clock's now, PEM.
fn certificate_expiring_in(app: &TestApp, days: i64) -> String {
    use openssl::{asn1::Asn1Time, ec, hash::MessageDigest, pkey::PKey, x509};
    let group = ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "expiring idp").unwrap();
    let name = name.build();
    let mut b = x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    let now_s = app.clock_now() / 1000;
    b.set_not_before(&Asn1Time::from_unix(now_s - 86_400).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix(now_s + days * 86_400).unwrap()).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

#[tokio::test]
async fn administrators_are_warned_30_and_7_days_before_the_idp_certificate_expires() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    let pem = certificate_expiring_in(&app, 20);
    let md = idp("metadata", &json!({ "vendor": "okta", "certs": [pem] })).await;
    let r = app
        .put("/api/v1/entities/acme/sso", Some(&admin), json!({ "vendor": "okta", "idp_metadata_xml": md["xml"] }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["warnings"][0]["code"], "certificate_expires_soon", "{v}");
    assert!(v["idp_certificates"][0]["sha256"].as_str().is_some_and(|s| s.len() == 64), "{v}");
    let to = app.email("admin-acme");
    refresh(&app).await;
    refresh(&app).await;
    assert_eq!(app.mails_queued(&to, "idp_certificate").await, 1, "the 30-day warning, once");
    app.advance(Duration::from_secs(14 * 86_400));
    refresh(&app).await;
    refresh(&app).await;
    assert_eq!(app.mails_queued(&to, "idp_certificate").await, 2, "the 7-day warning, once");
    let mails = app.mails_to(&to, 3).await;
    let warning = mails.iter().find(|m| m.subject().contains("expires")).expect("the warning mail");
    assert!(warning.text().contains("metadata URL"), "{}", warning.text());
}
