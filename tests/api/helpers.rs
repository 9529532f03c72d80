//! The test harness: `spawn_app()` starts the real application on port 0 with a fresh database
//! (a temporary SQLite file, or a PostgreSQL database created for the test when
//! `LATCHKEY_TEST_DATABASE_URL` names a server) and a controlled clock; mail goes to a real SMTP
//! server (aiosmtpd) that the harness starts.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, OnceLock},
    time::Duration,
};

use latchkey::{
    clock::ManualClock,
    config::Config,
    crypto::{random_secret, secret_hash},
    store,
    {app::App, state::AppState},
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The Python that runs the test peers: `LATCHKEY_TEST_PYTHON` (or `PYTHON`) when set, else the
/// repository's virtual environment that `./x test` builds (`.venv/`), else `python3`.
pub fn python() -> String {
    let venv = repo_path(".venv/bin/python");
    std::env::var("LATCHKEY_TEST_PYTHON")
        .or_else(|_| std::env::var("PYTHON"))
        .unwrap_or_else(|_| if venv.exists() { venv.display().to_string() } else { "python3".into() })
}

/// A running aiosmtpd that writes each received message as JSON into `dir`.
pub struct SmtpSink {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<std::process::Child>,
}

impl SmtpSink {
    /// Start a sink on `port` (0: any free port).
    pub fn start_on(port: u16, dir: &Path) -> SmtpSink {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = std::process::Command::new(python())
            .arg(repo_path("tests/support/smtp_sink.py"))
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/support/smtp_sink.py (`./x setup` installs its Python peers)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("smtp sink did not start: {line:?}"));
        SmtpSink { port, dir: dir.to_path_buf(), child: Some(child) }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn messages(&self) -> Vec<Mail> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with('.') || !name.ends_with(".json") {
                    continue;
                }
                if let Ok(text) = std::fs::read_to_string(e.path())
                    && let Ok(v) = serde_json::from_str::<Value>(&text)
                {
                    out.push(Mail(v));
                }
            }
        }
        out
    }

    pub fn messages_to(&self, email: &str) -> Vec<Mail> {
        self.messages().into_iter().filter(|m| m.recipients().iter().any(|r| r == &email.to_lowercase())).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The sink shared by every test of this process (tests use distinct addresses).
pub fn shared_sink() -> &'static SmtpSink {
    static SINK: OnceLock<SmtpSink> = OnceLock::new();
    SINK.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("latchkey-mail-{}", uuid::Uuid::new_v4()));
        SmtpSink::start_on(0, &dir)
    })
}

#[derive(Debug, Clone)]
pub struct Mail(pub Value);

