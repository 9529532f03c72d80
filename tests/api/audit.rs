//! The audit log: each action records its event (actor, targets, request), readers see their own
//! writes, pages and filters, the chain and its signed checkpoints catch tampering, retention
//! prunes without breaking verification, and nothing in the API changes an event.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// Every event of an entity (or, with `None`, every event) as the operator reads them.
async fn events(app: &TestApp, slug: Option<&str>, query: &str) -> Vec<Value> {
    let path = match slug {
        Some(s) => format!("/api/v1/entities/{s}/audit?limit=1000{query}"),
        None => format!("/api/v1/audit?limit=1000{query}"),
    };
    let r = app.get(&path, app.op()).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let v: Value = r.json().await.unwrap();
    v["events"].as_array().unwrap().clone()
}

fn of<'a>(events: &'a [Value], action: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["action"] == action).collect()
}

fn one<'a>(events: &'a [Value], action: &str) -> &'a Value {
    let found = of(events, action);
    assert_eq!(found.len(), 1, "expected one {action} in {}", serde_json::to_string_pretty(events).unwrap());
    found[0]
}

fn has_target(e: &Value, kind: &str, id: &str) -> bool {
    e["targets"].as_array().unwrap().iter().any(|t| t["type"] == kind && t["id"] == id)
}

async fn verify(app: &TestApp) -> latchkey::audit::verify::Report {
    latchkey::audit::seal_now(&app.state).await;
    latchkey::audit::verify::verify_db(&app.state.db).await.unwrap()
}

fn assert_verifies(r: &latchkey::audit::verify::Report) {
    let lines: Vec<String> = r.chains.iter().map(|c| c.line()).collect();
    assert!(r.ok(), "{lines:#?}");
}

