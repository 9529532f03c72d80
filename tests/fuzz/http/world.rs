//! The service the HTTP target fuzzes, set up as its users would have it: the vendor's server with
//! entities, licenses, seats, SSO, SCIM, an operator user and users with an authenticator, and an
//! on-premise server that imported one of its licenses. Then the routes, each with the
//! credentials (bearer token, session and pre-session cookies, form token) that get a body past the door.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use latchkey::{app::App, audit, clock::ManualClock, config::Config, crypto, state::AppState, store, tokens::Amr};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::repo;

/// Where a request goes: the vendor's server or the on-premise one.
#[derive(Clone, Copy, PartialEq)]
pub enum On {
    Vendor,
    OnPremise,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    /// `application/json`
    Json,
    /// `application/scim+json`
    Scim,
    /// `application/x-www-form-urlencoded`, with the route's form token when it has one
    Form,
    /// `multipart/form-data`, with the route's form token when it has one
    Multipart,
    /// the query string of a GET
    Query,
}

/// What the credentials of a route should do with its seed.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Door {
    /// Get it to the handler: not refused as unauthenticated, forbidden or forged (401, 403, or a
    /// redirect to sign-in).
    Open,
    /// Have it refused as forged (403), whatever the body: a broken form token.
    Shut,
    /// No credentials: the route is for everybody.
    Public,
}

pub struct Route {
    pub method: Method,
    /// The path with its ids as `{name}` (how a saved input names its route across runs).
    pub template: String,
    pub path: String,
    /// Who calls (the credentials), part of a saved input's route line.
    pub who: &'static str,
    pub kind: Kind,
    pub seed: Value,
    pub token: Option<String>,
    pub cookie: Option<String>,
    /// The form token sent with a form's fields (`csrf=`).
    pub csrf: Option<String>,
    pub on: On,
    /// Whether the credentials open the route's door (checked on the seed).
    pub door: Door,
}

impl Route {
    /// `METHOD TEMPLATE as WHO`: the first line of a saved input.
    pub fn key(&self) -> String {
        format!("{} {} as {}", self.method, self.template, self.who)
    }
}

pub struct Server {
    pub state: AppState,
    pub router: axum::Router,
}

pub struct World {
    pub vendor: Server,
    pub onprem: Server,
    /// The ids and secrets of this world by name: paths are templated with them, and a saved
    /// input has them replaced by `{name}` so that it replays in another world.
    pub ids: Vec<(String, String)>,
    _databases: Vec<Database>,
}

impl World {
    pub fn server(&self, on: On) -> &Server {
        match on {
            On::Vendor => &self.vendor,
            On::OnPremise => &self.onprem,
        }
    }
}

/// A fresh database: SQLite in a temporary directory, or, when `LATCHKEY_TEST_DATABASE_URL` names
/// a PostgreSQL server (as for the API suite), a database made there and dropped afterwards.
pub struct Database {
    pub url: String,
    pub dir: PathBuf,
    pg: Option<(String, String)>,
}

impl Database {
    async fn fresh() -> Database {
        let dir = std::env::temp_dir().join(format!("latchkey-fuzz-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        match std::env::var("LATCHKEY_TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
            Some(admin) => {
                let name = format!("lk_fuzz_{}", uuid::Uuid::new_v4().simple());
                sqlx::any::install_default_drivers();
                let mut conn =
                    <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await.expect("connect to PostgreSQL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
                let (base, _) = admin.rsplit_once('/').expect("postgres URL with a database");
                Database { url: format!("{base}/{name}"), dir, pg: Some((admin, name)) }
            }
            None => Database { url: format!("sqlite://{}/latchkey.db?mode=rwc", dir.display()), dir, pg: None },
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin, name)) = self.pg.take() {
            // The test's runtime may be blocked while we drop: a thread of its own drops the
            // database (FORCE ends the pool's connections).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    if let Ok(mut c) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
                    }
                });
            })
            .join();
        }
    }
}

/// Whether this run's databases are PostgreSQL.
pub fn backend() -> &'static str {
    match std::env::var("LATCHKEY_TEST_DATABASE_URL") {
        Ok(u) if u.starts_with("postgres") => "PostgreSQL",
        _ => "SQLite",
    }
}

async fn server(db: &Database, clock: &ManualClock, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::defaults();
    config.database_url = db.url.clone();
    config.database_max_connections = 8;
    config.listen = "127.0.0.1:0".into();
    config.master_key_file = db.dir.join("master.key");
    config.mail_dir = db.dir.join("outbox");
    config.hash_concurrency = Some(2);
    tweak(&mut config);
    let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
    let state = app.state.clone();
    let router = latchkey::app::router(state.clone());
    Server { state, router }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    /// The `name=value` of each cookie the answer sets.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string))
            .collect()
    }
}

pub const MULTIPART_BOUNDARY: &str = "latchkeyfuzzboundary";

/// One request through `router`, in-process. `None` when the request cannot even be built (a
/// mutated query that is no URI): nothing reaches the server then.
pub async fn send(
    router: &axum::Router,
    method: Method,
    path: &str,
    kind: Kind,
    body: Vec<u8>,
    token: Option<&str>,
    cookie: Option<&str>,
) -> Option<Answer> {
    let (uri, body) = match kind {
        Kind::Query if body.is_empty() => (path.to_string(), Vec::new()),
        Kind::Query => (format!("{path}?{}", String::from_utf8_lossy(&body)), Vec::new()),
        _ => (path.to_string(), body),
    };
    let mut b = Request::builder().method(method).uri(uri.as_str());
    b = match kind {
        Kind::Json => b.header(header::CONTENT_TYPE, "application/json"),
        Kind::Scim => b.header(header::CONTENT_TYPE, "application/scim+json"),
        Kind::Form => b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded"),
        Kind::Multipart => {
            b.header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"))
        }
        Kind::Query => b,
    };
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let mut req = b.body(Body::from(body)).ok()?;
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = router.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 8 << 20).await.unwrap_or_default();
    Some(Answer { status: parts.status, headers: parts.headers, body: bytes.to_vec() })
}

