//! Who may sign in where, and the SSO configuration's life: verified email domains decide which
//! IdP signs an address in (and whether a password may); PUT, PATCH and DELETE; turning SSO off;
//! every grant re-checked; the test sign-in that must pass before an administrator enables SSO;
//! the log of refused responses; and the cost of starting a sign-in.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{browser, helpers::*, sso::*};

/// Every `<input type="hidden">` of the first form of `html`, values unescaped.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let unescape = |v: &str| {
        let mut out = String::new();
        let mut rest = v;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let Some(end) = tail.find(';') else {
                out.push_str(tail);
                rest = "";
                break;
            };
            let ent = &tail[1..end];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16).ok().and_then(char::from_u32),
                _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            };
            match c {
                Some(c) => out.push(c),
                None => out.push_str(&tail[..=end]),
            }
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        out
    };
    let form = html.split("</form>").next().unwrap_or_default();
    form.split("<input")
        .skip(1)
        .filter(|i| i.contains("type=\"hidden\""))
        .filter_map(|i| {
            let name = i.split("name=\"").nth(1)?.split('"').next()?;
            let value = i.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), unescape(value)))
        })
        .collect()
}

/// Sign this test's browser in with a password through the login pages (every hidden field of
/// each form is sent back, whatever it holds).
async fn password_session(app: &TestApp, email: &str, password: &str) {
    let page = app.get("/login?return_to=%2Faccount", None).await.text().await.unwrap();
    let mut fields = hidden_fields(&page);
    fields.push(("email".into(), email.into()));
    let r = app.client.post(app.url("/login")).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{email} is sent to a password form");
    let page = r.text().await.unwrap();
    assert!(page.contains("type=\"password\""), "{page}");
    let mut fields: Vec<(String, String)> =
        hidden_fields(&page).into_iter().filter(|(n, _)| n != "email" && n != "password").collect();
    fields.push(("email".into(), email.into()));
    fields.push(("password".into(), password.into()));
    let r = app.client.post(app.url("/login/password")).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
}

/// Where `/login` sends `email`: `Some(path)` to an IdP, `None` to the password form.
async fn login_routes(app: &TestApp, email: &str) -> Option<String> {
    let r = app.submit("/login", "/login", &[("email", email), ("return_to", "/account")]).await;
    if r.status().is_redirection() {
        return Some(browser::location(&r));
    }
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("type=\"password\""));
    None
}

async fn home_of(app: &TestApp, email: &str) -> String {
    let u = latchkey::store::accounts::user_by_email(&app.state.db.pool, email).await.unwrap().expect("account");
    latchkey::store::entities::entity_by_id(&app.state.db.pool, &u.entity_id).await.unwrap().unwrap().slug
}

async fn account_exists(app: &TestApp, email: &str) -> bool {
    latchkey::store::accounts::user_by_email(&app.state.db.pool, email).await.unwrap().is_some()
}

fn fresh_browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap()
}

/// A document for `email` signed by `key`, shaped like `vendor`'s, addressed to `slug`'s ACS.
async fn response_for(s: &Sso, slug: &str, vendor: &str, key: &str, email: &str) -> String {
    let mut p = response_params(s, email);
    p["vendor"] = json!(vendor);
    p["key"] = json!(key);
    p["acs_url"] = json!(s.app.url(&format!("/saml/{slug}/acs")));
    p["sp_entity_id"] = json!(s.app.url(&format!("/saml/{slug}/metadata")));
    idp("response", &p).await["saml_response"].as_str().unwrap().to_string()
}

async fn post_from(client: &reqwest::Client, acs: &str, saml_response: &str) -> reqwest::Response {
    client.post(acs).form(&[("SAMLResponse", saml_response)]).send().await.unwrap()
}

async fn refused_with(r: reqwest::Response, status: StatusCode, code: &str, what: &str) {
    let (got, session) = (r.status(), signed_in(&r));
    let body = r.text().await.unwrap();
    assert_eq!(got, status, "{what}: {body}");
    assert!(!session, "{what}: a session was started");
    assert!(body.contains(&format!("code: {code}")), "{what}: expected {code}: {body}");
}

