//! Two replicas on one PostgreSQL database; one is killed with SIGKILL in the middle of a storm
//! of seat checkouts, heartbeats and token refreshes.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const SEATS: i64 = 4;
const USERS: usize = 10;

#[derive(Default)]
struct Seen {
    /// Lease ids answered 201, per user.
    granted: HashMap<String, BTreeSet<String>>,
    /// Answers that must never happen: (replica, what, status, body).
    wrong: Vec<String>,
    /// Requests whose answer never came (the killed replica).
    cut_off: usize,
    /// 503 `unavailable` with Retry-After: the database was too busy; the product retries.
    busy: usize,
    ok: usize,
}

/// A 503 that tells the product to come back later: an answer, not a failure.
fn busy(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::SERVICE_UNAVAILABLE
        && (body["code"] == "unavailable" || body["error"] == "temporarily_unavailable")
}

/// One product run by one user: check out a seat on its computer (409 while the pool is full),
/// heartbeat it once held, and refresh its tokens, each request to the next replica that is up.
async fn product(
    user: String,
    replicas: Vec<String>,
    b_down: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    tokens: (String, String),
) {
    let c = client();
    let (mut access, mut refresh) = tokens;
    let mut lease: Option<String> = None;
    // A refresh whose answer was lost may have been spent: its reuse then revokes the family.
    let mut refresh_uncertain = false;
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let base = if i.is_multiple_of(2) || b_down.load(Ordering::SeqCst) { &replicas[0] } else { &replicas[1] };
        let which = if base == &replicas[0] { "A" } else { "B" };
        let step = i % 3;
        let result = match (step, &lease) {
            (0, _) => {
                let r = c
                    .post(format!("{base}/oauth/token"))
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", "readyapi")])
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let status = r.status();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        if status == StatusCode::OK {
                            access = body["access_token"].as_str().unwrap().to_string();
                            refresh = body["refresh_token"].as_str().unwrap().to_string();
                            refresh_uncertain = false;
                            Ok(())
                        } else if status == StatusCode::BAD_REQUEST
                            && body["error"] == "invalid_grant"
                            && refresh_uncertain
                        {
                            // The lost answer had spent it: sign in again, as a product would.
                            let url = base.to_string();
                            let r = c
                                .post(format!("{url}/oauth/token"))
                                .form(&[
                                    ("grant_type", "password"),
                                    ("username", user.as_str()),
                                    ("password", PASSWORD),
                                    ("client_id", "readyapi"),
                                ])
                                .send()
                                .await;
                            match r {
                                Ok(r) if r.status() == StatusCode::OK => {
                                    let v: Value = r.json().await.unwrap();
                                    access = v["access_token"].as_str().unwrap().to_string();
                                    refresh = v["refresh_token"].as_str().unwrap().to_string();
                                    refresh_uncertain = false;
                                    Ok(())
                                }
                                Ok(r) => Err(format!("password grant {}", r.status())),
                                Err(_) => Err("cut".into()),
                            }
                        } else if busy(status, &body) {
                            Err("busy".into())
                        } else {
                            Err(format!("refresh {status} {body}"))
                        }
                    }
                    Err(_) => {
                        refresh_uncertain = true;
                        Err("cut".into())
                    }
                }
            }
            (_, Some(id)) => {
                let url = format!("{base}/api/v1/seats/{id}/heartbeat");
                let r = try_post(&c, &url, Some(&access), json!({ "idle_seconds": 0 })).await;
                match r {
                    Some((StatusCode::OK, _)) => Ok(()),
                    Some((s, b)) if busy(s, &b) => Err("busy".into()),
                    Some((s, b)) => Err(format!("heartbeat {s} {b}")),
                    None => Err("cut".into()),
                }
            }
            (_, None) => {
                let machine = format!("{user}-workstation");
                let body = json!({ "product": "readyapi", "machine": machine });
                let r = try_post(&c, &format!("{base}/api/v1/seats"), Some(&access), body).await;
                match r {
                    Some((StatusCode::CREATED, b)) => {
                        let id = b["lease_id"].as_str().unwrap().to_string();
                        seen.lock().unwrap().granted.entry(user.clone()).or_default().insert(id.clone());
                        lease = Some(id);
                        Ok(())
                    }
                    Some((StatusCode::CONFLICT, b)) if b["code"] == "no_seat_available" => Ok(()),
                    Some((s, b)) if busy(s, &b) => Err("busy".into()),
                    Some((s, b)) => Err(format!("checkout {s} {b}")),
                    None => Err("cut".into()),
                }
            }
        };
        let mut s = seen.lock().unwrap();
        match result {
            Ok(()) => s.ok += 1,
            Err(e) if e == "cut" && which == "B" && b_down.load(Ordering::SeqCst) => s.cut_off += 1,
            Err(e) if e == "busy" => s.busy += 1,
            Err(e) => s.wrong.push(format!("{user} via {which}: {e}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_in_a_storm_of_checkouts_loses_no_seat_and_grants_none_too_many() {
    let _shared = TIMING.read().await;
    let Some(bin) = require_pg("replicas") else { return };
    let pg = PrivatePg::start(&bin);
    let db = fresh_database(&pg.admin_url()).await;
    let dir = TempDir::new("replicas");
    let mut cfg = ServerConfig::new(&db, dir.path());
    // Replicas behind one load balancer: one public URL, so one token issuer.
    cfg.extra_env.push(("LATCHKEY_PUBLIC_URL".into(), "http://latchkey.faults.test".into()));
    let op = cfg.operator_key();
    let a = cfg.start();
    // The second replica starts once the setup mails are out (their links are read from the
    // log of the replica that sent them).
    let fx = fixture(&a, op, SEATS, USERS).await;
    let mut b = cfg.start();
    let mut tokens = Vec::new();
    for (i, u) in fx.users.iter().enumerate() {
        tokens.push(sign_in(if i % 2 == 0 { &a } else { &b }, u).await);
    }

    let (stop, b_down) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let replicas = vec![a.base.clone(), b.base.clone()];
    let mut tasks = Vec::new();
    for (u, t) in fx.users.iter().zip(tokens) {
        tasks.push(tokio::spawn(product(u.clone(), replicas.clone(), b_down.clone(), stop.clone(), seen.clone(), t)));
    }
    // The storm runs until it has had its answers, however slow a loaded machine makes them: at
    // least 1.5 s and 60 answers before the kill, and as long again after it (at most 60 s each).
    let answers = || seen.lock().unwrap().ok;
    let until = async |n: usize| {
        let t0 = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        while answers() < n && t0.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    until(60).await;
    b_down.store(true, Ordering::SeqCst);
    b.kill();
    let before_kill = answers();
    until(before_kill + 60).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    // The killed replica comes back and serves at once: ready, and its first answers are right.
    let b = cfg.start();
    let c = client();
    let r = c.get(b.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the restarted replica is not ready");

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.wrong.is_empty(), "wrong answers:\n{}", seen.wrong.join("\n"));
    assert!(seen.ok > 100, "the storm was too weak: {} answers ({} busy)", seen.ok, seen.busy);
    let granted: BTreeSet<&String> = seen.granted.values().flatten().collect();
    // Nobody released a seat: every lease ever granted is still held, and never more than SEATS.
    assert!(granted.len() as i64 <= SEATS, "{} leases granted for {SEATS} seats", granted.len());
    let live = query_text(
        &db,
        &format!("SELECT id FROM leases WHERE license_id = '{}' AND ended_at IS NULL ORDER BY id", fx.license),
    )
    .await;
    assert!(live.len() as i64 <= SEATS, "{} live leases for {SEATS} seats", live.len());
    for id in &granted {
        assert!(live.contains(id), "lease {id} was granted (201) but is not live");
    }
    // Ten products wanted four seats for three seconds: the pool is full.
    assert_eq!(live.len() as i64, SEATS, "free seats left while products were refused");
    // Through the restarted replica, each holder's lease answers its heartbeat.
    for (user, ids) in &seen.granted {
        let (access, _) = sign_in(&b, user).await;
        let id = ids.iter().next().unwrap();
        let r = post(&c, &b.url(&format!("/api/v1/seats/{id}/heartbeat")), Some(&access), json!({ "idle_seconds": 0 }))
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{user}'s lease via the restarted replica");
    }
}