#[tokio::test]
async fn each_action_records_its_event_with_its_actor_and_targets() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let admin_email = app.email("admin-acme");
    let r = app
        .post(
            "/api/v1/entities/acme/licenses",
            app.op(),
            json!({ "product": "readyapi", "type": "floating", "seats": 1, "group": "QA" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let license = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = app.patch(&format!("/api/v1/licenses/{license}"), app.op(), json!({ "seats": 2 })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let user = app.licensed_user(&license, "alice", &admin).await;
    let other = app.email("bob");
    app.assign(&license, &other).await;
    let r = app.delete(&format!("/api/v1/licenses/{license}/assignments/{other}"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin), json!({})).await;
    let link: Value = r.json().await.unwrap();
    let link_id = link["id"].as_str().unwrap();
    let r = app.delete(&format!("/api/v1/licenses/{license}/share-links/{link_id}"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": "Dev" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let second = app.email("second-admin");
    let r = app.post("/api/v1/entities/acme/admins", Some(&admin), json!({ "email": second })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.delete(&format!("/api/v1/entities/acme/admins/{second}"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // Sign-ins: one refused, one accepted; then seats.
    let r = app.password_grant(&user, "not the password at all", "readyapi").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let tokens = app.tokens(&user, PASSWORD, "readyapi").await;
    let at = tokens["access_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/seats"))
        .bearer_auth(at)
        .header("user-agent", "ReadyAPI/3.50 (audit test)")
        .header("x-request-id", "req-checkout-1")
        .json(&json!({ "product": "readyapi", "machine": "alice-laptop" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let lease: Value = r.json().await.unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();
    let r = app.delete(&format!("/api/v1/seats/{lease_id}"), Some(at)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.post("/api/v1/seats", Some(at), json!({ "product": "readyapi", "machine": "alice-laptop" })).await;
    let lease2 = r.json::<Value>().await.unwrap()["lease_id"].as_str().unwrap().to_string();
    let r = app.delete(&format!("/api/v1/seats/{lease2}"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A spent refresh token presented again.
    let rt = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh_grant(rt, "readyapi").await.status(), StatusCode::OK);
    assert_eq!(app.refresh_grant(rt, "readyapi").await.status(), StatusCode::BAD_REQUEST);

    let ev = events(&app, Some("acme"), "").await;
    let admin_id = ev.iter().find(|e| e["action"] == "admin.added").unwrap()["targets"][0]["id"].clone();
    // The operator's actions carry the operator key; the administrator's their account.
    let created = one(&ev, "entity.created");
    assert_eq!(created["actor"]["type"], "operator_key");
    assert_eq!(created["actor"]["name"], "tests");
    assert_eq!(created["entity"], "acme");
    let lic = one(&ev, "license.created");
    assert!(has_target(lic, "license", &license));
    assert_eq!(lic["details"]["seats"], 1);
    assert_eq!(lic["details"]["group"], "QA");
    let upd = one(&ev, "license.updated");
    assert_eq!(upd["details"]["seats"], json!({ "from": 1, "to": 2 }));
    let groups = of(&ev, "group.created");
    assert_eq!(groups.len(), 2, "QA with the license, Dev by the admin");
    assert_eq!(groups[1]["actor"]["name"], admin_email.as_str());
    let assigned = of(&ev, "assignment.created");
    assert_eq!(assigned.len(), 2);
    assert_eq!(assigned[0]["actor"], json!({ "type": "user", "id": admin_id, "name": admin_email }));
    assert!(assigned[0]["targets"].as_array().unwrap().iter().any(|t| t["name"] == user.as_str()));
    assert_eq!(assigned[1]["actor"]["type"], "operator_key");
    let revoked = one(&ev, "assignment.revoked");
    assert!(revoked["targets"].as_array().unwrap().iter().any(|t| t["name"] == other.as_str()));
    assert!(has_target(one(&ev, "share_link.created"), "share_link", link_id));
    assert!(has_target(one(&ev, "share_link.deleted"), "share_link", link_id));
    assert_eq!(of(&ev, "admin.added").len(), 2, "the first admin at creation, then the second");
    assert!(one(&ev, "admin.removed")["targets"][0]["name"] == second.as_str());
    let pw = of(&ev, "user.password_set");
    assert!(pw.iter().any(|e| e["actor"]["name"] == user.as_str()));
    let failed = one(&ev, "user.sign_in_failed");
    assert_eq!(failed["actor"], json!({ "type": "user", "id": null, "name": user }));
    let signed = of(&ev, "user.signed_in");
    assert!(signed.iter().any(|e| e["actor"]["name"] == user.as_str() && e["details"]["client"] == "readyapi"));
    let out = of(&ev, "seat.checked_out");
    assert_eq!(out.len(), 2);
    assert!(has_target(out[0], "lease", lease_id));
    assert_eq!(out[0]["details"]["machine"], "alice-laptop");
    assert_eq!(out[0]["user_agent"], "ReadyAPI/3.50 (audit test)");
    assert_eq!(out[0]["request_id"], "req-checkout-1");
    assert_eq!(out[0]["ip"], "127.0.0.1");
    let released = one(&ev, "seat.released");
    assert_eq!(released["actor"]["name"], user.as_str());
    let disconnected = one(&ev, "seat.disconnected");
    assert_eq!(disconnected["actor"]["name"], admin_email.as_str());
    assert!(has_target(disconnected, "lease", &lease2));
    let reuse = one(&ev, "token.reuse_detected");
    assert_eq!(reuse["actor"]["type"], "system");
    assert!(reuse["targets"].as_array().unwrap().iter().any(|t| t["name"] == user.as_str()));
    // Heartbeats are not recorded; every event is sealed, numbered and hashed in order.
    assert!(of(&ev, "seat.heartbeat").is_empty());
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e["seq"], i as i64 + 1, "{e}");
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    }

    // The operator chain: products, and the operator's view of everything.
    let all = events(&app, None, "").await;
    let product = one(&all, "product.created");
    assert_eq!(product["entity"], Value::Null);
    assert!(all.len() > ev.len());
    assert_verifies(&verify(&app).await);
}

#[tokio::test]
async fn a_seat_denial_and_an_unknown_sign_in_are_recorded_without_any_change() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 1).await;
    let a = app.licensed_user(&license, "a", &admin).await;
    let b = app.licensed_user(&license, "b", &admin).await;
    let (ta, tb) = (app.token_for(&a, "readyapi").await, app.token_for(&b, "readyapi").await);
    let r = app.post("/api/v1/seats", Some(&ta), json!({ "product": "readyapi", "machine": "m1" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.post("/api/v1/seats", Some(&tb), json!({ "product": "readyapi", "machine": "m2" })).await;
    assert_problem(r, StatusCode::CONFLICT, "no_seat_available").await;
    let ev = events(&app, Some("acme"), "").await;
    let denied = one(&ev, "seat.denied");
    assert_eq!(denied["actor"]["name"], b.as_str());
    assert_eq!(denied["details"]["reason"], "no_seat_available");
    assert!(has_target(denied, "license", &license));
    // An address without an account: on the operator's chain, with what was typed.
    let ghost = app.email("nobody");
    assert_eq!(app.password_grant(&ghost, "whatever it is", "readyapi").await.status(), StatusCode::BAD_REQUEST);
    let all = events(&app, None, "&action=user.sign_in_failed").await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["entity"], Value::Null);
    assert_eq!(all[0]["actor"]["name"], ghost.as_str());
}

#[tokio::test]
async fn only_the_entitys_administrators_and_the_operator_read_its_log() {
    let app = spawn_app().await;
    let acme = app.entity_with_admin("acme").await;
    let globex = app.entity_with_admin("globex").await;
    let r = app.get("/api/v1/entities/acme/audit", Some(&acme)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(v["events"].as_array().unwrap().iter().all(|e| e["entity"] == "acme"));
    assert_eq!(v["next"], Value::Null);
    assert_problem(app.get("/api/v1/entities/acme/audit", Some(&globex)).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    assert_problem(app.get("/api/v1/entities/acme/audit", None).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // The global log and the checkpoints are the operator's.
    assert_eq!(app.get("/api/v1/audit", Some(&acme)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/v1/audit/checkpoints", Some(&acme)).await.status(), StatusCode::UNAUTHORIZED);
    // A token issued to a product is not an administrator's.
    let t = app.token_for(&app.email("admin-acme"), "readyapi").await;
    assert_eq!(app.get("/api/v1/entities/acme/audit", Some(&t)).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn no_route_changes_or_deletes_an_event() {
    let app = spawn_app().await;
    app.entity_with_admin("acme").await;
    let ev = events(&app, Some("acme"), "").await;
    let id = ev[0]["id"].as_str().unwrap();
    let paths = [
        "/api/v1/audit".to_string(),
        "/api/v1/entities/acme/audit".to_string(),
        format!("/api/v1/entities/acme/audit/{id}"),
        format!("/api/v1/audit/{id}"),
        "/api/v1/audit/checkpoints".to_string(),
    ];
    for p in &paths {
        for m in [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::PATCH, reqwest::Method::DELETE] {
            let r = app
                .client
                .request(m.clone(), app.url(p))
                .bearer_auth(&app.operator_key)
                .json(&json!({ "action": "x" }))
                .send()
                .await
                .unwrap();
            assert!(
                r.status() == StatusCode::METHOD_NOT_ALLOWED || r.status() == StatusCode::NOT_FOUND,
                "{m} {p}: {}",
                r.status()
            );
        }
    }
    assert_eq!(events(&app, Some("acme"), "").await, ev);
}

#[tokio::test]
async fn pages_follow_the_cursor_and_filters_narrow_them() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    for i in 0..7 {
        let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": format!("g{i}") })).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let all = events(&app, Some("acme"), "").await;
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let r = app.get(&format!("/api/v1/entities/acme/audit?limit=3&after={after}"), app.op()).await;
        let v: Value = r.json().await.unwrap();
        let page = v["events"].as_array().unwrap();
        assert!(page.len() <= 3);
        seen.extend(page.iter().cloned());
        match v["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, all);
    let groups = events(&app, Some("acme"), "&action=group.created").await;
    assert_eq!(groups.len(), 7);
    let by_admin = events(&app, Some("acme"), &format!("&actor={}", app.email("admin-acme"))).await;
    assert!(by_admin.iter().all(|e| e["actor"]["name"] == app.email("admin-acme").as_str()));
    assert!(by_admin.len() >= 7);
    let by_id = events(&app, Some("acme"), &format!("&actor={}", by_admin[0]["actor"]["id"].as_str().unwrap())).await;
    assert_eq!(by_id.len(), by_admin.len());
    // Time bounds: a day, or an instant.
    let today = &all[0]["at"].as_str().unwrap()[..10];
    assert_eq!(events(&app, Some("acme"), &format!("&from={today}&to={today}")).await.len(), all.len());
    assert!(events(&app, Some("acme"), "&to=2000-01-01").await.is_empty());
    assert!(events(&app, Some("acme"), "&from=2999-01-01T00:00:00Z").await.is_empty());
    for bad in ["limit=0", "limit=1001", "after=-1", "after=x", "from=yesterday", "format=xml", "bogus=1"] {
        let r = app.get(&format!("/api/v1/entities/acme/audit?{bad}"), app.op()).await;
        assert!(r.status().is_client_error(), "{bad}: {}", r.status());
    }
}

#[tokio::test]
async fn time_filters_start_at_their_seal_mark_and_miss_no_late_event() {
    let app = spawn_app().await;
    app.entity_with_admin("acme").await;
    let group = |name: &'static str| {
        let app = &app;
        async move {
            let r = app.post("/api/v1/entities/acme/groups", app.op(), json!({ "name": name })).await;
            assert_eq!(r.status(), StatusCode::CREATED);
            latchkey::audit::seal_now(&app.state).await;
        }
    };
    let t0 = app.clock_now();
    group("early").await;
    app.advance(Duration::from_secs(5 * 60));
    group("late").await;
    let stamp = |ms: i64| latchkey::audit::chain::timestamp(ms);
    let names = |ev: &[Value]| -> Vec<String> {
        of(ev, "group.created").iter().map(|e| e["targets"][0]["name"].as_str().unwrap().to_string()).collect()
    };
    let from_mid = format!("&from={}", stamp(t0 + 150_000));
    assert_eq!(names(&events(&app, Some("acme"), &from_mid).await), ["late"]);
    assert_eq!(names(&events(&app, None, &from_mid).await), ["late"]);
    // An event that happened long ago but is sealed now (its transaction was slow, or its server's
    // clock behind): later in the read order, found by a filter on its time all the same.
    let chain: String =
        sqlx::query_scalar("SELECT id FROM entities WHERE slug = 'acme'").fetch_one(&app.state.db.pool).await.unwrap();
    tamper(
        &app,
        &format!(
            "INSERT INTO audit_pending (id, chain, entity, at, actor_type, action, targets, details) \
             VALUES ('slow-one', '{chain}', 'acme', {}, 'system', 'group.created', \
             '[{{\"type\":\"group\",\"id\":\"g\",\"name\":\"slow\"}}]', '{{}}')",
            t0 + 1000
        ),
    )
    .await;
    let window = format!("&from={}&to={}", stamp(t0), stamp(t0 + 60_000));
    assert_eq!(names(&events(&app, Some("acme"), &window).await), ["early", "slow"]);
    assert_eq!(names(&events(&app, Some("acme"), &from_mid).await), ["late"]);
    assert!(events(&app, None, &format!("&from={}", stamp(app.clock_now() + 60_000))).await.is_empty());
    assert_verifies(&verify(&app).await);
    // A mark moved back in time (to hide events from time filters) is named by verify.
    tamper(&app, "UPDATE audit_seal_marks SET max_at = 0").await;
    let report = verify(&app).await;
    assert!(!report.ok());
    assert!(!report.unmarked.is_empty());
    assert!(report.stray_lines().iter().any(|l| l.contains("later than its seal mark")), "{:?}", report.stray_lines());
}

#[tokio::test]
async fn exports_stream_ndjson_and_csv() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    let r = app
        .client
        .post(app.url("/api/v1/entities/acme/groups"))
        .bearer_auth(&admin)
        .header("user-agent", "=1+2")
        .json(&json!({ "name": "QA" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let all = events(&app, Some("acme"), "").await;
    let r = app.get("/api/v1/entities/acme/audit?format=ndjson", app.op()).await;
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, all);
    let r = app.get("/api/v1/entities/acme/audit?format=csv", app.op()).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(rows[0].starts_with("id,seq,at,entity,actor_type"));
    assert_eq!(rows.len(), all.len() + 1);
    // A spreadsheet formula sent by a client is neutralised.
    assert!(csv.contains(",'=1+2,"), "{csv}");
    assert!(!csv.contains(",=1+2,"));
}

/// Run `sql` on the app's database (as someone with direct access would).
async fn tamper(app: &TestApp, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&app.state.db.pool).await.unwrap();
}

async fn sealed_app() -> (TestApp, Vec<Value>) {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    for i in 0..4 {
        let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": format!("g{i}") })).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let ev = events(&app, Some("acme"), "").await;
    assert_verifies(&verify(&app).await);
    (app, ev)
}

fn acme_failure(r: &latchkey::audit::verify::Report) -> String {
    let c = r.chains.iter().find(|c| c.entity.as_deref() == Some("acme")).unwrap();
    c.result.as_ref().expect_err("tampering went unnoticed").to_string()
}

#[tokio::test]
async fn a_changed_event_is_named_by_audit_verify() {
    let (app, ev) = sealed_app().await;
    let victim = ev[2]["id"].as_str().unwrap();
    tamper(&app, &format!("UPDATE audit_events SET actor_name = 'someone-else@example.com' WHERE id = '{victim}'"))
        .await;
    let report = verify(&app).await;
    assert!(!report.ok());
    assert!(acme_failure(&report).contains(victim), "{}", acme_failure(&report));
    // The command says so too, and fails.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["audit", "verify", "--database-url", &app.state.config.database_url])
        .env_remove("LATCHKEY_DATABASE_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("FAILED  entity acme: event {victim} (seq 3) was changed")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("ok      operator")), "{stdout}");
}

#[tokio::test]
async fn a_deleted_event_is_named_by_audit_verify() {
    let (app, ev) = sealed_app().await;
    tamper(&app, &format!("DELETE FROM audit_events WHERE id = '{}'", ev[1]["id"].as_str().unwrap())).await;
    let f = acme_failure(&verify(&app).await);
    assert!(f.contains("seq 2 was removed"), "{f}");
    // The newest ones gone: the head and the checkpoint remember.
    let (app, ev) = sealed_app().await;
    let last = ev.last().unwrap()["seq"].as_i64().unwrap();
    tamper(&app, &format!("DELETE FROM audit_events WHERE seq = {last} AND entity = 'acme'")).await;
    let f = acme_failure(&verify(&app).await);
    assert!(f.contains(&format!("events after seq {} were removed", last - 1)), "{f}");
}

#[tokio::test]
async fn an_inserted_event_is_named_by_audit_verify() {
    let (app, ev) = sealed_app().await;
    // A forged event in the middle, taking seq 3's place (the real one moved aside).
    let third = &ev[2];
    let id3 = third["id"].as_str().unwrap();
    tamper(&app, &format!("UPDATE audit_events SET seq = 1000 WHERE id = '{id3}'")).await;
    tamper(
        &app,
        &format!(
            "INSERT INTO audit_events (id, chain, entity, at, actor_type, action, targets, details, seq, hash, seal_order) \
             SELECT 'forged', chain, entity, at, 'user', 'admin.added', '[]', '{{}}', 3, hash, 99999 \
             FROM audit_events WHERE id = '{id3}'"
        ),
    )
    .await;
    let f = acme_failure(&verify(&app).await);
    assert!(f.contains("forged"), "{f}");
    // A forged event appended after the head, hashed correctly: beyond what the sealer recorded.
    let (app, ev) = sealed_app().await;
    let last = ev.last().unwrap();
    let mut row = latchkey::store::audit::EventRow {
        id: "forged-tail".into(),
        chain: String::new(),
        entity: Some("acme".into()),
        at: app.clock_now(),
        actor_type: "user".into(),
        actor_id: None,
        actor_name: Some("mallory@example.com".into()),
        action: "admin.added".into(),
        targets: "[]".into(),
        ip: None,
        user_agent: None,
        request_id: None,
        details: "{}".into(),
        seq: Some(last["seq"].as_i64().unwrap() + 1),
        hash: None,
        sealed: Some(99999),
    };
    row.hash = Some(latchkey::audit::chain::hash(last["hash"].as_str().unwrap(), &row));
    tamper(
        &app,
        &format!(
            "INSERT INTO audit_events (id, chain, entity, at, actor_type, actor_name, action, targets, details, seq, \
             hash, seal_order) SELECT 'forged-tail', chain, entity, {}, 'user', 'mallory@example.com', 'admin.added', \
             '[]', '{{}}', {}, '{}', 99999 FROM audit_events WHERE id = '{}'",
            row.at,
            row.seq.unwrap(),
            row.hash.as_deref().unwrap(),
            last["id"].as_str().unwrap()
        ),
    )
    .await;
    let f = acme_failure(&verify(&app).await);
    assert!(f.contains("inserted"), "{f}");
}

#[tokio::test]
async fn a_row_outside_every_chain_is_named_by_audit_verify() {
    // A row written straight into the events table without a place in a chain (the sealer writes
    // none): no read lists it, and verify says it is there.
    let (app, _) = sealed_app().await;
    tamper(
        &app,
        "INSERT INTO audit_events (id, chain, entity, at, actor_type, action, targets, details) \
         SELECT 'forged-loose', chain, entity, at, 'user', 'admin.added', '[]', '{}' FROM audit_events \
         WHERE entity = 'acme' AND seq = 1",
    )
    .await;
    let report = verify(&app).await;
    assert!(!report.ok());
    assert_eq!(report.strays, vec!["forged-loose".to_string()]);
    assert!(report.stray_lines()[0].contains("forged-loose"), "{:?}", report.stray_lines());
    // A real event taken out of the read order (its seal order cleared) is named the same way.
    let (app, ev) = sealed_app().await;
    let hidden = ev[1]["id"].as_str().unwrap();
    tamper(&app, &format!("UPDATE audit_events SET seal_order = NULL WHERE id = '{hidden}'")).await;
    let report = verify(&app).await;
    assert_eq!(report.strays, vec![hidden.to_string()]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["audit", "verify", "--database-url", &app.state.config.database_url])
        .env_remove("LATCHKEY_DATABASE_URL")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("FAILED  event {hidden} is in no chain")), "{stdout}");
}

#[tokio::test]
async fn events_wait_outside_the_read_indexes_until_sealed_and_move_in_order() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    for i in 0..3 {
        let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": format!("w{i}") })).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    // Whatever the background sealer did meanwhile, every event is in exactly one of the tables.
    let count = |sql: &'static str| {
        let pool = app.state.db.pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    let both = count("SELECT COUNT(*) FROM audit_pending p JOIN audit_events e ON e.id = p.id").await;
    assert_eq!(both, 0);
    latchkey::audit::seal_now(&app.state).await;
    assert_eq!(count("SELECT COUNT(*) FROM audit_pending").await, 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM audit_events WHERE seq IS NULL OR hash IS NULL OR seal_order IS NULL").await,
        0
    );
    // In the order they were recorded.
    let ev = events(&app, Some("acme"), "&action=group.created").await;
    let targets: Vec<&str> = ev.iter().map(|e| e["targets"][0]["name"].as_str().unwrap_or("")).collect();
    assert_eq!(targets, ["w0", "w1", "w2"]);
    assert_verifies(&verify(&app).await);
    // An event recorded by hand into the waiting table is sealed like any other.
    let before = events(&app, None, "").await.len();
    tamper(
        &app,
        "INSERT INTO audit_pending (id, chain, entity, at, actor_type, action, targets, details) \
         VALUES ('late-one', '', NULL, 0, 'system', 'key.rotated', '[]', '{}')",
    )
    .await;
    let all = events(&app, None, "").await;
    assert_eq!(all.len(), before + 1);
    assert_eq!(all.last().unwrap()["id"], "late-one");
    assert_verifies(&verify(&app).await);
}

#[tokio::test]
async fn a_checkpoint_verifies_with_pyjwt_against_the_published_keys() {
    let app = spawn_app().await;
    app.entity_with_admin("acme").await;
    let r = app.get("/api/v1/audit/checkpoints?entity=acme", app.op()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cps: Vec<Value> = r.json().await.unwrap();
    assert!(!cps.is_empty());
    let cp = cps.last().unwrap();
    let ev = events(&app, Some("acme"), "").await;
    let head = ev.iter().find(|e| e["seq"] == cp["seq"]).unwrap();
    assert_eq!(head["hash"], cp["hash"]);
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    let v = python_json(
        r#"
import json, sys, jwt
d = json.load(sys.stdin)
h = jwt.get_unverified_header(d["token"])
jwk = [k for k in d["jwks"]["keys"] if k["kid"] == h["kid"]][0]
c = jwt.decode(d["token"], jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], options={"verify_iat": False})
print(json.dumps({"header": h, "claims": c}))
"#,
        &json!({ "token": cp["signature"], "jwks": jwks }),
    )
    .await;
    assert_eq!(v["header"]["typ"], "audit-checkpoint+jwt");
    assert_eq!(v["claims"]["entity"], "acme");
    assert_eq!(v["claims"]["seq"], cp["seq"]);
    assert_eq!(v["claims"]["hash"], cp["hash"]);
    // The operator chain's checkpoints, and an unknown entity.
    let r = app.get("/api/v1/audit/checkpoints", app.op()).await;
    let ops: Vec<Value> = r.json().await.unwrap();
    assert!(ops.iter().all(|c| c["entity"] == Value::Null));
    assert_problem(
        app.get("/api/v1/audit/checkpoints?entity=nope", app.op()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // A checkpoint whose stored hash was changed no longer matches its signature.
    tamper(&app, "UPDATE audit_checkpoints SET hash = 'ff' WHERE entity = 'acme'").await;
    assert!(!verify(&app).await.ok());
}

#[tokio::test]
async fn a_moving_chain_gets_a_new_checkpoint_once_the_last_is_old_enough() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    async fn count(app: &TestApp) -> Vec<Value> {
        app.get("/api/v1/audit/checkpoints?entity=acme", app.op()).await.json().await.unwrap()
    }
    let first = count(&app).await;
    let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": "a" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(count(&app).await.len(), first.len(), "too soon for another");
    app.advance(Duration::from_secs(31));
    let later = count(&app).await;
    assert_eq!(later.len(), first.len() + 1);
    let ev = events(&app, Some("acme"), "").await;
    assert_eq!(later.last().unwrap()["seq"], ev.last().unwrap()["seq"]);
}

#[tokio::test]
async fn retention_prunes_old_events_up_to_a_checkpoint_and_verification_stays_green() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    let before = events(&app, Some("acme"), "").await;
    // A checkpoint of this head (the chain's last one may be older than its head).
    app.advance(Duration::from_secs(31));
    latchkey::audit::seal_now(&app.state).await;
    app.advance(Duration::from_secs(401 * 86_400));
    // The token expired meanwhile: sign in again, and act.
    let admin = {
        let _ = admin;
        app.tokens(&app.email("admin-acme"), PASSWORD, "portal").await["access_token"].as_str().unwrap().to_string()
    };
    let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": "late" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    latchkey::audit::seal_now(&app.state).await;
    // (The server's own hourly pruning may get there first: either way, they are gone.)
    latchkey::audit::sealer::prune(&app.state, app.clock_now()).await.unwrap();
    let after = events(&app, Some("acme"), "").await;
    assert!(after.iter().all(|e| !before.iter().any(|b| b["id"] == e["id"])));
    assert!(after.iter().any(|e| e["action"] == "group.created"));
    let report = verify(&app).await;
    assert_verifies(&report);
    let acme = report.chains.iter().find(|c| c.entity.as_deref() == Some("acme")).unwrap();
    assert_eq!(acme.result.as_ref().unwrap().from_seq, before.len() as i64);
    // Removing the checkpoint the chain starts from is noticed.
    tamper(&app, &format!("DELETE FROM audit_checkpoints WHERE entity = 'acme' AND seq = {}", before.len())).await;
    assert!(!verify(&app).await.ok());
}

#[tokio::test]
async fn concurrent_writers_make_one_valid_chain() {
    let app = spawn_app().await;
    let admin = app.entity_with_admin("acme").await;
    let other = app.entity_with_admin("globex").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (client, base) = (app.client.clone(), app.base.clone());
        let (token, slug) = if i % 2 == 0 { (admin.clone(), "acme") } else { (other.clone(), "globex") };
        tasks.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/entities/{slug}/groups"))
                .bearer_auth(token)
                .json(&json!({ "name": format!("g{i}") }))
                .send()
                .await
                .unwrap()
                .status()
        }));
        if i % 6 == 0 {
            // Sealers running while writers write.
            let s = app.state.clone();
            tasks.push(tokio::spawn(async move {
                latchkey::audit::seal_now(&s).await;
                StatusCode::CREATED
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    for slug in ["acme", "globex"] {
        let ev = events(&app, Some(slug), "").await;
        assert_eq!(of(&ev, "group.created").len(), 12);
        let seqs: Vec<i64> = ev.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=ev.len() as i64).collect::<Vec<_>>());
    }
    assert_verifies(&verify(&app).await);
}

#[tokio::test]
async fn no_secret_reaches_the_audit_log() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 2).await;
    let user = app.licensed_user(&license, "alice", &admin).await;
    let tokens = app.tokens(&user, PASSWORD, "readyapi").await;
    let at = tokens["access_token"].as_str().unwrap();
    let r = app.post("/api/v1/seats", Some(at), json!({ "product": "readyapi", "machine": "m" })).await;
    let lease: Value = r.json().await.unwrap();
    let link: Value = app
        .post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin), json!({}))
        .await
        .json()
        .await
        .unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    app.refresh_grant(rt, "readyapi").await;
    app.refresh_grant(rt, "readyapi").await;
    app.password_grant(&user, "a wrong password here", "readyapi").await;
    let export = app.get("/api/v1/audit?format=ndjson", app.op()).await.text().await.unwrap();
    assert!(export.lines().count() > 10, "{export}");
    let share_secret = link["url"].as_str().unwrap().rsplit('/').next().unwrap();
    let secrets = [
        PASSWORD,
        "a wrong password here",
        at,
        rt,
        admin.as_str(),
        app.operator_key.as_str(),
        lease["lease_token"].as_str().unwrap(),
        share_secret,
    ];
    let table: String =
        app.database_values().await.into_iter().filter(|(t, _, _)| t.starts_with("audit")).map(|v| v.2).collect();
    for s in secrets {
        assert!(!export.contains(s), "a secret in the export");
        assert!(!table.contains(s), "a secret in the audit tables");
    }
}
