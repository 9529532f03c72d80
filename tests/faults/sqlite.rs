//! The embedded SQLite database survives the server being killed with SIGKILL mid-write.

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[derive(Default)]
struct Acked {
    leases: BTreeSet<String>,
    released: BTreeSet<String>,
    /// Releases sent whose answer the kill cut off: committed or not, either state is right.
    unanswered: BTreeSet<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_mid_write_restarts_on_a_consistent_sqlite_database() {
    let _shared = TIMING.read().await;
    let dir = TempDir::new("sqlite");
    let db_file = dir.path().join("latchkey.db");
    let url = format!("sqlite://{}?mode=rwc", db_file.display());
    let cfg = ServerConfig::new(&url, dir.path());
    let op = cfg.operator_key();
    let mut server = cfg.start();
    let fx = fixture(&server, op, 10_000, 6).await;
    let mut tokens = Vec::new();
    for u in &fx.users {
        tokens.push(sign_in(&server, u).await.0);
    }

    // Writers: each product checks out seats on ever new computers and releases every other one.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let mut tasks = Vec::new();
    for (n, access) in tokens.into_iter().enumerate() {
        let (stop, acked, base) = (stop.clone(), acked.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let body = json!({ "product": "readyapi", "machine": format!("pc-{n}-{i}") });
                let Some((status, v)) = try_post(&c, &format!("{base}/api/v1/seats"), Some(&access), body).await else {
                    break;
                };
                assert_eq!(status, StatusCode::CREATED, "{v}");
                let id = v["lease_id"].as_str().unwrap().to_string();
                acked.lock().unwrap().leases.insert(id.clone());
                if i % 2 == 0 {
                    let r = c.delete(format!("{base}/api/v1/seats/{id}")).bearer_auth(&access).send().await;
                    match r {
                        Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                            acked.lock().unwrap().released.insert(id);
                        }
                        Ok(r) => panic!("release answered {}", r.status()),
                        Err(_) => {
                            acked.lock().unwrap().unanswered.insert(id);
                            break;
                        }
                    }
                }
            }
        }));
    }
    // Kill it in the thick of it: once enough writes were acknowledged.
    eventually(Duration::from_secs(60), "30 acknowledged writes", || {
        let n = acked.lock().unwrap().leases.len();
        async move { (n >= 30).then_some(()) }
    })
    .await;
    server.kill();
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }

    // The file as the killed process left it: intact, and every acknowledged write in it.
    assert_eq!(query_text(&url, "PRAGMA integrity_check").await, ["ok"]);
    assert!(query_text(&url, "SELECT \"table\" FROM pragma_foreign_key_check").await.is_empty());
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let live: BTreeSet<String> =
        query_text(&url, "SELECT id FROM leases WHERE ended_at IS NULL").await.into_iter().collect();
    let ended: BTreeSet<String> =
        query_text(&url, "SELECT id FROM leases WHERE ended_at IS NOT NULL").await.into_iter().collect();
    for id in &acked.leases {
        if acked.unanswered.contains(id) {
            assert!(live.contains(id) || ended.contains(id), "lease {id} was acknowledged but is lost");
        } else if acked.released.contains(id) {
            assert!(ended.contains(id), "release of {id} was acknowledged but is lost");
        } else {
            assert!(live.contains(id), "lease {id} was acknowledged but is lost");
        }
    }

    // And the service starts on it and serves.
    let server = cfg.start();
    let c = client();
    assert_eq!(c.get(server.url("/readyz")).send().await.unwrap().status(), StatusCode::OK);
    let (access, _) = sign_in(&server, &fx.users[0]).await;
    let body = json!({ "product": "readyapi", "machine": "after-the-crash" });
    assert_eq!(try_post(&c, &server.url("/api/v1/seats"), Some(&access), body).await.unwrap().0, StatusCode::CREATED);
}
