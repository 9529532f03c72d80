//! Nothing secret is stored in the clear. The check reads every table the database's own catalog
//! lists, so a table added later is read too, and every column of it that holds text.
//!
//! What counts as a secret: anything that lets its holder act as someone (passwords, operator
//! keys, refresh and access tokens, lease tokens, SCIM tokens, TOTP secrets and recovery codes,
//! setup/reset and share links, authorization
//! codes and PKCE verifiers, device codes, browser session and SSO binding cookies, RelayState
//! handles) and every private key. Such values are stored as SHA-256 hashes (`*_hash` columns),
//! argon2id hashes (passwords) or sealed with the master key (`*sealed*` columns).
//! Decided not to be secrets: a device flow's `user_code` (typed by a person; whoever approves it
//! binds their own account, and polling needs the hashed device code), an AuthnRequest ID (sent
//! to the IdP in the clear), a product's `state` and PKCE challenge, emails and floating-license
//! machine names (stored by design, see the data-minimisation notes), and signed license files: an
//! on-premise server keeps its entitlements' text to verify them at each checkout (each is bound to
//! that server's key), and the vendor keeps no offline license file at all.

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{browser, helpers::*, sso};

/// A port that accepts connections and closes them at once: mail cannot be delivered, so every
/// message stays queued and sealed.
async fn refusing_smtp() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = l.accept().await {
            drop(conn);
        }
    });
    port
}

/// The token of the queued `template` mail to `email`, read as the mail worker reads it (the
/// sealed message opened with the master key).
async fn queued_token(app: &TestApp, email: &str, template: &str) -> String {
    use sqlx::Row;
    let rows = sqlx::query("SELECT id, sealed_message FROM outbox WHERE recipient = $1 AND template = $2")
        .bind(email)
        .bind(template)
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap();
    let row = rows.last().unwrap_or_else(|| panic!("no {template} mail queued for {email}"));
    let (id, sealed): (String, Option<String>) = (row.get(0), row.get(1));
    let sealed = sealed.unwrap_or_else(|| panic!("the {template} mail to {email} was sent: it should be queued"));
    let plain = app.state.master.decrypt(&sealed, format!("outbox:{id}").as_bytes()).unwrap();
    let mail: Value = serde_json::from_slice(&plain).unwrap();
    let link = mail["link"].as_str().unwrap_or_else(|| panic!("the {template} mail has no link: {mail}"));
    link.split_once("token=").unwrap().1.split('&').next().unwrap().to_string()
}

async fn set_password(app: &TestApp, token: &str) {
    let r = app.post("/api/v1/account/password", None, json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
}

fn cookie_value(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_string()))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no {name} cookie set"))
}

/// The private keys the service holds, opened with the master key, as DER.
async fn private_keys(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    use sqlx::Row;
    let pool = &app.state.db.pool;
    let mut out = Vec::new();
    for r in sqlx::query("SELECT kid, sealed_private FROM signing_keys").fetch_all(pool).await.unwrap() {
        let kid: String = r.get(0);
        let der = app.state.master.decrypt(&r.get::<String, _>(1), format!("signing_keys:{kid}").as_bytes()).unwrap();
        out.push((format!("token signing key {kid}"), der));
    }
    for r in sqlx::query("SELECT entity_id, sp_sealed_key FROM sso_configs").fetch_all(pool).await.unwrap() {
        let entity: String = r.get(0);
        let der =
            app.state.master.decrypt(&r.get::<String, _>(1), latchkey::saml::config::sp_key_aad(&entity).as_bytes());
        out.push((format!("SAML SP key of {entity}"), der.unwrap()));
    }
    for r in sqlx::query("SELECT kid, sealed_private FROM license_keys").fetch_all(pool).await.unwrap() {
        let kid: String = r.get(0);
        let der = app.state.master.decrypt(&r.get::<String, _>(1), format!("license_keys:{kid}").as_bytes()).unwrap();
        out.push((format!("license signing key {kid}"), der));
    }
    for r in sqlx::query("SELECT id, sealed_private FROM onprem_server_key").fetch_all(pool).await.unwrap() {
        let id: String = r.get(0);
        let der =
            app.state.master.decrypt(&r.get::<String, _>(1), format!("onprem_server_key:{id}").as_bytes()).unwrap();
        out.push((format!("on-premise server key {id}"), der));
    }
    out
}

