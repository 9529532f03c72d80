use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

struct Fixture {
    app: TestApp,
    admin: String,
    license: String,
}

/// An entity with one license of `readyapi`; its admin's portal token.
async fn fixture(kind: &str, seats: i64) -> Fixture {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    app.create_product("soapui").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", kind, seats).await;
    Fixture { app, admin, license }
}

async fn user_token(app: &TestApp, license: &str, local: &str) -> String {
    let email = app.email(local);
    app.assign(license, &email).await;
    app.token_for(&email, "readyapi").await
}

async fn checkout(app: &TestApp, token: &str, machine: &str) -> reqwest::Response {
    app.post("/api/v1/seats", Some(token), json!({ "product": "readyapi", "machine": machine })).await
}

async fn heartbeat(app: &TestApp, token: &str, lease: &str, idle: i64) -> reqwest::Response {
    app.post(&format!("/api/v1/seats/{lease}/heartbeat"), Some(token), json!({ "idle_seconds": idle })).await
}

async fn granted(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_floating_pool_grants_free_seats_and_refuses_past_its_size() {
    let Fixture { app, license, .. } = fixture("floating", 2).await;
    let (a, b, c) = (
        user_token(&app, &license, "a").await,
        user_token(&app, &license, "b").await,
        user_token(&app, &license, "c").await,
    );
    let la = granted(checkout(&app, &a, "a-laptop").await).await;
    assert_eq!(la["heartbeat_interval_s"], 60);
    assert_eq!(la["lease_ttl_s"], 300);
    assert_eq!(la["offline_grace_s"], 86_400);
    granted(checkout(&app, &b, "b-laptop").await).await;
    let v = assert_problem(checkout(&app, &c, "c-laptop").await, StatusCode::CONFLICT, "no_seat_available").await;
    assert_eq!(v["seats"], 2);
    assert_eq!(v["in_use"], 2);
    assert!(v["detail"].as_str().unwrap().contains('2'));
    // a exits: c gets the seat.
    let r = app.delete(&format!("/api/v1/seats/{}", la["lease_id"].as_str().unwrap()), Some(&a)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    granted(checkout(&app, &c, "c-laptop").await).await;
}

#[tokio::test]
async fn one_person_may_hold_several_floating_seats_on_several_computers() {
    let Fixture { app, license, .. } = fixture("floating", 3).await;
    let a = user_token(&app, &license, "a").await;
    let one = granted(checkout(&app, &a, "desk").await).await;
    let two = granted(checkout(&app, &a, "laptop").await).await;
    assert_ne!(one["lease_id"], two["lease_id"]);
    // The same computer again is the same seat, not a third one.
    let again = granted(checkout(&app, &a, "desk").await).await;
    assert_eq!(again["lease_id"], one["lease_id"]);
}

#[tokio::test]
async fn a_fixed_seat_is_one_computer_at_a_time_and_a_crashed_product_gets_it_back() {
    let Fixture { app, license, .. } = fixture("fixed", 3).await;
    let a = user_token(&app, &license, "a").await;
    let first = granted(checkout(&app, &a, "desk").await).await;
    assert_problem(checkout(&app, &a, "laptop").await, StatusCode::CONFLICT, "seat_in_use").await;
    // The product crashed and is started again on the same computer: same lease.
    app.advance(Duration::from_secs(120));
    let rerun = granted(checkout(&app, &a, "desk").await).await;
    assert_eq!(rerun["lease_id"], first["lease_id"]);
    // Another computer waits until the lease lapses (5 minutes without a heartbeat)...
    app.advance(Duration::from_secs(299));
    assert_problem(checkout(&app, &a, "laptop").await, StatusCode::CONFLICT, "seat_in_use").await;
    app.advance(Duration::from_secs(2));
    let laptop = granted(checkout(&app, &a, "laptop").await).await;
    assert_ne!(laptop["lease_id"], first["lease_id"]);
    // ...and the lapsed lease answers its heartbeat with 410.
    let r = heartbeat(&app, &a, first["lease_id"].as_str().unwrap(), 0).await;
    assert_problem(r, StatusCode::GONE, "lease_expired").await;
}

#[tokio::test]
async fn heartbeats_keep_the_seat_and_return_a_fresh_lease_token_that_verifies_offline() {
    let Fixture { app, license, .. } = fixture("floating", 1).await;
    let a = user_token(&app, &license, "a").await;
    let b = user_token(&app, &license, "b").await;
    let lease = granted(checkout(&app, &a, "a-laptop").await).await;
    let id = lease["lease_id"].as_str().unwrap();
    for _ in 0..10 {
        app.advance(Duration::from_secs(60));
        let r = heartbeat(&app, &a, id, 0).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    // Ten minutes later the seat is still held: heartbeats renewed it.
    assert_problem(checkout(&app, &b, "b-laptop").await, StatusCode::CONFLICT, "no_seat_available").await;
    let beat: Value = heartbeat(&app, &a, id, 0).await.json().await.unwrap();
    let token = beat["lease_token"].as_str().unwrap();
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    let v = python_json(
        r#"
import json, sys, jwt
d = json.load(sys.stdin)
h = jwt.get_unverified_header(d["token"])
jwk = [k for k in d["jwks"]["keys"] if k["kid"] == h["kid"]][0]
# The test's clock runs ahead of the wall clock: allow for it in the time checks.
c = jwt.decode(d["token"], jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience="readyapi", issuer=d["iss"], leeway=86400)
print(json.dumps({"header": h, "claims": c}))
"#,
        &json!({ "token": token, "jwks": jwks, "iss": app.base }),
    )
    .await;
    assert_eq!(v["header"]["typ"], "lease+jwt");
    let c = &v["claims"];
    assert_eq!(c["lease_id"], id);
    assert_eq!(c["license_id"], license);
    assert_eq!(c["product"], "readyapi");
    assert_eq!(c["machine"], "a-laptop");
    assert_eq!(c["exp"].as_i64().unwrap() - app.clock_now() / 1000, 86_400);
    // A lease token is not an access token.
    assert_problem(app.get("/api/v1/me", Some(token)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
}

#[tokio::test]
async fn checkout_refuses_the_unlicensed_and_the_expired() {
    let Fixture { app, license, .. } = fixture("floating", 5).await;
    let a = user_token(&app, &license, "a").await;
    let r = app.post("/api/v1/seats", Some(&a), json!({ "product": "soapui", "machine": "m" })).await;
    assert_problem(r, StatusCode::FORBIDDEN, "not_licensed").await;
    let r = app.post("/api/v1/seats", Some(&a), json!({ "product": "nope", "machine": "m" })).await;
    assert_problem(r, StatusCode::FORBIDDEN, "not_licensed").await;
    let r = app.post("/api/v1/seats", Some(&a), json!({ "product": "readyapi", "machine": "" })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = app.post("/api/v1/seats", None, json!({ "product": "readyapi", "machine": "m" })).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let lease = granted(checkout(&app, &a, "m").await).await;
    let soon = latchkey::clock::rfc3339(app.clock_now() + 240_000);
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "expires_at": soon })).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.advance(Duration::from_secs(241));
    assert_problem(checkout(&app, &a, "other").await, StatusCode::GONE, "license_expired").await;
    let r = heartbeat(&app, &a, lease["lease_id"].as_str().unwrap(), 0).await;
    assert!(r.status() == StatusCode::GONE, "{}", r.status());
}

#[tokio::test]
async fn a_fixed_seat_is_used_before_the_floating_pools() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    app.entity_with_admin("acme").await;
    let floating = app.create_license("acme", "readyapi", "floating", 5).await;
    let fixed = app.create_license("acme", "readyapi", "fixed", 1).await;
    let email = app.email("a");
    app.assign(&floating, &email).await;
    app.assign(&fixed, &email).await;
    let t = app.token_for(&email, "readyapi").await;
    let first = granted(checkout(&app, &t, "desk").await).await;
    assert_eq!(first["license_id"], fixed);
    // The fixed seat is busy on the desk: the laptop draws from the pool.
    let second = granted(checkout(&app, &t, "laptop").await).await;
    assert_eq!(second["license_id"], floating);
}

#[tokio::test]
async fn administrators_see_live_seats_and_disconnect_them() {
    let Fixture { app, admin, license } = fixture("floating", 3).await;
    let a = user_token(&app, &license, "a").await;
    let lease = granted(checkout(&app, &a, "build-agent-7").await).await;
    let id = lease["lease_id"].as_str().unwrap();
    app.advance(Duration::from_secs(30));
    heartbeat(&app, &a, id, 25).await;
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    let s = &seats[0];
    assert_eq!(s["lease_id"], id);
    assert_eq!(s["email"], app.email("a"));
    assert_eq!(s["machine"], "build-agent-7");
    assert_eq!(s["idle_seconds"], 25);
    assert!(s["since"].is_string() && s["last_heartbeat"].is_string());

    // Another entity's administrator sees nothing and cannot disconnect.
    let other = app.entity_with_admin("globex").await;
    assert_problem(
        app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&other)).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(app.delete(&format!("/api/v1/seats/{id}"), Some(&other)).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    // Nor can another user.
    let b = user_token(&app, &license, "b").await;
    assert_problem(app.delete(&format!("/api/v1/seats/{id}"), Some(&b)).await, StatusCode::FORBIDDEN, "wrong_audience")
        .await;

    let r = app.delete(&format!("/api/v1/seats/{id}"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(heartbeat(&app, &a, id, 0).await, StatusCode::GONE, "lease_revoked").await;
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(seats, json!([]));
}

#[tokio::test]
async fn a_fixed_seat_stores_no_machine_name() {
    let Fixture { app, admin, license } = fixture("fixed", 2).await;
    let a = user_token(&app, &license, "a").await;
    granted(checkout(&app, &a, "alices-secret-laptop").await).await;
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    assert!(seats[0].get("machine").is_none(), "{seats}");
    assert!(!app.database_text().await.contains("alices-secret-laptop"));
    // The product names its computer in heartbeats: the renewed lease token carries it, and a
    // heartbeat naming another computer is refused.
    let lease: Value = granted(checkout(&app, &a, "alices-secret-laptop").await).await;
    let id = lease["lease_id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/seats/{id}/heartbeat"),
            Some(&a),
            json!({ "idle_seconds": 0, "machine": "alices-secret-laptop" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let token = r.json::<Value>().await.unwrap()["lease_token"].as_str().unwrap().to_string();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["machine"], "alices-secret-laptop");
    let r = app
        .post(
            &format!("/api/v1/seats/{id}/heartbeat"),
            Some(&a),
            json!({ "idle_seconds": 0, "machine": "mallorys-box" }),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT, "machine_mismatch").await;
}

#[tokio::test]
async fn an_idle_policy_disconnects_idle_seats() {
    let Fixture { app, admin, license } = fixture("floating", 1).await;
    let r = app.patch(&format!("/api/v1/licenses/{license}"), Some(&admin), json!({ "idle_timeout_minutes": 5 })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["idle_timeout_minutes"], 5);
    let a = user_token(&app, &license, "a").await;
    let b = user_token(&app, &license, "b").await;
    let lease = granted(checkout(&app, &a, "m").await).await;
    let id = lease["lease_id"].as_str().unwrap();
    assert_eq!(heartbeat(&app, &a, id, 240).await.status(), StatusCode::OK);
    let v = assert_problem(heartbeat(&app, &a, id, 300).await, StatusCode::GONE, "lease_revoked").await;
    assert!(v["detail"].as_str().unwrap().contains("idle"));
    granted(checkout(&app, &b, "n").await).await;
}

#[tokio::test]
async fn revoking_an_assignment_ends_its_seats() {
    let Fixture { app, admin, license } = fixture("floating", 2).await;
    let a = user_token(&app, &license, "a").await;
    let lease = granted(checkout(&app, &a, "m").await).await;
    let r = app.delete(&format!("/api/v1/licenses/{license}/assignments/{}", app.email("a")), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_problem(
        heartbeat(&app, &a, lease["lease_id"].as_str().unwrap(), 0).await,
        StatusCode::GONE,
        "lease_revoked",
    )
    .await;
    assert_problem(checkout(&app, &a, "m").await, StatusCode::FORBIDDEN, "not_licensed").await;
}

#[tokio::test]
async fn a_revoked_session_cannot_keep_its_seat() {
    let Fixture { app, license, .. } = fixture("floating", 2).await;
    let email = app.email("a");
    app.assign(&license, &email).await;
    app.set_password_from_mail(&email, PASSWORD).await;
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let at = t["access_token"].as_str().unwrap();
    let lease = granted(checkout(&app, at, "m").await).await;
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[("token", t["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(
        heartbeat(&app, at, lease["lease_id"].as_str().unwrap(), 0).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn heartbeats_of_unknown_or_foreign_leases_are_not_found() {
    let Fixture { app, license, .. } = fixture("floating", 2).await;
    let a = user_token(&app, &license, "a").await;
    let b = user_token(&app, &license, "b").await;
    let lease = granted(checkout(&app, &a, "m").await).await;
    assert_problem(
        heartbeat(&app, &b, lease["lease_id"].as_str().unwrap(), 0).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_problem(heartbeat(&app, &a, "no-such-lease", 0).await, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .post(
            &format!("/api/v1/seats/{}/heartbeat", lease["lease_id"].as_str().unwrap()),
            Some(&a),
            json!({ "idle_seconds": -5 }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
}

#[tokio::test]
async fn the_usage_report_shows_the_days_peak_denials_and_hours() {
    let Fixture { app, admin, license } = fixture("floating", 2).await;
    let r = app.patch(&format!("/api/v1/licenses/{license}"), Some(&admin), json!({ "group": "QA" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let (a, b, c) = (
        user_token(&app, &license, "a").await,
        user_token(&app, &license, "b").await,
        user_token(&app, &license, "c").await,
    );
    let la = granted(checkout(&app, &a, "m1").await).await;
    granted(checkout(&app, &b, "m2").await).await;
    assert_problem(checkout(&app, &c, "m3").await, StatusCode::CONFLICT, "no_seat_available").await;
    assert_problem(checkout(&app, &c, "m3").await, StatusCode::CONFLICT, "no_seat_available").await;
    app.advance(Duration::from_secs(60));
    app.delete(&format!("/api/v1/seats/{}", la["lease_id"].as_str().unwrap()), Some(&a)).await;

    let today = latchkey::clock::utc_day(app.clock_now()).to_string();
    let r =
        app.get(&format!("/api/v1/entities/acme/reports/usage?from={today}&to={today}&format=csv"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "date,license_id,product,group,seats,peak_concurrent,seat_hours,denials,distinct_users"
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(row[0], today);
    assert_eq!(row[1], license);
    assert_eq!(row[2], "readyapi");
    assert_eq!(row[3], "QA");
    assert_eq!(row[4], "2");
    assert_eq!(row[5], "2", "peak");
    assert_eq!(row[7], "2", "denials");
    assert_eq!(row[8], "2", "distinct users");

    let v: Value = app.get("/api/v1/entities/acme/reports/usage", Some(&admin)).await.json().await.unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 1, "30 days by default, but the license exists since today");
    assert_eq!(rows[0]["peak_concurrent"], 2);
    let r = app.get("/api/v1/entities/acme/reports/usage?group=QA", Some(&admin)).await;
    assert_eq!(r.json::<Value>().await.unwrap().as_array().unwrap().len(), 1);
    let r = app.get("/api/v1/entities/acme/reports/usage?group=Sales", Some(&admin)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "unknown_group").await;
    let r = app.get("/api/v1/entities/acme/reports/usage?from=2026-13-01", Some(&admin)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = app.get("/api/v1/entities/acme/reports/usage?format=xml", Some(&admin)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = app.get("/api/v1/entities/acme/reports/usage?to=-9999-01-05", Some(&admin)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
}

/// Far more checkouts than seats, at once, against two servers sharing one database, many rounds:
/// exactly `seats` win each round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seat_limit_holds_across_two_replicas_under_a_race() {
    let Fixture { app, license, .. } = fixture("floating", 5).await;
    let replica = spawn_app_with(Options {
        database_url: Some(app.state.config.database_url.clone()),
        clock: Some(app.clock.clone()),
        // A replica shares the database, the master key and the public URL.
        tweak: Box::new({
            let (key, base) = (app.state.config.master_key_file.clone(), app.base.clone());
            move |c| {
                c.master_key_file = key;
                c.public_url = Some(base);
            }
        }),
        ..Default::default()
    })
    .await;
    let mut emails = Vec::new();
    for i in 0..30 {
        let email = app.email(&format!("racer{i}"));
        app.assign(&license, &email).await;
        emails.push(email);
    }
    for round in 0..6 {
        let mut tokens = Vec::new();
        for e in &emails {
            tokens.push(app.token_for(e, "readyapi").await);
        }
        let mut tasks = Vec::new();
        for (i, t) in tokens.iter().enumerate() {
            let (client, base) = (app.client.clone(), if i % 2 == 0 { app.base.clone() } else { replica.base.clone() });
            let t = t.clone();
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
        let live = latchkey::store::leases::count_live(&app.state.db.pool, &license, app.clock_now()).await.unwrap();
        assert_eq!(live, 5);
        // Let every lease lapse before the next round.
        app.advance(Duration::from_secs(301));
    }
}
