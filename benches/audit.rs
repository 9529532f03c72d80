//! What the audit log costs, and how its export behaves at scale.
//!
//! ```text
//! cargo bench --bench audit -- rates  --backend postgres --seconds 8 --rounds 3
//! cargo bench --bench audit -- export --backend postgres --events 1000000
//! cargo bench --bench audit -- pages  --backend postgres --events 10000000
//! ```
//!
//! - `rates`: seat checkouts (16 clients, closed loop, a new computer each time, so each one
//!   inserts a lease and claims a slot) and password grants (8 clients, closed loop) on a server
//!   with auditing on and on one with it off, in the same run, alternating which goes first round
//!   by round. Off is `Config::audit_off_for_benchmarks`, a field only code can set (no flag, no
//!   variable): the same server, without the INSERT of the event. Each measurement starts a fresh
//!   server on a fresh database; the ratio on/off is reported per round and as the median.
//! - `export`: `--events` events (1,000,000) written straight into the events table (sealed, with
//!   realistic sizes), then `GET /api/v1/audit?format=ndjson` read to the end: events per second,
//!   MB per second, and the process's resident memory before and at its peak (VmRSS, VmHWM). A
//!   tenth of the events is exported first, so the peaks of a small and a large export compare.
//! - `pages`: `--events` events (10,000,000) spread over 100 chains (one of them the entity
//!   `acme`'s), 8 actions and 500 actors over a week, written straight into the table; then
//!   each filtered first page the API offers (no filter, an action, an actor, a UTC day, an hour,
//!   the entity's log and its log for one action, a day or an hour, a deep cursor, a filter that
//!   matches nothing), 50
//!   events a page, p50/p99 of 100 requests each beside `/healthz` in the same round.
//!
//! PostgreSQL databases are made on 127.0.0.1:5432, or on the port `LATCHKEY_BENCH_PG_PORT` names
//! (a private cluster: `initdb` into /tmp, `pg_ctl -o "-p 5547" start`).
//!
//! The server runs in this process (the library, built with the bench profile, like the release
//! binary), on port 0, with a real HTTP client on loopback; the client shares the machine's cores
//! with the server and the database, so the rates are a floor and only their ratio matters.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use latchkey::{
    app::App,
    clock::SystemClock,
    config::Config,
    crypto::{random_secret, secret_hash},
    state::AppState,
    store,
};
use serde_json::{Value, json};

/// The PostgreSQL server the bench creates its databases on: port 5432 unless
/// `LATCHKEY_BENCH_PG_PORT` names another (a private cluster keeps other users of a shared server,
/// and their connections, out of the figures).
fn pg_url(db: &str) -> String {
    let port = std::env::var("LATCHKEY_BENCH_PG_PORT").unwrap_or_else(|_| "5432".into());
    format!("postgres://postgres@127.0.0.1:{port}/{db}")
}
const PASSWORD: &str = "bench-Winter-Orchard-7319";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Args {
    scenario: String,
    backend: Backend,
    seconds: u64,
    rounds: usize,
    events: u64,
}

fn parse_args() -> Args {
    let mut a = Args { scenario: "rates".into(), backend: Backend::Sqlite, seconds: 8, rounds: 3, events: 1_000_000 };
    let mut it = std::env::args().skip(1).filter(|s| s != "--bench");
    while let Some(arg) = it.next() {
        let mut val = || it.next().expect("a value");
        match arg.as_str() {
            "--backend" => {
                a.backend = match val().as_str() {
                    "sqlite" => Backend::Sqlite,
                    "postgres" | "pg" => Backend::Postgres,
                    o => panic!("unknown backend {o}"),
                }
            }
            "--seconds" => a.seconds = val().parse().expect("--seconds N"),
            "--rounds" => a.rounds = val().parse::<usize>().expect("--rounds N").max(1),
            "--events" => a.events = val().parse().expect("--events N"),
            s if !s.starts_with('-') => a.scenario = s.to_string(),
            o => panic!("unknown option {o}"),
        }
    }
    a
}

