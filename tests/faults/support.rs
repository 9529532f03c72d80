//! What the fault tests are made of: the real `latchkey` binary run as separate processes, a
//! private PostgreSQL instance each test may stop and restart, the SMTP sink of the API tests,
//! and a few HTTP calls that set up an entity, a license and signed-in users.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery staple";

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("latchkey-faults-{what}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test that measures answer times holds this exclusively, the others shared: the machine
/// has two cores, and a storm in a neighbouring test is not the fault being measured.
pub static TIMING: std::sync::LazyLock<tokio::sync::RwLock<()>> = std::sync::LazyLock::new(Default::default);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Poll `f` until it returns `Some` or `limit` passes.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The server process

/// What a `latchkey serve` process is started with; replicas share everything but the port.
#[derive(Clone)]
pub struct ServerConfig {
    pub database_url: String,
    pub dir: PathBuf,
    pub smtp_url: Option<String>,
    pub extra_env: Vec<(String, String)>,
}

impl ServerConfig {
    pub fn new(database_url: &str, dir: &Path) -> ServerConfig {
        ServerConfig { database_url: database_url.into(), dir: dir.into(), smtp_url: None, extra_env: Vec::new() }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LATCHKEY_DATABASE_URL", &self.database_url)
            .env("LATCHKEY_MASTER_KEY_FILE", self.dir.join("master.key"))
            .env("LATCHKEY_MAIL_DIR", self.dir.join("outbox"))
            .env("LATCHKEY_LISTEN", "127.0.0.1:0")
            .env("LATCHKEY_LOG_FORMAT", "json")
            .env("LATCHKEY_LOG", "info,sqlx=error")
            .env("LATCHKEY_HASH_CONCURRENCY", "2");
        if let Some(u) = &self.smtp_url {
            c.env("LATCHKEY_SMTP_URL", u);
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// `latchkey operator-key create`: the key it prints.
    pub fn operator_key(&self) -> String {
        let out = self.command(&["operator-key", "create", "--name", "faults"]).output().unwrap();
        assert!(out.status.success(), "operator-key create: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn start(&self) -> Server {
        Server::start(self.clone())
    }
}

/// A running `latchkey serve`. Its JSON log lines are kept for the test to read.
pub struct Server {
    pub base: String,
    child: Option<Child>,
    logs: Arc<Mutex<Vec<Value>>>,
}

impl Server {
    pub fn start(config: ServerConfig) -> Server {
        let mut child = config.command(&["serve"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let logs: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel::<Result<String, String>>();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if v["message"] == "latchkey listening"
                            && let Some(t) = tx.take()
                        {
                            let _ = t.send(Ok(v["addr"].as_str().unwrap_or_default().to_string()));
                        }
                        sink.lock().unwrap().push(v);
                    }
                    Err(_) => {
                        if let Some(t) = &tx {
                            let _ = t.send(Err(line));
                        }
                    }
                }
            }
            if let Some(t) = tx.take() {
                let _ = t.send(Err("the server exited before listening".into()));
            }
        });
        let addr = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(addr)) => break addr,
                Ok(Err(line)) if line.contains("exited") || line.starts_with("latchkey:") => {
                    panic!("latchkey serve failed: {line}")
                }
                Ok(Err(_)) => continue,
                Err(e) => panic!("latchkey serve did not start: {e}"),
            }
        };
        Server { base: format!("http://{addr}"), child: Some(child), logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown, no cleanup, requests in flight cut off.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn logs(&self) -> Vec<Value> {
        self.logs.lock().unwrap().clone()
    }

    /// The action link the server logged for `email` (mail written to files: development mode).
    pub async fn mailed_link(&self, email: &str) -> String {
        let email = email.to_lowercase();
        eventually(Duration::from_secs(10), &format!("a mail with a link to {email}"), || {
            let found = self.logs().iter().rev().find_map(|v| {
                (v["message"] == "mail written to file" && v["to"] == email.as_str())
                    .then(|| v["link"].as_str().map(str::to_string))
                    .flatten()
            });
            async move { found }
        })
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub async fn post(c: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = c.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

/// The status and JSON body (`null` when not JSON) of a POST, or `None` when no answer came.
pub async fn try_post(c: &reqwest::Client, url: &str, token: Option<&str>, body: Value) -> Option<(StatusCode, Value)> {
    let mut r = c.post(url).json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.ok()?;
    let status = r.status();
    let text = r.text().await.ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

pub async fn created(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A product, an entity, a floating license of `seats`, and `users` accounts assigned to it
/// with a password set. Mail goes to files, and the server logs each link.
pub struct Fixture {
    pub license: String,
    pub users: Vec<String>,
}

pub async fn fixture(server: &Server, operator_key: String, seats: i64, users: usize) -> Fixture {
    let c = client();
    let op = Some(operator_key.as_str());
    created(post(&c, &server.url("/api/v1/products"), op, json!({ "sku": "readyapi", "name": "ReadyAPI" })).await)
        .await;
    let entity = json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" });
    created(post(&c, &server.url("/api/v1/entities"), op, entity).await).await;
    let license = created(
        post(
            &c,
            &server.url("/api/v1/entities/acme/licenses"),
            op,
            json!({ "product": "readyapi", "type": "floating", "seats": seats }),
        )
        .await,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let emails: Vec<String> = (0..users).map(|i| format!("user{i}@acme.example")).collect();
    let r = post(&c, &server.url(&format!("/api/v1/licenses/{license}/assignments")), op, json!({ "emails": emails }))
        .await;
    created(r).await;
    for email in &emails {
        let link = server.mailed_link(email).await;
        let token = link.split_once("token=").unwrap().1.to_string();
        let r =
            post(&c, &server.url("/api/v1/account/password"), None, json!({ "token": token, "password": PASSWORD }))
                .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text().await.unwrap());
    }
    Fixture { license, users: emails }
}

/// Access and refresh token of a user (password grant, as a product does).
pub async fn sign_in(server: &Server, email: &str) -> (String, String) {
    let r = client()
        .post(server.url("/oauth/token"))
        .form(&[("grant_type", "password"), ("username", email), ("password", PASSWORD), ("client_id", "readyapi")])
        .send()
        .await
        .unwrap();
    let v = created(r).await;
    (v["access_token"].as_str().unwrap().to_string(), v["refresh_token"].as_str().unwrap().to_string())
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The directory of PostgreSQL's server programs (Debian's layout, the newest version), if any.
pub fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// PostgreSQL server programs, or `None` with a note. In CI (`CI=true`) their absence fails.
pub fn require_pg(test: &str) -> Option<PathBuf> {
    match pg_bin() {
        Some(b) => Some(b),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: PostgreSQL server programs (/usr/lib/postgresql/*/bin) are required in CI"
            );
            eprintln!("skipped {test}: no PostgreSQL server programs under /usr/lib/postgresql/*/bin");
            None
        }
    }
}

/// A PostgreSQL instance of this test alone (its own data directory and port), so that
/// stopping or restarting it touches nothing else. Runs as the `postgres` user when the test
/// runs as root (initdb refuses root).
pub struct PrivatePg {
    bin: PathBuf,
    dir: TempDir,
    pub port: u16,
}

impl PrivatePg {
    pub fn start(bin: &Path) -> PrivatePg {
        let dir = TempDir::new("pg");
        let as_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if as_root {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(ok.success(), "chown to postgres (is there a postgres user?)");
        }
        let pg = PrivatePg { bin: bin.to_path_buf(), dir, port: free_port() };
        let data = pg.data();
        let out = pg
            .run("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        pg.ctl(&["start"]);
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, program: &str) -> Command {
        let as_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        let path = self.bin.join(program);
        if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `pg_ctl <action>` and wait for it to finish.
    pub fn ctl(&self, action: &[&str]) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .run("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "-m", "fast", "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-o", &opts])
            .args(action)
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl {action:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self.run("pg_ctl").arg("-D").arg(self.data()).args(["-w", "-m", "immediate", "stop"]).output();
    }
}

/// A fresh database on the server at `admin_url`; its URL.
pub async fn fresh_database(admin_url: &str) -> String {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("lk_fault_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Run one query on `url` and return the first column of every row as i64.
pub async fn query_i64(url: &str, sql: &str) -> Vec<i64> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&mut conn).await.unwrap();
    rows.iter().map(|r| r.get::<i64, _>(0)).collect()
}

/// Run one query on `url` and return the first column of every row as text.
pub async fn query_text(url: &str, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).fetch_all(&mut conn).await.unwrap();
    rows.iter().map(|r| r.get::<String, _>(0)).collect()
}
