//! JSON and form bodies (and query strings) of the HTTP endpoints, through the real router
//! in-process, with the credentials each endpoint wants so that bodies get past the doors.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request, StatusCode, header},
};
use latchkey::{app::App, clock::ManualClock, config::Config, crypto, state::AppState, store};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{PER_INPUT, budget, fail, mutate, regressions, repo, rng};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Json,
    Form,
    Query,
}

struct Route {
    method: Method,
    path: String,
    kind: Kind,
    seed: Value,
    token: Option<String>,
}

struct World {
    state: AppState,
    router: axum::Router,
    _dir: std::path::PathBuf,
}

async fn call(
    w: &World,
    method: Method,
    path: &str,
    kind: Kind,
    body: Vec<u8>,
    token: Option<&str>,
) -> (StatusCode, Vec<u8>) {
    let (uri, body) = match kind {
        Kind::Query => (format!("{path}?{}", String::from_utf8_lossy(&body)), Vec::new()),
        _ => (path.to_string(), body),
    };
    let mut b = Request::builder().method(method).uri(uri.as_str());
    b = match kind {
        Kind::Json => b.header(header::CONTENT_TYPE, "application/json"),
        Kind::Form => b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        Kind::Query => b,
    };
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    // A mutated query can make the URI itself invalid: no request reaches the server then.
    let Ok(mut req) = b.body(Body::from(body)) else { return (StatusCode::BAD_REQUEST, Vec::new()) };
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = w.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 4 << 20).await.unwrap_or_default();
    (status, bytes.to_vec())
}