/// A setup step that must succeed.
async fn ok(s: &Server, method: Method, path: &str, kind: Kind, body: Value, token: Option<&str>) -> Value {
    let bytes = match kind {
        Kind::Form => form_of(&body, None).into_bytes(),
        _ => serde_json::to_vec(&body).unwrap(),
    };
    let a = send(&s.router, method.clone(), path, kind, bytes, token, None).await.unwrap();
    assert!(a.status.is_success(), "set-up {method} {path}: {} {}", a.status, a.text());
    a.json()
}

async fn post(s: &Server, path: &str, token: &str, body: Value) -> Value {
    ok(s, Method::POST, path, Kind::Json, body, Some(token)).await
}

/// A page as a browser with `cookie` opens it.
async fn page(s: &Server, path: &str, cookie: Option<&str>) -> Answer {
    let a = send(&s.router, Method::GET, path, Kind::Query, Vec::new(), None, cookie).await.unwrap();
    let to = a.headers.get(header::LOCATION).map(|l| l.to_str().unwrap_or_default().to_string());
    assert!(a.status.is_success(), "set-up GET {path}: {} {to:?} {}", a.status, a.text());
    a
}

/// The value of the first hidden `csrf` field of a page, as a browser submits it.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form with a csrf field")
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// A form's fields, url-encoded, with the form token last.
pub fn form_of(fields: &Value, csrf: Option<&str>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields.as_object().unwrap() {
        s.append_pair(k, v.as_str().unwrap_or_default());
    }
    if let Some(c) = csrf {
        s.append_pair("csrf", c);
    }
    s.finish()
}