struct Server {
    state: AppState,
    base: String,
    operator_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    dir: std::path::PathBuf,
    pg_db: Option<String>,
}

async fn pg_exec(sql: &str) {
    use sqlx::Connection;
    let mut c = sqlx::postgres::PgConnection::connect(&pg_url("postgres")).await.expect("PostgreSQL on 127.0.0.1");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut c).await.expect(sql);
}

impl Server {
    async fn start(backend: Backend, audit: bool) -> Server {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("latchkey-audit-bench-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let (url, pg_db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/latchkey.db?mode=rwc", dir.display()), None),
            Backend::Postgres => {
                let name = format!("latchkey_audit_bench_{}", &id[..12]);
                pg_exec(&format!("CREATE DATABASE {name}")).await;
                (pg_url(&name), Some(name))
            }
        };
        let mut config = Config::defaults();
        config.database_url = url;
        config.listen = "127.0.0.1:0".into();
        config.master_key_file = dir.join("master.key");
        config.mail_dir = dir.join("outbox");
        config.access_token_ttl = "4h".parse().unwrap();
        config.lease_ttl = "4h".parse().unwrap();
        config.audit_off_for_benchmarks = !audit;
        let app = App::build(config, Arc::new(SystemClock)).await.expect("build");
        let state = app.state.clone();
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let operator_key = random_secret("lk_op_");
        store::keys::insert_operator_key(&state.db.pool, &store::new_id(), "bench", &secret_hash(&operator_key), 0)
            .await
            .unwrap();
        Server { state, base, operator_key, stop: Some(tx), task: Some(task), dir, pg_db }
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        if let Some(db) = &self.pg_db {
            pg_exec(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1024).tcp_nodelay(true).build().unwrap()
}

