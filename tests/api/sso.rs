//! SAML single sign-on, end to end against independent SAML implementations: pysaml2 as a full IdP
//! answering our real AuthnRequests, and signxml producing responses in each vendor's real shape
//! (tests/support/saml_idp.py). Never samael signing for itself.

use std::{io::Read, time::Duration};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{browser, helpers::*};

pub const VENDORS: [&str; 5] = ["azure-ad", "okta", "onelogin", "pingfederate", "generic"];

/// Run a saml_idp.py command (a batch when `params` is an array).
pub async fn idp(command: &str, params: &Value) -> Value {
    let mut child = tokio::process::Command::new(python())
        .arg(repo_path("tests/support/saml_idp.py"))
        .arg(command)
        .arg("--json")
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(params.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("saml_idp.py {command}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        out.status.success() && v.get("error").is_none(),
        "saml_idp.py {command}: {v} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    v
}

pub struct Sso {
    /// The administrator's password session ends when SSO is enabled: administration after
    /// that, in these tests, uses the operator key.
    pub app: TestApp,
    pub slug: String,
    pub vendor: String,
    pub license: String,
}

impl Sso {
    pub fn acs(&self) -> String {
        self.app.url(&format!("/saml/{}/acs", self.slug))
    }
    pub fn sp_entity_id(&self) -> String {
        self.app.url(&format!("/saml/{}/metadata", self.slug))
    }
    pub fn now_s(&self) -> i64 {
        self.app.clock_now() / 1000
    }
}

/// An entity `acme` with a license, SSO configured from `vendor`-shaped metadata for the test's
/// domain: its administrator uploads the configuration (`tweak` edits that PUT body), the
/// operator verifies the domain and turns SSO on.
pub async fn sso_entity(vendor: &str, tweak: impl FnOnce(&mut Value)) -> Sso {
    sso_entity_with(json!({ "vendor": vendor }), tweak).await
}

/// `sso_entity` with the IdP metadata made from `metadata_params` (saml_idp.py `metadata`).
pub async fn sso_entity_with(metadata_params: Value, tweak: impl FnOnce(&mut Value)) -> Sso {
    let vendor = metadata_params["vendor"].as_str().unwrap().to_string();
    let vendor = vendor.as_str();
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 10).await;
    let md = idp("metadata", &metadata_params).await;
    let mut body = json!({
        "vendor": vendor,
        "idp_metadata_xml": md["xml"],
        "email_domains": [app.domain],
    });
    tweak(&mut body);
    let r = app.put("/api/v1/entities/acme/sso", Some(&admin), body).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = app
        .patch("/api/v1/entities/acme/sso", app.op(), json!({ "email_domains": [app.domain], "enabled": true }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    Sso { app, slug: "acme".into(), vendor: vendor.into(), license }
}

/// Another entity, `slug`, whose administrator `admin@<slug>-<test domain>` is signed in to
/// `portal` with a password: returns that domain and the administrator's token.
pub async fn entity_in_own_domain(app: &TestApp, slug: &str) -> (String, String) {
    let domain = format!("{slug}-{}", app.domain);
    let admin = format!("admin@{domain}");
    let r = app
        .post(
            "/api/v1/entities",
            app.op(),
            json!({ "slug": slug, "name": format!("{slug} Inc."), "admin_email": admin }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    app.set_password_from_mail(&admin, PASSWORD).await;
    let token = app.tokens(&admin, PASSWORD, "portal").await["access_token"].as_str().unwrap().to_string();
    (domain, token)
}

/// A user of the entity (assigned a license, so the account exists).
pub async fn member(s: &Sso, local: &str) -> String {
    let email = s.app.email(local);
    s.app.assign(&s.license, &email).await;
    email
}

/// Attributes that make `email` findable for a vendor when pysaml2 is the IdP.
fn pysaml2_attributes(vendor: &str, email: &str) -> Value {
    match vendor {
        "azure-ad" => json!({ "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": email }),
        _ => json!({}),
    }
}

/// Start an SP-initiated login in this test's browser; returns the IdP-bound request
/// (`{"url"}` for Redirect, `{"saml_request","relay_state","sso_url"}` for POST).
pub async fn start_login(s: &Sso, return_to: &str) -> Value {
    let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("return_to", return_to).finish();
    to_idp(s, &format!("/saml/{}/login?{q}", s.slug)).await
}

/// Open `path` (a login or test link) in this test's browser and return the IdP-bound request.
pub async fn to_idp(s: &Sso, path: &str) -> Value {
    let r = s.app.client.get(browser::absolute(&s.app, path)).send().await.unwrap();
    if r.status().is_redirection() {
        return json!({ "url": r.headers()["location"].to_str().unwrap() });
    }
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    let field = |name: &str| {
        html.split(&format!("name=\"{name}\" value=\"")).nth(1).unwrap().split('"').next().unwrap().to_string()
    };
    let action =
        html.split("action=\"").nth(1).unwrap().split('"').next().unwrap().replace("&#x2f;", "/").replace("&amp;", "&");
    // The sign-in pages' policy (the IdP may pass the posted request on to another host) and the
    // page's one script, by nonce.
    assert!(!csp.contains("form-action") && csp.contains("script-src 'nonce-"), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    json!({ "saml_request": field("SAMLRequest"), "relay_state": field("RelayState"), "sso_url": action })
}

/// The ID of our AuthnRequest inside a Redirect URL or a POST form.
pub fn request_id(req: &Value) -> String {
    let xml = if let Some(url) = req["url"].as_str() {
        let raw = browser::query_param(url, "SAMLRequest").unwrap();
        let deflated = base64::engine::general_purpose::STANDARD.decode(raw).unwrap();
        let mut s = String::new();
        flate2::read::DeflateDecoder::new(&deflated[..]).read_to_string(&mut s).unwrap();
        s
    } else {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(req["saml_request"].as_str().unwrap()).unwrap(),
        )
        .unwrap()
    };
    xml.split(" ID=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

pub fn relay_of(req: &Value) -> Option<String> {
    match req["url"].as_str() {
        Some(url) => browser::query_param(url, "RelayState"),
        None => req["relay_state"].as_str().map(str::to_string),
    }
}

/// Have pysaml2 answer our real request for `email`.
pub async fn pysaml2_answer(s: &Sso, req: &Value, email: &str, want_signed: bool) -> Value {
    pysaml2_answer_with(s, req, email, json!({ "want_authn_requests_signed": want_signed })).await
}

/// `pysaml2_answer` with more idp-login parameters (`key`, `sig_alg`, `attributes`, ...).
pub async fn pysaml2_answer_with(s: &Sso, req: &Value, email: &str, extra: Value) -> Value {
    let metadata = s.app.get(&format!("/saml/{}/metadata", s.slug), None).await.text().await.unwrap();
    let mut p = json!({
        "vendor": s.vendor,
        "sp_metadata_xml": metadata,
        "email": email,
        "attributes": pysaml2_attributes(&s.vendor, email),
        "want_authn_requests_signed": false,
        "now": s.now_s(),
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    for k in ["url", "saml_request", "relay_state", "sso_url"] {
        if let Some(v) = req.get(k).filter(|v| !v.is_null()) {
            p[k] = v.clone();
        }
    }
    idp("idp-login", &p).await
}

/// POST a response to an ACS from this test's browser.
pub async fn post_acs(s: &Sso, acs: &str, saml_response: &str, relay: Option<&str>) -> reqwest::Response {
    let mut form = vec![("SAMLResponse", saml_response.to_string())];
    if let Some(r) = relay {
        form.push(("RelayState", r.to_string()));
    }
    s.app.client.post(acs).form(&form).send().await.unwrap()
}

pub fn signed_in(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str().unwrap_or_default().starts_with("lk_session=")
            && !v.to_str().unwrap_or_default().starts_with("lk_session=;")
    })
}

/// The response parameters of a vendor-shaped document for this entity.
pub fn response_params(s: &Sso, email: &str) -> Value {
    json!({ "vendor": s.vendor, "acs_url": s.acs(), "sp_entity_id": s.sp_entity_id(), "email": email, "issue_instant": s.now_s() })
}

pub async fn expect_refused(s: &Sso, r: reqwest::Response, code: Option<&str>, what: &str) {
    let status = r.status();
    let session = signed_in(&r);
    let body = r.text().await.unwrap();
    assert!(status.is_client_error(), "{what}: accepted with {status}: {body}");
    assert!(!session, "{what}: a session was started");
    if let Some(c) = code {
        assert!(body.contains(&format!("code: {c}")), "{what}: expected code {c}: {body}");
    }
    let account = s.app.get("/account", None).await;
    assert!(account.status().is_redirection(), "{what}: the browser is signed in");
}

#[tokio::test]
async fn every_vendor_signs_in_sp_initiated_through_an_independent_idp() {
    for vendor in VENDORS {
        let s = sso_entity(vendor, |_| {}).await;
        let email = member(&s, "alice").await;
        let req = start_login(&s, "/account").await;
        if vendor == "onelogin" {
            assert!(req.get("saml_request").is_some(), "OneLogin offers only the POST binding");
        }
        let answer = pysaml2_answer(&s, &req, &email, false).await;
        assert_eq!(answer["acs_url"], s.acs());
        assert_eq!(answer["in_response_to"], request_id(&req));
        let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{vendor}: {}", r.text().await.unwrap());
        assert!(signed_in(&r), "{vendor}");
        assert_eq!(r.headers()["location"], "/account");
        let page = s.app.get("/account", None).await.text().await.unwrap();
        assert!(page.contains(&email) && page.contains("company account"), "{vendor}: {page}");
    }
}

#[tokio::test]
async fn every_vendor_shape_signs_in_sp_and_idp_initiated() {
    for vendor in VENDORS {
        let s = sso_entity(vendor, |_| {}).await;
        let email = member(&s, "bob").await;
        // SP-initiated, answered in the vendor's real shape.
        let req = start_login(&s, "/account").await;
        let r = answer(&s, &email, &request_id(&req), relay_of(&req).as_deref()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{vendor} SP-initiated: {}", r.text().await.unwrap());
        // IdP-initiated (no InResponseTo), in a fresh browser.
        let other =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
        let doc = idp("response", &response_params(&s, &email)).await;
        let r =
            other.post(s.acs()).form(&[("SAMLResponse", doc["saml_response"].as_str().unwrap())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{vendor} IdP-initiated: {}", r.text().await.unwrap());
        assert!(signed_in(&r));
    }
}

#[tokio::test]
async fn a_product_gets_saml_tokens_through_the_browser_with_pkce() {
    let s = sso_entity("okta", |_| {}).await;
    let email = member(&s, "carol").await;
    let redirect = "http://127.0.0.1:49152/callback";
    let r = s.app.get(&browser::authorize_path("readyapi", redirect, "st", browser::VERIFIER), None).await;
    let login = browser::location(&r);
    // The email page sends an SSO user on to the IdP.
    let r =
        s.app.submit("/login", "/login", &[("email", &email), ("return_to", &url_param(&login, "return_to"))]).await;
    let sso = browser::location(&r);
    assert!(sso.starts_with("/saml/acme/login"), "{sso}");
    let r = s.app.get(&sso, None).await;
    let req = json!({ "url": browser::location(&r) });
    let answer = pysaml2_answer(&s, &req, &email, false).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    let resume = browser::location(&r);
    assert!(resume.starts_with("/oauth/authorize/resume"), "{resume}");
    let back = browser::location(&s.app.get(&resume, None).await);
    assert_eq!(browser::query_param(&back, "state").as_deref(), Some("st"));
    let code = browser::query_param(&back, "code").unwrap();
    let r = s
        .app
        .client
        .post(s.app.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", browser::VERIFIER),
            ("client_id", "readyapi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let me: Value = s.app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["amr"], json!(["saml"]));
    assert_eq!(me["email"], email);
    // Refreshing keeps amr saml.
    let t2: Value = s.app.refresh_grant(t["refresh_token"].as_str().unwrap(), "readyapi").await.json().await.unwrap();
    let me: Value = s.app.get("/api/v1/me", t2["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["amr"], json!(["saml"]));
}

pub fn url_param(path: &str, name: &str) -> String {
    browser::query_param(&format!("http://x{path}"), name).unwrap()
}

#[tokio::test]
async fn a_headless_product_signs_an_sso_user_in_with_the_device_flow() {
    let s = sso_entity("azure-ad", |_| {}).await;
    let email = member(&s, "dave").await;
    let d: Value = s
        .app
        .client
        .post(s.app.url("/oauth/device_authorization"))
        .form(&[("client_id", "readyapi")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_code = d["user_code"].as_str().unwrap();
    // The device page needs a sign-in: SSO, then back to the page.
    let r = s.app.get(&format!("/device?user_code={user_code}"), None).await;
    let login = browser::location(&r);
    let r =
        s.app.submit("/login", "/login", &[("email", &email), ("return_to", &url_param(&login, "return_to"))]).await;
    let r = s.app.get(&browser::location(&r), None).await;
    let answer = pysaml2_answer(&s, &json!({ "url": browser::location(&r) }), &email, false).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    assert!(browser::location(&r).starts_with("/device"));
    let r = browser::device_decide(&s.app, user_code, "approve").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .app
        .client
        .post(s.app.url("/oauth/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", d["device_code"].as_str().unwrap()),
            ("client_id", "readyapi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let me: Value = s.app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["amr"], json!(["saml"]));
}

#[tokio::test]
async fn a_signed_authn_request_verifies_at_the_idp_when_it_wants_one() {
    for vendor in ["okta", "onelogin"] {
        let s = sso_entity_with(json!({ "vendor": vendor, "want_authn_requests_signed": true }), |_| {}).await;
        let view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
        assert_eq!(view["want_authn_requests_signed"], true);
        let email = member(&s, "erin").await;
        let req = start_login(&s, "/account").await;
        if let Some(url) = req["url"].as_str() {
            assert!(
                browser::query_param(url, "Signature").is_some()
                    && browser::query_param(url, "SigAlg").unwrap().ends_with("rsa-sha256")
            );
        }
        let answer = pysaml2_answer(&s, &req, &email, true).await;
        assert_eq!(answer["request_signature_checked"], true, "{vendor}");
        let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{vendor}");
    }
}

#[tokio::test]
async fn the_attack_corpus_is_refused_without_a_session() {
    let s = sso_entity("okta", |_| {}).await;
    let email = member(&s, "alice").await;
    member(&s, "admin").await; // the XSW "evil" identity exists: a successful wrap would sign it in
    let mutations = [
        "xsw1",
        "xsw2",
        "xsw3",
        "xsw4",
        "xsw5",
        "xsw6",
        "xsw7",
        "xsw8",
        "strip_signature",
        "attacker_key_with_keyinfo",
        "modify_after_sign",
        "comment_in_nameid",
        "dtd",
        "entity_expansion",
        "xxe",
        "sha1",
        "oversized",
        "deflate_bomb",
        "xslt_transform",
    ];
    let batch: Vec<Value> = mutations
        .iter()
        .map(|m| {
            let mut p = response_params(&s, &email);
            p["mutation"] = json!(m);
            p["include_xml"] = json!(false);
            p["xslt_depth"] = json!(16);
            p["bomb_mib"] = json!(200);
            p
        })
        .collect();
    let docs = idp("response", &json!(batch)).await;
    for (m, doc) in mutations.iter().zip(docs.as_array().unwrap()) {
        let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
        // The code says which check refused it. Those of the documents built to burn CPU (an XSLT
        // transform, a deflate bomb, a body past the size limit) come from checks that run
        // before any signature work, so xmlsec never sees them.
        let code = match *m {
            m if m.starts_with("xsw") => "signature_wrapping",
            "strip_signature" => "missing_signature",
            "attacker_key_with_keyinfo" | "modify_after_sign" => "invalid_signature",
            "comment_in_nameid" => "comment_in_value",
            "dtd" | "entity_expansion" | "xxe" => "dtd_forbidden",
            "sha1" | "xslt_transform" => "unsupported_algorithm",
            // A deflate bomb is cut at the inflate limit; an oversized body is refused at the
            // request body limit, before it is read.
            "deflate_bomb" | "oversized" => "too_large",
            other => panic!("no expectation for {other}"),
        };
        expect_refused(&s, r, Some(code), m).await;
    }
}

#[tokio::test]
async fn responses_failing_the_protocol_checks_are_refused() {
    let s = sso_entity("pingfederate", |_| {}).await;
    let email = member(&s, "alice").await;
    let now = s.now_s();
    let cases: Vec<(&str, Value)> = vec![
        (
            "expired",
            json!({ "issue_instant": now - 3600, "not_before": now - 3600, "not_on_or_after": now - 600, "subject_not_on_or_after": now - 600 }),
        ),
        (
            "not yet valid",
            json!({ "issue_instant": now + 1800, "not_before": now + 1800, "not_on_or_after": now + 3600, "subject_not_on_or_after": now + 3600 }),
        ),
        ("wrong audience", json!({ "audience": "https://other-sp.example/metadata" })),
        ("missing audience", json!({ "audience": null })),
        ("wrong recipient", json!({ "recipient": "https://other-sp.example/acs" })),
        ("wrong destination", json!({ "destination": "https://other-sp.example/acs" })),
        (
            "wrong issuer",
            json!({ "response_issuer": "https://evil-idp.example/", "assertion_issuer": "https://evil-idp.example/" }),
        ),
        (
            "non-success status",
            json!({ "status": "Responder", "status_message": "no such user", "include_assertion": true }),
        ),
        ("unsigned", json!({ "sign": "none" })),
        ("signed by another key", json!({ "key": "attacker", "key_info": false })),
        (
            "holder-of-key confirmation",
            json!({ "subject_confirmation_method": "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key" }),
        ),
    ];
    let batch: Vec<Value> = cases
        .iter()
        .map(|(_, extra)| {
            let mut p = response_params(&s, &email);
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            p
        })
        .collect();
    let docs = idp("response", &json!(batch)).await;
    for ((what, _), doc) in cases.iter().zip(docs.as_array().unwrap()) {
        let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
        expect_refused(&s, r, None, what).await;
    }
    // Within the clock skew (2 minutes) a slightly early response still passes.
    let mut p = response_params(&s, &email);
    p["issue_instant"] = json!(now + 60);
    p["not_before"] = json!(now + 60);
    let doc = idp("response", &p).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
}

/// The IdP's answer for `email` to the request `in_response_to`, posted to the ACS from the test's
/// browser with `relay` as RelayState.
pub async fn answer(s: &Sso, email: &str, in_response_to: &str, relay: Option<&str>) -> reqwest::Response {
    let mut p = response_params(s, email);
    p["in_response_to"] = json!(in_response_to);
    let doc = idp("response", &p).await;
    post_acs(s, &s.acs(), doc["saml_response"].as_str().unwrap(), relay).await
}

#[tokio::test]
async fn replays_foreign_requests_and_other_browsers_are_refused() {
    let s = sso_entity("azure-ad", |_| {}).await;
    let email = member(&s, "alice").await;
    // Replay: the same response twice (the first from a throwaway browser).
    let doc = idp("response", &response_params(&s, &email)).await;
    let first = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = first.post(s.acs()).form(&[("SAMLResponse", doc["saml_response"].as_str().unwrap())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("replayed"), "replay").await;

    // An InResponseTo we never issued.
    let r = answer(&s, &email, "_made_up_request_id_0123456789abcdef", None).await;
    expect_refused(&s, r, Some("unknown_request"), "unknown request").await;

    // A request started in another browser.
    let other =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    let r = other.get(s.app.url("/saml/acme/login")).send().await.unwrap();
    let req = json!({ "url": r.headers()["location"].to_str().unwrap() });
    let r = answer(&s, &email, &request_id(&req), relay_of(&req).as_deref()).await;
    expect_refused(&s, r, Some("wrong_browser"), "other browser").await;

    // A pending request expires.
    let req = start_login(&s, "/account").await;
    s.app.advance(Duration::from_secs(11 * 60));
    let r = answer(&s, &email, &request_id(&req), relay_of(&req).as_deref()).await;
    expect_refused(&s, r, Some("unknown_request"), "expired request").await;

    // And a request answers once.
    let req = start_login(&s, "/account").await;
    let mut p = response_params(&s, &email);
    p["in_response_to"] = json!(request_id(&req));
    let docs = idp("response", &json!([p.clone(), p])).await;
    let r = post_acs(&s, &s.acs(), docs[0]["saml_response"].as_str().unwrap(), relay_of(&req).as_deref()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let fresh = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r =
        fresh.post(s.acs()).form(&[("SAMLResponse", docs[1]["saml_response"].as_str().unwrap())]).send().await.unwrap();
    assert!(r.status().is_client_error() && !signed_in(&r));
}

#[tokio::test]
async fn a_response_meant_for_one_entity_never_signs_anyone_into_another() {
    // Both entities trust the same IdP key (the worst case): the audience and ACS decide.
    let s = sso_entity("okta", |_| {}).await;
    let email = member(&s, "alice").await;
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let (other_domain, g_token) = entity_in_own_domain(&s.app, "globex").await;
    let r = s
        .app
        .put("/api/v1/entities/globex/sso", Some(&g_token), json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [other_domain], "jit_accounts": true }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .app
        .patch("/api/v1/entities/globex/sso", s.app.op(), json!({ "email_domains": [other_domain], "enabled": true }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // acme's response posted to globex's ACS.
    let doc = idp("response", &response_params(&s, &email)).await;
    let r = post_acs(&s, &s.app.url("/saml/globex/acs"), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, None, "another entity's ACS").await;
    // A response for globex naming an acme user: not globex's account.
    let mut p = response_params(&s, &email);
    p["acs_url"] = json!(s.app.url("/saml/globex/acs"));
    p["sp_entity_id"] = json!(s.app.url("/saml/globex/metadata"));
    let doc = idp("response", &p).await;
    let r = post_acs(&s, &s.app.url("/saml/globex/acs"), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("domain_not_verified"), "acme user through globex").await;
}

#[tokio::test]
async fn only_the_entitys_users_sign_in_unless_it_creates_accounts_just_in_time() {
    let s = sso_entity("generic", |_| {}).await;
    let stranger = s.app.email("stranger");
    let doc = idp("response", &response_params(&s, &stranger)).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("no_access"), "no account, no JIT").await;

    // An administrator's claim on a domain is not enough to create accounts in it (or to sign
    // anyone in there)...
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    let md = idp("metadata", &json!({ "vendor": "generic" })).await;
    let body = json!({ "vendor": "generic", "idp_metadata_xml": md["xml"], "email_domains": [app.domain], "jit_accounts": true });
    assert_eq!(app.put("/api/v1/entities/acme/sso", Some(&admin), body).await.status(), StatusCode::OK);
    let r = app.patch("/api/v1/entities/acme/sso", app.op(), json!({ "enabled": true })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let s = Sso { app, slug: "acme".into(), vendor: "generic".into(), license: String::new() };
    let newcomer = s.app.email("newcomer");
    let doc = idp("response", &response_params(&s, &newcomer)).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("domain_not_verified"), "JIT in a domain the vendor has not verified").await;
    let view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
    assert_eq!(view["email_domains"], json!([s.app.domain]));
    assert_eq!(view["verified_email_domains"], json!([]));
    // ...until the vendor verifies it (the operator puts the configuration back).
    let r = s.app.put("/api/v1/entities/acme/sso", s.app.op(), view).await;
    assert_eq!(r.json::<Value>().await.unwrap()["verified_email_domains"], json!([s.app.domain]));
    let doc = idp("response", &response_params(&s, &newcomer)).await;
    let elsewhere = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r =
        elsewhere.post(s.acs()).form(&[("SAMLResponse", doc["saml_response"].as_str().unwrap())]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let users: Value = s.app.get("/api/v1/entities/acme/users", s.app.op()).await.json().await.unwrap();
    assert!(users.as_array().unwrap().iter().any(|u| u["email"] == newcomer));
    // JIT stays within the entity's domains.
    let outsider = "someone@outside-domain.example";
    let doc = idp("response", &response_params(&s, outsider)).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("domain_not_verified"), "JIT outside the domains").await;
}

#[tokio::test]
async fn when_no_email_is_found_the_page_names_the_attributes_that_arrived() {
    let s = sso_entity("azure-ad", |_| {}).await;
    let email = member(&s, "alice").await;
    let mut p = response_params(&s, &email);
    p["email_attribute"] = json!(null);
    p["upn"] = json!("not-an-email");
    p["attributes"] =
        json!({ "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": null, "department": "R&D secret value" });
    let doc = idp("response", &p).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let page = r.text().await.unwrap();
    assert!(page.contains("code: no_email") && page.contains("department"), "{page}");
    assert!(!page.contains("secret value"), "values must not be shown");
    // The administrator names the attribute: it works.
    let mut view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
    let md = idp("metadata", &json!({ "vendor": "azure-ad" })).await;
    view["idp_metadata_xml"] = md["xml"].clone();
    view["email_attribute"] = json!("mail");
    for k in ["sp_entity_id", "acs_url"] {
        assert!(view.get(k).is_some());
    }
    let r = s.app.put("/api/v1/entities/acme/sso", s.app.op(), view).await;
    assert_eq!(r.status(), StatusCode::OK, "a GET view can be PUT back");
    let mut p = response_params(&s, &email);
    p["email_attribute"] = json!(null);
    p["attributes"] = json!({ "mail": email });
    let doc = idp("response", &p).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn idp_initiated_sign_in_can_be_turned_off() {
    let s = sso_entity("onelogin", |b| b["allow_idp_initiated"] = json!(false)).await;
    let email = member(&s, "alice").await;
    let doc = idp("response", &response_params(&s, &email)).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("idp_initiated_disabled"), "IdP-initiated").await;
}

#[tokio::test]
async fn enabling_sso_switches_every_user_away_from_passwords() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let bob = app.licensed_user(&license, "bob", &admin).await;
    let session = app.tokens(&bob, PASSWORD, "readyapi").await;
    // An invited user whose setup link is still unused.
    let carol = app.email("carol");
    app.assign(&license, &carol).await;
    let carol_link = app.mails_to(&carol, 1).await[0].token().unwrap();

    // The vendor verifies the domain and turns SSO on (an administrator would have to test first).
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let r = app
        .put(
            "/api/v1/entities/acme/sso",
            app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [app.domain], "enabled": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let view: Value = r.json().await.unwrap();
    assert_eq!(view["sp_entity_id"], app.url("/saml/acme/metadata"));
    assert_eq!(view["acs_url"], app.url("/saml/acme/acs"));

    // The password grant answers sso_required with where to go.
    let v = assert_oauth_error(
        app.password_grant(&bob, PASSWORD, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "sso_required",
    )
    .await;
    assert_eq!(v["login_url"], app.url("/saml/acme/login"));
    // Sessions that came from passwords are gone, and their refresh tokens say where to go.
    let v = assert_oauth_error(
        app.refresh_grant(session["refresh_token"].as_str().unwrap(), "readyapi").await,
        StatusCode::BAD_REQUEST,
        "sso_required",
    )
    .await;
    assert_eq!(v["login_url"], app.url("/saml/acme/login"));
    assert_problem(
        app.get("/api/v1/me", session["access_token"].as_str()).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // The password form refuses and sends to the IdP.
    let r = app
        .submit("/login", "/login/password", &[("email", &bob), ("password", PASSWORD), ("return_to", "/account")])
        .await;
    assert!(browser::location(&r).starts_with("/saml/acme/login"));
    // An old setup link no longer sets a password.
    let r = app.post("/api/v1/account/password", None, json!({ "token": carol_link, "password": PASSWORD })).await;
    assert_problem(r, StatusCode::CONFLICT, "sso_required").await;
    // Newly assigned users are told to use their company account: no setup link.
    let dan = app.email("dan");
    app.assign(&license, &dan).await;
    let mail = &app.mails_to(&dan, 1).await[0];
    assert_eq!(mail.subject(), "Sign in with your company account");
    assert!(mail.link("/account/setup").is_none() && mail.token().is_none());
    // Forgot-password sends nothing while SSO is on.
    app.post("/api/v1/account/forgot", None, json!({ "email": bob })).await;
    app.drain_mail().await;
    assert_eq!(app.sink().messages_to(&bob).len(), 1, "only the original setup mail");

    // The administrator signed in with a password too: from now on they use SSO; the vendor
    // (operator key) turns SSO off, and users can reset a password again.
    assert_problem(
        app.get("/api/v1/entities/acme/licenses", Some(&admin)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    let r = app
        .put(
            "/api/v1/entities/acme/sso",
            app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [app.domain], "enabled": false }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.post("/api/v1/account/forgot", None, json!({ "email": bob })).await;
    let mails = app.mails_to(&bob, 2).await;
    assert!(mails.iter().any(|m| m.subject() == "Reset your latchkey password"));
}

#[tokio::test]
async fn metadata_that_cannot_be_trusted_is_refused_with_a_reason() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    let put = |xml: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            app.put(
                "/api/v1/entities/acme/sso",
                Some(&admin),
                json!({ "vendor": "generic", "idp_metadata_xml": xml, "email_domains": [app.domain] }),
            )
            .await
        }
    };
    let no_cert = idp("metadata", &json!({ "vendor": "okta", "certs": [] })).await;
    let expired = idp("metadata", &json!({ "vendor": "okta", "certs": ["idp-expired"] })).await;
    let no_sso = idp("metadata", &json!({ "vendor": "okta", "sso_endpoints": [] })).await;
    let cases = [
        (json!("this is not xml"), "XML"),
        (
            json!(
                "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"b\">]><md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"x\"/>"
            ),
            "DTD",
        ),
        (
            json!(
                "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://sp.example\"><md:SPSSODescriptor protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"https://sp.example/acs\" index=\"0\"/></md:SPSSODescriptor></md:EntityDescriptor>"
            ),
            "IDPSSODescriptor",
        ),
        (no_cert["xml"].clone(), "certificate"),
        (expired["xml"].clone(), "expired"),
        (no_sso["xml"].clone(), "SSO"),
    ];
    for (xml, needle) in cases {
        let v = assert_problem(put(xml).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_metadata").await;
        assert!(v["detail"].as_str().unwrap().to_lowercase().contains(&needle.to_lowercase()), "{needle}: {v}");
    }
    assert_problem(
        app.get("/api/v1/entities/acme/sso", Some(&admin)).await,
        StatusCode::NOT_FOUND,
        "sso_not_configured",
    )
    .await;
    // Rollover metadata (two certificates) and the aggregate wrapper are fine.
    let good =
        idp("metadata", &json!({ "vendor": "okta", "certs": ["idp", "idp2"], "wrap_entities_descriptor": true })).await;
    let r = put(good["xml"].clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["idp_certificates"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn email_domains_belong_to_one_entity_and_public_ones_to_none() {
    let s = sso_entity("okta", |_| {}).await;
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let (_, gt) = entity_in_own_domain(&s.app, "globex").await;
    let r = s.app.put("/api/v1/entities/globex/sso", s.app.op(), json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [s.app.domain.to_uppercase()], "enabled": true })).await;
    assert_problem(r, StatusCode::CONFLICT, "domain_taken").await;
    let r = s
        .app
        .put(
            "/api/v1/entities/globex/sso",
            s.app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": ["gmail.com"], "enabled": true }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "public_domain").await;
    let r = s
        .app
        .put(
            "/api/v1/entities/globex/sso",
            s.app.op(),
            json!({ "vendor": "nope", "idp_metadata_xml": md["xml"], "enabled": true }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = s
        .app
        .put(
            "/api/v1/entities/globex/sso",
            s.app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "enabled": true, "enable": true }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    // Another entity's administrator cannot read or change acme's SSO.
    assert_problem(s.app.get("/api/v1/entities/acme/sso", Some(&gt)).await, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_sp_metadata_describes_this_entitys_service_provider() {
    let s = sso_entity("okta", |_| {}).await;
    let r = s.app.get("/saml/acme/metadata", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().contains("samlmetadata+xml"));
    let xml = r.text().await.unwrap();
    assert!(xml.contains(&format!("entityID=\"{}\"", s.sp_entity_id())), "{xml}");
    assert!(xml.contains(&format!("Location=\"{}\"", s.acs())), "{xml}");
    assert!(xml.contains("X509Certificate"));
    assert_eq!(s.app.get("/saml/nope/metadata", None).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idps_that_sign_with_ecdsa_or_stronger_rsa_sign_users_in_and_sha1_only_when_allowed() {
    // A real IdP (pysaml2, signing through xmlsec1) with an elliptic-curve key answers our request.
    let s = sso_entity_with(json!({ "vendor": "okta", "certs": ["idp-ec"] }), |_| {}).await;
    let email = member(&s, "alice").await;
    // The RSA key the metadata does not name cannot sign for this IdP.
    let mut p = response_params(&s, &email);
    p["sig_alg"] = json!("rsa-sha256");
    let doc = idp("response", &p).await;
    let r = post_acs(&s, &s.acs(), doc["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("invalid_signature"), "RSA key not in the EC metadata").await;
    for alg in ["ecdsa-sha256", "ecdsa-sha384", "ecdsa-sha512"] {
        let req = start_login(&s, "/account").await;
        let metadata = s.app.get("/saml/acme/metadata", None).await.text().await.unwrap();
        let mut p = json!({
            "vendor": "okta", "sp_metadata_xml": metadata, "email": email, "attributes": {},
            "now": s.now_s(), "key": "idp-ec", "sig_alg": alg, "url": req["url"],
        });
        p["want_authn_requests_signed"] = json!(false);
        let answer = idp("idp-login", &p).await;
        assert!(answer["xml"].as_str().unwrap().contains(&format!("xmldsig-more#{alg}")), "{alg}");
        let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{alg}: {}", r.text().await.unwrap());
        assert!(signed_in(&r), "{alg}");
    }
    // The same key signing the assertion only, and the response only (signxml, the vendor's shape).
    for (alg, sign) in [("ecdsa-sha256", "assertion"), ("ecdsa-sha512", "response"), ("ecdsa-sha384", "both")] {
        let mut p = response_params(&s, &email);
        p["key"] = json!("idp-ec");
        p["sig_alg"] = json!(alg);
        p["sign"] = json!(sign);
        let doc = idp("response", &p).await;
        let fresh = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r =
            fresh.post(s.acs()).form(&[("SAMLResponse", doc["saml_response"].as_str().unwrap())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{alg}/{sign}: {}", r.text().await.unwrap());
    }

    // RSA with SHA-384 and SHA-512 is accepted; SHA-1 is refused unless the entity allows it.
    let s = sso_entity("generic", |_| {}).await;
    let email = member(&s, "bob").await;
    for alg in ["rsa-sha384", "rsa-sha512"] {
        let mut p = response_params(&s, &email);
        p["sig_alg"] = json!(alg);
        let doc = idp("response", &p).await;
        let fresh = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let r =
            fresh.post(s.acs()).form(&[("SAMLResponse", doc["saml_response"].as_str().unwrap())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{alg}: {}", r.text().await.unwrap());
    }
    let mut p = response_params(&s, &email);
    p["sig_alg"] = json!("rsa-sha1");
    let sha1 = idp("response", &json!([p.clone(), p])).await;
    let r = post_acs(&s, &s.acs(), sha1[0]["saml_response"].as_str().unwrap(), None).await;
    expect_refused(&s, r, Some("unsupported_algorithm"), "rsa-sha1 by default").await;
    let mut view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
    view["allow_sha1"] = json!(true);
    let r = s.app.put("/api/v1/entities/acme/sso", s.app.op(), view).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = post_acs(&s, &s.acs(), sha1[1]["saml_response"].as_str().unwrap(), None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "rsa-sha1 with allow_sha1: {}", r.text().await.unwrap());
}

#[tokio::test]
async fn distinct_answers_to_one_request_posted_at_once_sign_in_exactly_once() {
    let s = sso_entity("okta", |_| {}).await;
    let email = member(&s, "alice").await;
    let req = start_login(&s, "/account").await;
    let mut p = response_params(&s, &email);
    p["in_response_to"] = json!(request_id(&req));
    p["include_xml"] = json!(false);
    // Twelve genuine, distinct responses (each its own assertion id, so the replay cache does
    // not tell them apart): only the pending request, taken once, may.
    let docs = idp("response", &json!(vec![p; 12])).await;
    let relay = relay_of(&req);
    let posts = docs.as_array().unwrap().iter().map(|d| {
        let client = s.app.client.clone();
        let form = vec![
            ("SAMLResponse", d["saml_response"].as_str().unwrap().to_string()),
            ("RelayState", relay.clone().unwrap_or_default()),
        ];
        let acs = s.acs();
        async move { client.post(acs).form(&form).send().await.unwrap() }
    });
    let answers = futures_join_all(posts).await;
    let accepted = answers.iter().filter(|r| r.status() == StatusCode::SEE_OTHER && signed_in(r)).count();
    let refused = answers.iter().filter(|r| r.status() == StatusCode::FORBIDDEN).count();
    assert_eq!((accepted, refused), (1, 11), "{:?}", answers.iter().map(|r| r.status()).collect::<Vec<_>>());
}

/// Run futures concurrently (each on its own task) and collect their outputs in order.
pub async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
