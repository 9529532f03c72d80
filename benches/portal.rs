//! The portal's pages on a large license: 10,000 assignees and 1,000 live seats.
//!
//! `cargo bench --bench portal -- [--backend sqlite|postgres] [--requests N] [--rounds R]`
//!
//! Builds the service in this process (release, as `cargo bench` compiles), fills it through the
//! service's own functions (bulk assignment, seat checkouts), waits until the setup mails are
//! written, then requests each page N times in a row as the signed-in administrator over HTTP on
//! loopback, and `/healthz` the same way in the same round as the baseline. Client and server share
//! the process and the machine's two cores. Prints one JSON object per page and round.
//!
//! PostgreSQL databases are made on 127.0.0.1:5432, or on the port `LATCHKEY_BENCH_PG_PORT` names
//! (a private cluster: `initdb` into /tmp, `pg_ctl -o "-p 5499" start`).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{sync::Arc, time::Instant};

use latchkey::{app::App, audit::Context, clock::SystemClock, config::Config, store};
use serde_json::json;

const ASSIGNEES: usize = 10_000;
const LIVE: usize = 1_000;

struct Args {
    backend: String,
    requests: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args { backend: "sqlite".into(), requests: 200, rounds: 2 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--backend" => a.backend = it.next().expect("--backend sqlite|postgres"),
            "--requests" => a.requests = it.next().and_then(|v| v.parse().ok()).expect("--requests N"),
            "--rounds" => a.rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn load_avg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("latchkey-bench-portal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = Config::defaults();
    let pg_name = format!("lk_bench_portal_{}", std::process::id());
    // A private cluster (`LATCHKEY_BENCH_PG_PORT`) keeps other users of a shared server out of the figures.
    let pg_port = std::env::var("LATCHKEY_BENCH_PG_PORT").unwrap_or_else(|_| "5432".into());
    let pg_admin = format!("postgres://postgres@127.0.0.1:{pg_port}/postgres");
    config.database_url = match a.backend.as_str() {
        "sqlite" => format!("sqlite://{}/latchkey.db?mode=rwc", dir.display()),
        "postgres" => {
            sqlx::any::install_default_drivers();
            let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&pg_admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {pg_name}"))).execute(&mut c).await.unwrap();
            format!("postgres://postgres@127.0.0.1:{pg_port}/{pg_name}")
        }
        other => panic!("backend {other}"),
    };
    config.listen = "127.0.0.1:0".into();
    config.master_key_file = dir.join("master.key");
    config.mail_dir = dir.join("outbox");
    config.smtp_url = None;
    let app = App::build(config, Arc::new(SystemClock)).await.unwrap();
    let state = app.state.clone();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending::<()>()));

    // The fixture, through the operator API and the service's functions.
    let key = latchkey::crypto::random_secret("lk_op_");
    store::keys::insert_operator_key(
        &state.db.pool,
        &store::new_id(),
        "bench",
        &latchkey::crypto::secret_hash(&key),
        0,
    )
    .await
    .unwrap();
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let post =
        |path: &str, body: serde_json::Value| c.post(format!("{base}{path}")).bearer_auth(&key).json(&body).send();
    assert!(post("/api/v1/products", json!({ "sku": "bench", "name": "Bench" })).await.unwrap().status().is_success());
    let admin = "admin@bench.example.com";
    let r = post("/api/v1/entities", json!({ "slug": "acme", "name": "Acme", "admin_email": admin })).await.unwrap();
    assert!(r.status().is_success());
    let r = post("/api/v1/entities/acme/licenses", json!({ "product": "bench", "type": "floating", "seats": LIVE }))
        .await
        .unwrap();
    let license = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let ctx = Context::system("bench");
    let t0 = Instant::now();
    let emails: Vec<String> = (0..ASSIGNEES).map(|i| format!("user-{i:05}@bench.example.com")).collect();
    for chunk in emails.chunks(1000) {
        let done = latchkey::licenses::admin::assign_many(&state, &ctx, &license, chunk, state.now()).await.unwrap();
        assert!(done.iter().all(|e| e.status == "assigned"));
    }
    for (i, e) in emails.iter().take(LIVE).enumerate() {
        let u = store::accounts::user_by_email(&state.db.pool, e).await.unwrap().unwrap();
        latchkey::licenses::seats::checkout(&state, &ctx, &u.id, None, "bench", &format!("pc-{i:04}")).await.unwrap();
    }
    // The setup mails are written out before anything is measured.
    state.wake_mailer();
    while store::outbox::pending_count(&state.db.pool).await.unwrap() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!("fixture: {ASSIGNEES} assignees, {LIVE} live seats in {:.1} s", t0.elapsed().as_secs_f64());
    // A database in service has current planner statistics: PostgreSQL's autovacuum analyses a
    // table within a minute or so of such a change, and the service runs SQLite's `PRAGMA
    // optimize` at start and hourly. Bring this freshly filled one to that state before measuring.
    match state.db.backend {
        store::Backend::Postgres => {
            sqlx::query("ANALYZE").execute(&state.db.pool).await.unwrap();
        }
        store::Backend::Sqlite => state.db.optimize().await.unwrap(),
    }

