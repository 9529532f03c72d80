//! PostgreSQL stopped and started again while products heartbeat their seats.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const PRODUCTS: usize = 8;
/// Longest a request may take, outage or not.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// How soon after the database is back every request must succeed again.
const RECOVER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    took: Duration,
    /// `None`: no answer at all (a hang past the client timeout, or a dropped connection).
    status: Option<StatusCode>,
    body: Value,
    retry_after: Option<String>,
}

async fn timed(req: reqwest::RequestBuilder) -> Answer {
    let at = Instant::now();
    let r = req.timeout(Duration::from_secs(5)).send().await;
    let (status, retry_after, body) = match r {
        Ok(r) => {
            let status = r.status();
            let retry_after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
            let text = r.text().await.unwrap_or_default();
            (Some(status), retry_after, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        Err(_) => (None, None, Value::Null),
    };
    Answer { at, took: at.elapsed(), status, body, retry_after }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_answers_503_at_once_and_heals_by_itself() {
    let _alone = TIMING.write().await;
    let Some(bin) = require_pg("database_restart") else { return };
    // A private instance: restarting the machine's shared server would break every other test.
    let pg = PrivatePg::start(&bin);
    let db = fresh_database(&pg.admin_url()).await;
    let dir = TempDir::new("pg-restart");
    let cfg = ServerConfig::new(&db, dir.path());
    let op = cfg.operator_key();
    let server = cfg.start();
    let fx = fixture(&server, op, PRODUCTS as i64, PRODUCTS).await;
    let c = client();
    let mut held = Vec::new();
    for u in &fx.users {
        let (access, _) = sign_in(&server, u).await;
        let body = json!({ "product": "readyapi", "machine": format!("{u}-pc") });
        let lease = created(post(&c, &server.url("/api/v1/seats"), Some(&access), body).await).await;
        held.push((access, lease["lease_id"].as_str().unwrap().to_string()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<(String, Answer)>>> = Arc::default();
    let mut tasks = Vec::new();
    for (access, lease) in held.clone() {
        let (stop, answers, url) =
            (stop.clone(), answers.clone(), server.url(&format!("/api/v1/seats/{lease}/heartbeat")));
        tasks.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::SeqCst) {
                let a = timed(c.post(&url).bearer_auth(&access).json(&json!({ "idle_seconds": 0 }))).await;
                answers.lock().unwrap().push(("heartbeat".into(), a));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    let (ready_stop, ready_answers, ready_url) = (stop.clone(), answers.clone(), server.url("/readyz"));
    tasks.push(tokio::spawn(async move {
        let c = client();
        while !ready_stop.load(Ordering::SeqCst) {
            let a = timed(c.get(&ready_url)).await;
            ready_answers.lock().unwrap().push(("readyz".into(), a));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let down_at = Instant::now();
    // pg_ctl waits for the server (blocking): off the load's worker threads.
    tokio::task::block_in_place(|| pg.ctl(&["stop"]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::block_in_place(|| pg.ctl(&["start"]));
    let up_at = Instant::now();
    tokio::time::sleep(RECOVER_WITHIN + Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    let mut wrong = Vec::new();
    for (what, a) in &answers {
        let t = a.at.duration_since(down_at.min(a.at)).as_millis();
        match a.status {
            None => wrong.push(format!("{what} at +{t} ms: no answer after {:?}", a.took)),
            Some(_) if a.took > ANSWER_WITHIN => wrong.push(format!("{what} at +{t} ms took {:?}", a.took)),
            Some(StatusCode::OK) => {}
            Some(StatusCode::SERVICE_UNAVAILABLE) if what == "readyz" => {}
            Some(StatusCode::SERVICE_UNAVAILABLE) => {
                if a.body["code"] != "unavailable" || a.retry_after.is_none() {
                    wrong.push(format!("{what} at +{t} ms: 503 without code unavailable and Retry-After: {}", a.body));
                }
            }
            Some(s) => wrong.push(format!("{what} at +{t} ms: {s} {}", a.body)),
        }
    }
    assert!(wrong.is_empty(), "{} of {} answers were wrong:\n{}", wrong.len(), answers.len(), wrong.join("\n"));

    // The outage was seen: heartbeats answered 503, and readiness said so.
    let during = |what: &str, status: StatusCode| {
        answers.iter().any(|(w, a)| w == what && a.status == Some(status) && a.at >= down_at && a.at <= up_at)
    };
    assert!(during("heartbeat", StatusCode::SERVICE_UNAVAILABLE), "no heartbeat saw the outage");
    assert!(during("readyz", StatusCode::SERVICE_UNAVAILABLE), "/readyz never said the database was gone");
    // Healed by itself: from RECOVER_WITHIN after the database came back, everything succeeds.
    let late: Vec<&Answer> = answers.iter().map(|(_, a)| a).filter(|a| a.at >= up_at + RECOVER_WITHIN).collect();
    assert!(!late.is_empty(), "no requests after the recovery window");
    assert!(
        late.iter().all(|a| a.status == Some(StatusCode::OK)),
        "still failing {RECOVER_WITHIN:?} after the restart"
    );
    // Nothing committed was lost: every seat checked out before the outage is still held.
    for (access, lease) in &held {
        let r = post(
            &c,
            &server.url(&format!("/api/v1/seats/{lease}/heartbeat")),
            Some(access),
            json!({ "idle_seconds": 1 }),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "lease {lease} after the restart");
    }
    let live = query_i64(
        &db,
        &format!("SELECT COUNT(*) FROM leases WHERE license_id = '{}' AND ended_at IS NULL", fx.license),
    )
    .await;
    assert_eq!(live, [PRODUCTS as i64]);
}
