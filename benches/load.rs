//! Load benchmarks against a real `latchkey serve` (the release build, its own process), driven
//! over HTTP on loopback, with the baselines each target is a ratio to measured in the same run.
//!
//! ```text
//! cargo bench --bench load -- password                       # SQLite
//! cargo bench --bench load -- refresh --backend postgres
//! cargo bench --bench load -- seats --backend postgres --leases 100000
//! cargo bench --bench load -- all --backend sqlite --seconds 10 --rounds 2 --out results.jsonl
//! cargo bench --bench load -- memory --seconds 20 --rounds 1
//! ```
//!
//! Scenarios (each starts a fresh server on a fresh database, then stops it):
//! - `password`: password grants, 8 clients in a closed loop, against raw argon2id verifications
//!   (the same parameters and code, one thread per core, the server's hashing concurrency) in the
//!   same run, interleaved round by round. Resident memory idle and at the end of the load.
//!   `BENCH_PW_CLIENTS=N` changes the number of clients (1: one hash at a time, no contention).
//! - `refresh`: refresh grants, 50 clients in a closed loop (each client spends its own token
//!   chain), then an open loop at `--refresh-rate` (1000/s) with latency counted from each
//!   request's scheduled start (no coordinated omission). Baselines: `GET /healthz` with the same
//!   client and concurrency, and on PostgreSQL `pgbench -N -c 50 -j 2` on the same server.
//! - `memory`: resident memory of a fresh server idle, at the end of a burst of password grants
//!   (8 clients, `--seconds`), and every 5 s for a minute after it (`all` leaves it out: it waits).
//! - `seats`: `--licenses` (100) floating licenses of one entity, each of `--leases / --licenses`
//!   seats (1,000), all shared by `--users` (50) users, one machine per lease. Checkouts (50
//!   clients, closed loop) up to 1,000 live leases and one heartbeat for each; heartbeats in an
//!   open loop at `--heartbeat-rate` (3000/s) over them; checkouts in an open loop at
//!   `--checkout-rate` (500/s); the closed-loop checkout maximum on to `--leases` (100,000, which
//!   fills the pools), in `--rounds` parts; one heartbeat for each lease; then per round the
//!   closed-loop heartbeat maximum and the open loop over every lease. On PostgreSQL each closed
//!   loop is followed by `pgbench -N -c 50 -j 2` on the same server (the commit limit it is
//!   compared with). Resident memory after the closed loops at 1,000 and at 100,000 leases, and
//!   after each open loop. `--heartbeat-rate 0` / `--checkout-rate 0` leave the open loops out.
//!
//! `LATCHKEY_BENCH_BIN=path` runs that `latchkey` binary instead of building this checkout's (to
//! measure a change against an earlier commit's build in the same session).
//!
//! Every measurement reports CPU time per operation of the server and of the client, and on
//! PostgreSQL of the database processes serving the server's database (plus the WAL writer,
//! checkpointer and background writer) and the WAL flushes per operation.
//!
//! The server runs with `LATCHKEY_LEASE_TTL=4h` and `LATCHKEY_ACCESS_TOKEN_TTL=4h` so that no
//! lease lapses and no token expires while the benchmark runs; everything else is the default
//! configuration (16 database connections, hashing concurrency one per core, logging at info to a
//! file). The client runs on one thread of this process; it shares the machine's cores with the
//! server and the database, as a real single-node deployment would not, so figures are a floor.

// A benchmark whose setup fails has nothing to measure: it stops with the reason.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use argon2::password_hash::PasswordVerifier;
use serde_json::{Value, json};

/// The PostgreSQL server on 127.0.0.1 (trust authentication, user `postgres`) the benchmark
/// creates its databases on: port 5432 unless `LATCHKEY_BENCH_PG_PORT` names another (a private
/// cluster keeps other users of a shared server, and their connections, out of the figures).
fn pg_port() -> String {
    std::env::var("LATCHKEY_BENCH_PG_PORT").unwrap_or_else(|_| "5432".into())
}

fn pg_url(db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{db}", pg_port())
}
const PASSWORD: &str = "bench-Winter-Orchard-7319";
const PRODUCT: &str = "bench";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

struct Args {
    scenario: String,
    backend: Backend,
    seconds: u64,
    rounds: usize,
    leases: usize,
    licenses: usize,
    refresh_rate: f64,
    heartbeat_rate: f64,
    checkout_rate: f64,
    users: usize,
    out: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        scenario: "all".into(),
        backend: Backend::Sqlite,
        seconds: 10,
        rounds: 2,
        leases: 100_000,
        licenses: 100,
        refresh_rate: 1000.0,
        heartbeat_rate: 3000.0,
        checkout_rate: 500.0,
        users: 50,
        out: None,
    };
    let mut it = std::env::args().skip(1).filter(|x| x != "--bench");
    while let Some(x) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{x} needs a value"));
        match x.as_str() {
            "--backend" => {
                a.backend = match val().as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" | "pg" => Backend::Postgres,
                    o => panic!("unknown backend {o}"),
                }
            }
            "--seconds" => a.seconds = val().parse().expect("--seconds N"),
            "--rounds" => a.rounds = val().parse::<usize>().expect("--rounds N").max(1),
            "--leases" => a.leases = val().parse().expect("--leases N"),
            "--licenses" => a.licenses = val().parse::<usize>().expect("--licenses N").max(1),
            "--refresh-rate" => a.refresh_rate = val().parse().expect("--refresh-rate R"),
            "--heartbeat-rate" => a.heartbeat_rate = val().parse().expect("--heartbeat-rate R"),
            "--checkout-rate" => a.checkout_rate = val().parse().expect("--checkout-rate R"),
            "--users" => a.users = val().parse::<usize>().expect("--users N").max(1),
            "--out" => a.out = Some(PathBuf::from(val())),
            s if !s.starts_with('-') => a.scenario = s.to_string(),
            o => panic!("unknown option {o}"),
        }
    }
    a
}

