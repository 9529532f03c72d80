//! Licensing in private networks: two servers (the vendor's, and an on-premise one with its own
//! database) that share nothing but the files a test hands over, the product simulator offline and
//! against an on-premise server, and the attacks on each file.

use std::path::PathBuf;

use latchkey::onprem::jws;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{run_cli as cli, *};

fn temp_file(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("lk-{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&p, text).unwrap();
    p
}

struct Vendor {
    app: TestApp,
    admin: String,
    license: String,
}

/// The vendor: product `readyapi`, entity `acme` with its administrator, a floating license of 5
/// seats that may go on-premise.
async fn vendor() -> Vendor {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "onprem_allowed": true })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    Vendor { app, admin, license }
}

/// An on-premise server configured with the vendor's published license keys (JWKS).
async fn onprem_for(vendor: &TestApp, everyone: bool) -> TestApp {
    onprem_with(vendor, move |c| {
        if everyone {
            c.onprem_access = latchkey::config::OnpremAccess::Everyone;
        }
    })
    .await
}

/// An on-premise server as `onprem_for` makes it, with `tweak` applied to its configuration.
async fn onprem_with(vendor: &TestApp, tweak: impl FnOnce(&mut latchkey::config::Config) + Send + 'static) -> TestApp {
    let jwks = vendor.get("/.well-known/latchkey-license-keys.json", None).await.text().await.unwrap();
    let key_file = temp_file("vendor-keys.json", &jwks);
    spawn_app_with(Options {
        tweak: Box::new(move |c| {
            c.license_public_key_file = Some(key_file);
            tweak(c);
        }),
        ..Default::default()
    })
    .await
}

async fn fingerprint(app: &TestApp) -> String {
    let (ok, out, err) = cli(app, &["onprem", "fingerprint"]).await;
    assert!(ok, "{err}");
    out
}

async fn export(v: &Vendor, fp: &str) -> String {
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{}/onprem", v.license), Some(&v.admin), json!({ "fingerprint": fp }))
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entitlement"].as_str().unwrap().to_string()
}

async fn import(app: &TestApp, entitlement: &str) -> reqwest::Response {
    app.post("/api/v1/onprem/entitlements", app.op(), json!({ "entitlement": entitlement })).await
}

/// The vendor's license moved to `onprem`: exported for its fingerprint and imported through the
/// API. Returns the entitlement.
async fn move_on_premise(v: &Vendor, onprem: &TestApp) -> String {
    let ent = export(v, &fingerprint(onprem).await).await;
    let r = import(onprem, &ent).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    ent
}

async fn checkout(app: &TestApp, token: Option<&str>, machine: &str) -> reqwest::Response {
    app.post("/api/v1/seats", token, json!({ "product": "readyapi", "machine": machine })).await
}

/// A user of the on-premise server (assigned by its own operator), with a token.
async fn onprem_user(app: &TestApp, license: &str, local: &str) -> String {
    let email = app.email(local);
    app.assign(license, &email).await;
    app.token_for(&email, "readyapi").await
}

fn payload(token: &str) -> Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&latchkey::crypto::b64url_decode(p).unwrap()).unwrap()
}

