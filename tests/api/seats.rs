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

/// The checkout reads the token's revocation in its own first statement (with the candidate
/// licenses): a revoked access token or session is refused first, whatever else is wrong, and
/// takes no seat.
#[tokio::test]
async fn a_revoked_token_or_session_checks_out_nothing() {
    let Fixture { app, license, .. } = fixture("floating", 2).await;
    let email = app.email("a");
    app.assign(&license, &email).await;
    app.set_password_from_mail(&email, PASSWORD).await;
    let revoke = async |token: &str| {
        let r = app
            .client
            .post(app.url("/oauth/revoke"))
            .form(&[("token", token), ("client_id", "readyapi")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    };
    let refused = async |at: &str| {
        assert_problem(checkout(&app, at, "m").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let other = app.post("/api/v1/seats", Some(at), json!({ "product": "soapui", "machine": "m" })).await;
        assert_problem(other, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert_problem(checkout(&app, at, "  ").await, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let bad = app.post("/api/v1/seats", Some(at), json!({ "product": "readyapi" })).await;
        assert_problem(bad, StatusCode::UNAUTHORIZED, "unauthorized").await;
    };
    // The access token itself.
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let at = t["access_token"].as_str().unwrap();
    granted(checkout(&app, at, "before").await).await;
    revoke(at).await;
    refused(at).await;
    // Its session: every access token of it.
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let at = t["access_token"].as_str().unwrap();
    revoke(t["refresh_token"].as_str().unwrap()).await;
    refused(at).await;
    let live = latchkey::store::leases::count_live(&app.state.db.pool, &license, app.clock_now()).await.unwrap();
    assert_eq!(live, 1, "only the checkout made before the revocation holds a seat");
    // A token in force is still served, and the wrong body told as such.
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let at = t["access_token"].as_str().unwrap();
    assert_problem(checkout(&app, at, "  ").await, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    granted(checkout(&app, at, "after").await).await;
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
        "date,license_id,product,group,seats,peak_concurrent,seat_hours,denials,distinct_users,tz"
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
    assert_eq!(row[9], "UTC", "the zone of the days");

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

/// A heartbeat does not wait for its commit to reach the disk on PostgreSQL, and that is true of
/// its own transaction only: the connection it ran on commits synchronously again afterwards.
#[tokio::test]
async fn a_heartbeats_relaxed_durability_ends_with_its_own_transaction() {
    use latchkey::store::{Backend, leases};
    let Fixture { app, license, .. } = fixture("floating", 1).await;
    let a = user_token(&app, &license, "a").await;
    let lease = granted(checkout(&app, &a, "m").await).await;
    let id = lease["lease_id"].as_str().unwrap();
    let user_id = leases::by_id(&app.state.db.pool, id).await.unwrap().unwrap().user_id;
    let now = app.clock_now();
    let args = leases::BeatArgs {
        lease_id: id,
        user_id: &user_id,
        sid: "no-such-session",
        jti: "no-such-token",
        now,
        expires_at: now + 300_000,
        idle_seconds: 7,
    };
    let backend = app.state.db.backend;
    let mut conn = app.state.db.pool.acquire().await.unwrap();
    assert!(leases::heartbeat(&mut *conn, backend, &args).await.unwrap().is_some());
    if backend == Backend::Postgres {
        let show = async |conn: &mut sqlx::AnyConnection| -> String {
            sqlx::query_as::<_, (String,)>("SHOW synchronous_commit").fetch_one(conn).await.unwrap().0
        };
        assert_eq!(show(&mut conn).await, "on", "the setting outlived the heartbeat's transaction");
        // Inside a transaction the setting is visible: the heartbeat really turns it off...
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
        assert!(leases::heartbeat(&mut *conn, backend, &args).await.unwrap().is_some());
        assert_eq!(show(&mut conn).await, "off");
        sqlx::query("COMMIT").execute(&mut *conn).await.unwrap();
        // ...and only until that transaction ends.
        assert_eq!(show(&mut conn).await, "on");
    }
    drop(conn);
    let stored = leases::by_id(&app.state.db.pool, id).await.unwrap().unwrap();
    assert_eq!((stored.idle_seconds, stored.expires_at), (7, now + 300_000));
}

/// The slots of a floating license always number its seats plus the surplus left by a decrease.
async fn assert_slots(app: &TestApp, license: &str, seats: i64) -> i64 {
    let mut conn = app.state.db.pool.acquire().await.unwrap();
    let (slots, surplus) = latchkey::store::slots::count(&mut conn, license).await.unwrap();
    assert_eq!(slots, seats + surplus, "slots {slots}, seats {seats}, surplus {surplus}");
    surplus
}

async fn release(app: &TestApp, token: &str, lease: &Value) {
    let r = app.delete(&format!("/api/v1/seats/{}", lease["lease_id"].as_str().unwrap()), Some(token)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// Lowering the seats while every seat is held cuts no running product off, and grants no new seat
/// until fewer leases than the new number are live; raising them again grants at once.
#[tokio::test]
async fn lowering_the_seats_while_they_are_held_grants_nothing_until_enough_are_released() {
    let Fixture { app, license, .. } = fixture("floating", 5).await;
    let mut users = Vec::new();
    for i in 0..7 {
        users.push(user_token(&app, &license, &format!("u{i}")).await);
    }
    let mut held = Vec::new();
    for (i, t) in users.iter().take(5).enumerate() {
        held.push(granted(checkout(&app, t, &format!("m{i}")).await).await);
    }
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "seats": 3 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(assert_slots(&app, &license, 3).await, 2);
    // The five running products keep their seats.
    for (i, l) in held.iter().enumerate() {
        assert_eq!(heartbeat(&app, &users[i], l["lease_id"].as_str().unwrap(), 0).await.status(), StatusCode::OK);
    }
    let v = assert_problem(checkout(&app, &users[5], "m5").await, StatusCode::CONFLICT, "no_seat_available").await;
    assert_eq!((v["seats"].as_i64(), v["in_use"].as_i64()), (Some(3), Some(5)));
    release(&app, &users[0], &held[0]).await;
    release(&app, &users[1], &held[1]).await;
    // Three live for three seats: still full.
    let v = assert_problem(checkout(&app, &users[5], "m5").await, StatusCode::CONFLICT, "no_seat_available").await;
    assert_eq!(v["in_use"], 3);
    release(&app, &users[2], &held[2]).await;
    granted(checkout(&app, &users[5], "m5").await).await;
    assert_problem(checkout(&app, &users[6], "m6").await, StatusCode::CONFLICT, "no_seat_available").await;
    assert_eq!(assert_slots(&app, &license, 3).await, 0);
    let live = latchkey::store::leases::count_live(&app.state.db.pool, &license, app.clock_now()).await.unwrap();
    assert_eq!(live, 3);
    // Raised again: the new seat is free at once.
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "seats": 4 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(assert_slots(&app, &license, 4).await, 0);
    granted(checkout(&app, &users[6], "m6").await).await;
    assert_problem(checkout(&app, &users[0], "m0").await, StatusCode::CONFLICT, "no_seat_available").await;
    // Lowered while some seats are free: those go first, and nobody is over the limit.
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "seats": 10 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "seats": 4 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(assert_slots(&app, &license, 4).await, 0);
    assert_problem(checkout(&app, &users[0], "m0").await, StatusCode::CONFLICT, "no_seat_available").await;
}

/// A crashed product's seat frees itself when its lease lapses, while a seat whose product keeps
/// heartbeating stays taken however long ago it was checked out.
#[tokio::test]
async fn a_lapsed_lease_frees_its_slot_and_a_heartbeaten_one_keeps_it() {
    let Fixture { app, license, .. } = fixture("floating", 2).await;
    let (a, b, c, d) = (
        user_token(&app, &license, "a").await,
        user_token(&app, &license, "b").await,
        user_token(&app, &license, "c").await,
        user_token(&app, &license, "d").await,
    );
    let la = granted(checkout(&app, &a, "a-box").await).await;
    let lb = granted(checkout(&app, &b, "b-box").await).await;
    assert_problem(checkout(&app, &c, "c-box").await, StatusCode::CONFLICT, "no_seat_available").await;
    // b keeps heartbeating, a crashed and stays silent.
    for _ in 0..4 {
        app.advance(Duration::from_secs(60));
        let r = heartbeat(&app, &b, lb["lease_id"].as_str().unwrap(), 0).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_problem(checkout(&app, &c, "c-box").await, StatusCode::CONFLICT, "no_seat_available").await;
    }
    app.advance(Duration::from_secs(61));
    // a's lease lapsed (301 s without a heartbeat); b's was checked out as long ago but is live.
    let lc = granted(checkout(&app, &c, "c-box").await).await;
    assert_problem(checkout(&app, &d, "d-box").await, StatusCode::CONFLICT, "no_seat_available").await;
    assert_problem(heartbeat(&app, &a, la["lease_id"].as_str().unwrap(), 0).await, StatusCode::GONE, "lease_expired")
        .await;
    assert_eq!(heartbeat(&app, &b, lb["lease_id"].as_str().unwrap(), 0).await.status(), StatusCode::OK);
    assert_eq!(heartbeat(&app, &c, lc["lease_id"].as_str().unwrap(), 0).await.status(), StatusCode::OK);
    let live = latchkey::store::leases::count_live(&app.state.db.pool, &license, app.clock_now()).await.unwrap();
    assert_eq!(live, 2);
    assert_slots(&app, &license, 2).await;
    // The lapsed lease stays in the usage record with the end it had.
    let old =
        latchkey::store::leases::by_id(&app.state.db.pool, la["lease_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(old.ended_at, None);
    assert!(old.expires_at <= app.clock_now());
}

/// A product started twice at once on the same computer gets one lease, not two seats.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_computer_racing_itself_gets_one_lease() {
    let Fixture { app, license, .. } = fixture("floating", 5).await;
    let a = user_token(&app, &license, "a").await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (client, url, a) = (app.client.clone(), app.url("/api/v1/seats"), a.clone());
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).bearer_auth(a).json(&json!({ "product": "readyapi", "machine": "desk" })).send();
            let r = r.await.unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.unwrap()["lease_id"].as_str().unwrap().to_string()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    let live = latchkey::store::leases::count_live(&app.state.db.pool, &license, app.clock_now()).await.unwrap();
    assert_eq!(live, 1);
}

/// A heartbeat rewrites a lease's last_heartbeat_at, expires_at and idle_seconds and nothing
/// else. No index of `leases` may be keyed on them: on PostgreSQL such an index makes every
/// heartbeat a full (not heap-only) update that writes a new entry into each of the table's
/// indexes; on SQLite it makes each heartbeat rewrite that index's entry too.
#[tokio::test]
async fn no_index_of_leases_covers_what_a_heartbeat_rewrites() {
    use latchkey::store::Backend;
    let app = spawn_app().await;
    let sql = match app.state.db.backend {
        Backend::Postgres => "SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = 'leases'",
        Backend::Sqlite => {
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leases' AND sql IS NOT NULL"
        }
    };
    let indexes: Vec<(String, String)> = sqlx::query_as(sql).fetch_all(&app.state.db.pool).await.unwrap();
    assert!(indexes.len() >= 4, "the indexes of leases were not found: {indexes:?}");
    for (name, def) in &indexes {
        for column in ["last_heartbeat_at", "expires_at", "idle_seconds"] {
            assert!(!def.contains(column), "index {name} covers {column}: {def}");
        }
    }
}

/// The claims of an access token minted in this test (its session and token ids).
async fn claims_of(app: &TestApp, token: &str) -> latchkey::tokens::AccessClaims {
    latchkey::tokens::verify_access(&app.state, token, app.clock_now()).await.unwrap()
}

/// Heartbeats of different leases in one statement each get the answer they would have had
/// alone: a live lease is extended, and a lease that lapsed, one whose session or access token
/// was revoked, one named by another user and an offline license file's seat are refused and
/// left as they were, whatever their neighbours in the batch.
#[tokio::test]
async fn heartbeats_in_one_batch_each_get_their_own_answer() {
    use latchkey::store::leases;
    let Fixture { app, license, .. } = fixture("floating", 10).await;
    let lapsed_user = user_token(&app, &license, "lapsed").await;
    let lapsed = granted(checkout(&app, &lapsed_user, "m-lapsed").await).await;
    app.advance(Duration::from_secs(301));
    let mut users = Vec::new();
    for local in ["live", "session", "token", "offline"] {
        let t = user_token(&app, &license, local).await;
        let lease = granted(checkout(&app, &t, &format!("m-{local}")).await).await;
        users.push((t, lease["lease_id"].as_str().unwrap().to_string()));
    }
    // The live user's second lease, heartbeaten with another user's token.
    let foreign = granted(checkout(&app, &users[0].0, "m-second").await).await;
    let now = app.clock_now();
    let pool = &app.state.db.pool;
    let session = claims_of(&app, &users[1].0).await;
    sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE id = $2")
        .bind(now)
        .bind(&session.sid)
        .execute(pool)
        .await
        .unwrap();
    let token = claims_of(&app, &users[2].0).await;
    sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2)")
        .bind(&token.jti)
        .bind(now + 3_600_000)
        .execute(pool)
        .await
        .unwrap();
    let offline = leases::by_id(pool, &users[3].1).await.unwrap().unwrap();
    sqlx::query(
        "INSERT INTO offline_licenses (jti, license_id, user_id, lease_id, fingerprint_hash, issued_at, expires_at) \
         VALUES ('offline-file', $1, $2, $3, 'fp', $4, $5)",
    )
    .bind(&license)
    .bind(&offline.user_id)
    .bind(&offline.id)
    .bind(now)
    .bind(now + 86_400_000)
    .execute(pool)
    .await
    .unwrap();

    let mut beats = Vec::new();
    // (lease, whose token, expected to be extended)
    let cases = [
        (lapsed["lease_id"].as_str().unwrap().to_string(), lapsed_user.clone(), false),
        (users[0].1.clone(), users[0].0.clone(), true),
        (users[1].1.clone(), users[1].0.clone(), false),
        (users[2].1.clone(), users[2].0.clone(), false),
        (users[3].1.clone(), users[3].0.clone(), false),
        (foreign["lease_id"].as_str().unwrap().to_string(), users[3].0.clone(), false),
    ];
    for (lease, token, _) in &cases {
        beats.push((lease.clone(), claims_of(&app, token).await));
    }
    let mut before = Vec::new();
    for (lease, _, _) in &cases {
        before.push(leases::by_id(pool, lease).await.unwrap().unwrap());
    }
    let args: Vec<leases::BeatArgs> = beats
        .iter()
        .enumerate()
        .map(|(i, (lease, c))| leases::BeatArgs {
            lease_id: lease,
            user_id: &c.sub,
            sid: &c.sid,
            jti: &c.jti,
            now,
            expires_at: now + 300_000,
            idle_seconds: i as i64 + 1,
        })
        .collect();
    let answers = leases::heartbeat_batch(pool, app.state.db.backend, &args).await.unwrap();
    assert_eq!(answers.len(), cases.len());
    for (i, ((lease, _, extended), answer)) in cases.iter().zip(&answers).enumerate() {
        let stored = leases::by_id(pool, lease).await.unwrap().unwrap();
        if *extended {
            let beat = answer.as_ref().expect("the live lease is extended");
            assert_eq!((beat.license_id.as_str(), beat.product.as_str()), (license.as_str(), "readyapi"));
            assert_eq!(beat.machine.as_deref(), Some("m-live"));
            assert_eq!((stored.expires_at, stored.last_heartbeat_at, stored.idle_seconds), (now + 300_000, now, 2));
        } else {
            assert!(answer.is_none(), "case {i} was extended");
            let b = &before[i];
            assert_eq!(
                (stored.expires_at, stored.last_heartbeat_at, stored.idle_seconds),
                (b.expires_at, b.last_heartbeat_at, b.idle_seconds),
                "case {i} was changed"
            );
        }
    }
    // Alone, each of them answers the same.
    for (a, answer) in args.iter().zip(&answers) {
        let alone = leases::heartbeat(pool, app.state.db.backend, a).await.unwrap();
        assert_eq!(alone.is_some(), answer.is_some(), "lease {}", a.lease_id);
    }
    assert!(leases::heartbeat_batch(pool, app.state.db.backend, &[]).await.unwrap().is_empty());
}

/// Many heartbeats at once, over HTTP (so through the process's batches): each answers for its
/// own lease, a lapsed lease, a revoked session's and a foreign one among them, and a lease
/// heartbeaten twice at once is extended twice.
#[tokio::test]
async fn concurrent_heartbeats_each_answer_for_their_own_lease() {
    let Fixture { app, license, .. } = fixture("floating", 40).await;
    let lapsed_user = user_token(&app, &license, "lapsed").await;
    let lapsed = granted(checkout(&app, &lapsed_user, "m-lapsed").await).await;
    app.advance(Duration::from_secs(301));
    let mut live = Vec::new();
    for i in 0..24 {
        let t = user_token(&app, &license, &format!("u{i}")).await;
        let lease = granted(checkout(&app, &t, &format!("m{i}")).await).await;
        live.push((t, lease["lease_id"].as_str().unwrap().to_string()));
    }
    let email = app.email("revoked");
    app.assign(&license, &email).await;
    app.set_password_from_mail(&email, PASSWORD).await;
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let revoked_token = t["access_token"].as_str().unwrap().to_string();
    let revoked = granted(checkout(&app, &revoked_token, "m-revoked").await).await;
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[("token", t["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // (token, lease, expected status)
    let mut cases: Vec<(String, String, StatusCode)> =
        live.iter().map(|(t, l)| (t.clone(), l.clone(), StatusCode::OK)).collect();
    cases.push((live[0].0.clone(), live[0].1.clone(), StatusCode::OK));
    cases.push((lapsed_user.clone(), lapsed["lease_id"].as_str().unwrap().to_string(), StatusCode::GONE));
    cases.push((revoked_token.clone(), revoked["lease_id"].as_str().unwrap().to_string(), StatusCode::UNAUTHORIZED));
    cases.push((live[1].0.clone(), live[2].1.clone(), StatusCode::NOT_FOUND));
    cases.push((live[3].0.clone(), "no-such-lease".to_string(), StatusCode::NOT_FOUND));
    for round in 0..3 {
        let tasks: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, (token, lease, _))| {
                let (client, url, token) =
                    (app.client.clone(), app.url(&format!("/api/v1/seats/{lease}/heartbeat")), token.clone());
                tokio::spawn(async move {
                    let r =
                        client.post(url).bearer_auth(token).json(&json!({ "idle_seconds": i })).send().await.unwrap();
                    (r.status(), r.json::<Value>().await.unwrap())
                })
            })
            .collect();
        for ((_, lease, expected), task) in cases.iter().zip(tasks) {
            let (status, body) = task.await.unwrap();
            assert_eq!(status, *expected, "round {round}, lease {lease}: {body}");
            if status == StatusCode::OK {
                assert_eq!(body["lease_id"], lease.as_str());
                assert_eq!(body["license_id"], license.as_str());
            }
        }
        app.advance(Duration::from_secs(60));
    }
    // Every live lease was extended by the last round, each with its own idle time.
    let now = app.clock_now() - 60_000;
    for (i, (_, lease)) in live.iter().enumerate().skip(1) {
        let l = latchkey::store::leases::by_id(&app.state.db.pool, lease).await.unwrap().unwrap();
        assert_eq!((l.last_heartbeat_at, l.idle_seconds), (now, i as i64), "lease {lease}");
    }
}