async fn json_ok(w: &World, path: &str, token: &str, body: Value) -> Value {
    let (status, bytes) =
        call(w, Method::POST, path, Kind::Json, serde_json::to_vec(&body).unwrap(), Some(token)).await;
    assert!(status.is_success(), "{path}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

async fn token_for(state: &AppState, email: &str, client: &str) -> String {
    let user = store::accounts::user_by_email(&state.db.pool, email).await.unwrap().unwrap();
    let entity = store::entities::entity_by_id(&state.db.pool, &user.entity_id).await.unwrap().unwrap();
    let now = state.now();
    latchkey::tokens::issue(state, &user, &entity.slug, client, latchkey::tokens::Amr::Pwd, now)
        .await
        .unwrap()
        .access_token
}

/// A service with an entity, a license, an administrator, a user holding a seat, a share link
/// and an SSO configuration, and the routes to fuzz with their seed bodies.
async fn world() -> (World, Vec<Route>) {
    let dir = std::env::temp_dir().join(format!("latchkey-fuzz-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config::defaults();
    config.database_url = format!("sqlite://{}/latchkey.db?mode=rwc", dir.display());
    config.listen = "127.0.0.1:0".into();
    config.master_key_file = dir.join("master.key");
    config.mail_dir = dir.join("outbox");
    config.hash_concurrency = Some(2);
    let clock = ManualClock::new(1_800_000_000_000);
    let app = App::build(config, Arc::new(clock)).await.unwrap();
    let state = app.state.clone();
    let router = latchkey::app::router(state.clone());
    let w = World { state: state.clone(), router, _dir: dir };

    let op = crypto::random_secret("lk_op_");
    store::keys::insert_operator_key(&state.db.pool, &store::new_id(), "fuzz", &crypto::secret_hash(&op), 0)
        .await
        .unwrap();
    json_ok(&w, "/api/v1/products", &op, json!({ "sku": "readyapi", "name": "ReadyAPI" })).await;
    json_ok(
        &w,
        "/api/v1/entities",
        &op,
        json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" }),
    )
    .await;
    let license = json_ok(
        &w,
        "/api/v1/entities/acme/licenses",
        &op,
        json!({ "product": "readyapi", "type": "floating", "seats": 5 }),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    json_ok(&w, &format!("/api/v1/licenses/{license}/assignments"), &op, json!({ "email": "bob@acme.example" })).await;
    let admin = token_for(&state, "admin@acme.example", "portal").await;
    let user = token_for(&state, "bob@acme.example", "readyapi").await;
    let lease =
        json_ok(&w, "/api/v1/seats", &user, json!({ "product": "readyapi", "machine": "bench" })).await["lease_id"]
            .as_str()
            .unwrap()
            .to_string();
    let share = json_ok(&w, &format!("/api/v1/licenses/{license}/share-links"), &admin, json!({})).await;
    let share_token = share["url"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
    let okta = std::fs::read_to_string(repo("idp-fixtures/okta/metadata.xml")).unwrap();
    let sso = json!({ "vendor": "okta", "idp_metadata_xml": okta, "email_domains": ["acme.example"], "enabled": true });
    let (status, body) =
        call(&w, Method::PUT, "/api/v1/entities/acme/sso", Kind::Json, serde_json::to_vec(&sso).unwrap(), Some(&op))
            .await;
    assert!(status.is_success(), "SSO setup: {status} {}", String::from_utf8_lossy(&body));
    let saml = std::fs::read_to_string(repo("idp-fixtures/okta/response.b64")).unwrap();

    let r = |method: Method, path: &str, kind: Kind, seed: Value, token: Option<&str>| Route {
        method,
        path: path.to_string(),
        kind,
        seed,
        token: token.map(str::to_string),
    };
    let (o, a, u) = (Some(op.as_str()), Some(admin.as_str()), Some(user.as_str()));
    let routes = vec![
        r(
            Method::POST,
            "/api/v1/entities",
            Kind::Json,
            json!({ "slug": "globex", "name": "Globex", "admin_email": "a@globex.example" }),
            o,
        ),
        r(Method::POST, "/api/v1/products", Kind::Json, json!({ "sku": "soapui", "name": "SoapUI" }), o),
        r(
            Method::POST,
            "/api/v1/entities/acme/licenses",
            Kind::Json,
            json!({ "product": "readyapi", "type": "fixed", "seats": 3, "expires_at": "2030-01-01T00:00:00Z", "group": "eng" }),
            o,
        ),
        r(
            Method::PATCH,
            &format!("/api/v1/licenses/{license}"),
            Kind::Json,
            json!({ "seats": 6, "expires_at": "2031-01-01T00:00:00Z" }),
            o,
        ),
        r(Method::PATCH, &format!("/api/v1/licenses/{license}"), Kind::Json, json!({ "group": "eng" }), a),
        r(
            Method::POST,
            &format!("/api/v1/licenses/{license}/assignments"),
            Kind::Json,
            json!({ "email": "carol@acme.example" }),
            a,
        ),
        r(
            Method::POST,
            &format!("/api/v1/licenses/{license}/assignments"),
            Kind::Json,
            json!({ "emails": ["d@acme.example", "e@acme.example"] }),
            a,
        ),
        r(Method::POST, &format!("/api/v1/licenses/{license}/share-links"), Kind::Json, json!({}), a),
        r(Method::POST, &format!("/api/v1/share-links/{share_token}/accept"), Kind::Json, json!({}), u),
        r(Method::POST, "/api/v1/entities/acme/admins", Kind::Json, json!({ "email": "bob@acme.example" }), a),
        r(Method::POST, "/api/v1/entities/acme/groups", Kind::Json, json!({ "name": "eng" }), a),
        r(Method::POST, "/api/v1/seats", Kind::Json, json!({ "product": "readyapi", "machine": "bench-2" }), u),
        r(
            Method::POST,
            &format!("/api/v1/seats/{lease}/heartbeat"),
            Kind::Json,
            json!({ "idle_seconds": 10, "machine": "bench" }),
            u,
        ),
        r(Method::PUT, "/api/v1/entities/acme/sso", Kind::Json, sso.clone(), a),
        r(
            Method::POST,
            "/api/v1/account/password",
            Kind::Json,
            json!({ "token": "abc", "password": "a long enough passphrase" }),
            None,
        ),
        r(Method::POST, "/api/v1/account/forgot", Kind::Json, json!({ "email": "bob@acme.example" }), None),
        r(
            Method::POST,
            "/oauth/token",
            Kind::Form,
            json!({ "grant_type": "password", "username": "bob@acme.example", "password": "wrong wrong wrong", "client_id": "readyapi" }),
            None,
        ),
        r(
            Method::POST,
            "/oauth/token",
            Kind::Form,
            json!({ "grant_type": "refresh_token", "refresh_token": "lk_rt_x", "client_id": "readyapi" }),
            None,
        ),
        r(
            Method::POST,
            "/oauth/token",
            Kind::Form,
            json!({ "grant_type": "authorization_code", "code": "c", "redirect_uri": "http://127.0.0.1:5000/cb", "code_verifier": "v".repeat(43), "client_id": "readyapi" }),
            None,
        ),
        r(
            Method::POST,
            "/oauth/token",
            Kind::Form,
            json!({ "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "d", "client_id": "readyapi" }),
            None,
        ),
        r(Method::POST, "/oauth/revoke", Kind::Form, json!({ "token": user, "client_id": "readyapi" }), None),
        r(Method::POST, "/oauth/introspect", Kind::Form, json!({ "token": user }), o),
        r(Method::POST, "/oauth/device_authorization", Kind::Form, json!({ "client_id": "readyapi" }), None),
        r(
            Method::POST,
            "/login",
            Kind::Form,
            json!({ "email": "bob@acme.example", "return_to": "/account", "csrf": "x" }),
            None,
        ),
        r(
            Method::POST,
            "/login/password",
            Kind::Form,
            json!({ "email": "bob@acme.example", "password": "p", "return_to": "/account", "csrf": "x" }),
            None,
        ),
        r(
            Method::POST,
            "/account/setup",
            Kind::Form,
            json!({ "token": "t", "password": "p", "confirm": "p", "csrf": "x" }),
            None,
        ),
        r(Method::POST, "/account/forgot", Kind::Form, json!({ "email": "bob@acme.example", "csrf": "x" }), None),
        r(
            Method::POST,
            "/device",
            Kind::Form,
            json!({ "user_code": "ABCD-EFGH", "decision": "approve", "csrf": "x" }),
            None,
        ),
        r(Method::POST, &format!("/share/{share_token}"), Kind::Form, json!({ "csrf": "x" }), None),
        r(Method::POST, "/saml/acme/acs", Kind::Form, json!({ "SAMLResponse": saml.trim(), "RelayState": "rs" }), None),
        r(
            Method::GET,
            "/oauth/authorize",
            Kind::Query,
            json!({ "response_type": "code", "client_id": "readyapi", "redirect_uri": "http://127.0.0.1:5000/cb", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256", "state": "s", "login_hint": "bob@acme.example" }),
            None,
        ),
        r(
            Method::GET,
            "/api/v1/entities/acme/reports/usage",
            Kind::Query,
            json!({ "from": "2026-01-01", "to": "2026-01-31", "format": "csv" }),
            a,
        ),
        r(Method::GET, "/saml/acme/login", Kind::Query, json!({ "return_to": "/account" }), None),
    ];
    (w, routes)
}

fn form_of(seed: &Value) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in seed.as_object().unwrap() {
        s.append_pair(k, v.as_str().unwrap_or_default());
    }
    s.finish()
}

fn mutate_body(rng: &mut crate::Rng, route: &Route, other: &[u8]) -> Vec<u8> {
    match route.kind {
        Kind::Json => mutate::json(rng, &route.seed, other),
        Kind::Form | Kind::Query => {
            // Edit the values (kept well-encoded half the time, so the handler sees them), or
            // the encoded text itself.
            if rng.chance(2) {
                let mut s = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in route.seed.as_object().unwrap() {
                    if rng.chance(6) {
                        continue;
                    }
                    let v = v.as_str().unwrap_or_default().as_bytes();
                    let v = if rng.chance(2) { mutate::xml(rng, v, other) } else { v.to_vec() };
                    s.append_pair(k, &String::from_utf8_lossy(&v));
                }
                s.finish().into_bytes()
            } else {
                mutate::xml(rng, form_of(&route.seed).as_bytes(), other)
            }
        }
    }
}

async fn one(w: &World, route: &Route, body: Vec<u8>, target: &str) {
    let started = Instant::now();
    let (method, path, kind, token) = (route.method.clone(), route.path.clone(), route.kind, route.token.clone());
    let w2 = World { state: w.state.clone(), router: w.router.clone(), _dir: std::path::PathBuf::new() };
    let input = body.clone();
    let outcome = tokio::spawn(async move { call(&w2, method, &path, kind, body, token.as_deref()).await }).await;
    let took = started.elapsed();
    let record = |why: String| {
        let mut saved = format!("{} {}\n", route.method, route.path).into_bytes();
        saved.extend_from_slice(&input);
        fail(target, &saved, &why)
    };
    match outcome {
        Err(e) => record(format!("{} {}: the handler panicked: {e}", route.method, route.path)),
        Ok((status, body)) if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE => {
            record(format!("{} {}: {status} {}", route.method, route.path, String::from_utf8_lossy(&body)))
        }
        Ok(_) if took > PER_INPUT => record(format!("{} {}: took {took:?}", route.method, route.path)),
        Ok(_) => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_never_answer_500_panic_or_hang() {
    let target = "http_bodies";
    let (w, routes) = world().await;
    // Regressions are saved as "METHOD PATH\n" and the body.
    for input in regressions(target) {
        let text = String::from_utf8_lossy(&input).to_string();
        let (line, body) = text.split_once('\n').unwrap_or((&text, ""));
        let route = routes.iter().find(|r| format!("{} {}", r.method, r.path) == line);
        if let Some(route) = route {
            one(&w, route, body.as_bytes().to_vec(), target).await;
        }
    }
    let mut rng = rng(target);
    let started = Instant::now();
    let mut n = 0usize;
    // Every route once with its seed, then mutated bodies for the rest of the budget.
    for route in &routes {
        let seed = match route.kind {
            Kind::Json => serde_json::to_vec(&route.seed).unwrap(),
            _ => form_of(&route.seed).into_bytes(),
        };
        one(&w, route, seed, target).await;
    }
    while started.elapsed() < budget() {
        let route = rng.pick(&routes);
        let other = serde_json::to_vec(&rng.pick(&routes).seed).unwrap();
        let body = mutate_body(&mut rng, route, &other);
        one(&w, route, body, target).await;
        n += 1;
    }
    eprintln!("fuzz {target}: {n} mutated requests over {} routes", routes.len());
    assert!(n > 50, "too few inputs in the budget: {n}");
}