async fn post(c: &reqwest::Client, s: &Server, path: &str, body: Value) -> Value {
    let r = c.post(format!("{}{path}", s.base)).bearer_auth(&s.operator_key).json(&body).send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A product, an entity, a floating license of `seats`, `users` users with a password; their
/// emails and product access tokens.
async fn fixture(s: &Server, users: usize, seats: i64) -> (Vec<String>, Vec<String>) {
    let c = client();
    post(&c, s, "/api/v1/products", json!({ "sku": "bench", "name": "Bench" })).await;
    post(&c, s, "/api/v1/entities", json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" }))
        .await;
    let l = post(
        &c,
        s,
        "/api/v1/entities/acme/licenses",
        json!({ "product": "bench", "type": "floating", "seats": seats }),
    )
    .await;
    let license = l["id"].as_str().unwrap().to_string();
    let emails: Vec<String> = (0..users).map(|i| format!("user{i:04}@acme.example")).collect();
    post(&c, s, &format!("/api/v1/licenses/{license}/assignments"), json!({ "emails": emails })).await;
    let hash = s.state.hasher.hash(PASSWORD).await.unwrap();
    let now = s.state.now();
    let mut tokens = Vec::new();
    for e in &emails {
        let u = store::accounts::user_by_email(&s.state.db.pool, e).await.unwrap().unwrap();
        store::accounts::set_password(&s.state.db.pool, &u.id, &hash, now).await.unwrap();
        let t = latchkey::tokens::issue(&s.state, &u, "acme", "bench", latchkey::tokens::Amr::Pwd, now).await.unwrap();
        tokens.push(t.access_token);
    }
    (emails, tokens)
}

/// Whether the answer had the expected status; the first few others are printed with their body,
/// so a benchmark never counts refusals as work without saying why.
async fn note(r: reqwest::Result<reqwest::Response>, want: u16) -> bool {
    static SHOWN: AtomicU64 = AtomicU64::new(0);
    let why = match r {
        Ok(r) if r.status().as_u16() == want => return true,
        Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
        Err(e) => format!("transport: {e}"),
    };
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("unexpected answer: {}", why.chars().take(300).collect::<String>());
    }
    false
}

type Op = Arc<dyn Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync>;

/// Operations per second of `op` in a closed loop, and how many failed.
async fn closed_loop(clients: usize, dur: Duration, op: Op) -> (f64, u64) {
    let n = Arc::new(AtomicU64::new(0));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (op, n, ok, bad) = (op.clone(), n.clone(), ok.clone(), bad.clone());
        tasks.push(tokio::spawn(async move {
            while t0.elapsed() < dur {
                let i = n.fetch_add(1, Ordering::Relaxed);
                if op(i).await {
                    ok.fetch_add(1, Ordering::Relaxed)
                } else {
                    bad.fetch_add(1, Ordering::Relaxed)
                };
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (ok.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64(), bad.load(Ordering::Relaxed))
}

async fn measure(backend: Backend, audit: bool, secs: u64) -> Value {
    let s = Server::start(backend, audit).await;
    let (emails, tokens) = fixture(&s, 64, 100_000).await;
    let c = client();
    let dur = Duration::from_secs(secs);
    let (base, tokens) = (s.base.clone(), Arc::new(tokens));
    let cc = c.clone();
    let checkout: Op = Arc::new(move |i| {
        let (c, base, tokens) = (cc.clone(), base.clone(), tokens.clone());
        Box::pin(async move {
            let r = c
                .post(format!("{base}/api/v1/seats"))
                .bearer_auth(&tokens[i as usize % tokens.len()])
                .json(&json!({ "product": "bench", "machine": format!("host-{i:07}") }))
                .send()
                .await;
            note(r, 201).await
        })
    });
    let (checkouts, checkout_errors) = closed_loop(16, dur, checkout).await;
    let (base, emails) = (s.base.clone(), Arc::new(emails));
    let grant: Op = Arc::new(move |i| {
        let (c, base, emails) = (c.clone(), base.clone(), emails.clone());
        Box::pin(async move {
            let email = &emails[i as usize % emails.len()];
            let form =
                [("grant_type", "password"), ("client_id", "bench"), ("username", email), ("password", PASSWORD)];
            let r = c.post(format!("{base}/oauth/token")).form(&form).send().await;
            note(r, 200).await
        })
    });
    let (grants, grant_errors) = closed_loop(8, dur, grant).await;
    latchkey::audit::seal_now(&s.state).await;
    let events: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&s.state.db.pool).await.unwrap();
    s.stop().await;
    json!({
        "audit": audit,
        "checkouts_per_s": (checkouts * 10.0).round() / 10.0,
        "checkout_errors": checkout_errors,
        "password_grants_per_s": (grants * 10.0).round() / 10.0,
        "grant_errors": grant_errors,
        "audit_events": events,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

async fn rates(a: &Args) {
    let (mut co, mut pw) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        // Alternate which goes first, so drift (a warming cache, a busy neighbour) favours neither.
        let order = if round % 2 == 0 { [false, true] } else { [true, false] };
        let mut got = std::collections::HashMap::new();
        for audit in order {
            let v = measure(a.backend, audit, a.seconds).await;
            println!(
                "{}",
                json!({ "scenario": "rates", "backend": format!("{:?}", a.backend), "round": round, "result": v })
            );
            got.insert(audit, v);
        }
        let ratio = |k: &str| got[&true][k].as_f64().unwrap() / got[&false][k].as_f64().unwrap();
        co.push(ratio("checkouts_per_s"));
        pw.push(ratio("password_grants_per_s"));
        println!(
            "{}",
            json!({ "round": round, "checkout_ratio_on_off": (ratio("checkouts_per_s") * 1000.0).round() / 1000.0,
                    "password_grant_ratio_on_off": (ratio("password_grants_per_s") * 1000.0).round() / 1000.0 })
        );
    }
    println!(
        "{}",
        json!({ "summary": "rates", "backend": format!("{:?}", a.backend), "rounds": a.rounds, "seconds": a.seconds,
                "median_checkout_ratio_on_off": (median(co) * 1000.0).round() / 1000.0,
                "median_password_grant_ratio_on_off": (median(pw) * 1000.0).round() / 1000.0 })
    );
}

/// (VmRSS, VmHWM) of this process, in MiB.
fn memory() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Write `n` sealed events of one chain straight into the table, numbered after what is there.
async fn insert_events(s: &Server, backend: Backend, n: u64) {
    latchkey::audit::seal_now(&s.state).await;
    let pool = &s.state.db.pool;
    let last: i64 =
        sqlx::query_scalar("SELECT last_order FROM audit_sealer WHERE id = 1").fetch_one(pool).await.unwrap();
    // One row as the API records it (sizes as in real events), varied by its number.
    let row = "'ev-' || (x + LAST), 'bench-chain', 'acme', 1800000000000 + x, 'user', 'u-' || (x % 500), \
               'user' || (x % 500) || '@acme.example', 'seat.checked_out', \
               '[{\"id\":\"0193b5c4-7d2e-7a61-9f3e-2b8c1d4e5f60\",\"name\":null,\"type\":\"lease\"},\
               {\"id\":\"0193b5c4-7d2e-7a61-9f3e-2b8c1d4e5f61\",\"name\":null,\"type\":\"license\"}]', \
               '203.0.113.7', 'ReadyAPI/3.52.0 (Windows 11; x64)', 'req-' || x, \
               '{\"machine\":\"host-' || x || '\",\"same_computer_again\":false}', x + LAST, \
               '5f2b8a1c9d3e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8', x + ";
    let sql = match backend {
        Backend::Postgres => format!(
            "INSERT INTO audit_events (id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, \
             user_agent, request_id, details, seq, hash, seal_order) SELECT {row}{last} FROM generate_series(1, {n}) AS x",
            row = row.replace("LAST", &last.to_string())
        ),
        Backend::Sqlite => format!(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
             INSERT INTO audit_events (id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, \
             user_agent, request_id, details, seq, hash, seal_order) SELECT {row}{last} FROM c",
            row = row.replace("LAST", &last.to_string())
        ),
    };
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
    sqlx::query("UPDATE audit_sealer SET last_order = last_order + $1 WHERE id = 1")
        .bind(n as i64)
        .execute(pool)
        .await
        .unwrap();
    // Its seal mark, as the sealer writes one per batch.
    let max_at: i64 = sqlx::query_scalar("SELECT MAX(at) FROM audit_events WHERE seal_order > $1")
        .bind(last)
        .fetch_one(pool)
        .await
        .unwrap();
    let mut c = pool.acquire().await.unwrap();
    store::audit::mark_sealed(&mut c, last + 1, max_at).await.unwrap();
    drop(c);
    if backend == Backend::Postgres {
        sqlx::query("ANALYZE audit_events").execute(pool).await.unwrap();
    }
}

/// Read an export to its end without keeping it: (events, bytes, seconds).
async fn export_once(s: &Server, query: &str) -> (u64, u64, f64) {
    let t0 = Instant::now();
    let mut r = client()
        .get(format!("{}/api/v1/audit?format=ndjson{query}", s.base))
        .bearer_auth(&s.operator_key)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (mut lines, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = r.chunk().await.unwrap() {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    (lines, bytes, t0.elapsed().as_secs_f64())
}

async fn export(a: &Args) {
    let s = Server::start(a.backend, true).await;
    let small = a.events / 10;
    insert_events(&s, a.backend, small).await;
    let (rss0, _) = memory();
    let (n1, b1, t1) = export_once(&s, "").await;
    let (_, hwm1) = memory();
    insert_events(&s, a.backend, a.events - small).await;
    let (rss1, _) = memory();
    let (n2, b2, t2) = export_once(&s, "").await;
    let (rss2, hwm2) = memory();
    for (events, bytes, secs, before, peak) in [(n1, b1, t1, rss0, hwm1), (n2, b2, t2, rss1, hwm2)] {
        println!(
            "{}",
            json!({ "scenario": "export", "backend": format!("{:?}", a.backend), "events": events,
                    "mb": (bytes as f64 / 1e6).round(), "seconds": (secs * 100.0).round() / 100.0,
                    "events_per_s": (events as f64 / secs).round(), "mb_per_s": (bytes as f64 / 1e6 / secs * 10.0).round() / 10.0,
                    "rss_before_mib": before.round(), "peak_rss_mib_so_far": peak.round() })
        );
    }
    println!("{}", json!({ "rss_after_mib": rss2.round() }));
    s.stop().await;
}

/// `n` sealed events over 100 chains (every hundredth on `entity_chain`), 8 actions, 500 actors,
/// one every 60 ms from 2027-01-15T08:00:00Z, written in batches of a million.
async fn insert_spread_events(s: &Server, backend: Backend, entity_chain: &str, n: u64) {
    latchkey::audit::seal_now(&s.state).await;
    let pool = &s.state.db.pool;
    let last: i64 =
        sqlx::query_scalar("SELECT last_order FROM audit_sealer WHERE id = 1").fetch_one(pool).await.unwrap();
    let row = format!(
        "'ev-' || x, CASE WHEN x % 100 = 0 THEN '{entity_chain}' ELSE 'chain-' || (x % 100) END, \
         CASE WHEN x % 100 = 0 THEN 'acme' ELSE 'entity-' || (x % 100) END, {START_MS} + x * 60, 'user', \
         'u-' || (x % 500), 'user' || (x % 500) || '@acme.example', \
         CASE x % 8 WHEN 0 THEN 'seat.checked_out' WHEN 1 THEN 'seat.released' WHEN 2 THEN 'user.signed_in' \
         WHEN 3 THEN 'assignment.created' WHEN 4 THEN 'seat.denied' WHEN 5 THEN 'license.updated' \
         WHEN 6 THEN 'user.sign_in_failed' ELSE 'seat.disconnected' END, \
         '[{{\"id\":\"0193b5c4-7d2e-7a61-9f3e-2b8c1d4e5f60\",\"name\":null,\"type\":\"lease\"}}]', \
         '203.0.113.7', 'ReadyAPI/3.52.0 (Windows 11; x64)', 'req-' || x, '{{\"machine\":\"host-' || x || '\"}}', \
         x, '5f2b8a1c9d3e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8', x + {last}"
    );
    let cols = "id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, user_agent, request_id, \
                details, seq, hash, seal_order";
    let step = 1_000_000u64;
    let mut from = 1;
    while from <= n {
        let to = (from + step - 1).min(n);
        let sql = match backend {
            Backend::Postgres => {
                format!("INSERT INTO audit_events ({cols}) SELECT {row} FROM generate_series({from}, {to}) AS x")
            }
            Backend::Sqlite => format!(
                "WITH RECURSIVE c(x) AS (SELECT {from} UNION ALL SELECT x + 1 FROM c WHERE x < {to}) \
                 INSERT INTO audit_events ({cols}) SELECT {row} FROM c"
            ),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.unwrap();
        // Seal marks as the sealer would have written them: one per minute of event time.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_seal_marks (first_order, max_at) SELECT MIN(seal_order), MAX(at) FROM audit_events \
             WHERE seal_order BETWEEN {} AND {} GROUP BY at / 60000",
            from as i64 + last,
            to as i64 + last
        )))
        .execute(pool)
        .await
        .unwrap();
        from = to + 1;
    }
    sqlx::query("UPDATE audit_sealer SET last_order = last_order + $1 WHERE id = 1")
        .bind(n as i64)
        .execute(pool)
        .await
        .unwrap();
    let analyze = if backend == Backend::Postgres { "ANALYZE audit_events" } else { "ANALYZE" };
    sqlx::query(analyze).execute(pool).await.unwrap();
}

const START_MS: i64 = 1_800_000_000_000;

/// p50 and p99 in ms of `n` sequential GETs of `path` (with the operator key), and the size of the
/// last answer's page.
async fn latency(c: &reqwest::Client, s: &Server, path: &str, n: usize) -> (f64, f64, usize) {
    let mut ms = Vec::with_capacity(n);
    let mut got = 0;
    for _ in 0..n {
        let t0 = Instant::now();
        let r = c.get(format!("{}{path}", s.base)).bearer_auth(&s.operator_key).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        assert!(status.is_success(), "{path}: {status} {body}");
        got = body["events"].as_array().map_or(0, Vec::len);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    (ms[n / 2], ms[(n * 99 / 100).min(n - 1)], got)
}

async fn pages(a: &Args) {
    let s = Server::start(a.backend, true).await;
    let c = client();
    post(&c, &s, "/api/v1/entities", json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" }))
        .await;
    let chain: String =
        sqlx::query_scalar("SELECT id FROM entities WHERE slug = 'acme'").fetch_one(&s.state.db.pool).await.unwrap();
    let t0 = Instant::now();
    insert_spread_events(&s, a.backend, &chain, a.events).await;
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_events").fetch_one(&s.state.db.pool).await.unwrap();
    println!("{}", json!({ "scenario": "pages", "events": total, "insert_seconds": t0.elapsed().as_secs() }));
    // A day in the middle of the week the events span.
    let day = time::OffsetDateTime::from_unix_timestamp(START_MS / 1000 + 3 * 86_400).unwrap().date();
    let deep = (a.events * 9 / 10).to_string();
    let queries: Vec<(&str, String)> = vec![
        ("first page, no filter", "/api/v1/audit?limit=50".into()),
        ("one action (1/8)", "/api/v1/audit?limit=50&action=seat.released".into()),
        ("one actor (1/500)", "/api/v1/audit?limit=50&actor=user7%40acme.example".into()),
        ("one UTC day", format!("/api/v1/audit?limit=50&from={day}&to={day}")),
        ("actor and day", format!("/api/v1/audit?limit=50&actor=user7%40acme.example&from={day}&to={day}")),
        ("one hour", format!("/api/v1/audit?limit=50&from={day}T12:00:00Z&to={day}T12:59:59Z")),
        (
            "entity and one hour",
            format!("/api/v1/entities/acme/audit?limit=50&from={day}T12:00:00Z&to={day}T12:59:59Z"),
        ),
        ("entity and day", format!("/api/v1/entities/acme/audit?limit=50&from={day}&to={day}")),
        ("entity (1/100)", "/api/v1/entities/acme/audit?limit=50".into()),
        ("entity and action (1/800)", "/api/v1/entities/acme/audit?limit=50&action=license.updated".into()),
        ("entity, actor and day", format!("/api/v1/entities/acme/audit?limit=50&actor=u-100&from={day}&to={day}")),
        ("deep cursor (90%)", format!("/api/v1/audit?limit=50&after={deep}")),
        ("matches nothing", "/api/v1/audit?limit=50&action=no.such.action".into()),
    ];
    let rounds = 100;
    for _ in 0..10 {
        let _ = latency(&c, &s, "/healthz", 1).await;
    }
    for (name, path) in &queries {
        let (bp50, bp99, _) = latency(&c, &s, "/healthz", rounds).await;
        let (p50, p99, got) = latency(&c, &s, path, rounds).await;
        println!(
            "{}",
            json!({ "scenario": "pages", "backend": format!("{:?}", a.backend), "query": name, "events_on_page": got,
                    "p50_ms": (p50 * 10.0).round() / 10.0, "p99_ms": (p99 * 10.0).round() / 10.0,
                    "healthz_p50_ms": (bp50 * 10.0).round() / 10.0, "healthz_p99_ms": (bp99 * 10.0).round() / 10.0 })
        );
    }
    s.stop().await;
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        match a.scenario.as_str() {
            "rates" => rates(&a).await,
            "export" => export(&a).await,
            "pages" => pages(&a).await,
            o => panic!("unknown scenario {o} (rates, export, pages)"),
        }
    });
}