// ---------------------------------------------------------------------------------------------
// The server under test

struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
    pg_db: Option<String>,
    operator_key: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn build_server() -> PathBuf {
    // Another build of the server (an earlier commit's, to measure a change against it).
    if let Some(bin) = std::env::var_os("LATCHKEY_BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "latchkey"])
        .current_dir(root())
        .status()
        .expect("cargo build");
    assert!(st.success(), "cargo build --release failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("release").join("latchkey")
}

async fn pg_exec(sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::postgres::PgConnection::connect(&pg_url("postgres")).await.expect("PostgreSQL on 127.0.0.1");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut c).await.expect(sql);
}

impl Server {
    async fn start(bin: &Path, backend: Backend) -> Server {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("latchkey-bench-{id}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (db_url, pg_db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/latchkey.db?mode=rwc", dir.display()), None),
            Backend::Postgres => {
                let name = format!("latchkey_bench_{}", &id[..12]);
                pg_exec(&format!("CREATE DATABASE {name}")).await;
                (pg_url(&name), Some(name))
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let env: Vec<(String, String)> = [
            ("LATCHKEY_DATABASE_URL", db_url),
            ("LATCHKEY_LISTEN", format!("127.0.0.1:{port}")),
            ("LATCHKEY_PUBLIC_URL", base.clone()),
            ("LATCHKEY_MAIL_DIR", dir.join("outbox").display().to_string()),
            ("LATCHKEY_MASTER_KEY_FILE", dir.join("master.key").display().to_string()),
            ("LATCHKEY_ACCESS_TOKEN_TTL", "4h".into()),
            ("LATCHKEY_LEASE_TTL", "4h".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let log = std::fs::File::create(dir.join("server.log")).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .envs(env.iter().cloned())
            .env_remove("LATCHKEY_SMTP_URL")
            .current_dir(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start latchkey serve");
        let c = reqwest::Client::new();
        let ready = Instant::now();
        loop {
            if let Ok(r) = c.get(format!("{base}/readyz")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(
                ready.elapsed() < Duration::from_secs(60),
                "the server did not become ready; see {}",
                dir.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = Command::new(bin)
            .args(["operator-key", "create", "--name", "bench"])
            .envs(env.iter().cloned())
            .current_dir(&dir)
            .output()
            .expect("operator-key create");
        assert!(out.status.success(), "operator-key create: {}", String::from_utf8_lossy(&out.stderr));
        let operator_key = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
        Server { child, base, dir, pg_db, operator_key }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system) the server process has used so far.
    fn cpu_secs(&self) -> f64 {
        proc_cpu_secs(&format!("/proc/{}/stat", self.pid()))
    }

    /// (VmRSS, VmHWM) in KiB: resident now, and the most it has been.
    fn rss_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Where the resident memory is, in MiB: anonymous (heap, stacks), file-backed, shared memory
    /// (SQLite's WAL index is a shared mapping).
    fn rss_parts(&self) -> Value {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| -> u64 {
            s.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        json!({"anon_mib": mib(field("RssAnon:")), "file_mib": mib(field("RssFile:")), "shmem_mib": mib(field("RssShmem:"))})
    }

    async fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(db) = &self.pg_db {
            pg_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Setting up an entity, a floating license and users with passwords, all over the public API

struct Fixture {
    users: Vec<String>,
    products: Vec<String>,
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rq = c.request(method, url).bearer_auth(bearer);
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.expect("request");
    let status = r.status().as_u16();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

/// The token of the newest setup link mailed to `email`, read from the `.eml` outbox.
async fn mailed_token(dir: &Path, email: &str, seen: &mut HashMap<PathBuf, String>) -> String {
    let t = Instant::now();
    loop {
        for e in std::fs::read_dir(dir.join("outbox")).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "eml") && !seen.contains_key(&p) {
                let raw = std::fs::read_to_string(&p).unwrap_or_default();
                seen.insert(p, decode_mail(&raw));
            }
        }
        for text in seen.values() {
            if text.contains(&format!("To: {email}"))
                && let Some(i) = text.find("token=")
            {
                let tok: String =
                    text[i + 6..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
                return tok;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no mail for {email}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Undo quoted-printable soft breaks and `=3D`; base64 parts are decoded line by line.
fn decode_mail(raw: &str) -> String {
    use base64::Engine;
    let qp = raw.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    let mut out = qp.clone();
    let mut b64 = String::new();
    for line in qp.lines() {
        let l = line.trim();
        if !l.is_empty() && l.len() % 4 == 0 && l.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)) {
            b64.push_str(l);
        } else if !b64.is_empty() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&b64) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            b64.clear();
        }
    }
    out
}

async fn set_password(c: &reqwest::Client, s: &Server, email: &str, seen: &mut HashMap<PathBuf, String>) {
    let token = mailed_token(&s.dir, email, seen).await;
    let (st, v) = call(
        c,
        reqwest::Method::POST,
        &format!("{}/api/v1/account/password", s.base),
        "",
        Some(json!({"token": token, "password": PASSWORD})),
    )
    .await;
    assert_eq!(st, 204, "set password for {email}: {v}");
}

async fn password_grant(
    c: &reqwest::Client,
    base: &str,
    client_id: &str,
    email: &str,
) -> Result<(String, String), u16> {
    let r = c
        .post(format!("{base}/oauth/token"))
        .form(&[("grant_type", "password"), ("client_id", client_id), ("username", email), ("password", PASSWORD)])
        .send()
        .await
        .map_err(|_| 0u16)?;
    if !r.status().is_success() {
        return Err(r.status().as_u16());
    }
    let v: Value = r.json().await.map_err(|_| 1u16)?;
    Ok((v["access_token"].as_str().unwrap_or_default().into(), v["refresh_token"].as_str().unwrap_or_default().into()))
}

/// One entity with `licenses` floating licenses of `seats` seats (product `bench`, then
/// `bench-001`...), each shared by `users` users who have set their passwords.
async fn fixture(c: &reqwest::Client, s: &Server, users: usize, licenses: usize, seats: usize) -> Fixture {
    let op = s.operator_key.as_str();
    let post = reqwest::Method::POST;
    let (st, v) = call(
        c,
        post.clone(),
        &format!("{}/api/v1/entities", s.base),
        op,
        Some(json!({"slug": "bench", "name": "Bench Inc", "admin_email": "admin@bench.example"})),
    )
    .await;
    assert_eq!(st, 201, "entity: {v}");
    let mut products = Vec::new();
    let mut license_ids = Vec::new();
    for k in 0..licenses.max(1) {
        let sku = if k == 0 { PRODUCT.to_string() } else { format!("{PRODUCT}-{k:03}") };
        let (st, v) =
            call(c, post.clone(), &format!("{}/api/v1/products", s.base), op, Some(json!({"sku": sku, "name": sku})))
                .await;
        assert_eq!(st, 201, "product: {v}");
        let (st, lic) = call(
            c,
            post.clone(),
            &format!("{}/api/v1/entities/bench/licenses", s.base),
            op,
            Some(json!({"product": sku, "type": "floating", "seats": seats})),
        )
        .await;
        assert_eq!(st, 201, "license: {lic}");
        products.push(sku);
        license_ids.push(lic["id"].as_str().unwrap().to_string());
    }
    let mut seen = HashMap::new();
    set_password(c, s, "admin@bench.example", &mut seen).await;
    let (admin, _) = password_grant(c, &s.base, "portal", "admin@bench.example").await.expect("admin sign-in");
    let emails: Vec<String> = (0..users).map(|i| format!("user{i}@bench.example")).collect();
    for id in &license_ids {
        let (st, v) = call(
            c,
            post.clone(),
            &format!("{}/api/v1/licenses/{id}/assignments", s.base),
            &admin,
            Some(json!({"emails": emails})),
        )
        .await;
        assert!(st == 200 || st == 201, "bulk assignment: {st} {v}");
    }
    for e in &emails {
        set_password(c, s, e, &mut seen).await;
    }
    Fixture { users: emails, products }
}

// ---------------------------------------------------------------------------------------------
// Load generation

/// Failures by kind (HTTP status or `transport`), drained into each outcome's report.
static FAILURES: Mutex<std::collections::BTreeMap<String, u64>> = Mutex::new(std::collections::BTreeMap::new());

fn fail(kind: impl std::fmt::Display) -> bool {
    *FAILURES.lock().unwrap().entry(kind.to_string()).or_default() += 1;
    false
}

/// Whether a response is a success; records the failure otherwise.
fn success(r: &Result<reqwest::Response, reqwest::Error>) -> bool {
    match r {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => fail(r.status().as_u16()),
        Err(_) => fail("transport"),
    }
}

type Op = Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Default)]
struct Outcome {
    ok: u64,
    errors: u64,
    secs: f64,
    lat_us: Vec<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.lat_us.len() as f64 - 1.0) * p).round() as usize;
        self.lat_us[i] as f64 / 1000.0
    }
    fn json(&self) -> Value {
        json!({
            "ok": self.ok, "errors": self.errors, "seconds": round2(self.secs), "per_s": round2(self.rate()),
            "p50_ms": round2(self.pct(0.50)), "p90_ms": round2(self.pct(0.90)),
            "p99_ms": round2(self.pct(0.99)), "max_ms": round2(self.pct(1.0)),
            "failures": std::mem::take(&mut *FAILURES.lock().unwrap()),
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `clients` tasks each run `op` back to back until `dur` has passed or `max` operations started.
async fn closed_loop(clients: usize, dur: Duration, max: Option<u64>, op: Op) -> Outcome {
    let started = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let deadline = t0 + dur;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, started) = (op.clone(), started.clone());
        tasks.push(tokio::spawn(async move {
            let mut o = Outcome::default();
            loop {
                let n = started.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= deadline || max.is_some_and(|m| n >= m) {
                    break;
                }
                let t = Instant::now();
                if op(n).await {
                    o.ok += 1;
                    o.lat_us.push(t.elapsed().as_micros() as u64);
                } else {
                    o.errors += 1;
                }
            }
            o
        }));
    }
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await.unwrap();
        all.ok += o.ok;
        all.errors += o.errors;
        all.lat_us.extend(o.lat_us);
    }
    all.secs = t0.elapsed().as_secs_f64();
    all.lat_us.sort_unstable();
    all
}

/// Requests start on a fixed schedule (`rate` per second) whatever the answers do; latency is
/// counted from the scheduled start, so a stall shows in full.
async fn open_loop(rate: f64, dur: Duration, op: Op) -> Outcome {
    let n = (rate * dur.as_secs_f64()) as u64;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(n as usize);
    for i in 0..n {
        let at = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let ok = op(i).await;
            (ok, at.elapsed().as_micros() as u64)
        }));
    }
    let mut o = Outcome::default();
    for t in tasks {
        let (ok, us) = t.await.unwrap();
        if ok {
            o.ok += 1;
            o.lat_us.push(us);
        } else {
            o.errors += 1;
        }
    }
    o.secs = dur.as_secs_f64();
    o.lat_us.sort_unstable();
    o
}

fn healthz_op(c: &reqwest::Client, base: &str) -> Op {
    let (c, url) = (c.clone(), format!("{base}/healthz"));
    Arc::new(move |_| {
        let (c, url) = (c.clone(), url.clone());
        Box::pin(async move { success(&c.get(&url).send().await) })
    })
}

/// `op` in a closed loop of 50 clients, right after `GET /healthz` in the same loop (the HTTP
/// ceiling of this server and client at that moment), with the ratio between them.
async fn against_healthz(s: &Server, c: &reqwest::Client, dur: Duration, op: Op) -> (Outcome, Value) {
    let h = closed_loop(50, dur, None, healthz_op(c, &s.base)).await;
    let (o, mut v) = with_cpu(s, closed_loop(50, dur, None, op)).await;
    v["clients"] = 50.into();
    v["healthz_per_s"] = round2(h.rate()).into();
    v["healthz_errors"] = h.errors.into();
    v["ratio_to_healthz"] = round2(o.rate() / h.rate()).into();
    (o, v)
}

// ---------------------------------------------------------------------------------------------
// Reporting

struct Report {
    out: Option<PathBuf>,
    common: Value,
}

impl Report {
    fn emit(&self, what: &str, mut v: Value) {
        let obj = v.as_object_mut().unwrap();
        obj.insert("measure".into(), what.into());
        for (k, x) in self.common.as_object().unwrap() {
            obj.insert(k.clone(), x.clone());
        }
        obj.insert("load_avg".into(), load_avg().into());
        println!("{v}");
        if let Some(p) = &self.out {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p).expect("--out file");
            writeln!(f, "{v}").unwrap();
        }
    }
}

/// utime + stime of a /proc/.../stat file, in seconds (clock ticks of 1/100 s).
fn proc_cpu_secs(path: &str) -> f64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Runs `f`, and adds to its outcome's JSON the CPU time per successful operation of the server
/// and of this (client) process: the cost of one request, steadier than rates on a shared machine.
/// On PostgreSQL also the database's: its processes serving the server's database and its WAL
/// writer, checkpointer and background writer (shared with other databases of that server), and
/// the WAL flushes (`pg_stat_wal.wal_sync`, server-wide) per operation.
async fn with_cpu<F: Future<Output = Outcome>>(s: &Server, f: F) -> (Outcome, Value) {
    let (s0, c0) = (s.cpu_secs(), proc_cpu_secs("/proc/self/stat"));
    let d0 = match &s.pg_db {
        Some(db) => Some(pg_cpu(db).await),
        None => None,
    };
    let o = f.await;
    let (s1, c1) = (s.cpu_secs(), proc_cpu_secs("/proc/self/stat"));
    let mut v = o.json();
    let per = |x: f64| (x * 1_000_000.0 / o.ok.max(1) as f64).round() / 1000.0;
    v["server_cpu_ms_per_op"] = per(s1 - s0).into();
    v["client_cpu_ms_per_op"] = per(c1 - c0).into();
    if let (Some(db), Some((pids0, syncs0))) = (&s.pg_db, d0) {
        let (pids1, syncs1) = pg_cpu(db).await;
        let used: f64 = pids1.iter().map(|(pid, t)| t - pids0.get(pid).copied().unwrap_or(0.0)).sum();
        v["db_cpu_ms_per_op"] = per(used).into();
        v["wal_syncs_per_op"] = (((syncs1 - syncs0) as f64 / o.ok.max(1) as f64 * 1000.0).round() / 1000.0).into();
    }
    (o, v)
}

/// CPU seconds used so far by each PostgreSQL process serving `db` (and by the shared WAL writer,
/// checkpointer and background writer), and the server's WAL flushes so far.
async fn pg_cpu(db: &str) -> (HashMap<i32, f64>, i64) {
    use sqlx::Connection;
    let mut c = sqlx::postgres::PgConnection::connect(&pg_url("postgres")).await.expect("PostgreSQL on 127.0.0.1");
    let pids: Vec<(i32,)> = sqlx::query_as(
        "SELECT pid FROM pg_stat_activity WHERE (datname = $1 AND pid <> pg_backend_pid()) \
           OR backend_type IN ('walwriter', 'checkpointer', 'background writer')",
    )
    .bind(db)
    .fetch_all(&mut c)
    .await
    .expect("pg_stat_activity");
    let (syncs,): (i64,) =
        sqlx::query_as("SELECT wal_sync FROM pg_stat_wal").fetch_one(&mut c).await.expect("pg_stat_wal");
    let _ = c.close().await;
    (pids.into_iter().map(|(p,)| (p, proc_cpu_secs(&format!("/proc/{p}/stat")))).collect(), syncs)
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() { f64::NAN } else { xs[xs.len() / 2] }
}

fn mib(kib: u64) -> f64 {
    round2(kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Raw argon2id computations per second on `threads` threads for `dur`, with latchkey's own
/// parameters: `in_place` computes into a buffer each thread keeps (the bare hash function),
/// otherwise the library's allocating `verify_password` (a fresh 19 MiB per call).
fn argon2_rate(threads: usize, dur: Duration, in_place: bool) -> f64 {
    use argon2::password_hash::PasswordHasher;
    let a = latchkey::accounts::password::argon2();
    let hash = a.hash_password(PASSWORD.as_bytes()).expect("hash").to_string();
    let done = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let parsed = argon2::PasswordHash::new(&hash).expect("parse");
                let salt = parsed.salt.expect("salt");
                let mut memory = vec![argon2::Block::new(); a.params().block_count()];
                let mut out = [0u8; 32];
                while t0.elapsed() < dur {
                    if in_place {
                        a.hash_password_into_with_memory(PASSWORD.as_bytes(), &salt, &mut out, &mut memory[..])
                            .expect("hash");
                    } else {
                        assert!(a.verify_password(PASSWORD.as_bytes(), &parsed).is_ok());
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// The service's own hashing pool (semaphore, owned buffers, blocking threads) verifying from 8
/// concurrent tasks in this process, without HTTP or database: where the grant's cost goes.
async fn hasher_pool_rate(threads: usize, dur: Duration) -> f64 {
    let h = latchkey::accounts::password::Hasher::new(threads).expect("hasher");
    let hash = h.hash(PASSWORD).await.expect("hash");
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (h, hash, done) = (h.clone(), hash.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while t0.elapsed() < dur {
                assert!(h.verify(PASSWORD, Some(&hash)).await.expect("verify"));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

async fn password(a: &Args, bin: &Path, rep: &Report) {
    let s = Server::start(bin, a.backend).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = s.rss_kib();
    let c = client();
    let f = fixture(&c, &s, 8, 1, 1_000).await;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dur = Duration::from_secs(a.seconds);
    let mut ratios = Vec::new();
    for round in 0..a.rounds {
        let raw = argon2_rate(cores, dur, true);
        let alloc = argon2_rate(cores, dur, false);
        let pool = hasher_pool_rate(cores, dur).await;
        let users = Arc::new(f.users.clone());
        let (c2, base) = (c.clone(), s.base.clone());
        let op: Op = Arc::new(move |n| {
            let (c, base, users) = (c2.clone(), base.clone(), users.clone());
            Box::pin(async move {
                let email = &users[(n as usize) % users.len()];
                password_grant(&c, &base, PRODUCT, email).await.map_err(fail).is_ok()
            })
        });
        let pw_clients: usize = std::env::var("BENCH_PW_CLIENTS").ok().and_then(|x| x.parse().ok()).unwrap_or(8);
        let (o, mut v) = with_cpu(&s, closed_loop(pw_clients, dur, None, op)).await;
        let ratio = o.rate() / raw;
        ratios.push(ratio);
        let (rss, hwm) = s.rss_kib();
        v["round"] = round.into();
        v["clients"] = pw_clients.into();
        v["argon2id_in_place_per_s"] = round2(raw).into();
        v["argon2id_library_verify_per_s"] = round2(alloc).into();
        v["hasher_pool_in_process_per_s"] = round2(pool).into();
        v["argon2_threads"] = cores.into();
        v["ratio_to_argon2id"] = round2(ratio).into();
        v["rss_idle_mib"] = mib(idle).into();
        v["rss_now_mib"] = mib(rss).into();
        v["rss_peak_mib"] = mib(hwm).into();
        rep.emit("password_grant", v);
    }
    rep.emit("password_grant_summary", json!({"median_ratio_to_argon2id": round2(median(ratios)), "rounds": a.rounds}));
    s.stop().await;
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(4096).tcp_nodelay(true).build().unwrap()
}

fn pgbench(db: &str, secs: u64) -> f64 {
    let out = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg_port(),
            "-U",
            "postgres",
            "-N",
            "-n",
            "-c",
            "50",
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            db,
        ])
        .stderr(Stdio::null())
        .output()
        .expect("pgbench (Debian postgresql-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|x| x.parse().ok())
        .unwrap_or(f64::NAN)
}

async fn refresh(a: &Args, bin: &Path, rep: &Report) {
    let s = Server::start(bin, a.backend).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = s.rss_kib();
    let c = client();
    let f = fixture(&c, &s, 8, 1, 1_000).await;
    // 50 token chains (one per closed-loop client), each from its own password grant.
    let mut chains = Vec::new();
    for i in 0..50 {
        let (_, rt) = password_grant(&c, &s.base, PRODUCT, &f.users[i % f.users.len()]).await.expect("grant");
        chains.push(Mutex::new(rt));
    }
    let chains = Arc::new(chains);
    let pg_bench_db = if a.backend == Backend::Postgres {
        let name = format!("latchkey_pgbench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        pg_exec(&format!("CREATE DATABASE {name}")).await;
        let st = Command::new("pgbench")
            .args(["-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-i", "-q", "-s", "10", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("pgbench -i");
        assert!(st.success(), "pgbench -i");
        Some(name)
    } else {
        None
    };
    let dur = Duration::from_secs(a.seconds);
    let refresh_op = || -> Op {
        let (c, base, chains) = (c.clone(), s.base.clone(), chains.clone());
        Arc::new(move |n| {
            let (c, base, chains) = (c.clone(), base.clone(), chains.clone());
            Box::pin(async move {
                // A free chain, looking from chain n on (at most one request spends a chain at
                // a time; with every chain in flight, wait for one to come back).
                let (k, rt) = loop {
                    let len = chains.len();
                    let free = (0..len).map(|j| (n as usize + j) % len).find_map(|j| {
                        let mut g = chains[j].lock().unwrap();
                        (!g.is_empty()).then(|| (j, std::mem::take(&mut *g)))
                    });
                    match free {
                        Some(f) => break f,
                        None => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                };
                let r = c
                    .post(format!("{base}/oauth/token"))
                    .form(&[("grant_type", "refresh_token"), ("client_id", PRODUCT), ("refresh_token", rt.as_str())])
                    .send()
                    .await;
                let new = match r {
                    Ok(r) if r.status().is_success() => {
                        r.json::<Value>().await.ok().and_then(|v| v["refresh_token"].as_str().map(String::from))
                    }
                    r => {
                        success(&r);
                        None
                    }
                };
                match new {
                    Some(t) => {
                        *chains[k].lock().unwrap() = t;
                        true
                    }
                    None => false,
                }
            })
        })
    };
    for round in 0..a.rounds {
        let (o, mut v) = against_healthz(&s, &c, dur, refresh_op()).await;
        let pg = pg_bench_db.as_deref().map(|db| pgbench(db, a.seconds));
        let (rss, hwm) = s.rss_kib();
        v["round"] = round.into();
        if let Some(tps) = pg {
            v["pgbench_N_c50_tps"] = round2(tps).into();
            v["ratio_to_pgbench"] = round2(o.rate() / tps).into();
        }
        v["rss_idle_mib"] = mib(idle).into();
        v["rss_now_mib"] = mib(rss).into();
        v["rss_peak_mib"] = mib(hwm).into();
        rep.emit("refresh_closed", v);
        let (_, mut v) = with_cpu(&s, open_loop(a.refresh_rate, dur, refresh_op())).await;
        v["round"] = round.into();
        v["offered_per_s"] = a.refresh_rate.into();
        rep.emit("refresh_open", v);
    }
    if let Some(db) = pg_bench_db {
        pg_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    }
    s.stop().await;
}

/// A running fleet has heartbeaten every lease before: one heartbeat for each of the `n` leases
/// first, so the measurement sees the database's steady state, not the pages checkouts just wrote.
async fn warm_up(s: &Server, rep: &Report, n: u64, heartbeat: Op) -> u64 {
    let (_, mut v) = with_cpu(s, closed_loop(50, Duration::from_secs(3600), Some(n), heartbeat)).await;
    v["live_leases"] = n.into();
    // Resident memory after a closed loop, which queues no backlog of requests (an overloaded
    // open loop does, and the allocator keeps what the backlog took).
    let rss = s.rss_kib().0;
    v["rss_now_mib"] = mib(rss).into();
    v["rss_parts"] = s.rss_parts();
    rep.emit("heartbeat_warmup", v);
    rss
}

/// A scale-10 pgbench database on the benchmark's PostgreSQL server (the baseline `pgbench -N`
/// runs against), or none on SQLite.
async fn pgbench_db(backend: Backend) -> Option<String> {
    if backend != Backend::Postgres {
        return None;
    }
    let name = format!("latchkey_pgbench_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    pg_exec(&format!("CREATE DATABASE {name}")).await;
    let st = Command::new("pgbench")
        .args(["-h", "127.0.0.1", "-p", &pg_port(), "-U", "postgres", "-i", "-q", "-s", "10", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("pgbench -i");
    assert!(st.success(), "pgbench -i");
    Some(name)
}

/// `pgbench -N` right after a measurement: the database's commit limit at that moment.
fn with_pgbench(v: &mut Value, rate: f64, db: Option<&str>, secs: u64) {
    if let Some(db) = db {
        let tps = pgbench(db, secs);
        v["pgbench_N_c50_tps"] = round2(tps).into();
        v["ratio_to_pgbench"] = round2(rate / tps).into();
    }
}

async fn seats(a: &Args, bin: &Path, rep: &Report) {
    let s = Server::start(bin, a.backend).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = s.rss_kib();
    let c = client();
    // Pools of `leases / licenses` seats (1,000 by default): the last checkouts fill them.
    let seats_per = a.leases.div_ceil(a.licenses);
    let f = fixture(&c, &s, a.users, a.licenses, seats_per).await;
    let pg_bench = pgbench_db(a.backend).await;
    let products = Arc::new(f.products.clone());
    let mut tokens = Vec::new();
    for u in &f.users {
        tokens.push(password_grant(&c, &s.base, PRODUCT, u).await.expect("grant").0);
    }
    let tokens = Arc::new(tokens);
    let leases: Arc<Mutex<Vec<(String, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let issued = Arc::new(AtomicU64::new(0));
    let checkout_op = || -> Op {
        let (c, base, tokens, leases, issued) =
            (c.clone(), s.base.clone(), tokens.clone(), leases.clone(), issued.clone());
        let products = products.clone();
        Arc::new(move |_| {
            let (c, base, tokens, leases) = (c.clone(), base.clone(), tokens.clone(), leases.clone());
            let products = products.clone();
            // Every checkout is a new computer: user, pool and machine from one counter.
            let i = issued.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                let u = (i as usize) % tokens.len();
                let r = c
                    .post(format!("{base}/api/v1/seats"))
                    .bearer_auth(&tokens[u])
                    .json(&json!({"product": products[(i as usize) % products.len()], "machine": format!("bench-host-{i:06}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => match r.json::<Value>().await {
                        Ok(v) => {
                            leases.lock().unwrap().push((v["lease_id"].as_str().unwrap_or_default().to_string(), u));
                            true
                        }
                        Err(_) => fail("body"),
                    },
                    r => success(&r) && fail("not 201"),
                }
            })
        })
    };
    let heartbeat_op = || -> Op {
        let (c, base, tokens) = (c.clone(), s.base.clone(), tokens.clone());
        let leases = Arc::new(leases.lock().unwrap().clone());
        Arc::new(move |n| {
            let (c, base, tokens, leases) = (c.clone(), base.clone(), tokens.clone(), leases.clone());
            Box::pin(async move {
                // Spread over every lease (a large odd stride visits them all).
                let (id, u) = &leases[((n * 7_919) % leases.len() as u64) as usize];
                let r = c
                    .post(format!("{base}/api/v1/seats/{id}/heartbeat"))
                    .bearer_auth(&tokens[*u])
                    .json(&json!({"idle_seconds": n % 900}))
                    .send()
                    .await;
                success(&r)
            })
        })
    };
    let dur = Duration::from_secs(a.seconds);
    let live = || leases.lock().unwrap().len() as u64;
    // Checkouts (50 clients, closed loop) until `count` more leases are live.
    let fill = async |count: u64, round: Option<usize>| {
        let (o, mut v) = with_cpu(&s, closed_loop(50, Duration::from_secs(3600), Some(count), checkout_op())).await;
        v["clients"] = 50.into();
        v["live_leases_after"] = live().into();
        v["licenses"] = products.len().into();
        v["seats_per_license"] = seats_per.into();
        if let Some(r) = round {
            v["round"] = r.into();
            with_pgbench(&mut v, o.rate(), pg_bench.as_deref(), a.seconds);
        }
        rep.emit("checkout_closed", v);
    };
    // Heartbeats on schedule at the offered rate; the server's resident memory after them.
    let open_round = async |round: usize| -> u64 {
        let (_, mut v) = with_cpu(&s, open_loop(a.heartbeat_rate, dur, heartbeat_op())).await;
        let (rss, hwm) = s.rss_kib();
        v["round"] = round.into();
        v["offered_per_s"] = a.heartbeat_rate.into();
        v["live_leases"] = live().into();
        v["rss_idle_mib"] = mib(idle).into();
        v["rss_now_mib"] = mib(rss).into();
        v["rss_peak_mib"] = mib(hwm).into();
        v["rss_parts"] = s.rss_parts();
        rep.emit("heartbeat_open", v);
        rss
    };
    let small = 1_000.min(a.leases) as u64;
    fill(small, None).await;
    let closed_small = warm_up(&s, rep, live(), heartbeat_op()).await;
    let mut rss_small = 0;
    for round in 0..a.rounds {
        if a.heartbeat_rate > 0.0 {
            rss_small = rss_small.max(open_round(round).await);
        }
    }
    // Checkouts on schedule, while the pools are still mostly free.
    for round in (0..a.rounds).filter(|_| a.checkout_rate > 0.0) {
        let (_, mut v) = with_cpu(&s, open_loop(a.checkout_rate, dur, checkout_op())).await;
        v["round"] = round.into();
        v["offered_per_s"] = a.checkout_rate.into();
        v["live_leases_after"] = live().into();
        v["seats_per_license"] = seats_per.into();
        rep.emit("checkout_open", v);
    }
    // The closed-loop checkout maximum, in `rounds` parts up to `leases`, each beside pgbench -N.
    let to_fill = (a.leases as u64).saturating_sub(live());
    for round in 0..a.rounds {
        let part =
            if round + 1 == a.rounds { (a.leases as u64).saturating_sub(live()) } else { to_fill / a.rounds as u64 };
        fill(part, Some(round)).await;
    }
    let closed_large = warm_up(&s, rep, live(), heartbeat_op()).await;
    let mut rss_large = 0;
    for round in 0..a.rounds {
        let (o, mut v) = against_healthz(&s, &c, dur, heartbeat_op()).await;
        v["round"] = round.into();
        v["live_leases"] = live().into();
        with_pgbench(&mut v, o.rate(), pg_bench.as_deref(), a.seconds);
        rep.emit("heartbeat_closed", v);
        if a.heartbeat_rate > 0.0 {
            rss_large = rss_large.max(open_round(round).await);
        }
    }
    rep.emit(
        "seats_memory",
        json!({
            "leases_small": small, "leases_large": live(),
            "rss_small_mib": mib(rss_small), "rss_large_mib": mib(rss_large),
            "ratio_large_to_small": round2(rss_large as f64 / rss_small as f64),
            "rss_small_closed_loop_mib": mib(closed_small), "rss_large_closed_loop_mib": mib(closed_large),
            "ratio_closed_loop": round2(closed_large as f64 / closed_small as f64),
            "licenses": f.products.len(),
        }),
    );
    if let Some(db) = pg_bench {
        pg_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
    }
    s.stop().await;
}

/// Resident memory of a fresh server idle, at the end of a burst of password sign-ins (8 clients,
/// `--seconds`), and every 5 s for a minute after it: the hashing pool frees its buffers once no
/// sign-in has run for a while, and the process should return to its idle footprint.
async fn memory(a: &Args, bin: &Path, rep: &Report) {
    let s = Server::start(bin, a.backend).await;
    let c = client();
    let f = fixture(&c, &s, 8, 1, 1_000).await;
    // Setting the fixture's passwords hashed too: let that settle into the idle state first.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (idle, _) = s.rss_kib();
    for round in 0..a.rounds {
        let users = Arc::new(f.users.clone());
        let (c2, base) = (c.clone(), s.base.clone());
        let op: Op = Arc::new(move |n| {
            let (c, base, users) = (c2.clone(), base.clone(), users.clone());
            Box::pin(async move {
                let email = &users[(n as usize) % users.len()];
                password_grant(&c, &base, PRODUCT, email).await.map_err(fail).is_ok()
            })
        });
        let o = closed_loop(8, Duration::from_secs(a.seconds), None, op).await;
        let (burst, hwm) = s.rss_kib();
        let mut after = serde_json::Map::new();
        let mut last = burst;
        for t in (5..=60).step_by(5) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            last = s.rss_kib().0;
            after.insert(format!("rss_after_{t}s_mib"), mib(last).into());
        }
        let mut v = o.json();
        v["round"] = round.into();
        v["clients"] = 8.into();
        v["rss_idle_before_mib"] = mib(idle).into();
        v["rss_end_of_burst_mib"] = mib(burst).into();
        v["rss_peak_mib"] = mib(hwm).into();
        v["rss_idle_after_mib"] = mib(last).into();
        v["rss_after"] = after.into();
        rep.emit("memory_after_burst", v);
    }
    s.stop().await;
}

fn main() {
    let a = parse_args();
    let bin = build_server();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let rep = Report {
        out: a.out.clone(),
        common: json!({
            "backend": a.backend.name(),
            "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "cpu": cpu_model(),
            "seconds_per_run": a.seconds,
            "server_bin": std::env::var("LATCHKEY_BENCH_BIN").unwrap_or_else(|_| "this checkout".into()),
        }),
    };
    rt.block_on(async {
        let all = a.scenario == "all";
        let mut ran = false;
        if all || a.scenario == "password" {
            password(&a, &bin, &rep).await;
            ran = true;
        }
        if all || a.scenario == "refresh" {
            refresh(&a, &bin, &rep).await;
            ran = true;
        }
        if all || a.scenario == "seats" {
            seats(&a, &bin, &rep).await;
            ran = true;
        }
        if a.scenario == "memory" {
            memory(&a, &bin, &rep).await;
            ran = true;
        }
        assert!(ran, "unknown scenario {:?}: password, refresh, seats, memory or all", a.scenario);
    });
}
