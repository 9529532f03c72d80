use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_a_sane_one() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    let r = app.client.get(app.url("/healthz")).header("x-request-id", "trace-123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let r = app.client.get(app.url("/healthz")).header("x-request-id", "bad id with spaces").send().await.unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
    let r = app.get("/no/such/thing", None).await;
    assert!(r.headers().contains_key("x-request-id"));
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let body = r.text().await.unwrap();
    assert!(body.contains("latchkey_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"}"), "{body}");
    assert!(body.contains("latchkey_mail_outbox_pending 0"), "{body}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["servers"][0]["url"], app.base);
    for path in [
        "/api/v1/entities",
        "/api/v1/licenses/{id}/assignments",
        "/oauth/token",
        "/api/v1/account/password",
        "/.well-known/jwks.json",
        "/api/v1/entities/{slug}/audit",
        "/api/v1/audit/checkpoints",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from openapi.json");
    }
}

#[tokio::test]
async fn security_headers_are_set() {
    let app = spawn_app().await;
    let r = app.get("/account/forgot", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    // Pages name only this site as referrer (tokens in their URLs go nowhere else, and browsers
    // then send the Origin of our own form posts); everything else sends none.
    assert_eq!(h["referrer-policy"], "same-origin");
    assert_eq!(app.get("/healthz", None).await.headers()["referrer-policy"], "no-referrer");
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let big = "x".repeat(2 * 1024 * 1024);
    let r = app.post("/api/v1/products", app.op(), json!({ "sku": "big", "name": big })).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// Every route the server has under the JSON API's prefixes, with its methods, read from the
/// routers' source (`.route("/path", get(..).post(..))`), so a route added without its
/// description fails here, and so does a description of a route that is gone.
fn served_api_routes() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    // SCIM (`/scim/v2/...`) is described by its own discovery endpoints (RFC 7644), not here.
    const API: [&str; 7] = ["/api/", "/oauth/", "/.well-known/", "/healthz", "/readyz", "/metrics", "/openapi.json"];
    let mut routes = std::collections::BTreeMap::new();
    let mut stack = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            for chunk in src.split(".route(").skip(1) {
                let Some(rest) = chunk.trim_start().strip_prefix('"') else { continue };
                let Some((route, handlers)) = rest.split_once('"') else { continue };
                if !API.iter().any(|p| route.starts_with(p)) {
                    continue;
                }
                // The method router ends where the statement or the next route does.
                let handlers = handlers.split(";").next().unwrap();
                let methods: &mut std::collections::BTreeSet<String> = routes.entry(route.to_string()).or_default();
                for m in ["get", "post", "put", "patch", "delete"] {
                    if handlers.contains(&format!("{m}(")) {
                        methods.insert(m.to_string());
                    }
                }
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_no_other() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json", None).await.json().await.unwrap();
    let described: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| {
            let methods = ops
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .cloned()
                .collect();
            (p.clone(), methods)
        })
        .collect();
    let served = served_api_routes();
    assert!(served.len() > 30, "the route scan found too few routes: {served:?}");
    let mut problems = Vec::new();
    for (path, methods) in &served {
        match described.get(path) {
            None => problems.push(format!("{path} is served but not described")),
            Some(d) if d != methods => problems.push(format!("{path}: served {methods:?}, described {d:?}")),
            _ => {}
        }
    }
    for path in described.keys() {
        if !served.contains_key(path) {
            problems.push(format!("{path} is described but not served"));
        }
    }
    assert!(problems.is_empty(), "openapi.json and the routers disagree:\n{}", problems.join("\n"));
}

/// Run tests/support/check_api_examples.py on the served document and the docs under `root`:
/// its exit status and its report.
fn check_examples(root: &std::path::Path) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("latchkey-openapi-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let doc = dir.join("openapi.json");
    std::fs::write(&doc, latchkey::api_doc::json("https://id.example.com").unwrap()).unwrap();
    let out = std::process::Command::new(python())
        .arg(repo_path("tests/support/check_api_examples.py"))
        .arg(&doc)
        .arg(root)
        .output()
        .expect("run tests/support/check_api_examples.py (`./x setup` installs its Python peers)");
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The document is valid OpenAPI 3.1, and the JSON examples of README.md and docs/ fit it: each
/// ```json block is marked with the operation and status it shows (or skipped with a reason),
/// and each curl command's JSON body is checked as the request of the operation it calls.
#[test]
fn the_docs_examples_fit_the_openapi_document() {
    let (ok, report) = check_examples(&repo_path(""));
    assert!(ok, "{report}");
    let checked: usize = report.lines().last().and_then(|l| l.split(' ').next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(checked >= 25, "too few examples found: {report}");
}

/// The checker finds what it is for: an unmarked block, a member the schema does not name, a
/// wrong type, a `...` in place of a value, a code the operation does not answer, and a curl
/// body that breaks its request schema.
#[test]
fn the_examples_check_refuses_wrong_examples() {
    let root = std::env::temp_dir().join(format!("latchkey-docs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::write(root.join("README.md"), "# x\n").unwrap();
    let page = r#"
```json
{"status":"ok"}
```

<!-- example: GET /api/v1/licenses/{id} 200 -->
```json
{"id":"0193...","entity":"acme","product":"readyapi","type":"fixed","seats":5,"assigned":2,"expires_at":null,
 "group":null,"reassignments_left":5,"idle_timeout_minutes":null,"created_at":"2026-11-30T09:00:00Z","colour":"red"}
```

<!-- example: POST /api/v1/seats 201 -->
```json
{"lease_id":"l","license_id":"l","lease_token":"eyJ...","expires_at":"...","heartbeat_interval_s":"60",
 "lease_ttl_s":300,"offline_grace_s":86400,"product":"readyapi","machine":"m"}
```

<!-- example: POST /api/v1/seats 409 -->
```json
{"type":"about:blank","title":"Conflict","status":409,"code":"seats_exhausted","detail":"d"}
```

```sh
curl -s -X PATCH $U/api/v1/licenses/$LIC -H "$H" -H "$J" -d '{"idle_timeout_minute":30}'
```
"#;
    std::fs::write(root.join("docs/page.md"), page).unwrap();
    let (ok, report) = check_examples(&root);
    let _ = std::fs::remove_dir_all(&root);
    assert!(!ok, "{report}");
    for finding in [
        "docs/page.md:2: a ```json block without",
        "'colour' was unexpected",
        "heartbeat_interval_s: '60' is not of type 'integer'",
        "expires_at: '...' is not a 'date-time'",
        "code: 'seats_exhausted' is not one of",
        "'idle_timeout_minute' was unexpected",
    ] {
        assert!(report.contains(finding), "{finding} not in:\n{report}");
    }
}

#[tokio::test]
async fn postgresql_connections_run_without_jit_compilation() {
    let app = spawn_app().await;
    if app.state.db.backend != latchkey::store::Backend::Postgres {
        return;
    }
    // Every connection of the pool (JIT cost the portal's pages hundreds of ms per query).
    let mut conns = Vec::new();
    for _ in 0..3 {
        let mut c = app.state.db.pool.acquire().await.unwrap();
        let (jit,): (String,) = sqlx::query_as("SHOW jit").fetch_one(&mut *c).await.unwrap();
        assert_eq!(jit, "off");
        conns.push(c);
    }
}