    let u = store::accounts::user_by_email(&state.db.pool, admin).await.unwrap().unwrap();
    let cookie = latchkey::browser::session::start(&state, &u.id, "pwd").await.unwrap();
    let cookie = cookie.to_str().unwrap().split(';').next().unwrap().to_string();
    let pages = [
        ("healthz (baseline)", "/healthz".to_string()),
        ("licenses", "/portal/entities/acme/licenses".into()),
        ("license, first page", format!("/portal/licenses/{license}")),
        // Deep pages as the pager links them (keyset: the key of the row before the page).
        ("license, page 150", format!("/portal/licenses/{license}?after=user-07449%40bench.example.com")),
        ("license, last page", format!("/portal/licenses/{license}?last=1")),
        ("license, search", format!("/portal/licenses/{license}?q=user-0424")),
        ("live seats, first page", format!("/portal/licenses/{license}/seats")),
        ("live seats, last page", format!("/portal/licenses/{license}/seats?last=1")),
        ("users, page 100", "/portal/entities/acme/users?after=user-04949%40bench.example.com".into()),
        ("usage, 30 days", "/portal/entities/acme/usage".into()),
        ("my licenses", "/portal".into()),
    ];
    for round in 0..a.rounds {
        let mut baseline = 0.0;
        for (name, path) in &pages {
            let url = format!("{base}{path}");
            let get = || c.get(&url).header("cookie", &cookie).send();
            for _ in 0..10 {
                let r = get().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                r.bytes().await.unwrap();
            }
            let mut ms = Vec::with_capacity(a.requests);
            let mut bytes = 0;
            for _ in 0..a.requests {
                let t = Instant::now();
                let r = get().await.unwrap();
                assert_eq!(r.status(), 200, "{path}");
                bytes = r.bytes().await.unwrap().len();
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(|x, y| x.total_cmp(y));
            let p99 = pct(&ms, 0.99);
            if path == "/healthz" {
                baseline = p99;
            }
            println!(
                "{}",
                json!({
                    "round": round, "backend": a.backend, "page": name, "path": path, "requests": a.requests,
                    "bytes": bytes, "p50_ms": (pct(&ms, 0.5) * 100.0).round() / 100.0,
                    "p99_ms": (p99 * 100.0).round() / 100.0, "max_ms": (ms[ms.len() - 1] * 100.0).round() / 100.0,
                    "p99_over_healthz_p99": (p99 / baseline * 10.0).round() / 10.0, "load": load_avg(),
                })
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if a.backend == "postgres" {
        state.db.pool.close().await;
        let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&pg_admin).await.unwrap();
        let drop = format!("DROP DATABASE {pg_name} WITH (FORCE)");
        sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut c).await.unwrap();
    }
}
