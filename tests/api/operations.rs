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