impl Mail {
    pub fn recipients(&self) -> Vec<String> {
        self.0["rcpt_tos"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
    pub fn subject(&self) -> &str {
        self.0["subject"].as_str().unwrap_or_default()
    }
    pub fn text(&self) -> &str {
        self.0["text"].as_str().unwrap_or_default()
    }
    pub fn html(&self) -> &str {
        self.0["html"].as_str().unwrap_or_default()
    }
    /// The first link in the text part that contains `needle`.
    pub fn link(&self, needle: &str) -> Option<String> {
        self.text()
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(needle))
            .map(|w| w.trim_end_matches(['.', ',', ')']).to_string())
    }
    pub fn token(&self) -> Option<String> {
        let link = self.link("token=")?;
        let q = link.split_once("token=")?.1;
        Some(q.split('&').next()?.to_string())
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub operator_key: String,
    pub domain: String,
    pub dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pg_admin: Option<(String, String)>,
    own_sink: Option<SmtpSink>,
}

pub struct Options {
    /// Use this SMTP URL instead of the shared sink.
    pub smtp_url: Option<String>,
    pub tweak: Box<dyn FnOnce(&mut Config) + Send>,
    /// Share a database with another app (two replicas): (url, clock).
    pub database_url: Option<String>,
    pub clock: Option<ManualClock>,
}

impl Default for Options {
    fn default() -> Self {
        Options { smtp_url: None, tweak: Box::new(|_| {}), database_url: None, clock: None }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// The database URL for a fresh test database, and what to drop afterwards (PostgreSQL).
async fn fresh_database(dir: &Path) -> (String, Option<(String, String)>) {
    match std::env::var("LATCHKEY_TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
        Some(admin_url) => {
            let name = format!("lk_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let mut conn =
                <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url).await.expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
            let (base, _) = admin_url.rsplit_once('/').expect("postgres URL with a database");
            (format!("{base}/{name}"), Some((admin_url, name)))
        }
        None => (format!("sqlite://{}/latchkey.db?mode=rwc", dir.display()), None),
    }
}

pub async fn spawn_app_with(opts: Options) -> TestApp {
    let dir = std::env::temp_dir().join(format!("latchkey-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (database_url, pg_admin) = match opts.database_url {
        Some(u) => (u, None),
        None => fresh_database(&dir).await,
    };
    let mut config = Config::defaults();
    config.database_url = database_url;
    config.database_max_connections = 8;
    // Bursts of parallel requests on a two-core machine queue for connections; how the service
    // answers when it cannot get one is the fault suite's subject (tests/faults), not this one's.
    config.database_acquire_timeout = latchkey::config::Span(Duration::from_secs(10));
    config.listen = "127.0.0.1:0".into();
    config.master_key_file = dir.join("master.key");
    config.mail_dir = dir.join("outbox");
    config.smtp_url = Some(opts.smtp_url.unwrap_or_else(|| shared_sink().url()));
    config.hash_concurrency = Some(2);
    (opts.tweak)(&mut config);
    let clock = opts.clock.unwrap_or_else(|| {
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        ManualClock::new(now / 1000 * 1000)
    });
    let app = App::build(config, Arc::new(clock.clone())).await.expect("build app");
    let state = app.state.clone();
    // The address this server listens on (a replica shares its public URL with another server).
    let scheme = if state.config.tls_cert.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    let operator_key = random_secret("lk_op_");
    store::keys::insert_operator_key(&state.db.pool, &store::new_id(), "tests", &secret_hash(&operator_key), 0)
        .await
        .unwrap();
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_store(true).build().unwrap();
    TestApp {
        base,
        client,
        clock,
        state,
        operator_key,
        domain: format!("t{}.example.com", &uuid::Uuid::new_v4().simple().to_string()[..10]),
        dir,
        shutdown: Some(tx),
        server: Some(server),
        pg_admin,
        own_sink: None,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            s.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((admin_url, name)) = self.pg_admin.take() {
            // The test's runtime is blocked while we drop, so its pool cannot be closed gracefully:
            // FORCE ends its connections. A thread of its own runs the statement.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    if let Ok(mut c) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url).await {
                        let _ =
                            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                                .execute(&mut c)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

impl TestApp {
    /// Stop serving (graceful shutdown), as when the server goes away.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }

    /// A second server on the same database, clock, master key and public URL (a replica).
    pub async fn replica(&self) -> TestApp {
        let (key, base) = (self.state.config.master_key_file.clone(), self.base.clone());
        let insecure_metadata_urls = self.state.config.insecure_metadata_urls;
        spawn_app_with(Options {
            database_url: Some(self.state.config.database_url.clone()),
            clock: Some(self.clock.clone()),
            tweak: Box::new(move |c| {
                c.master_key_file = key;
                c.public_url = Some(base);
                c.insecure_metadata_urls = insecure_metadata_urls;
            }),
            ..Default::default()
        })
        .await
    }

    /// A browser of its own (cookie jar), already signed in as `email` by password: the session is
    /// made directly, for tests about what a signed-in browser may do rather than about signing in.
    pub async fn signed_in_browser(&self, email: &str) -> reqwest::Client {
        let user =
            store::accounts::user_by_email(&self.state.db.pool, &email.to_lowercase()).await.unwrap().expect("account");
        let cookie = latchkey::browser::session::start(&self.state, &user.id, "pwd").await.unwrap();
        let jar = Arc::new(reqwest::cookie::Jar::default());
        jar.add_cookie_str(cookie.to_str().unwrap(), &self.base.parse().unwrap());
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_provider(jar).build().unwrap()
    }

    /// `latchkey_events_total{event, outcome}` as `/metrics` shows it now (0 when absent).
    pub async fn event_count(&self, event: &str, outcome: &str) -> u64 {
        let text = self.get("/metrics", None).await.text().await.unwrap();
        let series = format!("latchkey_events_total{{event=\"{event}\",outcome=\"{outcome}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&series)).map_or(0, |n| n.trim().parse().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A fresh address in this test's own domain.
    pub fn email(&self, local: &str) -> String {
        format!("{local}@{}", self.domain)
    }

    pub fn sink(&self) -> &SmtpSink {
        self.own_sink.as_ref().unwrap_or_else(|| shared_sink())
    }

    pub fn set_own_sink(&mut self, sink: SmtpSink) {
        self.own_sink = Some(sink);
    }

    pub fn take_own_sink(&mut self) -> Option<SmtpSink> {
        self.own_sink.take()
    }

    pub fn clock_now(&self) -> i64 {
        use latchkey::clock::Clock;
        self.clock.now()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut r = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut r = self.client.patch(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut r = self.client.put(self.url(path)).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        let mut r = self.client.delete(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.unwrap()
    }

    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.client.post(self.url(path)).form(fields).send().await.unwrap()
    }

    /// The CSRF token of the form on page `path`, as this test's browser (`client`) gets it.
    pub async fn csrf_from(&self, path: &str) -> String {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        csrf_of(&r.text().await.unwrap())
    }

    /// Open page `path` and submit its form to `action` with `fields` and the page's CSRF token,
    /// as a browser does.
    pub async fn submit(&self, path: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let csrf = self.csrf_from(path).await;
        let mut all = fields.to_vec();
        all.push(("csrf", &csrf));
        self.form(action, &all).await
    }

    pub fn op(&self) -> Option<&str> {
        Some(&self.operator_key)
    }

    pub async fn create_product(&self, sku: &str) -> Value {
        let r = self.post("/api/v1/products", self.op(), json!({ "sku": sku, "name": sku.to_uppercase() })).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// An entity whose administrator is `admin@<test domain>` (account created, setup mail sent).
    pub async fn create_entity(&self, slug: &str) -> Value {
        let r = self
            .post("/api/v1/entities", self.op(), json!({ "slug": slug, "name": format!("{slug} Inc."), "admin_email": self.email(&format!("admin-{slug}")) }))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    pub async fn create_license(&self, slug: &str, product: &str, kind: &str, seats: i64) -> String {
        let r = self
            .post(
                &format!("/api/v1/entities/{slug}/licenses"),
                self.op(),
                json!({ "product": product, "type": kind, "seats": seats }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    /// Wait (the worker delivers in the background) until `email` has received `n` mails.
    pub async fn mails_to(&self, email: &str, n: usize) -> Vec<Mail> {
        for _ in 0..200 {
            let m = self.sink().messages_to(email);
            if m.len() >= n {
                return m;
            }
            self.state.wake_mailer();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{email} received {} mails, expected {n}", self.sink().messages_to(email).len());
    }

    /// How many mails of `template` were queued for `email` (sent or not): the outbox row is
    /// written with the change, so this count does not race the delivery worker.
    pub async fn mails_queued(&self, email: &str, template: &str) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE recipient = $1 AND template = $2")
            .bind(email.to_lowercase())
            .bind(template)
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap();
        n
    }

    /// The templates of every mail queued for `email` (sent or not), in name order.
    pub async fn queued_templates(&self, email: &str) -> Vec<String> {
        use sqlx::Row;
        sqlx::query("SELECT template FROM outbox WHERE recipient = $1 ORDER BY template")
            .bind(email.to_lowercase())
            .fetch_all(&self.state.db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect()
    }

    /// Wait until no mail is pending: the delivery worker records a send just after the SMTP
    /// server accepted it, so a test that saw the mail arrive may be a moment early.
    pub async fn outbox_empty(&self) {
        for _ in 0..200 {
            if latchkey::store::outbox::pending_count(&self.state.db.pool).await.unwrap() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("mail still pending: {}", latchkey::store::outbox::pending_count(&self.state.db.pool).await.unwrap());
    }

    /// Deliver what is due now and return how many mails went out.
    pub async fn drain_mail(&self) -> latchkey::mail::DrainStats {
        latchkey::mail::drain_once(&self.state).await.unwrap()
    }

    /// Follow the setup link of the latest mail to `email` and set `password`.
    pub async fn set_password_from_mail(&self, email: &str, password: &str) {
        let mails = self.mails_to(email, 1).await;
        let token = mails.iter().filter_map(|m| m.token()).next_back().expect("a mail with a link");
        let r = self.post("/api/v1/account/password", None, json!({ "token": token, "password": password })).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
    }

    pub async fn password_grant(&self, email: &str, password: &str, client_id: &str) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .form(&[("grant_type", "password"), ("username", email), ("password", password), ("client_id", client_id)])
            .send()
            .await
            .unwrap()
    }

    pub async fn refresh_grant(&self, refresh_token: &str, client_id: &str) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)])
            .send()
            .await
            .unwrap()
    }

    /// Tokens for an existing account with a password.
    pub async fn tokens(&self, email: &str, password: &str, client_id: &str) -> Value {
        let r = self.password_grant(email, password, client_id).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        r.json().await.unwrap()
    }

    /// An entity, its administrator signed in to `portal`: returns the admin's access token.
    pub async fn entity_with_admin(&self, slug: &str) -> String {
        self.create_entity(slug).await;
        let email = self.email(&format!("admin-{slug}"));
        self.set_password_from_mail(&email, PASSWORD).await;
        self.tokens(&email, PASSWORD, "portal").await["access_token"].as_str().unwrap().to_string()
    }

    /// A user assigned `license`, with a password set: returns the email.
    pub async fn licensed_user(&self, license: &str, local: &str, admin: &str) -> String {
        let email = self.email(local);
        let r =
            self.post(&format!("/api/v1/licenses/{license}/assignments"), Some(admin), json!({ "email": email })).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
        self.set_password_from_mail(&email, PASSWORD).await;
        email
    }

    /// An access token for an existing account, minted directly (for tests about other things
    /// than signing in, so they do not pay for password hashing).
    pub async fn token_for(&self, email: &str, client: &str) -> String {
        let user =
            store::accounts::user_by_email(&self.state.db.pool, &email.to_lowercase()).await.unwrap().expect("account");
        let entity = store::entities::entity_by_id(&self.state.db.pool, &user.entity_id).await.unwrap().unwrap();
        let t = latchkey::tokens::issue(
            &self.state,
            &user,
            &entity.slug,
            client,
            latchkey::tokens::Amr::Pwd,
            self.clock_now(),
        )
        .await
        .unwrap();
        t.access_token
    }

    /// Assign `email` to `license` (as the operator) without setting a password.
    pub async fn assign(&self, license: &str, email: &str) {
        let r =
            self.post(&format!("/api/v1/licenses/{license}/assignments"), self.op(), json!({ "email": email })).await;
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    /// Every table of the database, read from its catalog: a table added later is included.
    pub async fn database_tables(&self) -> Vec<String> {
        let sql = match self.state.db.backend {
            store::Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            store::Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&self.state.db.pool).await.unwrap();
        rows.iter().map(|r| sqlx::Row::get::<String, _>(r, 0)).collect()
    }

    /// The column names of `table`, from the catalog (known even when the table is empty).
    pub async fn database_columns(&self, table: &str) -> Vec<String> {
        let sql = match self.state.db.backend {
            store::Backend::Sqlite => "SELECT name FROM pragma_table_info($1) ORDER BY cid",
            store::Backend::Postgres => {
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
            }
        };
        let rows = sqlx::query(sql).bind(table).fetch_all(&self.state.db.pool).await.unwrap();
        rows.iter().map(|r| sqlx::Row::get::<String, _>(r, 0)).collect()
    }

    /// Every stored value of every table, cast to text by the database (bytes as hex), as
    /// `(table, column, value)`; NULLs left out.
    pub async fn database_values(&self) -> Vec<(String, String, String)> {
        use sqlx::Row;
        let mut out = Vec::new();
        for t in self.database_tables().await {
            let columns = self.database_columns(&t).await;
            let select: Vec<String> = columns
                .iter()
                .map(|c| match self.state.db.backend {
                    store::Backend::Sqlite => {
                        format!("CASE WHEN typeof(\"{c}\") = 'blob' THEN hex(\"{c}\") ELSE CAST(\"{c}\" AS TEXT) END")
                    }
                    store::Backend::Postgres => format!("CAST(\"{c}\" AS TEXT)"),
                })
                .collect();
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {} FROM \"{t}\"", select.join(", "))))
                .fetch_all(&self.state.db.pool)
                .await
                .unwrap();
            for row in rows {
                for (i, c) in columns.iter().enumerate() {
                    if let Some(v) = row.get::<Option<String>, _>(i) {
                        out.push((t.clone(), c.clone(), v));
                    }
                }
            }
        }
        out
    }

    /// Every text value stored in the database, one `table.column=value` line each, for
    /// "nothing secret in the clear" checks.
    pub async fn database_text(&self) -> String {
        self.database_values().await.into_iter().map(|(t, c, v)| format!("{t}.{c}={v}\n")).collect()
    }

    /// The audit events of `action`, oldest first, as the operator key reads them through the
    /// public API: entity `slug`'s log, or with `None` the log of everything (every read seals
    /// what is waiting first, so the caller's own events are there).
    pub async fn audited(&self, slug: Option<&str>, action: &str) -> Vec<Value> {
        let path = match slug {
            Some(s) => format!("/api/v1/entities/{s}/audit?limit=1000&action={action}"),
            None => format!("/api/v1/audit?limit=1000&action={action}"),
        };
        let r = self.get(&path, self.op()).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(v["next"].is_null(), "more than one page of {action}");
        let events = v["events"].as_array().unwrap().clone();
        assert!(events.iter().all(|e| e["action"] == action), "{path}: {events:#?}");
        events
    }

    /// The one audit event of `action` (see `audited`).
    pub async fn audited_once(&self, slug: Option<&str>, action: &str) -> Value {
        let mut events = self.audited(slug, action).await;
        assert_eq!(events.len(), 1, "one {action}: {events:#?}");
        events.remove(0)
    }
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form with a csrf field")
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// An audit event's target as the API shows it.
pub fn audit_target(kind: &str, id: &str, name: Option<&str>) -> Value {
    json!({ "type": kind, "id": id, "name": name })
}

/// The audit actor `system` named `name` (latchkey itself, or `cli`).
pub fn system_actor(name: &str) -> Value {
    json!({ "type": "system", "id": null, "name": name })
}

/// Run the `latchkey` binary on `app`'s database and master key: whether it succeeded, its
/// standard output (trimmed) and its standard error.
pub async fn run_cli(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") {
            c.env_remove(k);
        }
    }
    let out = c
        .args(args)
        .env("LATCHKEY_DATABASE_URL", &app.state.config.database_url)
        .env("LATCHKEY_MASTER_KEY_FILE", &app.state.config.master_key_file)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Read a problem document and check its status and code.
pub async fn assert_problem(r: Response, status: StatusCode, code: &str) -> Value {
    let got = r.status();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert!(ct.starts_with("application/problem+json"), "content-type {ct}: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], code, "{v}");
    assert_eq!(v["status"], status.as_u16(), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

/// Read an OAuth error and check its status and `error`.
pub async fn assert_oauth_error(r: Response, status: StatusCode, error: &str) -> Value {
    let got = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"], error, "{v}");
    v
}

/// Run a Python snippet with JSON on stdin and parse its JSON stdout.
pub async fn python_json(script: &str, input: &Value) -> Value {
    let mut child = tokio::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("python printed: {}", String::from_utf8_lossy(&out.stdout)))
}