#[tokio::test]
async fn an_idp_of_one_entity_never_signs_in_an_account_of_another_entitys_verified_domain() {
    // Issue 8, finding 1, end to end: entity a's administrator creates an account in entity b's
    // domain, b makes it an administrator, and a's administrator tries to sign in as it through
    // an IdP they control.
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    // b: its administrator in the test domain, which the vendor verified for b (SSO off for now).
    let b_admin = app.entity_with_admin("b-corp").await;
    let b_md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let r = app
        .put(
            "/api/v1/entities/b-corp/sso",
            app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": b_md["xml"], "email_domains": [app.domain] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // a: its administrator in a domain of its own.
    let (a_domain, a_admin) = entity_in_own_domain(&app, "a-corp").await;
    let a_license = app.create_license("a-corp", "readyapi", "floating", 5).await;
    let s = Sso { app, slug: "a-corp".into(), vendor: "generic".into(), license: a_license.clone() };

    // a assigns a license to a new address of b's domain: the account is created at home in b.
    let newhire = s.app.email("newhire");
    let r = s
        .app
        .post(&format!("/api/v1/licenses/{a_license}/assignments"), Some(&a_admin), json!({ "email": newhire }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(home_of(&s.app, &newhire).await, "b-corp");
    // b makes it an administrator.
    let r = s.app.post("/api/v1/entities/b-corp/admins", Some(&b_admin), json!({ "email": newhire })).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // a's administrator sets a's SSO up with an IdP they control (its key: idp2). Claiming b's
    // domain is refused outright: it is verified for b.
    let evil_md = idp("metadata", &json!({ "vendor": "generic", "certs": ["idp2"] })).await;
    let body = |domains: Value| json!({ "vendor": "generic", "idp_metadata_xml": evil_md["xml"], "email_domains": domains, "jit_accounts": true });
    let r = s.app.put("/api/v1/entities/a-corp/sso", Some(&a_admin), body(json!([s.app.domain, a_domain]))).await;
    assert_problem(r, StatusCode::CONFLICT, "domain_taken").await;
    let r = s.app.put("/api/v1/entities/a-corp/sso", Some(&a_admin), body(json!([a_domain]))).await;
    assert_eq!(r.status(), StatusCode::OK);

    // Not enabled: a's ACS accepts nothing, and its login page starts nothing.
    let doc = response_for(&s, "a-corp", "generic", "idp2", &newhire).await;
    refused_with(post_from(&fresh_browser(), &s.acs(), &doc).await, StatusCode::NOT_FOUND, "sso_disabled", "off").await;
    assert_eq!(s.app.get("/saml/a-corp/login", None).await.status(), StatusCode::NOT_FOUND);

    // a's administrator tests their IdP (it works, so the test passes) and enables it.
    let test: Value =
        s.app.post("/api/v1/entities/a-corp/sso/test", Some(&a_admin), json!({})).await.json().await.unwrap();
    let req = to_idp(&s, test["url"].as_str().unwrap()).await;
    let answer = pysaml2_answer_with(&s, &req, &newhire, json!({ "key": "idp2" })).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!signed_in(&r));
    let page = r.text().await.unwrap();
    assert!(page.contains("Test passed") && page.contains("code: domain_not_verified"), "{page}");
    let r = s.app.patch("/api/v1/entities/a-corp/sso", Some(&a_admin), json!({ "enabled": true })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // Enabled, a's IdP still cannot sign in b's account: IdP-initiated...
    let doc = response_for(&s, "a-corp", "generic", "idp2", &newhire).await;
    let r = post_from(&fresh_browser(), &s.acs(), &doc).await;
    refused_with(r, StatusCode::FORBIDDEN, "domain_not_verified", "IdP-initiated").await;
    // ...or answering a real request from a's login page (pysaml2 as the attacker's IdP)...
    let req = start_login(&s, "/account").await;
    let answer = pysaml2_answer_with(&s, &req, &newhire, json!({ "key": "idp2" })).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    refused_with(r, StatusCode::FORBIDDEN, "domain_not_verified", "SP-initiated").await;
    // ...and cannot create accounts there just in time.
    let stranger = s.app.email("stranger");
    let doc = response_for(&s, "a-corp", "generic", "idp2", &stranger).await;
    let r = post_from(&fresh_browser(), &s.acs(), &doc).await;
    refused_with(r, StatusCode::FORBIDDEN, "domain_not_verified", "JIT in b's domain").await;
    assert!(!account_exists(&s.app, &stranger).await);
    assert_eq!(home_of(&s.app, &newhire).await, "b-corp");
    let admins: Value = s.app.get("/api/v1/entities/b-corp/admins", s.app.op()).await.json().await.unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 2, "{admins}");

    // a's IdP does sign in a's own domain once the vendor verified it.
    let r = s.app.patch("/api/v1/entities/a-corp/sso", s.app.op(), json!({ "email_domains": [a_domain] })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["verified_email_domains"], json!([a_domain]));
    let alice = format!("alice@{a_domain}");
    s.app.assign(&a_license, &alice).await;
    let doc = response_for(&s, "a-corp", "generic", "idp2", &alice).await;
    let r = post_from(&fresh_browser(), &s.acs(), &doc).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());

    // b turns its own SSO on: newhire signs in through b's IdP, and still never through a's.
    let r = s.app.patch("/api/v1/entities/b-corp/sso", s.app.op(), json!({ "enabled": true })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let doc = response_for(&s, "b-corp", "okta", "idp", &newhire).await;
    let r = post_from(&fresh_browser(), &s.app.url("/saml/b-corp/acs"), &doc).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let doc = response_for(&s, "a-corp", "generic", "idp2", &newhire).await;
    let r = post_from(&fresh_browser(), &s.acs(), &doc).await;
    refused_with(r, StatusCode::FORBIDDEN, "domain_not_verified", "after b enabled SSO").await;
    // b's IdP, for its part, cannot sign in a's addresses.
    let doc = response_for(&s, "b-corp", "okta", "idp", &alice).await;
    let r = post_from(&fresh_browser(), &s.app.url("/saml/b-corp/acs"), &doc).await;
    refused_with(r, StatusCode::FORBIDDEN, "domain_not_verified", "a's address through b").await;
}

#[tokio::test]
async fn sso_that_is_not_enabled_accepts_nothing_and_passwords_work_again() {
    let s = sso_entity("okta", |b| b["jit_accounts"] = json!(true)).await;
    let alice = member(&s, "alice").await;
    // A sign-in started while SSO is on...
    let req = start_login(&s, "/account").await;
    // ...then the administrator's organisation (here the vendor) turns it off.
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "enabled": false })).await;
    let view: Value = r.json().await.unwrap();
    assert_eq!((view["enabled"].clone(), view["jit_accounts"].clone()), (json!(false), json!(true)));
    // Its answer is refused, so is an IdP-initiated response (just-in-time creation included),
    // and the login page starts nothing.
    let r = answer(&s, &alice, &request_id(&req), relay_of(&req).as_deref()).await;
    refused_with(r, StatusCode::NOT_FOUND, "sso_disabled", "answer to a request started while on").await;
    let newcomer = s.app.email("newcomer");
    let doc = idp("response", &response_params(&s, &newcomer)).await;
    let r = post_from(&fresh_browser(), &s.acs(), doc["saml_response"].as_str().unwrap()).await;
    refused_with(r, StatusCode::NOT_FOUND, "sso_disabled", "JIT while off").await;
    assert!(!account_exists(&s.app, &newcomer).await);
    let r = s.app.get("/saml/acme/login", None).await;
    refused_with(r, StatusCode::NOT_FOUND, "sso_disabled", "login while off").await;
    // The addresses of its domain sign in with passwords again: /login offers the password form,
    // and a user who never had a password gets one through "forgot password".
    assert_eq!(login_routes(&s.app, &alice).await, None);
    s.app.post("/api/v1/account/forgot", None, json!({ "email": alice })).await;
    s.app.mails_to(&alice, 2).await;
    s.app.set_password_from_mail(&alice, PASSWORD).await;
    let r = s.app.password_grant(&alice, PASSWORD, "readyapi").await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // DELETE removes the configuration: the same, and nothing left to PATCH.
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "enabled": true })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(login_routes(&s.app, &alice).await.as_deref().map(|p| p.starts_with("/saml/acme/login")), Some(true));
    assert_eq!(s.app.delete("/api/v1/entities/acme/sso", s.app.op()).await.status(), StatusCode::NO_CONTENT);
    assert_problem(
        s.app.get("/api/v1/entities/acme/sso", s.app.op()).await,
        StatusCode::NOT_FOUND,
        "sso_not_configured",
    )
    .await;
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "enabled": true })).await;
    assert_problem(r, StatusCode::NOT_FOUND, "sso_not_configured").await;
    assert_problem(
        s.app.delete("/api/v1/entities/acme/sso", s.app.op()).await,
        StatusCode::NOT_FOUND,
        "sso_not_configured",
    )
    .await;
    let doc = idp("response", &response_params(&s, &alice)).await;
    let r = post_from(&fresh_browser(), &s.acs(), doc["saml_response"].as_str().unwrap()).await;
    refused_with(r, StatusCode::NOT_FOUND, "sso_disabled", "ACS after DELETE").await;
    refused_with(
        s.app.get("/saml/acme/login", None).await,
        StatusCode::NOT_FOUND,
        "sso_disabled",
        "login after DELETE",
    )
    .await;
    assert_eq!(login_routes(&s.app, &alice).await, None);
    let r = s.app.password_grant(&alice, PASSWORD, "readyapi").await;
    assert_eq!(r.status(), StatusCode::OK);

    // The audit log: turned off, on again, then deleted (which also turned it off); the refused
    // second DELETE and PATCH recorded nothing. All by the operator key, about the entity.
    let disabled = s.app.audited(Some("acme"), "sso.disabled").await;
    assert_eq!(disabled.len(), 2, "{disabled:#?}");
    assert_eq!(disabled[0]["details"], json!({}));
    assert_eq!(disabled[1]["details"], json!({ "deleted": true }));
    let updated = s.app.audited(Some("acme"), "sso.updated").await;
    assert_eq!(updated.len(), 5, "set up, enabled, disabled, enabled, deleted: {updated:#?}");
    assert_eq!(updated[4]["details"], json!({ "deleted": true }));
    assert_eq!(updated[2]["details"]["enabled"], false);
    assert_eq!(s.app.audited(Some("acme"), "sso.enabled").await.len(), 2);
    let entity = updated[4]["targets"][0]["id"].as_str().unwrap().to_string();
    for e in disabled.iter().chain(&updated[1..]) {
        assert_eq!((e["actor"]["type"].as_str(), e["actor"]["name"].as_str()), (Some("operator_key"), Some("tests")));
        assert_eq!(e["targets"], json!([audit_target("entity", &entity, Some("acme"))]), "{e}");
    }
}