/// A multipart body of text fields (`file` as a CSV upload), with the form token first.
pub fn multipart_of(fields: &[(String, Vec<u8>)], csrf: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut part = |name: &str, value: &[u8]| {
        out.extend_from_slice(format!("--{MULTIPART_BOUNDARY}\r\n").as_bytes());
        if name == "file" {
            out.extend_from_slice(
                b"Content-Disposition: form-data; name=\"file\"; filename=\"people.csv\"\r\nContent-Type: text/csv\r\n\r\n",
            );
        } else {
            out.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        }
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if let Some(c) = csrf {
        part("csrf", c.as_bytes());
    }
    for (k, v) in fields {
        part(k, v);
    }
    out.extend_from_slice(format!("--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
    out
}

/// An access token of `email` for `client`, as a sign-in by `amr` would give it.
async fn token_for(state: &AppState, email: &str, client: &str, amr: Amr) -> String {
    let user = store::accounts::user_by_email(&state.db.pool, email).await.unwrap().unwrap();
    let entity = store::entities::entity_by_id(&state.db.pool, &user.entity_id).await.unwrap().unwrap();
    let now = state.now();
    latchkey::tokens::issue(state, &user, &entity.slug, client, amr, now).await.unwrap().access_token
}

async fn user_id(state: &AppState, email: &str) -> String {
    store::accounts::user_by_email(&state.db.pool, email).await.unwrap().expect("account").id
}

/// A browser session of `email` signed in by `amr` (made directly, as the API suite's
/// `signed_in_browser` does): its `lk_session=...` cookie. An account in a domain whose entity
/// uses single sign-on signs in by SAML (a password session of it does not count).
async fn session(state: &AppState, email: &str, amr: Amr) -> String {
    let c = latchkey::browser::session::start(state, &user_id(state, email).await, amr.as_str()).await.unwrap();
    c.to_str().unwrap().split(';').next().unwrap().to_string()
}

/// A single-use setup or reset link of `email`, made directly (the mail would carry it).
async fn link(state: &AppState, email: &str, purpose: store::accounts::LinkPurpose) -> String {
    let secret = crypto::random_secret(latchkey::accounts::LINK_PREFIX);
    let now = state.now();
    let id = user_id(state, email).await;
    store::accounts::insert_link(&state.db.pool, &crypto::secret_hash(&secret), &id, purpose, now, now + 86_400_000)
        .await
        .unwrap();
    secret
}

fn base32_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        let v = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".find(c).expect("base32") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// Enrol an authenticator in the portal with the browser of `cookie`, as a person does: the
/// secret from the security page, then its current code.
async fn enrol(s: &Server, cookie: &str) {
    let p = page(s, "/portal/security", Some(cookie)).await.text();
    let secret = p.split("id=\"totp-secret\">").nth(1).expect("an enrolment").split('<').next().unwrap();
    let t = totp_rs::Builder::new().with_secret(base32_decode(secret)).build().unwrap();
    let code = t.generate((s.state.now() / 1000) as u64).to_string();
    let body = form_of(&json!({ "code": code }), Some(&csrf_of(&p))).into_bytes();
    let a = send(&s.router, Method::POST, "/portal/security/totp", Kind::Form, body, None, Some(cookie)).await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "enrolment: {}", a.text());
}

const PASSWORD: &str = "correct horse battery staple";

/// The world and the routes of the `http_bodies` target.
pub async fn world() -> (World, Vec<Route>) {
    let clock = ManualClock::new(1_800_000_000_000);
    let (vendor_db, onprem_db) = (Database::fresh().await, Database::fresh().await);
    let v = server(&vendor_db, &clock, |_| {}).await;
    let state = v.state.clone();
    let pool = &state.db.pool;
    let now = state.now();

    let op = crypto::random_secret("lk_op_");
    store::keys::insert_operator_key(pool, &store::new_id(), "fuzz", &crypto::secret_hash(&op), 0).await.unwrap();
    // An operator key the console may revoke.
    let spare_key = store::new_id();
    let spare = crypto::random_secret("lk_op_");
    store::keys::insert_operator_key(pool, &spare_key, "spare", &crypto::secret_hash(&spare), 0).await.unwrap();
    post(&v, "/api/v1/products", &op, json!({ "sku": "readyapi", "name": "ReadyAPI" })).await;

    // acme: single sign-on on (so its people sign in by SAML: turning it on ended their password
    // sessions), a floating license, users holding seats.
    post(&v, "/api/v1/entities", &op, json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" }))
        .await;
    let lic = |seats: i64, kind: &str| json!({ "product": "readyapi", "type": kind, "seats": seats });
    let license =
        post(&v, "/api/v1/entities/acme/licenses", &op, lic(5, "floating")).await["id"].as_str().unwrap().to_string();
    let assign = |l: &str| format!("/api/v1/licenses/{l}/assignments");
    for who in ["bob", "rita", "sam"] {
        post(&v, &assign(&license), &op, json!({ "email": format!("{who}@acme.example") })).await;
    }
    let okta = std::fs::read_to_string(repo("idp-fixtures/okta/metadata.xml")).unwrap();
    let sso_of = |domain: &str| json!({ "vendor": "okta", "idp_metadata_xml": okta, "email_domains": [domain], "enabled": true });
    ok(&v, Method::PUT, "/api/v1/entities/acme/sso", Kind::Json, sso_of("acme.example"), Some(&op)).await;
    let saml = std::fs::read_to_string(repo("idp-fixtures/okta/response.b64")).unwrap();
    let admin = token_for(&state, "admin@acme.example", "portal", Amr::Saml).await;
    let user = token_for(&state, "bob@acme.example", "readyapi", Amr::Saml).await;
    // The token /oauth/revoke revokes (Bob's own stays good for his other routes).
    let spare_user = token_for(&state, "bob@acme.example", "readyapi", Amr::Saml).await;
    let sam = token_for(&state, "sam@acme.example", "readyapi", Amr::Saml).await;
    let seat = json!({ "product": "readyapi", "machine": "bench" });
    let lease = post(&v, "/api/v1/seats", &user, seat.clone()).await["lease_id"].as_str().unwrap().to_string();
    // Sam's seat is the one the portal's Disconnect and Release forms end.
    let sam_lease = post(&v, "/api/v1/seats", &sam, seat).await["lease_id"].as_str().unwrap().to_string();
    let share = post(&v, &format!("/api/v1/licenses/{license}/share-links"), &admin, json!({})).await;
    let share_token = share["url"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_string();
    let spare_link = post(&v, &format!("/api/v1/licenses/{license}/share-links"), &admin, json!({})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    post(&v, "/api/v1/entities/acme/admins", &admin, json!({ "email": "carol@acme.example" })).await;
    let spare_scim = post(&v, "/api/v1/entities/acme/scim-tokens", &admin, json!({ "name": "spare" })).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The license the operator's console changes, one that may go on-premise and a fixed one
    // that may go offline (two of its users).
    let ops_license =
        post(&v, "/api/v1/entities/acme/licenses", &op, lic(2, "floating")).await["id"].as_str().unwrap().to_string();
    let onprem_license =
        post(&v, "/api/v1/entities/acme/licenses", &op, lic(3, "floating")).await["id"].as_str().unwrap().to_string();
    let offline_license =
        post(&v, "/api/v1/entities/acme/licenses", &op, lic(3, "fixed")).await["id"].as_str().unwrap().to_string();
    let patch = |l: &str, body: Value| (format!("/api/v1/licenses/{l}"), body);
    for (path, body) in [
        patch(&onprem_license, json!({ "onprem_allowed": true })),
        patch(&offline_license, json!({ "offline_allowed": true })),
    ] {
        ok(&v, Method::PATCH, &path, Kind::Json, body, Some(&op)).await;
    }
    for who in ["olga", "otto"] {
        post(&v, &assign(&offline_license), &op, json!({ "email": format!("{who}@acme.example") })).await;
    }
    let request = |who: &str| {
        latchkey::onprem::jws::encode_b64_json(
            &json!({ "fingerprint": format!("fp-{who}"), "user": format!("{who}@acme.example"), "product": "readyapi" }),
        )
    };
    post(&v, &format!("/api/v1/licenses/{offline_license}/offline"), &admin, json!({ "request": request("olga") }))
        .await;
    let jti = store::onprem::offline_of(pool, &offline_license).await.unwrap()[0].jti.clone();
    let deactivation = latchkey::onprem::offline::deactivation_code(&jti, &offline_license, "fp-olga");

    // globex: the single sign-on that the SSO forms and the SSO API change (on, its domain
    // verified). Its administrator's address is in no domain of it, so that no change of its
    // domains or of the switch ends the administrator's sessions.
    post(
        &v,
        "/api/v1/entities",
        &op,
        json!({ "slug": "globex", "name": "Globex", "admin_email": "it@outsourcer.example" }),
    )
    .await;
    let sso = sso_of("globex.example");
    ok(&v, Method::PUT, "/api/v1/entities/globex/sso", Kind::Json, sso.clone(), Some(&op)).await;
    let g_admin = token_for(&state, "it@outsourcer.example", "portal", Amr::Pwd).await;

    // umbrella: provisioned by SCIM (its domain verified, sign-on not enabled).
    post(
        &v,
        "/api/v1/entities",
        &op,
        json!({ "slug": "umbrella", "name": "Umbrella", "admin_email": "admin@umbrella.example" }),
    )
    .await;
    let sso_u =
        json!({ "vendor": "okta", "idp_metadata_xml": okta, "email_domains": ["umbrella.example"], "enabled": false });
    ok(&v, Method::PUT, "/api/v1/entities/umbrella/sso", Kind::Json, sso_u, Some(&op)).await;
    let u_admin = token_for(&state, "admin@umbrella.example", "portal", Amr::Pwd).await;
    let scim = post(&v, "/api/v1/entities/umbrella/scim-tokens", &u_admin, json!({ "name": "idp" })).await["token"]
        .as_str()
        .unwrap()
        .to_string();
    let scim_user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "ann@umbrella.example",
        "externalId": "00u1ann",
        "name": { "givenName": "Ann", "familyName": "Lee" },
        "emails": [{ "primary": true, "value": "ann@umbrella.example", "type": "work" }],
        "displayName": "Ann Lee",
        "active": true
    });
    let a = send(
        &v.router,
        Method::POST,
        "/scim/v2/umbrella/Users",
        Kind::Scim,
        serde_json::to_vec(&scim_user).unwrap(),
        Some(&scim),
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "SCIM user: {}", a.text());
    let scim_user_id = a.json()["id"].as_str().unwrap().to_string();
    let scim_group = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "displayName": "Engineering",
        "externalId": "00g1eng",
        "members": [{ "value": scim_user_id, "display": "ann@umbrella.example" }]
    });
    let a = send(
        &v.router,
        Method::POST,
        "/scim/v2/umbrella/Groups",
        Kind::Scim,
        serde_json::to_vec(&scim_group).unwrap(),
        Some(&scim),
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::CREATED, "SCIM group: {}", a.text());
    let scim_group_id = a.json()["id"].as_str().unwrap().to_string();

    // initech: passwords, no single sign-on. Tom has a password and an authenticator, Tia an
    // enrolment in progress; Una and Vic have setup links and Rex (a password) a reset link. A password
    // set by a link ends the sessions of its account: the links are not Tom's or Tia's.
    post(
        &v,
        "/api/v1/entities",
        &op,
        json!({ "slug": "initech", "name": "Initech", "admin_email": "admin@initech.example" }),
    )
    .await;
    let init_license = post(&v, "/api/v1/entities/initech/licenses", &op, lic(3, "floating")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for who in ["tom", "tia", "una", "rex", "vic"] {
        post(&v, &assign(&init_license), &op, json!({ "email": format!("{who}@initech.example") })).await;
    }
    let hash = state.hasher.hash(PASSWORD).await.unwrap();
    for who in ["tom", "rex"] {
        let id = user_id(&state, &format!("{who}@initech.example")).await;
        store::accounts::set_password(pool, &id, &hash, now).await.unwrap();
    }
    let tom = session(&state, "tom@initech.example", Amr::Pwd).await;
    enrol(&v, &tom).await;
    let tia = session(&state, "tia@initech.example", Amr::Pwd).await;
    let tia_csrf = csrf_of(&page(&v, "/portal/security", Some(&tia)).await.text());
    let tom_csrf = csrf_of(&page(&v, "/portal/security", Some(&tom)).await.text());
    let setup_link = link(&state, "una@initech.example", store::accounts::LinkPurpose::Setup).await;
    let reset_link = link(&state, "rex@initech.example", store::accounts::LinkPurpose::Reset).await;
    let vic_link = link(&state, "vic@initech.example", store::accounts::LinkPurpose::Setup).await;

    // A browser before sign-in: its pre-session cookie and form token, from the sign-in page.
    let login = page(&v, "/login", None).await;
    let pre_cookie = login.cookies().into_iter().find(|c| c.starts_with("lk_csrf=")).expect("a pre-session cookie");
    let pre = csrf_of(&login.text());
    // Tom half signed in: the password passed, the second factor asked (its cookie).
    let body =
        form_of(&json!({ "email": "tom@initech.example", "password": PASSWORD, "return_to": "/portal" }), Some(&pre));
    let a = send(&v.router, Method::POST, "/login/password", Kind::Form, body.into_bytes(), None, Some(&pre_cookie))
        .await
        .unwrap();
    assert_eq!(a.status, StatusCode::OK, "the code is asked: {}", a.text());
    let mfa = a.cookies().into_iter().find(|c| c.starts_with("lk_mfa=")).expect("the second-factor cookie");
    let mfa_cookie = format!("{pre_cookie}; {mfa}");

    // Signed-in browsers: acme's administrator, Bob, Sam (twice: one of them signs out), globex's
    // administrator, and an operator user with an authenticator. Each form token is read from a
    // page, as a browser has it.
    let admin_cookie = session(&state, "admin@acme.example", Amr::Saml).await;
    let admin_csrf = csrf_of(&page(&v, "/portal/entities/acme/licenses", Some(&admin_cookie)).await.text());
    let bob = session(&state, "bob@acme.example", Amr::Saml).await;
    let bob_csrf = csrf_of(&page(&v, "/portal", Some(&bob)).await.text());
    let sam_cookie = session(&state, "sam@acme.example", Amr::Saml).await;
    let sam_csrf = csrf_of(&page(&v, "/portal", Some(&sam_cookie)).await.text());
    let leaving = session(&state, "sam@acme.example", Amr::Saml).await;
    let leaving_csrf = csrf_of(&page(&v, "/portal", Some(&leaving)).await.text());
    let g_cookie = session(&state, "it@outsourcer.example", Amr::Pwd).await;
    let g_csrf = csrf_of(&page(&v, "/portal/entities/globex/sso", Some(&g_cookie)).await.text());
    latchkey::accounts::operators::add(&state, "ops@vendor.example", now).await.unwrap();
    let ops = session(&state, "ops@vendor.example", Amr::Pwd).await;
    enrol(&v, &ops).await;
    let ops_csrf = csrf_of(&page(&v, "/portal/operator/entities", Some(&ops)).await.text());
    let device =
        ok(&v, Method::POST, "/oauth/device_authorization", Kind::Form, json!({ "client_id": "readyapi" }), None).await
            ["user_code"]
            .as_str()
            .unwrap()
            .to_string();
    // An authorization request waiting for its sign-in (the id the sign-in comes back with), and
    // a test sign-in link of globex's single sign-on.
    let authorize = json!({ "response_type": "code", "client_id": "readyapi", "redirect_uri": "http://127.0.0.1:5000/cb", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256", "state": "s", "login_hint": "bob@acme.example" });
    let query = form_of(&authorize, None).into_bytes();
    let a = send(&v.router, Method::GET, "/oauth/authorize", Kind::Query, query, None, None).await.unwrap();
    let to_login = a.headers.get(header::LOCATION).expect("authorize sends to sign-in").to_str().unwrap();
    let back = url::form_urlencoded::parse(to_login.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "return_to")
        .expect("a way back")
        .1
        .into_owned();
    let authz_request = back.split_once("request=").expect("the request's id").1.to_string();
    let test_url = ok(&v, Method::POST, "/api/v1/entities/globex/sso/test", Kind::Json, json!({}), Some(&g_admin))
        .await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let test_query: Value = url::form_urlencoded::parse(test_url.split_once('?').unwrap().1.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect::<serde_json::Map<_, _>>()
        .into();

    // The on-premise server: the vendor's license keys, one license moved there, and the usage
    // and return files it makes for the vendor.
    let jwks =
        send(&v.router, Method::GET, "/.well-known/latchkey-license-keys.json", Kind::Query, Vec::new(), None, None)
            .await
            .unwrap()
            .text();
    let key_file = onprem_db.dir.join("vendor-keys.json");
    std::fs::write(&key_file, jwks).unwrap();
    let p = server(&onprem_db, &clock, |c| c.license_public_key_file = Some(key_file)).await;
    let p_op = crypto::random_secret("lk_op_");
    store::keys::insert_operator_key(&p.state.db.pool, &store::new_id(), "fuzz", &crypto::secret_hash(&p_op), 0)
        .await
        .unwrap();
    let fingerprint = latchkey::onprem::server::fingerprint(&p.state.db, &p.state.master, now).await.unwrap();
    let entitlement =
        post(&v, &format!("/api/v1/licenses/{onprem_license}/onprem"), &admin, json!({ "fingerprint": fingerprint }))
            .await["entitlement"]
            .as_str()
            .unwrap()
            .to_string();
    post(&p, "/api/v1/onprem/entitlements", &p_op, json!({ "entitlement": entitlement })).await;
    let ctx = audit::Context::system("fuzz");
    let day = time::OffsetDateTime::from_unix_timestamp(now / 1000).unwrap().date();
    let usage = latchkey::onprem::server::usage_file(&p.state.db, &p.state.master, day, day, &ctx, now).await.unwrap();
    let give_back =
        latchkey::onprem::server::return_file(&p.state.db, &p.state.master, &onprem_license, &ctx, now).await.unwrap();

    let ids: Vec<(String, String)> = [
        ("license", &license),
        ("lease", &lease),
        ("sam_lease", &sam_lease),
        ("share", &share_token),
        ("spare_link", &spare_link),
        ("spare_scim", &spare_scim),
        ("spare_key", &spare_key),
        ("ops_license", &ops_license),
        ("onprem_license", &onprem_license),
        ("offline_license", &offline_license),
        ("scim_user", &scim_user_id),
        ("scim_group", &scim_group_id),
        ("setup_link", &setup_link),
        ("reset_link", &reset_link),
        ("vic_link", &vic_link),
        ("jti", &jti),
        ("pre_csrf", &pre),
        ("admin_csrf", &admin_csrf),
        ("bob_csrf", &bob_csrf),
        ("sam_csrf", &sam_csrf),
        ("leaving_csrf", &leaving_csrf),
        ("ops_csrf", &ops_csrf),
        ("tom_csrf", &tom_csrf),
        ("tia_csrf", &tia_csrf),
        ("globex_csrf", &g_csrf),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let fill = |template: &str| {
        let mut p = template.to_string();
        for (k, v) in &ids {
            p = p.replace(&format!("{{{k}}}"), v);
        }
        p
    };

    let mut routes = Vec::new();
    let mut r = |method: Method, template: &str, kind: Kind, seed: Value, who: Who| {
        routes.push(Route {
            method,
            path: fill(template),
            template: template.to_string(),
            who: who.0,
            kind,
            seed,
            token: who.1.map(str::to_string),
            cookie: who.2.map(str::to_string),
            csrf: who.3.map(str::to_string),
            on: who.4,
            door: who.5,
        })
    };
    // Credentials: (name, bearer token, cookie, form token, server).
    type Who<'a> = (&'static str, Option<&'a str>, Option<&'a str>, Option<&'a str>, On, Door);
    let v_ = On::Vendor;
    let anon: Who = ("anon", None, None, None, v_, Door::Public);
    let o: Who = ("op", Some(&op), None, None, v_, Door::Open);
    let a: Who = ("admin", Some(&admin), None, None, v_, Door::Open);
    let ga: Who = ("globex-admin", Some(&g_admin), None, None, v_, Door::Open);
    let u: Who = ("user", Some(&user), None, None, v_, Door::Open);
    let sc: Who = ("scim", Some(&scim), None, None, v_, Door::Open);
    let p_o: Who = ("onprem-op", Some(&p_op), None, None, On::OnPremise, Door::Open);
    let browser: Who = ("browser", None, Some(&pre_cookie), Some(&pre), v_, Door::Open);
    let mfa_b: Who = ("half-signed-in", None, Some(&mfa_cookie), Some(&pre), v_, Door::Open);
    let ad: Who = ("admin-session", None, Some(&admin_cookie), Some(&admin_csrf), v_, Door::Open);
    let gad: Who = ("globex-admin-session", None, Some(&g_cookie), Some(&g_csrf), v_, Door::Open);
    let bo: Who = ("bob-session", None, Some(&bob), Some(&bob_csrf), v_, Door::Open);
    let sa: Who = ("sam-session", None, Some(&sam_cookie), Some(&sam_csrf), v_, Door::Open);
    let le: Who = ("leaving-session", None, Some(&leaving), Some(&leaving_csrf), v_, Door::Open);
    let op_s: Who = ("operator-session", None, Some(&ops), Some(&ops_csrf), v_, Door::Open);
    let to: Who = ("tom-session", None, Some(&tom), Some(&tom_csrf), v_, Door::Open);
    let ti: Who = ("tia-session", None, Some(&tia), Some(&tia_csrf), v_, Door::Open);
    // Forged or stale forms: refused before the handler, whatever the body.
    let ad_forged: Who = ("admin-session-forged", None, Some(&admin_cookie), Some(&tom_csrf), v_, Door::Shut);
    let op_tokenless: Who = ("operator-session-tokenless", None, Some(&ops), None, v_, Door::Shut);
    let cookieless: Who = ("browser-cookieless", None, None, Some(&pre), v_, Door::Shut);
    let ti_stale: Who = ("tia-session-stale", None, Some(&tia), Some("x"), v_, Door::Shut);

    use Kind::*;
    let (get, post_, put, patch) = (Method::GET, Method::POST, Method::PUT, Method::PATCH);

    // ---- the JSON API, OAuth and the SAML endpoints ------------------------------------------
    r(
        post_.clone(),
        "/api/v1/entities",
        Json,
        json!({ "slug": "initrode", "name": "Initrode", "admin_email": "a@initrode.example" }),
        o,
    );
    r(post_.clone(), "/api/v1/products", Json, json!({ "sku": "soapui", "name": "SoapUI" }), o);
    r(
        post_.clone(),
        "/api/v1/entities/acme/licenses",
        Json,
        json!({ "product": "readyapi", "type": "fixed", "seats": 3, "expires_at": "2030-01-01T00:00:00Z", "group": "eng" }),
        o,
    );
    r(
        patch.clone(),
        "/api/v1/licenses/{license}",
        Json,
        json!({ "seats": 6, "expires_at": "2031-01-01T00:00:00Z" }),
        o,
    );
    r(patch.clone(), "/api/v1/licenses/{license}", Json, json!({ "group": "eng" }), a);
    r(post_.clone(), "/api/v1/licenses/{license}/assignments", Json, json!({ "email": "carol@acme.example" }), a);
    r(
        post_.clone(),
        "/api/v1/licenses/{license}/assignments",
        Json,
        json!({ "emails": ["d@acme.example", "e@acme.example"] }),
        a,
    );
    r(post_.clone(), "/api/v1/licenses/{license}/share-links", Json, json!({}), a);
    r(post_.clone(), "/api/v1/share-links/{share}/accept", Json, json!({}), u);
    r(post_.clone(), "/api/v1/entities/acme/admins", Json, json!({ "email": "bob@acme.example" }), a);
    r(post_.clone(), "/api/v1/entities/acme/groups", Json, json!({ "name": "eng" }), a);
    r(post_.clone(), "/api/v1/seats", Json, json!({ "product": "readyapi", "machine": "bench-2" }), u);
    r(post_.clone(), "/api/v1/seats/{lease}/heartbeat", Json, json!({ "idle_seconds": 10, "machine": "bench" }), u);
    r(put.clone(), "/api/v1/entities/globex/sso", Json, sso.clone(), ga);
    r(
        post_.clone(),
        "/api/v1/account/password",
        Json,
        json!({ "token": vic_link, "password": "vic@initech.example" }),
        anon,
    );
    r(post_.clone(), "/api/v1/account/forgot", Json, json!({ "email": "bob@acme.example" }), anon);
    r(
        post_.clone(),
        "/oauth/token",
        Form,
        json!({ "grant_type": "password", "username": "rex@initech.example", "password": "wrong wrong wrong", "client_id": "readyapi" }),
        anon,
    );
    r(
        post_.clone(),
        "/oauth/token",
        Form,
        json!({ "grant_type": "refresh_token", "refresh_token": "lk_rt_x", "client_id": "readyapi" }),
        anon,
    );
    r(
        post_.clone(),
        "/oauth/token",
        Form,
        json!({ "grant_type": "authorization_code", "code": "c", "redirect_uri": "http://127.0.0.1:5000/cb", "code_verifier": "v".repeat(43), "client_id": "readyapi" }),
        anon,
    );
    r(
        post_.clone(),
        "/oauth/token",
        Form,
        json!({ "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "d", "client_id": "readyapi" }),
        anon,
    );
    r(post_.clone(), "/oauth/revoke", Form, json!({ "token": spare_user, "client_id": "readyapi" }), anon);
    r(post_.clone(), "/oauth/introspect", Form, json!({ "token": user }), o);
    r(post_.clone(), "/oauth/device_authorization", Form, json!({ "client_id": "readyapi" }), anon);
    r(post_.clone(), "/saml/acme/acs", Form, json!({ "SAMLResponse": saml.trim(), "RelayState": "rs" }), anon);
    r(get.clone(), "/oauth/authorize", Query, authorize, anon);
    r(get.clone(), "/oauth/authorize/resume", Query, json!({ "request": authz_request }), bo);
    r(
        get.clone(),
        "/api/v1/entities/acme/reports/usage",
        Query,
        json!({ "from": "2026-01-01", "to": "2026-01-31", "format": "csv" }),
        a,
    );
    r(get.clone(), "/saml/acme/login", Query, json!({ "return_to": "/account" }), anon);
    r(get.clone(), "/saml/globex/test", Query, test_query, gad);
    r(post_.clone(), "/api/v1/entities/acme/scim-tokens", Json, json!({ "name": "okta-2" }), a);

    // ---- SCIM, with the entity's SCIM token ----------------------------------------------------
    const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
    const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let mut new_user = scim_user.clone();
    new_user["userName"] = json!("ben@umbrella.example");
    new_user["emails"][0]["value"] = json!("ben@umbrella.example");
    new_user["externalId"] = json!("00u2ben");
    r(post_.clone(), "/scim/v2/umbrella/Users", Scim, new_user, sc);
    r(put.clone(), "/scim/v2/umbrella/Users/{scim_user}", Scim, scim_user.clone(), sc);
    r(
        patch.clone(),
        "/scim/v2/umbrella/Users/{scim_user}",
        Scim,
        json!({ "schemas": [PATCH], "Operations": [
        { "op": "Replace", "path": "name.givenName", "value": "Annie" },
        { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann@umbrella.example" },
        { "op": "replace", "value": { "active": "True", "displayName": "Annie Lee" } }
    ] }),
        sc,
    );
    r(
        get.clone(),
        "/scim/v2/umbrella/Users",
        Query,
        json!({ "filter": "userName eq \"ann@umbrella.example\"", "startIndex": "1", "count": "10" }),
        sc,
    );
    r(
        get.clone(),
        "/scim/v2/umbrella/Users",
        Query,
        json!({ "filter": "emails[type eq \"work\" and value co \"@umbrella\"] or (active eq true and not (externalId pr))", "startIndex": "2", "count": "1", "attributes": "userName,emails", "sortBy": "userName" }),
        sc,
    );
    r(
        post_.clone(),
        "/scim/v2/umbrella/Users/.search",
        Scim,
        json!({ "schemas": [SEARCH], "filter": "externalId eq \"00u1ann\"", "startIndex": 1, "count": 5, "excludedAttributes": ["groups"] }),
        sc,
    );
    r(
        post_.clone(),
        "/scim/v2/umbrella/Groups",
        Scim,
        json!({ "schemas": [GROUP], "displayName": "Sales", "externalId": "00g2sales", "members": [{ "value": scim_user_id }] }),
        sc,
    );
    r(put.clone(), "/scim/v2/umbrella/Groups/{scim_group}", Scim, scim_group.clone(), sc);
    r(
        patch.clone(),
        "/scim/v2/umbrella/Groups/{scim_group}",
        Scim,
        json!({ "schemas": [PATCH], "Operations": [
        { "op": "Add", "path": "members", "value": [{ "value": scim_user_id }] },
        { "op": "remove", "path": format!("members[value eq \"{scim_user_id}\"]") },
        { "op": "replace", "value": { "displayName": "Engineering" } }
    ] }),
        sc,
    );
    r(
        get.clone(),
        "/scim/v2/umbrella/Groups",
        Query,
        json!({ "filter": "displayName eq \"Engineering\"", "startIndex": "1", "count": "100", "excludedAttributes": "members" }),
        sc,
    );
    r(
        post_.clone(),
        "/scim/v2/umbrella/Groups/.search",
        Scim,
        json!({ "schemas": [SEARCH], "filter": "members[value eq \"x\"]", "startIndex": 1, "count": 5 }),
        sc,
    );

    // ---- the audit API ---------------------------------------------------------------------------
    let audit_q = json!({ "action": "license.updated", "actor": "admin@acme.example", "from": "2026-11-01", "to": "2027-01-31T00:00:00Z", "limit": "50", "after": "3", "format": "json" });
    r(get.clone(), "/api/v1/entities/acme/audit", Query, audit_q.clone(), a);
    r(
        get.clone(),
        "/api/v1/entities/acme/audit",
        Query,
        json!({ "format": "csv", "from": "2020-01-01", "action": "seat.checked_out" }),
        o,
    );
    r(get.clone(), "/api/v1/audit", Query, audit_q.clone(), o);
    r(get.clone(), "/api/v1/audit", Query, json!({ "format": "ndjson", "actor": "operator", "limit": "1000" }), o);
    r(get.clone(), "/api/v1/audit/checkpoints", Query, json!({ "entity": "acme" }), o);

    // ---- private networks: on-premise and offline ------------------------------------------------
    r(post_.clone(), "/api/v1/licenses/{onprem_license}/onprem", Json, json!({ "fingerprint": fingerprint }), a);
    r(post_.clone(), "/api/v1/licenses/{onprem_license}/onprem/usage", Json, json!({ "usage": usage }), o);
    r(post_.clone(), "/api/v1/licenses/{onprem_license}/onprem/return", Json, json!({ "return": give_back }), o);
    r(post_.clone(), "/api/v1/licenses/{offline_license}/offline", Json, json!({ "request": request("otto") }), a);
    r(
        post_.clone(),
        "/api/v1/licenses/{offline_license}/offline/return",
        Json,
        json!({ "deactivation": deactivation }),
        a,
    );
    r(post_.clone(), "/api/v1/onprem/entitlements", Json, json!({ "entitlement": entitlement }), p_o);

    // ---- before sign-in: sign-in, second factor, account links, share links --------------------
    r(
        get.clone(),
        "/login",
        Query,
        json!({ "return_to": "/portal/security", "login_hint": "tom@initech.example" }),
        anon,
    );
    r(get.clone(), "/account/setup", Query, json!({ "token": setup_link }), browser);
    r(get.clone(), "/account/reset", Query, json!({ "token": reset_link }), browser);
    r(get.clone(), "/device", Query, json!({ "user_code": device }), bo);
    r(post_.clone(), "/login", Form, json!({ "email": "tom@initech.example", "return_to": "/account" }), browser);
    r(
        post_.clone(),
        "/login/password",
        Form,
        json!({ "email": "tom@initech.example", "password": "not the password", "return_to": "/portal" }),
        browser,
    );
    r(post_.clone(), "/login/code", Form, json!({ "code": "000000" }), mfa_b);
    r(post_.clone(), "/login/code", Form, json!({ "code": "abcd-efgh-ijkl-mnop" }), mfa_b);
    r(
        post_.clone(),
        "/account/setup",
        Form,
        json!({ "token": setup_link, "password": "short", "confirm": "short" }),
        browser,
    );
    r(
        post_.clone(),
        "/account/reset",
        Form,
        json!({ "token": reset_link, "password": "rex@initech.example", "confirm": "rex@initech.example" }),
        browser,
    );
    r(post_.clone(), "/account/forgot", Form, json!({ "email": "tom@initech.example" }), browser);
    r(post_.clone(), "/share/{share}", Form, json!({ "email": "newcomer@acme.example" }), browser);
    r(post_.clone(), "/share/{share}", Form, json!({}), bo);
    r(post_.clone(), "/device", Form, json!({ "user_code": device, "decision": "approve" }), bo);
    r(post_.clone(), "/logout", Form, json!({}), le);
    r(
        post_.clone(),
        "/login/password",
        Form,
        json!({ "email": "tom@initech.example", "password": PASSWORD }),
        cookieless,
    );

    // ---- the portal: an administrator's forms --------------------------------------------------
    r(post_.clone(), "/portal/licenses/{license}/settings", Form, json!({ "group": "eng", "idle_minutes": "30" }), ad);
    r(
        post_.clone(),
        "/portal/licenses/{license}/settings",
        Form,
        json!({ "group": "", "idle_minutes": "" }),
        ad_forged,
    );
    r(
        post_.clone(),
        "/portal/licenses/{license}/assign",
        Multipart,
        json!({ "emails": "x1@acme.example, x2@acme.example\ny3@acme.example", "file": "" }),
        ad,
    );
    r(
        post_.clone(),
        "/portal/licenses/{license}/assign",
        Multipart,
        json!({ "emails": "", "file": "email,name\nz1@acme.example,Zed\n\"z2@acme.example\",\"Q, R\"\n" }),
        ad,
    );
    r(post_.clone(), "/portal/licenses/{license}/revoke", Form, json!({ "email": "rita@acme.example" }), ad);
    r(post_.clone(), "/portal/licenses/{license}/scim-group", Form, json!({ "group": "Engineering" }), ad);
    r(post_.clone(), "/portal/licenses/{license}/share-links", Form, json!({ "days": "7" }), ad);
    r(post_.clone(), "/portal/licenses/{license}/share-links/{spare_link}/delete", Form, json!({}), ad);
    r(post_.clone(), "/portal/seats/{sam_lease}/disconnect", Form, json!({}), ad);
    r(post_.clone(), "/portal/entities/acme/admins", Form, json!({ "email": "dana@acme.example" }), ad);
    r(post_.clone(), "/portal/entities/acme/admins/remove", Form, json!({ "email": "carol@acme.example" }), ad);
    r(post_.clone(), "/portal/entities/acme/groups", Form, json!({ "name": "Design" }), ad);
    r(
        post_.clone(),
        "/portal/entities/globex/sso",
        Form,
        json!({ "vendor": "okta", "metadata_xml": okta, "metadata_url": "", "domains": "globex.example\nsub.globex.example", "email_attribute": "email", "allow_idp_initiated": "on", "jit_accounts": "on", "allow_sha1": "" }),
        gad,
    );
    r(post_.clone(), "/portal/entities/globex/sso/enabled", Form, json!({ "enabled": "on" }), gad);
    r(post_.clone(), "/portal/entities/globex/sso/test", Form, json!({}), gad);
    r(post_.clone(), "/portal/entities/acme/scim/tokens", Form, json!({ "name": "okta" }), ad);
    r(post_.clone(), "/portal/entities/acme/scim/tokens/{spare_scim}/revoke", Form, json!({}), ad);
    r(post_.clone(), "/portal/seats/{sam_lease}/release", Form, json!({}), sa);

    // ---- the portal: second factor -------------------------------------------------------------
    r(post_.clone(), "/portal/security/totp", Form, json!({ "code": "000000" }), ti);
    r(post_.clone(), "/portal/security/totp", Form, json!({ "code": "123456" }), ti_stale);
    r(post_.clone(), "/portal/security/remove", Form, json!({ "code": "000000" }), to);

    // ---- the operator's console --------------------------------------------------------------------
    r(
        post_.clone(),
        "/portal/operator/entities",
        Form,
        json!({ "slug": "hooli", "name": "Hooli", "admin_email": "admin@hooli.example" }),
        op_s,
    );
    r(
        post_.clone(),
        "/portal/operator/entities",
        Form,
        json!({ "slug": "x", "name": "", "admin_email": "" }),
        op_tokenless,
    );
    r(post_.clone(), "/portal/operator/products", Form, json!({ "sku": "loadui", "name": "LoadUI" }), op_s);
    r(
        post_.clone(),
        "/portal/operator/entities/acme/licenses",
        Form,
        json!({ "product": "readyapi", "kind": "floating", "seats": "5", "expires": "2099-01-31", "group": "eng" }),
        op_s,
    );
    r(
        post_.clone(),
        "/portal/operator/licenses/{ops_license}",
        Form,
        json!({ "seats": "7", "expires": "2099-01-31", "onprem_allowed": "on", "offline_allowed": "" }),
        op_s,
    );
    r(post_.clone(), "/portal/operator/keys", Form, json!({ "name": "billing-sync" }), op_s);
    r(post_.clone(), "/portal/operator/keys/{spare_key}/revoke", Form, json!({}), op_s);
    r(post_.clone(), "/portal/operator/licenses/{onprem_license}/onprem", Form, json!({ "text": fingerprint }), op_s);
    r(post_.clone(), "/portal/operator/licenses/{onprem_license}/onprem/usage", Form, json!({ "text": usage }), op_s);
    r(
        post_.clone(),
        "/portal/operator/licenses/{onprem_license}/onprem/return",
        Form,
        json!({ "text": give_back }),
        op_s,
    );
    r(
        post_.clone(),
        "/portal/operator/licenses/{offline_license}/offline",
        Form,
        json!({ "text": request("otto") }),
        op_s,
    );
    r(
        post_.clone(),
        "/portal/operator/licenses/{offline_license}/offline/return",
        Form,
        json!({ "text": deactivation }),
        op_s,
    );

    // ---- the portal's pages and exports: their query strings ----------------------------------
    let page_q = json!({ "q": "acme", "after": "bob@acme.example", "before": "", "last": "" });
    r(get.clone(), "/portal/entities/acme/licenses", Query, json!({ "group": "eng", "product": "readyapi" }), ad);
    r(get.clone(), "/portal/entities/acme/users", Query, page_q.clone(), ad);
    r(get.clone(), "/portal/licenses/{license}", Query, page_q.clone(), ad);
    r(get.clone(), "/portal/licenses/{license}/seats", Query, page_q, ad);
    r(get.clone(), "/portal/licenses/{license}/revoke", Query, json!({ "email": "rita@acme.example" }), ad);
    r(get.clone(), "/portal/licenses/{license}/scim-group", Query, json!({ "group": "Engineering" }), ad);
    r(
        get.clone(),
        "/portal/entities/acme/usage",
        Query,
        json!({ "from": "2026-11-01", "to": "2026-11-30", "tz": "Europe/Berlin", "group": "eng" }),
        ad,
    );
    r(
        get.clone(),
        "/portal/entities/acme/usage.csv",
        Query,
        json!({ "from": "2026-11-01", "to": "2026-11-30", "tz": "America/New_York" }),
        ad,
    );
    r(get.clone(), "/portal/entities/acme/audit", Query, audit_q.clone(), ad);
    r(get.clone(), "/portal/entities/acme/audit.csv", Query, audit_q.clone(), ad);
    r(get.clone(), "/portal/entities/acme/groups", Query, json!({ "group": "eng" }), ad);
    r(get.clone(), "/portal/entities/globex/sso", Query, json!({ "vendor": "azure-ad" }), gad);
    r(get.clone(), "/portal/operator/audit", Query, audit_q.clone(), op_s);
    r(get.clone(), "/portal/operator/audit.csv", Query, audit_q, op_s);
    r(get.clone(), "/portal/security", Query, json!({ "first": "1" }), ti);

    let world = World { vendor: v, onprem: p, ids, _databases: vec![vendor_db, onprem_db] };
    (world, routes)
}