/// The same signed file with its payload replaced (the signature no longer matches).
fn with_payload(token: &str, v: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], latchkey::crypto::b64url(v.to_string().as_bytes()), parts[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_license_signing_key_is_published_and_verifies_with_pyjwt() {
    let v = vendor().await;
    let jwks: Value = v.app.get("/.well-known/latchkey-license-keys.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none());
    // The CLI prints the same key as PEM and JWK.
    let (ok, out, err) = cli(&v.app, &["keys", "license-public"]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with("-----BEGIN PUBLIC KEY-----"), "{out}");
    assert!(out.contains(key["x"].as_str().unwrap()), "{out}");
    let pem = out.split("-----END PUBLIC KEY-----").next().unwrap().to_string() + "-----END PUBLIC KEY-----\n";

    // An entitlement made here verifies with PyJWT, by the JWKS and by the PEM.
    let other = spawn_app().await;
    let fp = fingerprint(&other).await;
    let ent = export(&v, &fp).await;
    let script = r#"
import sys, json, jwt
inp = json.load(sys.stdin)
header = jwt.get_unverified_header(inp["token"])
jwks = jwt.PyJWKSet.from_dict(inp["jwks"])
key = [k for k in jwks.keys if k.key_id == header["kid"]][0]
a = jwt.decode(inp["token"], key=key.key, algorithms=["EdDSA"])
b = jwt.decode(inp["token"], key=inp["pem"], algorithms=["EdDSA"])
print(json.dumps({"typ": header["typ"], "a": a, "same": a == b}))
"#;
    let out = python_json(script, &json!({ "token": ent, "jwks": jwks, "pem": pem })).await;
    assert_eq!(out["typ"], "entitlement+jwt");
    assert_eq!(out["same"], true);
    assert_eq!(out["a"]["seats"], 5);
    assert_eq!(out["a"]["license_id"], v.license.as_str());
    assert_eq!(out["a"]["entity"], "acme");

    // Rotation: the new key signs, the old one stays published while the entitlement it signed is valid.
    let (ok, _, err) = cli(&v.app, &["keys", "license-rotate"]).await;
    assert!(ok, "{err}");
    let jwks2: Value = v.app.get("/.well-known/latchkey-license-keys.json", None).await.json().await.unwrap();
    let kids: Vec<&str> = jwks2["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids.len(), 2, "{jwks2}");
    assert!(kids.contains(&key["kid"].as_str().unwrap()));
    // Past the entitlement's expiry the old key is withdrawn.
    v.app.advance(std::time::Duration::from_secs(366 * 86_400));
    let jwks3: Value = v.app.get("/.well-known/latchkey-license-keys.json", None).await.json().await.unwrap();
    assert_eq!(jwks3["keys"].as_array().unwrap().len(), 1, "{jwks3}");
    assert_ne!(jwks3["keys"][0]["kid"], key["kid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_license_moves_to_an_on_premise_server_serves_its_users_reports_usage_and_comes_back() {
    let v = vendor().await;
    let onprem = onprem_for(&v.app, false).await;
    // An online user of the license before the move.
    let online = onprem_user(&v.app, &v.license, "online").await;
    let held = checkout(&v.app, Some(&online), "desk").await;
    assert_eq!(held.status(), StatusCode::CREATED);

    let fp = fingerprint(&onprem).await;
    let ent = export(&v, &fp).await;
    // Exported: the online seat ended, and online checkouts are refused.
    let r = checkout(&v.app, Some(&online), "desk").await;
    assert_problem(r, StatusCode::CONFLICT, "license_on_premise").await;
    let seats: Value =
        v.app.get(&format!("/api/v1/licenses/{}/seats", v.license), Some(&v.admin)).await.json().await.unwrap();
    assert_eq!(seats, json!([]));
    // Only one export at a time.
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{}/onprem", v.license), Some(&v.admin), json!({ "fingerprint": fp }))
        .await;
    assert_problem(r, StatusCode::CONFLICT, "license_on_premise").await;

    // The on-premise server imports it with the CLI: entity, product and license appear there.
    let file = temp_file("entitlement.jwt", &ent);
    let (ok, out, err) = cli(
        &onprem,
        &[
            "onprem",
            "import",
            file.to_str().unwrap(),
            "--license-public-key-file",
            onprem.state.config.license_public_key_file.as_ref().unwrap().to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("5 seats"), "{out}");
    let lic: Value = onprem.get(&format!("/api/v1/licenses/{}", v.license), onprem.op()).await.json().await.unwrap();
    assert_eq!(
        (lic["entity"].as_str(), lic["product"].as_str(), lic["seats"].as_i64()),
        (Some("acme"), Some("readyapi"), Some(5))
    );

    // Its own users take seats; the sixth computer waits.
    let mut leases = Vec::new();
    for i in 0..5 {
        let t = onprem_user(&onprem, &v.license, &format!("u{i}")).await;
        let r = checkout(&onprem, Some(&t), &format!("pc{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        leases.push(r.json::<Value>().await.unwrap());
    }
    let sixth = onprem_user(&onprem, &v.license, "u5").await;
    assert_problem(checkout(&onprem, Some(&sixth), "pc5").await, StatusCode::CONFLICT, "no_seat_available").await;

    // Usage goes back to the vendor as a signed file, and shows in the license's usage report.
    let (ok, usage, err) = cli(&onprem, &["onprem", "usage"]).await;
    assert!(ok, "{err}");
    let claims = payload(&usage);
    let text = claims.to_string();
    assert!(!text.contains("@"), "no email leaves the network: {text}");
    assert!(!text.contains("pc1"), "no machine name leaves the network: {text}");
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{}/onprem/usage", v.license), Some(&v.admin), json!({ "usage": usage }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let today = latchkey::clock::utc_day(onprem.clock_now()).to_string();
    let report: Value = v
        .app
        .get(&format!("/api/v1/entities/acme/reports/usage?from={today}&to={today}"), Some(&v.admin))
        .await
        .json()
        .await
        .unwrap();
    let row = report.as_array().unwrap().iter().find(|r| r["license_id"] == v.license.as_str()).unwrap().clone();
    assert!(row["peak_concurrent"].as_i64().unwrap() >= 5, "{row}");
    assert!(row["denials"].as_i64().unwrap() >= 1, "{row}");
    assert!(row["distinct_users"].as_i64().unwrap() >= 5, "{row}");
    // A changed usage file is refused.
    let mut forged = claims.clone();
    forged["licenses"][0]["days"][0]["peak_seats"] = json!(1);
    let r = v
        .app
        .post(
            &format!("/api/v1/licenses/{}/onprem/usage", v.license),
            Some(&v.admin),
            json!({ "usage": with_payload(&usage, &forged) }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_signature").await;
    // What left the network is in the on-premise server's log; what came in, in the vendor's.
    let exported: Vec<Value> =
        audit_events(&onprem).await.into_iter().filter(|e| e["action"] == "onprem.usage_exported").collect();
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0]["details"]["file_id"], claims["jti"]);
    let at_vendor = audit_events(&v.app).await;
    let imported: Vec<&Value> = at_vendor.iter().filter(|e| e["action"] == "onprem.usage_imported").collect();
    assert_eq!(imported.len(), 1, "{at_vendor:#?}");
    assert_eq!(imported[0]["details"]["file_id"], claims["jti"]);
    assert_eq!(imported[0]["entity"], "acme");
    let refused = at_vendor.iter().find(|e| e["action"] == "onprem.file_refused").unwrap();
    assert_eq!(refused["details"], json!({ "file": "usage", "code": "invalid_signature" }));

    // Return: local use stops at once, the vendor takes the file once, and the license is online again.
    let (ok, ret, err) = cli(&onprem, &["onprem", "return", "--license", &v.license]).await;
    assert!(ok, "{err}");
    let hb = onprem
        .post(
            &format!("/api/v1/seats/{}/heartbeat", leases[0]["lease_id"].as_str().unwrap()),
            Some(&onprem_user(&onprem, &v.license, "u0").await),
            json!({}),
        )
        .await;
    assert_eq!(hb.status(), StatusCode::GONE);
    assert_problem(checkout(&onprem, Some(&sixth), "pc5").await, StatusCode::FORBIDDEN, "not_entitled").await;
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{}/onprem/return", v.license), Some(&v.admin), json!({ "return": ret }))
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{}/onprem/return", v.license), Some(&v.admin), json!({ "return": ret }))
        .await;
    assert_problem(r, StatusCode::CONFLICT, "return_used").await;
    assert_eq!(checkout(&v.app, Some(&online), "desk").await.status(), StatusCode::CREATED);
    // The same entitlement cannot come back on the server that returned it.
    assert_problem(import(&onprem, &ent).await, StatusCode::CONFLICT, "already_imported").await;

    // At the vendor, the export and the return are in the entity's log, by its administrator,
    // naming the license and the server; the refused second export and second return are not.
    let admin = v.app.email("admin-acme");
    let admin_id = latchkey::store::accounts::user_by_email(&v.app.state.db.pool, &admin).await.unwrap().unwrap().id;
    let server = jws::decode_b64_json(&fp).unwrap();
    let targets = json!([
        audit_target("license", &v.license, Some("readyapi floating")),
        audit_target("onprem_server", server["server_id"].as_str().unwrap(), server["host"].as_str()),
    ]);
    let entitlement = payload(&ent);
    let exported = v.app.audited_once(Some("acme"), "onprem.exported").await;
    assert_eq!(exported["actor"], json!({ "type": "user", "id": admin_id, "name": admin }));
    assert_eq!(exported["targets"], targets);
    let d = &exported["details"];
    assert_eq!((&d["entitlement_id"], &d["seats"], &d["seats_ended"]), (&entitlement["jti"], &json!(5), &json!(1)));
    let exp = d["expires_at"].as_str().unwrap();
    assert_eq!(chrono::DateTime::parse_from_rfc3339(exp).unwrap().timestamp(), entitlement["exp"].as_i64().unwrap());
    let returned = v.app.audited_once(Some("acme"), "onprem.returned").await;
    assert_eq!(returned["actor"], exported["actor"]);
    assert_eq!(returned["targets"], targets);
    assert_eq!(returned["details"], json!({ "entitlement_id": entitlement["jti"] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_foreign_expired_and_replayed_files_grant_no_seat() {
    let v = vendor().await;
    let onprem = onprem_for(&v.app, false).await;
    let stranger = spawn_app().await;

    // A file for another server.
    let foreign = export(&v, &fingerprint(&stranger).await).await;
    assert_problem(import(&onprem, &foreign).await, StatusCode::UNPROCESSABLE_ENTITY, "wrong_server").await;
    // A server that imported nothing has nothing to return.
    let (ok, out, err) = cli(&stranger, &["onprem", "return", "--license", &v.license]).await;
    assert!(!ok && err.contains("not_on_premise"), "{out} {err}");

    // Use another license for the rest (the first one is out until the stranger's file expires).
    let license2 = v.app.create_license("acme", "readyapi", "floating", 5).await;
    v.app.patch(&format!("/api/v1/licenses/{license2}"), v.app.op(), json!({ "onprem_allowed": true })).await;
    let fp = fingerprint(&onprem).await;
    let r =
        v.app.post(&format!("/api/v1/licenses/{license2}/onprem"), Some(&v.admin), json!({ "fingerprint": fp })).await;
    let ent = r.json::<Value>().await.unwrap()["entitlement"].as_str().unwrap().to_string();

    // A changed `seats`.
    let mut more = payload(&ent);
    more["seats"] = json!(500);
    assert_problem(
        import(&onprem, &with_payload(&ent, &more)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_signature",
    )
    .await;
    // Signed by another key (with the vendor's kid).
    let header: Value =
        serde_json::from_slice(&latchkey::crypto::b64url_decode(ent.split('.').next().unwrap()).unwrap()).unwrap();
    let (der, _) = jws::generate().unwrap();
    let self_signed = jws::sign(&der, header["kid"].as_str().unwrap(), jws::ENTITLEMENT_TYP, &more).unwrap();
    assert_problem(import(&onprem, &self_signed).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_signature").await;
    // Not an entitlement at all.
    assert_problem(import(&onprem, "hello").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_file").await;

    // The real one, once.
    let r = import(&onprem, &ent).await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    assert_problem(import(&onprem, &ent).await, StatusCode::CONFLICT, "already_imported").await;

    // A direct database edit raising seats has no effect: the limit comes from the verified file.
    sqlx::query("UPDATE licenses SET seats = 50 WHERE id = $1")
        .bind(&license2)
        .execute(&onprem.state.db.pool)
        .await
        .unwrap();
    for i in 0..5 {
        let t = onprem_user(&onprem, &license2, &format!("d{i}")).await;
        assert_eq!(checkout(&onprem, Some(&t), &format!("d{i}")).await.status(), StatusCode::CREATED);
    }
    let t6 = onprem_user(&onprem, &license2, "d5").await;
    assert_problem(checkout(&onprem, Some(&t6), "d5").await, StatusCode::CONFLICT, "no_seat_available").await;
    // Neither does replacing the stored file with a forged one: no seat at all then.
    sqlx::query("UPDATE onprem_entitlements SET token = $1 WHERE license_id = $2")
        .bind(with_payload(&ent, &more))
        .bind(&license2)
        .execute(&onprem.state.db.pool)
        .await
        .unwrap();
    assert_problem(checkout(&onprem, Some(&t6), "d5").await, StatusCode::FORBIDDEN, "not_entitled").await;
    sqlx::query("UPDATE onprem_entitlements SET token = $1 WHERE license_id = $2")
        .bind(&ent)
        .bind(&license2)
        .execute(&onprem.state.db.pool)
        .await
        .unwrap();

    // Expired: past the file's expiry no seat is given, and the file cannot be imported elsewhere late.
    onprem.advance(std::time::Duration::from_secs(367 * 86_400));
    let t6 = onprem.token_for(&onprem.email("d5"), "readyapi").await;
    assert_problem(checkout(&onprem, Some(&t6), "d6").await, StatusCode::GONE, "license_expired").await;

    // A return file replayed: accepted once.
    onprem.clock.set(v.app.clock_now());
    let (ok, ret, err) = cli(&onprem, &["onprem", "return", "--license", &license2]).await;
    assert!(ok, "{err}");
    let path = format!("/api/v1/licenses/{license2}/onprem/return");
    assert_eq!(v.app.post(&path, Some(&v.admin), json!({ "return": ret })).await.status(), StatusCode::OK);
    assert_problem(
        v.app.post(&path, Some(&v.admin), json!({ "return": ret })).await,
        StatusCode::CONFLICT,
        "return_used",
    )
    .await;
    // A return file for one license does not return another.
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{}/onprem/return", v.license), Some(&v.admin), json!({ "return": ret }))
        .await;
    assert!(r.status().is_client_error());
    // A second return file after the first was used is refused too (its entitlement is back).
    let r = v
        .app
        .post(&format!("/api/v1/licenses/{license2}/onprem/return"), Some(&v.admin), json!({ "return": "x.y.z" }))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_file").await;

    // Each refusal is in the audit log with its reason, beside what was taken in.
    let on_site = audit_events(&onprem).await;
    let refused: Vec<&str> = on_site
        .iter()
        .filter(|e| e["action"] == "onprem.entitlement_refused")
        .map(|e| e["details"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        ["wrong_server", "invalid_signature", "invalid_signature", "invalid_file", "already_imported"],
        "{on_site:#?}"
    );
    let replay = on_site.iter().find(|e| e["details"]["code"] == "already_imported").unwrap();
    assert_eq!(replay["details"]["entitlement_id"], payload(&ent)["jti"]);
    assert_eq!(replay["actor"]["type"], "operator_key");
    let imported: Vec<&Value> = on_site.iter().filter(|e| e["action"] == "onprem.entitlement_imported").collect();
    assert_eq!(imported.len(), 1, "{on_site:#?}");
    assert_eq!(imported[0]["entity"], "acme");
    assert_eq!(imported[0]["details"]["seats"], 5);
    let returned = on_site.iter().find(|e| e["action"] == "onprem.return_file_created").unwrap();
    assert_eq!(returned["actor"]["name"], "cli");
    assert!(returned["details"]["seats_ended"].is_u64(), "{returned}");
    assert_eq!(returned["details"]["entitlement_id"], payload(&ent)["jti"]);
    // The stored file replaced by a forged one was noticed at the next checkout, once.
    let mut ignored = Vec::new();
    for _ in 0..50 {
        ignored = audit_events(&onprem)
            .await
            .into_iter()
            .filter(|e| e["action"] == "onprem.entitlement_ignored")
            .collect::<Vec<_>>();
        if !ignored.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0]["details"]["code"], "invalid_signature");
    assert_eq!(ignored[0]["entity"], "acme");
    // On the stranger's server, the file bound to another server.
    let theirs = audit_events(&stranger).await;
    assert!(
        theirs.iter().all(|e| e["action"] != "onprem.entitlement_imported"),
        "the stranger imported nothing: {theirs:#?}"
    );
    let at_vendor = audit_events(&v.app).await;
    let vendor_refused: Vec<(&str, &str)> = at_vendor
        .iter()
        .filter(|e| e["action"] == "onprem.file_refused")
        .map(|e| (e["details"]["file"].as_str().unwrap(), e["details"]["code"].as_str().unwrap()))
        .collect();
    assert_eq!(vendor_refused.len(), 3, "{vendor_refused:?}");
    assert!(vendor_refused.contains(&("return", "return_used")), "{vendor_refused:?}");
    assert!(vendor_refused.contains(&("return", "invalid_file")), "{vendor_refused:?}");
}

/// Every event of a server, as its operator reads them.
async fn audit_events(app: &TestApp) -> Vec<Value> {
    let r = app.get("/api/v1/audit?limit=1000", app.op()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_entitlement_is_refused_at_import() {
    let v = vendor().await;
    let onprem = onprem_for(&v.app, false).await;
    let soon = latchkey::clock::rfc3339(v.app.clock_now() + 3_600_000);
    let r = v.app.patch(&format!("/api/v1/licenses/{}", v.license), v.app.op(), json!({ "expires_at": soon })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let ent = export(&v, &fingerprint(&onprem).await).await;
    assert_eq!(payload(&ent)["exp"].as_i64().unwrap() * 1000, v.app.clock_now() + 3_600_000);
    onprem.advance(std::time::Duration::from_secs(7200));
    assert_problem(import(&onprem, &ent).await, StatusCode::UNPROCESSABLE_ENTITY, "entitlement_expired").await;
}

/// What a server stores, but for its audit log and its mail outbox (which the mail worker changes
/// in the background).
async fn stored_outside_audit(app: &TestApp) -> Vec<(String, String, String)> {
    app.database_values().await.into_iter().filter(|(t, _, _)| !t.starts_with("audit") && t != "outbox").collect()
}

/// `latchkey-operators` is the built-in entity of the accounts `latchkey operator add` makes. A
/// vendor with operator accounts has it too, can give it a license through the API and export
/// that license: a validly signed entitlement naming the entity. An on-premise server whose own
/// operators have accounts must not put that license into their entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entitlement_naming_the_operators_entity_is_refused_on_premise() {
    let reserved = latchkey::accounts::operators::OPERATORS_ENTITY;
    let vendor = spawn_app().await;
    vendor.create_product("readyapi").await;
    latchkey::accounts::operators::add(&vendor.state, &vendor.email("vendor-ops"), vendor.clock_now()).await.unwrap();
    let license = vendor.create_license(reserved, "readyapi", "floating", 3).await;
    let r = vendor.patch(&format!("/api/v1/licenses/{license}"), vendor.op(), json!({ "onprem_allowed": true })).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    let onprem = onprem_for(&vendor, false).await;
    let fp = fingerprint(&onprem).await;
    let r = vendor.post(&format!("/api/v1/licenses/{license}/onprem"), vendor.op(), json!({ "fingerprint": fp })).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let ent = body["entitlement"].as_str().unwrap().to_string();
    let claims = payload(&ent);
    assert_eq!(claims["entity"], reserved);

    // The on-premise server's operators have accounts: the entity exists there.
    let ops = onprem.email("ops");
    latchkey::accounts::operators::add(&onprem.state, &ops, onprem.clock_now()).await.unwrap();
    let pool = &onprem.state.db.pool;
    let home = latchkey::store::entities::entity_by_slug(pool, reserved).await.unwrap().unwrap();
    let before = stored_outside_audit(&onprem).await;

    // Refused as a slug no new entity may have, through the API and the command line alike.
    let v = assert_problem(import(&onprem, &ent).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_slug").await;
    assert!(v["detail"].as_str().unwrap().contains("reserved"), "{v}");
    let file = temp_file("entitlement.jwt", &ent);
    let keys = onprem.state.config.license_public_key_file.clone().unwrap();
    let (ok, out, err) = cli(
        &onprem,
        &["onprem", "import", file.to_str().unwrap(), "--license-public-key-file", keys.to_str().unwrap()],
    )
    .await;
    assert!(!ok && err.contains("invalid_slug"), "{out} {err}");

    // Nothing changed: no license, product or entitlement, nothing in the operators' entity.
    assert_eq!(stored_outside_audit(&onprem).await, before);
    assert_problem(
        onprem.get(&format!("/api/v1/licenses/{license}"), onprem.op()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let theirs: Value =
        onprem.get(&format!("/api/v1/entities/{reserved}/licenses"), onprem.op()).await.json().await.unwrap();
    assert_eq!(theirs, json!([]));
    assert!(latchkey::store::entities::product_by_sku(pool, "readyapi").await.unwrap().is_none());
    let user = latchkey::store::accounts::user_by_email(pool, &ops).await.unwrap().unwrap();
    assert_eq!(user.entity_id, home.id);

    // Both refusals are in the audit log, on the operator chain, naming the file; nothing imported.
    let refused = onprem.audited(None, "onprem.entitlement_refused").await;
    assert_eq!(refused.len(), 2, "{refused:#?}");
    for (e, actor) in refused.iter().zip(["operator_key", "system"]) {
        assert_eq!(e["actor"]["type"], actor, "{e}");
        assert_eq!(e["entity"], Value::Null, "{e}");
        assert_eq!(
            e["details"],
            json!({ "code": "invalid_slug", "entitlement_id": claims["jti"], "entity": reserved, "seats": 3 }),
        );
        assert_eq!(e["targets"], json!([audit_target("license", &license, None)]));
    }
    assert_eq!(onprem.audited(None, "onprem.entitlement_imported").await, Vec::<Value>::new());
}

/// 80 checkouts at once for 5 seats on the on-premise server: exactly 5 win, each round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_on_premise_seat_limit_holds_under_a_race() {
    let v = vendor().await;
    let onprem = onprem_for(&v.app, false).await;
    move_on_premise(&v, &onprem).await;
    // A database edit raising seats changes nothing here either, not even with the seat rows to go with it.
    sqlx::query("UPDATE licenses SET seats = 1000").execute(&onprem.state.db.pool).await.unwrap();
    let mut conn = onprem.state.db.pool.acquire().await.unwrap();
    latchkey::store::slots::add(&mut conn, &v.license, 995).await.unwrap();
    drop(conn);
    let mut tokens = Vec::new();
    for i in 0..20 {
        tokens.push(onprem_user(&onprem, &v.license, &format!("r{i}")).await);
    }
    for round in 0..2 {
        let mut tasks = Vec::new();
        for i in 0..80 {
            let (client, base, t) = (onprem.client.clone(), onprem.base.clone(), tokens[i % 20].clone());
            tasks.push(tokio::spawn(async move {
                client
                    .post(format!("{base}/api/v1/seats"))
                    .bearer_auth(t)
                    .json(&json!({ "product": "readyapi", "machine": format!("m{i}") }))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                StatusCode::CREATED => won += 1,
                StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(won, 5, "round {round}");
        onprem.advance(std::time::Duration::from_secs(301));
    }
}

/// The product simulator (`latchkey product`), started against `app` for `email`; its log lines.
struct Product {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
}

fn start_product(app: &TestApp, email: &str, machine: &str) -> Product {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["product", "--server", &app.base, "--product", "readyapi", "--email", email, "--machine", machine])
        .args(["--idle-seconds", "7"])
        .env("LATCHKEY_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    Product { child, lines }
}

impl Product {
    /// Read the simulator's log until a line contains `needle`; `None` when it ended first.
    async fn line(&mut self, needle: &str) -> Option<String> {
        let found = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Some(l) = self.lines.next_line().await.unwrap() {
                if l.contains(needle) {
                    return Some(l);
                }
            }
            None
        })
        .await;
        found.unwrap_or_else(|_| panic!("the simulator did not say `{needle}`"))
    }

    /// Ctrl-C: the simulator releases its seat and exits.
    async fn interrupt(mut self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        assert!(self.line("seat released").await.is_some());
        let status =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait()).await.unwrap().unwrap();
        assert!(status.success());
    }
}

/// A user of the on-premise server with a password (set from the mail its assignment sends).
async fn onprem_password_user(app: &TestApp, license: &str, local: &str) -> String {
    let email = app.email(local);
    app.assign(license, &email).await;
    app.set_password_from_mail(&email, PASSWORD).await;
    email
}

/// The live seats of a license, as the server's operator lists them.
async fn seat_list(app: &TestApp, license: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/licenses/{license}/seats"), app.op()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

/// The product simulator, run as a customer runs it, against an on-premise server: it signs in
/// there, takes one of the imported seats, keeps it with heartbeats past the lease's first expiry,
/// is refused with the seat-limit error when the imported seats are taken, and releases on Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_simulator_holds_and_releases_a_seat_of_an_on_premise_server() {
    let v = vendor().await;
    let onprem = onprem_with(&v.app, |c| c.heartbeat_interval = "1s".parse().unwrap()).await;
    move_on_premise(&v, &onprem).await;
    let lease_ttl = 5 * 60_000;
    let started = onprem.clock_now();

    // A checkout that never heartbeats, beside the product's.
    let idle = onprem_user(&onprem, &v.license, "idle").await;
    assert_eq!(checkout(&onprem, Some(&idle), "idle-pc").await.status(), StatusCode::CREATED);
    let alice = onprem_password_user(&onprem, &v.license, "alice").await;
    let mut product = start_product(&onprem, &alice, "alice-pc");
    product.line("checked out on alice-pc").await.expect("a seat");
    let held = seat_list(&onprem, &v.license).await;
    let mine: Vec<&Value> = held.iter().filter(|s| s["machine"] == "alice-pc").collect();
    assert_eq!((held.len(), mine.len()), (2, 1), "{held:#?}");
    assert_eq!(mine[0]["email"], alice.to_lowercase());
    let lease_id = mine[0]["lease_id"].clone();
    assert_eq!(mine[0]["expires_at"], latchkey::clock::rfc3339(started + lease_ttl));

    // Heartbeats extend the lease: twice the server's clock moves 3 minutes on (past the first
    // expiry); of the two heartbeats logged after each move, the second was sent after it.
    for _ in 0..2 {
        onprem.advance(std::time::Duration::from_secs(180));
        for _ in 0..2 {
            product.line("heartbeat ok (idle 7 s)").await.expect("a heartbeat");
        }
        let held = seat_list(&onprem, &v.license).await;
        let now = onprem.clock_now();
        let mine: Vec<&Value> = held.iter().filter(|s| s["machine"] == "alice-pc").collect();
        assert_eq!(mine.len(), 1, "{held:#?}");
        assert_eq!(mine[0]["lease_id"], lease_id);
        assert_eq!(mine[0]["last_heartbeat"], latchkey::clock::rfc3339(now));
        assert_eq!(mine[0]["expires_at"], latchkey::clock::rfc3339(now + lease_ttl));
        assert_eq!(mine[0]["idle_seconds"], 7);
    }
    assert!(onprem.clock_now() > started + lease_ttl);
    // The seat that was not heartbeaten has lapsed meanwhile.
    let held = seat_list(&onprem, &v.license).await;
    assert_eq!(held.len(), 1, "{held:#?}");

    // The other four imported seats taken, a second product gets none: the seat-limit error.
    for i in 0..4 {
        let t = onprem_user(&onprem, &v.license, &format!("f{i}")).await;
        assert_eq!(checkout(&onprem, Some(&t), &format!("f{i}")).await.status(), StatusCode::CREATED);
    }
    let bob = onprem_password_user(&onprem, &v.license, "bob").await;
    let mut second = start_product(&onprem, &bob, "bob-pc");
    let refused = second.line("no seat").await.expect("the refusal");
    assert!(refused.contains("all 5 seats are in use"), "{refused}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), second.child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
    let denied = onprem.audited(Some("acme"), "seat.denied").await;
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0]["details"], json!({ "product": "readyapi", "reason": "no_seat_available" }));
    assert_eq!(seat_list(&onprem, &v.license).await.len(), 5);

    // The on-premise server's usage report shows the seats and the refusal (a moment later: a
    // seat taken at the report's last instant counts for nothing yet).
    onprem.advance(std::time::Duration::from_secs(10));
    let (from, to) = (latchkey::clock::utc_day(started), latchkey::clock::utc_day(onprem.clock_now()));
    let report: Value = onprem
        .get(&format!("/api/v1/entities/acme/reports/usage?from={from}&to={to}"), onprem.op())
        .await
        .json()
        .await
        .unwrap();
    let rows: Vec<&Value> =
        report.as_array().unwrap().iter().filter(|r| r["license_id"] == v.license.as_str()).collect();
    let peak = rows.iter().map(|r| r["peak_concurrent"].as_i64().unwrap()).max();
    let denials: i64 = rows.iter().map(|r| r["denials"].as_i64().unwrap()).sum();
    assert_eq!((peak, denials), (Some(5), 1), "{report:#}");

    // Ctrl-C releases the seat; then the second product gets it, and releases it too.
    product.interrupt().await;
    let held = seat_list(&onprem, &v.license).await;
    assert_eq!(held.len(), 4, "{held:#?}");
    assert!(held.iter().all(|s| s["lease_id"] != lease_id), "{held:#?}");
    let mut second = start_product(&onprem, &bob, "bob-pc");
    second.line("checked out on bob-pc").await.expect("a seat");
    let held = seat_list(&onprem, &v.license).await;
    assert_eq!(held.iter().filter(|s| s["machine"] == "bob-pc").count(), 1, "{held:#?}");
    second.interrupt().await;
    assert_eq!(seat_list(&onprem, &v.license).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_everyone_access_a_machine_takes_a_seat_without_a_token() {
    let v = vendor().await;
    let onprem = onprem_for(&v.app, true).await;
    move_on_premise(&v, &onprem).await;
    // The usage command reads the wall clock: keep this server's clock behind it.
    onprem.clock.set(onprem.clock_now() - 600_000);
    let mut leases = Vec::new();
    for i in 0..5 {
        let r = checkout(&onprem, None, &format!("lab-{i}")).await;
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        leases.push(body);
    }
    // The same machine again gets its own seat back; a sixth machine waits.
    let again: Value = checkout(&onprem, None, "lab-0").await.json().await.unwrap();
    assert_eq!(again["lease_id"], leases[0]["lease_id"]);
    assert_problem(checkout(&onprem, None, "lab-5").await, StatusCode::CONFLICT, "no_seat_available").await;
    onprem.advance(std::time::Duration::from_secs(60));
    let id = leases[1]["lease_id"].as_str().unwrap();
    let hb = onprem.post(&format!("/api/v1/seats/{id}/heartbeat"), None, json!({})).await;
    assert_eq!(hb.status(), StatusCode::OK);
    assert_eq!(onprem.delete(&format!("/api/v1/seats/{id}"), None).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(checkout(&onprem, None, "lab-5").await.status(), StatusCode::CREATED);
    // Usage counts machines as users.
    let (ok, usage, err) = cli(&onprem, &["onprem", "usage"]).await;
    assert!(ok, "{err}");
    let days = payload(&usage)["licenses"][0]["days"].as_array().unwrap().clone();
    let day = days.iter().max_by_key(|d| d["distinct_users"].as_i64()).unwrap();
    assert_eq!(day["distinct_users"], 6, "{day}");
    assert_eq!(day["peak_seats"], 5, "{day}");
    // Without everyone access, a tokenless checkout is refused.
    let closed = onprem_for(&v.app, false).await;
    assert_eq!(checkout(&closed, None, "lab-0").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_license_runs_the_product_without_a_server_and_holds_its_seat_until_returned() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 2).await;
    let email = app.email("field");
    app.assign(&license, &email).await;
    let path = format!("/api/v1/licenses/{license}/offline");
    let machine_id = temp_file("machine-id", "0123456789abcdef0123456789abcdef\n");
    let mid = machine_id.to_str().unwrap();

    let mut product = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    let out = product
        .args([
            "product",
            "offline-request",
            "--product",
            "readyapi",
            "--email",
            &email,
            "--machine",
            "field-pc",
            "--machine-id-file",
            mid,
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let request = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // Not before the operator allows it.
    assert_problem(
        app.post(&path, Some(&admin), json!({ "request": request })).await,
        StatusCode::FORBIDDEN,
        "offline_not_allowed",
    )
    .await;
    let r = app.patch(&format!("/api/v1/licenses/{license}"), Some(&admin), json!({ "offline_allowed": true })).await;
    assert_problem(r, StatusCode::FORBIDDEN, "operator_only").await;
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "offline_allowed": true })).await;
    assert_eq!(r.status(), StatusCode::OK);

    let r = app.post(&path, Some(&admin), json!({ "request": request })).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let file = body["license_file"].as_str().unwrap().to_string();
    assert_eq!(payload(&file)["sub"], email.to_lowercase());
    // The seat is taken: the list shows it and the user cannot go online elsewhere.
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(seats.as_array().unwrap().len(), 1, "{seats}");
    let t = app.token_for(&email, "readyapi").await;
    assert_problem(checkout(&app, Some(&t), "other-pc").await, StatusCode::CONFLICT, "seat_in_use").await;
    assert_problem(
        app.post(&path, Some(&admin), json!({ "request": request })).await,
        StatusCode::CONFLICT,
        "offline_active",
    )
    .await;
    // Nor can the assignment be revoked under it.
    let r = app.delete(&format!("/api/v1/licenses/{license}/assignments/{email}"), Some(&admin)).await;
    assert_problem(r, StatusCode::CONFLICT, "offline_active").await;
    // An administrator cannot disconnect it; only the deactivation code frees it.
    let lease_id = seats[0]["lease_id"].as_str().unwrap();
    assert_problem(
        app.delete(&format!("/api/v1/seats/{lease_id}"), Some(&admin)).await,
        StatusCode::CONFLICT,
        "offline_seat",
    )
    .await;
    // Nor can its user release it online.
    let r = app.delete(&format!("/api/v1/seats/{lease_id}"), Some(&t)).await;
    assert_problem(r, StatusCode::CONFLICT, "offline_seat").await;
    // Nor heartbeat it: that would cut its life to one lease TTL and free the seat while the file
    // still runs. The seat is still held one lease TTL (5 minutes) later.
    let r = app.post(&format!("/api/v1/seats/{lease_id}/heartbeat"), Some(&t), json!({})).await;
    assert_problem(r, StatusCode::CONFLICT, "offline_seat").await;
    app.advance(std::time::Duration::from_secs(6 * 60));
    assert_problem(checkout(&app, Some(&t), "other-pc").await, StatusCode::CONFLICT, "seat_in_use").await;

    // The product runs with no server at all (the server is not even named).
    let jwks = app.get("/.well-known/latchkey-license-keys.json", None).await.text().await.unwrap();
    let key_file = temp_file("keys.json", &jwks);
    let license_file = temp_file("license.jwt", &file);
    let run = |machine: &'static str, sku: &'static str, key: PathBuf, lic: PathBuf| {
        let mid = mid.to_string();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
                .args([
                    "product",
                    "run",
                    "--license-file",
                    lic.to_str().unwrap(),
                    "--license-public-key",
                    key.to_str().unwrap(),
                    "--product",
                    sku,
                    "--machine",
                    machine,
                    "--machine-id-file",
                    &mid,
                    "--check",
                ])
                .output()
                .await
                .unwrap();
            (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
        }
    };
    let (ok, err) = run("field-pc", "readyapi", key_file.clone(), license_file.clone()).await;
    assert!(ok, "{err}");
    assert!(err.contains("licensed offline"), "{err}");
    let (ok, err) = run("other-pc", "readyapi", key_file.clone(), license_file.clone()).await;
    assert!(!ok && err.contains("another computer"), "{err}");
    let (ok, err) = run("field-pc", "soapui", key_file.clone(), license_file.clone()).await;
    assert!(!ok && err.contains("is for `readyapi`"), "{err}");
    let (_, other_jwk) = jws::generate().unwrap();
    let mut other_jwk = other_jwk;
    other_jwk["kid"] = payload_header_kid(&file);
    let (ok, err) = run(
        "field-pc",
        "readyapi",
        temp_file("other.json", &json!({ "keys": [other_jwk] }).to_string()),
        license_file.clone(),
    )
    .await;
    assert!(!ok && err.contains("signature"), "{err}");
    let mut longer = payload(&file);
    longer["exp"] = json!(longer["exp"].as_i64().unwrap() + 86_400 * 3650);
    let (ok, err) =
        run("field-pc", "readyapi", key_file.clone(), temp_file("forged.jwt", &with_payload(&file, &longer))).await;
    assert!(!ok && err.contains("signature"), "{err}");
    // PyJWT reads it with the published key too.
    let script = r#"
import sys, json, jwt
inp = json.load(sys.stdin)
key = jwt.PyJWKSet.from_dict(inp["jwks"]).keys[0]
print(json.dumps(jwt.decode(inp["token"], key=key.key, algorithms=["EdDSA"])))
"#;
    let claims =
        python_json(script, &json!({ "token": file, "jwks": serde_json::from_str::<Value>(&jwks).unwrap() })).await;
    assert_eq!(claims["product"], "readyapi");

    // Returned: a deactivation code frees the seat, once.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "product",
            "offline-return",
            "--license-file",
            license_file.to_str().unwrap(),
            "--machine",
            "field-pc",
            "--machine-id-file",
            mid,
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!license_file.exists(), "the product deletes its license file");
    let code = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let back = format!("/api/v1/licenses/{license}/offline/return");
    assert_eq!(app.post(&back, Some(&admin), json!({ "deactivation": code })).await.status(), StatusCode::OK);
    assert_problem(
        app.post(&back, Some(&admin), json!({ "deactivation": code })).await,
        StatusCode::CONFLICT,
        "already_returned",
    )
    .await;
    assert_problem(
        app.post(&back, Some(&admin), json!({ "deactivation": "bm90IGEgY29kZQ" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_deactivation",
    )
    .await;
    let events = audit_events(&app).await;
    let actions: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("offline."))
        .map(|e| (e["action"].as_str().unwrap(), e["details"]["code"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [
            ("offline.issued", ""),
            ("offline.returned", ""),
            ("offline.return_refused", "already_returned"),
            ("offline.return_refused", "invalid_deactivation")
        ],
        "{events:#?}"
    );
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(seats, json!([]));
    assert_eq!(checkout(&app, Some(&t), "other-pc").await.status(), StatusCode::CREATED);
}

fn payload_header_kid(token: &str) -> Value {
    let h: Value =
        serde_json::from_slice(&latchkey::crypto::b64url_decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    h["kid"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_offline_license_file_does_not_run() {
    // The server's clock is ten days behind the computer's: the file it issues has expired there.
    let app = spawn_app().await;
    app.clock.set(app.clock_now() - 10 * 86_400_000);
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let r = app
        .post(
            "/api/v1/entities/acme/licenses",
            app.op(),
            json!({ "product": "readyapi", "type": "fixed", "seats": 1, "expires_at": latchkey::clock::rfc3339(app.clock_now() + 5 * 86_400_000) }),
        )
        .await;
    let license = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "offline_allowed": true })).await;
    let email = app.email("late");
    app.assign(&license, &email).await;
    let machine_id = temp_file("machine-id", "feedfacefeedfacefeedfacefeedface\n");
    let fp_req = |m: &str| {
        let fp = latchkey::product::offline::Computer { machine: Some(m.into()), machine_id_file: machine_id.clone() }
            .fingerprint();
        jws::encode_b64_json(&json!({ "fingerprint": fp, "user": email, "product": "readyapi" }))
    };
    let r = app
        .post(&format!("/api/v1/licenses/{license}/offline"), Some(&admin), json!({ "request": fp_req("pc") }))
        .await;
    let file = r.json::<Value>().await.unwrap()["license_file"].as_str().unwrap().to_string();
    let jwks = app.get("/.well-known/latchkey-license-keys.json", None).await.text().await.unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "product",
            "run",
            "--license-file",
            temp_file("l.jwt", &file).to_str().unwrap(),
            "--license-public-key",
            temp_file("k.json", &jwks).to_str().unwrap(),
            "--product",
            "readyapi",
            "--machine",
            "pc",
            "--machine-id-file",
            machine_id.to_str().unwrap(),
            "--check",
        ])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("expired"), "{err}");
}