fn is_sha256_b64url(v: &str) -> bool {
    v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[tokio::test]
async fn no_table_holds_a_secret_in_the_clear() {
    let smtp = refusing_smtp().await;
    let app =
        spawn_app_with(Options { smtp_url: Some(format!("smtp://127.0.0.1:{smtp}")), ..Default::default() }).await;
    let mut secrets: Vec<(String, String)> = vec![("operator key".into(), app.operator_key.clone())];
    let mut secret = |what: &str, v: &str| secrets.push((what.to_string(), v.to_string()));

    // An administrator and a user, both from setup links.
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let admin_email = app.email("admin-acme");
    let admin_setup = queued_token(&app, &admin_email, "setup").await;
    set_password(&app, &admin_setup).await;
    let admin = app.tokens(&admin_email, PASSWORD, "portal").await;
    let admin_token = admin["access_token"].as_str().unwrap().to_string();
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let email = app.email("bob");
    let r = app
        .post(&format!("/api/v1/licenses/{license}/assignments"), Some(&admin_token), json!({ "email": email }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let setup = queued_token(&app, &email, "setup").await;
    set_password(&app, &setup).await;

    // Tokens: a refreshed pair (the first refresh token spent), a revoked access token.
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let r = app.refresh_grant(t["refresh_token"].as_str().unwrap(), "readyapi").await;
    assert_eq!(r.status(), StatusCode::OK);
    let t2: Value = r.json().await.unwrap();
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[("token", t2["access_token"].as_str().unwrap()), ("client_id", "readyapi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let access = t["access_token"].as_str().unwrap();

    // A seat, a share link, a reset link.
    let r = app.post("/api/v1/seats", Some(access), json!({ "product": "readyapi", "machine": "bench-7" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let lease: Value = r.json().await.unwrap();
    let r = app.post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin_token), json!({})).await;
    let share: Value = r.json().await.unwrap();
    let share_token = share["url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let r = app.post("/api/v1/account/forgot", None, json!({ "email": email })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    app.state.background.settled().await;
    let reset = queued_token(&app, &email, "reset").await;

    // The browser: a session, one authorization code left unused and one exchanged.
    let redirect = "http://127.0.0.1:53117/callback";
    let r = app.get(&browser::authorize_path("readyapi", redirect, "st", browser::VERIFIER), None).await;
    let r = browser::password_sign_in(&app, &browser::location(&r), &email, PASSWORD).await;
    let session = cookie_value(&r, "lk_session");
    let back = browser::location(&app.get(&browser::location(&r), None).await);
    let unused_code = browser::query_param(&back, "code").unwrap();
    let r = app.get(&browser::authorize_path("readyapi", redirect, "st2", browser::VERIFIER), None).await;
    let code = browser::query_param(&browser::location(&r), "code").unwrap();
    let r = app
        .client
        .post(app.url("/oauth/token"))
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
    let t3: Value = r.json().await.unwrap();

    // A device code, approved in that browser.
    let r = app.client.post(app.url("/oauth/device_authorization")).form(&[("client_id", "readyapi")]).send().await;
    let d: Value = r.unwrap().json().await.unwrap();
    assert_eq!(
        browser::device_decide(&app, d["user_code"].as_str().unwrap(), "approve").await.status(),
        StatusCode::OK
    );

    // SAML single sign-on for another entity: its SP key, and a sign-in started in a browser.
    app.create_entity("globex").await;
    let md = sso::idp("metadata", &json!({ "vendor": "okta" })).await;
    let body = json!({ "vendor": "okta", "idp_metadata_xml": md["xml"], "email_domains": [format!("globex-{}", app.domain)], "enabled": true });
    let r = app.put("/api/v1/entities/globex/sso", app.op(), body).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = app.get("/saml/globex/login", None).await;
    let binding = cookie_value(&r, "lk_sso_bind");
    let relay = browser::query_param(&browser::location(&r), "RelayState").unwrap();

    // A SCIM token of acme, used once.
    let r = app.post("/api/v1/entities/acme/scim-tokens", Some(&admin_token), json!({ "name": "okta" })).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    let scim_token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    assert!(scim_token.starts_with("lk_scim_"), "{scim_token}");
    let r = app.get("/scim/v2/acme/Users", Some(&scim_token)).await;
    assert_eq!(r.status(), StatusCode::OK);

    // The administrator's TOTP authenticator and its recovery codes.
    let admin_user = latchkey::store::accounts::user_by_email(&app.state.db.pool, &admin_email).await.unwrap().unwrap();
    let e = latchkey::accounts::mfa::enrolment(&app.state, &admin_user, app.clock_now()).await.unwrap().unwrap();
    let totp_code = crate::mfa::code_now(&app, &crate::mfa::base32_decode(&e.secret));
    let recovery =
        latchkey::accounts::mfa::confirm(&app.state, &admin_user, "", &totp_code, None, app.clock_now()).await.unwrap();
    secret("TOTP secret", &e.secret);
    for c in &recovery {
        secret("recovery code", c);
        secret("recovery code", &c.replace('-', ""));
    }

    for (what, v) in [
        ("SCIM token", scim_token.as_str()),
        ("admin setup link", admin_setup.as_str()),
        ("setup link", &setup),
        ("reset link", &reset),
        ("password", PASSWORD),
        ("admin refresh token", admin["refresh_token"].as_str().unwrap()),
        ("admin access token", &admin_token),
        ("spent refresh token", t["refresh_token"].as_str().unwrap()),
        ("refresh token", t2["refresh_token"].as_str().unwrap()),
        ("access token", access),
        ("revoked access token", t2["access_token"].as_str().unwrap()),
        ("lease token", lease["lease_token"].as_str().unwrap()),
        ("share link", &share_token),
        ("session cookie", &session),
        ("authorization code", &unused_code),
        ("exchanged authorization code", &code),
        ("PKCE verifier", browser::VERIFIER),
        ("code-flow refresh token", t3["refresh_token"].as_str().unwrap()),
        ("device code", d["device_code"].as_str().unwrap()),
        ("SSO binding cookie", &binding),
        ("RelayState handle", &relay),
    ] {
        secret(what, v);
    }
    // Private networks: an offline license (its computer kept as a keyed hash), and this server's
    // own on-premise key pair.
    let fixed = app.create_license("acme", "readyapi", "fixed", 1).await;
    app.patch(&format!("/api/v1/licenses/{fixed}"), app.op(), json!({ "offline_allowed": true })).await;
    app.assign(&fixed, &email).await;
    let fingerprint = "computer-fingerprint-0123456789";
    let request = latchkey::onprem::jws::encode_b64_json(
        &json!({ "fingerprint": fingerprint, "user": email, "product": "readyapi" }),
    );
    let r =
        app.post(&format!("/api/v1/licenses/{fixed}/offline"), Some(&admin_token), json!({ "request": request })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    secret("computer fingerprint", fingerprint);
    latchkey::onprem::server::identity(&app.state.db, &app.state.master, app.clock_now()).await.unwrap();

    let master = std::fs::read_to_string(app.dir.join("master.key")).unwrap();
    secret("master key", master.trim());
    let keys = private_keys(&app).await;
    assert!(keys.len() >= 4, "token, license, on-premise and SP keys: {}", keys.len());
    for (what, der) in &keys {
        secret(what, &base64::engine::general_purpose::STANDARD.encode(der));
        secret(what, &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(der));
        secret(what, &der.iter().map(|b| format!("{b:02x}")).collect::<String>());
    }

    let tables = app.database_tables().await;
    for known in ["users", "outbox", "signing_keys", "sso_configs", "web_sessions", "auth_codes", "device_codes"] {
        assert!(tables.iter().any(|t| t == known), "the catalog lists no {known}: {tables:?}");
    }
    let values = app.database_values().await;

    // Every table with a column for hashed or sealed secrets got rows in this run, so the checks
    // below saw real values. A new table of that kind fails here until this test exercises it.
    for t in &tables {
        let columns = app.database_columns(t).await;
        let derived: Vec<&String> = columns.iter().filter(|c| c.ends_with("_hash") || c.contains("sealed")).collect();
        if !derived.is_empty() {
            assert!(
                values.iter().any(|(vt, vc, _)| vt == t && derived.contains(&vc)),
                "table {t} stores hashed or sealed secrets ({derived:?}) but this test left them empty: \
                 make it store one"
            );
        }
    }
    // Hash columns hold hashes, sealed columns sealed text.
    for (t, c, v) in &values {
        if c == "password_hash" {
            assert!(v.starts_with("$argon2id$"), "{t}.{c} is not an argon2id hash");
        } else if c.ends_with("_hash") {
            assert!(is_sha256_b64url(v), "{t}.{c} does not hold a SHA-256 hash: {v}");
        } else if c.contains("sealed") {
            let ok = v.len() > 40 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            assert!(ok, "{t}.{c} does not look sealed: {v}");
        }
    }
    // Queued mail (the bodies hold links) is sealed.
    assert!(values.iter().filter(|(t, c, _)| t == "outbox" && c == "sealed_message").count() >= 4);

    let text: String = values.iter().map(|(t, c, v)| format!("{t}.{c}={v}\n")).collect();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for (what, s) in &secrets {
        assert!(s.len() >= 12, "{what} is too short to search for: {s}");
        let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
        for form in [s.as_str(), &hex] {
            assert!(!text.contains(form) && !compact.contains(form), "the {what} is stored in the clear");
        }
    }
    for (t, c, v) in &values {
        assert!(!v.contains("PRIVATE KEY"), "{t}.{c} holds a PEM private key");
        assert!(!v.contains("token="), "{t}.{c} holds a link in the clear");
    }
}
