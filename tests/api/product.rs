use std::{process::Stdio, time::Duration};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;

/// Read the simulator's log until a line contains `needle`.
async fn wait_for_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>, needle: &str) -> String {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains(needle) {
                return l;
            }
        }
        panic!("the simulator ended before saying `{needle}`");
    })
    .await;
    found.unwrap_or_else(|_| panic!("the simulator did not say `{needle}`"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_simulator_holds_a_seat_runs_offline_and_releases_on_ctrl_c() {
    let mut app = spawn_app_with(Options {
        tweak: Box::new(|c| c.heartbeat_interval = "1s".parse().unwrap()),
        ..Default::default()
    })
    .await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 2).await;
    let email = app.licensed_user(&license, "bob", &admin).await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "product",
            "--server",
            &app.base,
            "--product",
            "readyapi",
            "--email",
            &email,
            "--machine",
            "bob-laptop",
            "--idle-seconds",
            "42",
        ])
        .env("LATCHKEY_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for_line(&mut lines, "checked out on bob-laptop").await;
    wait_for_line(&mut lines, "heartbeat ok (idle 42 s)").await;
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(seats[0]["machine"], "bob-laptop");
    assert_eq!(seats[0]["idle_seconds"], 42);

    // Ctrl-C releases the seat.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    wait_for_line(&mut lines, "seat released").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let seats: Value = app.get(&format!("/api/v1/licenses/{license}/seats"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(seats, serde_json::json!([]));

    // Again, and then the server goes away: the product keeps running on its lease token.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["product", "--server", &app.base, "--product", "readyapi", "--email", &email, "--machine", "bob-laptop"])
        .env("LATCHKEY_PASSWORD", PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for_line(&mut lines, "heartbeat ok").await;
    app.stop().await;
    let line = wait_for_line(&mut lines, "running offline until").await;
    assert!(line.contains("server unreachable"), "{line}");
    assert_eq!(child.try_wait().unwrap(), None, "still running");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn the_product_simulator_says_why_it_gets_no_seat() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 1).await;
    let email = app.licensed_user(&license, "bob", &admin).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["product", "--server", &app.base, "--product", "soapui", "--email", &email])
        .env("LATCHKEY_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sign-in refused") || err.contains("no seat"), "{err}");
}