#[tokio::test]
async fn only_verified_domains_route_or_block_and_a_verified_domain_has_one_owner() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let (a_domain, a_admin) = entity_in_own_domain(&app, "a-corp").await;
    let (b_domain, b_admin) = entity_in_own_domain(&app, "b-corp").await;
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let sso = |domains: Value| json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": domains });

    // a's administrator claims b's domain first, and the vendor turns a's SSO on: a claim only.
    let r = app.put("/api/v1/entities/a-corp/sso", Some(&a_admin), sso(json!([b_domain, a_domain]))).await;
    assert_eq!(r.json::<Value>().await.unwrap()["verified_email_domains"], json!([]));
    assert_eq!(
        app.patch("/api/v1/entities/a-corp/sso", app.op(), json!({ "enabled": true })).await.status(),
        StatusCode::OK
    );
    // It routes nobody and blocks nobody: b's addresses still get the password form and sign in.
    assert_eq!(login_routes(&app, &format!("someone@{b_domain}")).await, None);
    assert_eq!(app.password_grant(&format!("admin@{b_domain}"), PASSWORD, "portal").await.status(), StatusCode::OK);
    // b's administrator claims it too, and the vendor verifies it for b although a claims it.
    let r = app.put("/api/v1/entities/b-corp/sso", Some(&b_admin), sso(json!([b_domain]))).await;
    assert_eq!(r.status(), StatusCode::OK, "an unverified claim never blocks");
    let r = app
        .patch("/api/v1/entities/b-corp/sso", app.op(), json!({ "email_domains": [b_domain], "enabled": true }))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["verified_email_domains"], json!([b_domain]));
    // a's claim lapsed; now the domain is taken, for a's administrator and for the vendor alike.
    let view: Value = app.get("/api/v1/entities/a-corp/sso", app.op()).await.json().await.unwrap();
    assert_eq!(view["email_domains"], json!([a_domain]));
    let r = app.patch("/api/v1/entities/a-corp/sso", Some(&a_admin), json!({ "email_domains": [b_domain] })).await;
    assert_problem(r, StatusCode::CONFLICT, "domain_taken").await;
    let r = app.patch("/api/v1/entities/a-corp/sso", app.op(), json!({ "email_domains": [b_domain] })).await;
    assert_problem(r, StatusCode::CONFLICT, "domain_taken").await;

    // a's assignment of an address in b's domain creates it at home in b, and /login sends it
    // to b's IdP, as it does an address with no account at all.
    let a_license = app.create_license("a-corp", "readyapi", "floating", 5).await;
    let newhire = format!("newhire@{b_domain}");
    let r = app
        .post(&format!("/api/v1/licenses/{a_license}/assignments"), Some(&a_admin), json!({ "email": newhire }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(home_of(&app, &newhire).await, "b-corp");
    assert!(login_routes(&app, &newhire).await.unwrap().starts_with("/saml/b-corp/login"));
    assert!(login_routes(&app, &format!("nobody@{b_domain}")).await.unwrap().starts_with("/saml/b-corp/login"));

    // Verifying a domain brings the accounts already in it home: an address that a created
    // before anyone verified its domain moves to c when the vendor verifies the domain for c.
    let c_domain = format!("c-corp-{}", app.domain);
    let early = format!("early@{c_domain}");
    app.assign(&a_license, &early).await;
    assert_eq!(home_of(&app, &early).await, "a-corp");
    let (_, _) = entity_in_own_domain(&app, "c-corp").await;
    let r = app
        .put(
            "/api/v1/entities/c-corp/sso",
            app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [c_domain] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(home_of(&app, &early).await, "c-corp");
    // And a's later assignments of it do not move it back.
    let other = app.create_license("a-corp", "readyapi", "floating", 5).await;
    app.assign(&other, &early).await;
    assert_eq!(home_of(&app, &early).await, "c-corp");
}

#[tokio::test]
async fn put_replaces_the_whole_configuration_and_patch_changes_only_what_it_names() {
    let s = sso_entity("onelogin", |b| {
        b["allow_idp_initiated"] = json!(false);
        b["jit_accounts"] = json!(true);
        b["allow_sha1"] = json!(true);
        b["email_attribute"] = json!("mail");
    })
    .await;
    let email = member(&s, "alice").await;
    let get = || async { s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json::<Value>().await.unwrap() };
    let v = get().await;
    let pick = |v: &Value| {
        ["enabled", "allow_idp_initiated", "jit_accounts", "allow_sha1", "email_attribute", "verified_email_domains"]
            .map(|k| v[k].clone())
    };
    let domains = json!([s.app.domain]);
    assert_eq!(pick(&v), [json!(true), json!(false), json!(true), json!(true), json!("mail"), domains.clone()]);

    // PATCH one member: the others stay; IdP-initiated sign-in stays off.
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "jit_accounts": false })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        pick(&get().await),
        [json!(true), json!(false), json!(false), json!(true), json!("mail"), domains.clone()]
    );
    let doc = idp("response", &response_params(&s, &email)).await;
    let r = post_from(&fresh_browser(), &s.acs(), doc["saml_response"].as_str().unwrap()).await;
    refused_with(r, StatusCode::FORBIDDEN, "idp_initiated_disabled", "after a PATCH of another member").await;
    // `null` puts the vendor preset back.
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "email_attribute": null })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["email_attribute"], Value::Null);

    // Bad bodies are refused and change nothing.
    let before = get().await;
    for (body, status, code) in [
        (json!({ "enabled": "yes" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({ "enable": true }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({ "vendor": "nope" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        (json!({ "email_domains": ["gmail.com"] }), StatusCode::UNPROCESSABLE_ENTITY, "public_domain"),
        (json!({ "idp_metadata_xml": "<nope/>" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_metadata"),
        // A metadata URL that cannot be fetched (the .example domain never resolves).
        (
            json!({ "idp_metadata_url": "https://idp.example/metadata" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_metadata",
        ),
        (
            json!({ "idp_metadata_url": "http://idp.example/metadata" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_metadata_url",
        ),
    ] {
        let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), body.clone()).await;
        assert_problem(r, status, code).await;
    }
    let md = idp("metadata", &json!({ "vendor": "onelogin" })).await;
    for body in [
        json!({ "vendor": "onelogin" }),
        json!({ "idp_metadata_xml": md["xml"] }),
        json!({ "vendor": "onelogin", "idp_metadata_xml": md["xml"], "idp_metadata_url": "https://idp.example/md" }),
    ] {
        let r = s.app.put("/api/v1/entities/acme/sso", s.app.op(), body).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    }
    let mut after = get().await;
    after["updated_at"] = before["updated_at"].clone();
    assert_eq!(after, before);

    // PUT replaces everything: what it does not name takes its default.
    let r = s
        .app
        .put("/api/v1/entities/acme/sso", s.app.op(), json!({ "vendor": "onelogin", "idp_metadata_xml": md["xml"] }))
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(pick(&v), [json!(false), json!(true), json!(false), json!(false), Value::Null, json!([])]);
    assert_eq!(v["email_domains"], json!([]));
}

#[tokio::test]
async fn grants_that_stem_from_a_password_are_refused_once_sso_governs_the_address() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let bob = app.licensed_user(&license, "bob", &admin).await;
    // Just before SSO comes on, bob, signed in with his password, approves a device, starts an
    // authorization code, and holds a password session.
    password_session(&app, &bob, PASSWORD).await;
    let d: Value = app
        .client
        .post(app.url("/oauth/device_authorization"))
        .form(&[("client_id", "readyapi")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = browser::device_decide(&app, d["user_code"].as_str().unwrap(), "approve").await;
    assert_eq!(r.status(), StatusCode::OK);
    let redirect = "http://127.0.0.1:49152/callback";
    let r = app.get(&browser::authorize_path("readyapi", redirect, "st", browser::VERIFIER), None).await;
    let code = browser::query_param(&browser::location(&r), "code").expect("a code at once: the browser is signed in");
    let session = app.tokens(&bob, PASSWORD, "readyapi").await;

    // The vendor verifies the domain and turns SSO on.
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let r = app
        .put(
            "/api/v1/entities/acme/sso",
            app.op(),
            json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [app.domain], "enabled": true }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let login_url = app.url("/saml/acme/login");

    // Every grant answers sso_required with where to go instead.
    let token = |form: Vec<(&'static str, String)>| {
        let app = &app;
        async move { app.client.post(app.url("/oauth/token")).form(&form).send().await.unwrap() }
    };
    let device = token(vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code".into()),
        ("device_code", d["device_code"].as_str().unwrap().into()),
        ("client_id", "readyapi".into()),
    ])
    .await;
    let v = assert_oauth_error(device, StatusCode::BAD_REQUEST, "sso_required").await;
    assert_eq!(v["login_url"], login_url);
    let exchanged = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", redirect.into()),
        ("code_verifier", browser::VERIFIER.into()),
        ("client_id", "readyapi".into()),
    ])
    .await;
    let v = assert_oauth_error(exchanged, StatusCode::BAD_REQUEST, "sso_required").await;
    assert_eq!(v["login_url"], login_url);
    let refresh = session["refresh_token"].as_str().unwrap();
    let v =
        assert_oauth_error(app.refresh_grant(refresh, "readyapi").await, StatusCode::BAD_REQUEST, "sso_required").await;
    assert_eq!(v["login_url"], login_url);
    // The browser's password session is over too: the device page asks for a sign-in again.
    assert!(app.get("/device", None).await.status().is_redirection());

    // A password family that began while SSO was being switched on (after the switch revoked the
    // ones it saw) is refused at its first refresh, and ends.
    let t = latchkey::tokens::issue(
        &app.state,
        &latchkey::store::accounts::user_by_email(&app.state.db.pool, &bob).await.unwrap().unwrap(),
        "acme",
        "readyapi",
        latchkey::tokens::Amr::Pwd,
        app.clock_now(),
    )
    .await
    .unwrap();
    let v = assert_oauth_error(
        app.refresh_grant(&t.refresh_token, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "sso_required",
    )
    .await;
    assert_eq!(v["login_url"], login_url);
    assert_problem(app.get("/api/v1/me", Some(&t.access_token)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn whether_an_address_has_an_account_decides_nothing_its_verified_domain_does() {
    let s = sso_entity("okta", |_| {}).await;
    let known = member(&s, "known").await;
    let unknown = s.app.email("nobody");
    // The password grant answers an address with an account and one without alike, however often.
    let mut answers = Vec::new();
    for email in [known.as_str(), unknown.as_str(), &unknown.to_uppercase()] {
        for _ in 0..12 {
            let r = s.app.password_grant(email, "a wrong password!", "readyapi").await;
            answers.push(assert_oauth_error(r, StatusCode::BAD_REQUEST, "sso_required").await);
        }
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // /login sends both to the IdP, by form and by a product's login_hint.
    for email in [&known, &unknown] {
        assert!(login_routes(&s.app, email).await.unwrap().starts_with("/saml/acme/login"), "{email}");
        let q = url::form_urlencoded::Serializer::new(String::new()).append_pair("login_hint", email).finish();
        let r = s.app.get(&format!("/login?{q}"), None).await;
        assert!(browser::location(&r).starts_with("/saml/acme/login"), "{email}");
    }
    // Outside the verified domain, an account of the entity itself (a contractor) and an
    // unknown address both get the password form, and the grant's ordinary answer.
    let contractor = format!("contractor@elsewhere-{}", s.app.domain);
    s.app.assign(&s.license, &contractor).await;
    for email in [contractor.as_str(), "nobody@elsewhere.example"] {
        assert_eq!(login_routes(&s.app, email).await, None, "{email}");
        let r = s.app.password_grant(email, "a wrong password!", "readyapi").await;
        assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // And the entity's IdP cannot sign the contractor in: not an address of its domains.
    let doc = idp("response", &response_params(&s, &contractor)).await;
    let r = post_from(&fresh_browser(), &s.acs(), doc["saml_response"].as_str().unwrap()).await;
    refused_with(r, StatusCode::FORBIDDEN, "domain_not_verified", "contractor").await;
}

#[tokio::test]
async fn an_administrator_enables_sso_only_after_a_test_sign_in_with_that_idp_passed() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let body = json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [app.domain] });
    let r = app.put("/api/v1/entities/acme/sso", Some(&admin), body.clone()).await;
    assert_eq!(r.json::<Value>().await.unwrap()["tested"], false);
    let s = Sso { app, slug: "acme".into(), vendor: "okta".into(), license: String::new() };
    let me = s.app.email("admin-acme");
    // Untested: enabling is refused (by PUT and by PATCH), and the configuration stays off.
    let mut on = body.clone();
    on["enabled"] = json!(true);
    assert_problem(
        s.app.put("/api/v1/entities/acme/sso", Some(&admin), on.clone()).await,
        StatusCode::CONFLICT,
        "sso_untested",
    )
    .await;
    let r = s.app.patch("/api/v1/entities/acme/sso", Some(&admin), json!({ "enabled": true })).await;
    assert_problem(r, StatusCode::CONFLICT, "sso_untested").await;

    // A test whose answer is refused (signed with a key the metadata does not name) shows why,
    // signs nobody in, and does not count.
    let test: Value = s.app.post("/api/v1/entities/acme/sso/test", Some(&admin), json!({})).await.json().await.unwrap();
    let url = test["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&s.app.url("/saml/acme/test?")), "{url}");
    let req = to_idp(&s, &url).await;
    let answer = pysaml2_answer_with(&s, &req, &me, json!({ "key": "idp2" })).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!signed_in(&r));
    let page = r.text().await.unwrap();
    assert!(page.contains("Test failed") && page.contains("code: invalid_signature"), "{page}");
    assert!(page.contains(&me) && page.contains("unverified"), "the claimed NameID, marked unverified: {page}");
    assert!(page.contains("href=\"/portal/entities/acme/sso\""), "back to the SSO page: {page}");
    let view: Value = s.app.get("/api/v1/entities/acme/sso", Some(&admin)).await.json().await.unwrap();
    assert_eq!(view["tested"], false);

    // A passing test shows what the IdP sent, signs nobody in, and counts.
    let req = to_idp(&s, &url).await;
    let extra = json!({ "attributes": { "department": "R&D", "email": me } });
    let answer = pysaml2_answer_with(&s, &req, &me, extra).await;
    let r = post_acs(&s, &s.acs(), answer["saml_response"].as_str().unwrap(), answer["relay_state"].as_str()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!signed_in(&r));
    let page = r.text().await.unwrap();
    for needle in ["Test passed", "http://www.okta.com/", "department", "Email latchkey would use", &me] {
        assert!(page.contains(needle), "{needle}: {page}");
    }
    assert!(page.contains("R&#38;D") || page.contains("R&amp;D"), "the attribute's value, escaped: {page}");
    // (The domain is only claimed, so a real sign-in would be refused: the page says so.)
    assert!(page.contains("code: domain_not_verified"), "{page}");
    assert!(s.app.get("/account", None).await.status().is_redirection(), "nobody signed in");
    let view: Value = s.app.get("/api/v1/entities/acme/sso", Some(&admin)).await.json().await.unwrap();
    assert_eq!(view["tested"], true);
    assert!(view["tested_at"].is_string());
    // Now the administrator may turn it on.
    let r = s.app.patch("/api/v1/entities/acme/sso", Some(&admin), json!({ "enabled": true })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // Changing what the IdP test vouched for needs a new test, even through off and on again;
    // the SP-side switches do not.
    let r = s.app.patch("/api/v1/entities/acme/sso", Some(&admin), json!({ "jit_accounts": true })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.app.patch("/api/v1/entities/acme/sso", Some(&admin), json!({ "email_attribute": "mail" })).await;
    assert_problem(r, StatusCode::CONFLICT, "sso_untested").await;
    let r = s
        .app
        .patch("/api/v1/entities/acme/sso", Some(&admin), json!({ "enabled": false, "email_attribute": "mail" }))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["tested"], false);
    let r = s.app.patch("/api/v1/entities/acme/sso", Some(&admin), json!({ "enabled": true })).await;
    assert_problem(r, StatusCode::CONFLICT, "sso_untested").await;
    // The vendor may enable without a test.
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "enabled": true })).await;
    assert_eq!(r.status(), StatusCode::OK);

    // The audit log has each change that went through, and none of the refused ones: the
    // administrator's upload, enabling, a switch, disabling; then the vendor's enabling.
    let admin_id = latchkey::store::accounts::user_by_email(&s.app.state.db.pool, &me).await.unwrap().unwrap().id;
    let by_admin = json!({ "type": "user", "id": admin_id, "name": me });
    let updated = s.app.audited(Some("acme"), "sso.updated").await;
    assert_eq!(updated.len(), 5, "{updated:#?}");
    let entity = updated[0]["targets"][0]["id"].as_str().unwrap().to_string();
    for e in &updated {
        assert_eq!(e["targets"], json!([audit_target("entity", &entity, Some("acme"))]), "{e}");
    }
    let first = &updated[0];
    assert_eq!(first["actor"], by_admin);
    assert_eq!(
        [&first["details"]["created"], &first["details"]["enabled"], &first["details"]["vendor"]],
        [&json!(true), &json!(false), &json!("okta")]
    );
    assert_eq!(first["details"]["idp_entity_id"], "http://www.okta.com/exk1latchkeyTest0h7");
    assert_eq!(first["details"]["email_domains"], json!([s.app.domain]));
    assert!(first["details"]["idp_fingerprint"].as_str().is_some_and(|f| !f.is_empty()), "{first}");
    assert!(first["details"].get("idp_metadata_xml").is_none(), "never the document itself: {first}");
    let flags: Vec<(bool, bool, bool)> = updated
        .iter()
        .map(|e| {
            let d = &e["details"];
            (d["created"].as_bool().unwrap(), d["enabled"].as_bool().unwrap(), d["jit_accounts"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(
        flags,
        [(true, false, false), (false, true, false), (false, true, true), (false, false, true), (false, true, true)]
    );
    assert_eq!(updated[4]["actor"]["type"], "operator_key");
    let enabled = s.app.audited(Some("acme"), "sso.enabled").await;
    assert_eq!(enabled.len(), 2, "{enabled:#?}");
    assert_eq!(enabled[0]["actor"], by_admin);
    assert_eq!(
        (enabled[1]["actor"]["type"].as_str(), enabled[1]["actor"]["name"].as_str()),
        (Some("operator_key"), Some("tests"))
    );
    let disabled = s.app.audited_once(Some("acme"), "sso.disabled").await;
    assert_eq!(disabled["actor"], by_admin);
    for e in enabled.iter().chain([&disabled]) {
        assert_eq!(e["targets"], json!([audit_target("entity", &entity, Some("acme"))]), "{e}");
    }
    // The refused test answer (a bad signature), as a test, by the identity it claimed: proven
    // by nothing, so without an account id. The test that passed is not a failure, though the
    // real sign-in it previewed would have been refused.
    let failed = s.app.audited_once(Some("acme"), "sso.login_failed").await;
    assert_eq!(failed["actor"], json!({ "type": "user", "id": null, "name": me }));
    assert_eq!(
        (&failed["details"]["code"], &failed["details"]["test"], &failed["details"]["issuer"]),
        (&json!("invalid_signature"), &json!(true), &json!("http://www.okta.com/exk1latchkeyTest0h7")),
        "{failed}"
    );

    // A test link works for its own entity only, unaltered, and for 30 minutes.
    let tampered = url.replace("sig=", "sig=x");
    assert_eq!(s.app.client.get(&tampered).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    s.app.create_entity("globex").await;
    let other = url.replace("/saml/acme/test", "/saml/globex/test");
    assert_eq!(s.app.client.get(&other).send().await.unwrap().status(), StatusCode::NOT_FOUND, "globex has no SSO");
    s.app.advance(Duration::from_secs(31 * 60));
    assert_eq!(s.app.client.get(&url).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // Only the entity's administrators (or the vendor) get test links.
    let r = s.app.post("/api/v1/entities/acme/sso/test", None, json!({})).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refused_responses_of_the_last_seven_days_are_listed_newest_first_and_bounded() {
    let s = sso_entity("okta", |_| {}).await;
    let email = member(&s, "alice").await;
    let stranger = s.app.email("stranger");
    let mut p = response_params(&s, &email);
    p["key"] = json!("attacker");
    let forged = idp("response", &p).await;
    let r = post_from(&fresh_browser(), &s.acs(), forged["saml_response"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.app.advance(Duration::from_secs(1));
    let doc = idp("response", &response_params(&s, &stranger)).await;
    let r = post_from(&fresh_browser(), &s.acs(), doc["saml_response"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.app.advance(Duration::from_secs(1));
    let r = post_from(&fresh_browser(), &s.acs(), "bm90IGEgU0FNTCByZXNwb25zZQ==").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A sign-in that succeeds is not listed.
    let ok = idp("response", &response_params(&s, &email)).await;
    let r = post_from(&fresh_browser(), &s.acs(), ok["saml_response"].as_str().unwrap()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    let list: Value = s.app.get("/api/v1/entities/acme/sso/failures", s.app.op()).await.json().await.unwrap();
    let list = list.as_array().unwrap();
    let codes: Vec<&str> = list.iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["malformed", "no_access", "invalid_signature"], "{list:?}");
    for f in list {
        assert!(f["at"].is_string() && f["detail"].as_str().is_some_and(|d| !d.is_empty()), "{f}");
        let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{f}");
    }
    assert_eq!(list[1]["name_id"], json!(stranger));
    assert_eq!(list[1]["issuer"], json!("http://www.okta.com/exk1latchkeyTest0h7"));
    assert_eq!(list[2]["name_id"], json!(email), "what the forged document claimed");
    assert_eq!(list[0]["issuer"], Value::Null);
    // Each refusal is in the entity's audit log too, with its code and the issuer, by the
    // identity the response claimed (a garbage document claims nobody: latchkey's `saml`).
    let failed = s.app.audited(Some("acme"), "sso.login_failed").await;
    assert_eq!(failed.len(), 3, "{failed:#?}");
    let claimed = |email: &str| json!({ "type": "user", "id": null, "name": email });
    for (e, f, actor) in [
        (&failed[0], &list[2], claimed(&email)),
        (&failed[1], &list[1], claimed(&stranger)),
        (&failed[2], &list[0], system_actor("saml")),
    ] {
        assert_eq!(e["actor"], actor, "{e}");
        assert_eq!(e["entity"], "acme");
        assert_eq!(
            e["details"],
            json!({ "code": f["code"], "detail": f["detail"], "issuer": f["issuer"], "test": false }),
            "{e}"
        );
    }
    // Another entity's administrator sees none of it.
    let (_, gt) = entity_in_own_domain(&s.app, "globex").await;
    assert_eq!(s.app.get("/api/v1/entities/acme/sso/failures", Some(&gt)).await.status(), StatusCode::NOT_FOUND);

    // The log keeps the newest 1000 of a flood.
    let flood = reqwest::Client::new();
    for _ in 0..1010 {
        let r = flood.post(s.acs()).form(&[("SAMLResponse", "AAAA")]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let list: Value = s.app.get("/api/v1/entities/acme/sso/failures", s.app.op()).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1000);

    // After seven days they are gone from the list, and housekeeping deletes them.
    s.app.advance(Duration::from_secs(7 * 86_400 + 5));
    let list: Value = s.app.get("/api/v1/entities/acme/sso/failures", s.app.op()).await.json().await.unwrap();
    assert_eq!(list, json!([]));
    latchkey::store::sso::purge(&s.app.state.db.pool, s.app.clock_now()).await.unwrap();
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM sso_failures").fetch_one(&s.app.state.db.pool).await.unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn starting_sign_ins_is_throttled_per_client_address_before_anything_is_written() {
    let s = sso_entity("okta", |_| {}).await;
    let pending = || async {
        let (n,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM saml_requests").fetch_one(&s.app.state.db.pool).await.unwrap();
        n
    };
    for i in 0..60 {
        let r = s.app.get("/saml/acme/login", None).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "sign-in {i}");
    }
    assert_eq!(pending().await, 60);
    let r = s.app.get("/saml/acme/login", None).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // Test links count against the same limit.
    let test: Value = s.app.post("/api/v1/entities/acme/sso/test", s.app.op(), json!({})).await.json().await.unwrap();
    assert_eq!(
        s.app.client.get(test["url"].as_str().unwrap()).send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(pending().await, 60, "a refused start writes nothing");
    // A minute later the address may start again.
    s.app.advance(Duration::from_secs(61));
    assert_eq!(s.app.get("/saml/acme/login", None).await.status(), StatusCode::SEE_OTHER);
}
