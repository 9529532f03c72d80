//! The `latchkey` binary itself: zero-configuration start, the CLI commands, graceful shutdown,
//! HTTPS.

use std::{process::Stdio, time::Duration};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;

fn bin() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    // Only what a test sets explicitly: no LATCHKEY_* from the environment running the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("LATCHKEY_") {
            c.env_remove(k);
        }
    }
    c.kill_on_drop(true);
    c
}

/// Start `latchkey serve` and return it with the address it logged.
async fn serve(
    cwd: &std::path::Path,
    envs: &[(&str, &str)],
) -> (tokio::process::Child, String, tokio::io::Lines<BufReader<tokio::process::ChildStderr>>) {
    let mut cmd = bin();
    cmd.arg("serve")
        .current_dir(cwd)
        .env("LATCHKEY_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains("latchkey listening") {
                let plain = strip_ansi(&l);
                return plain.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server did not start");
    (child, addr, lines)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn the_binary_serves_with_no_configuration_and_stops_gracefully_on_sigterm() {
    let cwd = std::env::temp_dir().join(format!("latchkey-zero-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&cwd).unwrap();
    let (mut child, addr, mut lines) = serve(&cwd, &[]).await;
    let data = cwd.join("latchkey-data");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(data.join("master.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(data.join("latchkey.db")).unwrap().permissions().mode() & 0o777, 0o600);
    let r = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // An operator key from the CLI works against the running server; only its hash is stored.
    let out = bin().args(["operator-key", "create", "--name", "ci"]).current_dir(&cwd).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("lk_op_"));
    let c = reqwest::Client::new();
    let r = c
        .post(format!("http://{addr}/api/v1/products"))
        .bearer_auth(&key)
        .json(&json!({ "sku": "readyapi", "name": "ReadyAPI" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Mail without SMTP goes to .eml files, and the log carries the link.
    let r = c
        .post(format!("http://{addr}/api/v1/entities"))
        .bearer_auth(&key)
        .json(&json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let logged = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains("mail written to file") {
                return strip_ansi(&l);
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert!(logged.contains("/account/setup?token=lk_ln_"), "{logged}");
    assert_eq!(std::fs::read_dir(data.join("outbox")).unwrap().count(), 1);

    // Keys rotate from the CLI while the server runs.
    let out = bin().args(["keys", "rotate", "--alg", "ES256"]).current_dir(&cwd).output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let jwks: serde_json::Value =
        reqwest::get(format!("http://{addr}/.well-known/jwks.json")).await.unwrap().json().await.unwrap();
    assert!(!jwks["keys"].as_array().unwrap().is_empty());

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start_with_a_reason() {
    for (k, v, needle) in [
        ("LATCHKEY_ACCESS_TOKEN_TTL", "15 weeks", "access-token-ttl"),
        ("LATCHKEY_DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("LATCHKEY_PUBLIC_URL", "ftp://x", "PUBLIC_URL"),
        ("LATCHKEY_LISTEN", "nowhere", "LISTEN"),
    ] {
        let cwd = std::env::temp_dir().join(format!("latchkey-bad-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&cwd).unwrap();
        let out = bin().arg("migrate").current_dir(&cwd).env(k, v).output().await.unwrap();
        assert!(!out.status.success(), "{k}={v} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{k}: {err}");
        let _ = std::fs::remove_dir_all(&cwd);
    }
}

#[tokio::test]
async fn https_is_served_when_a_certificate_is_configured() {
    let dir = std::env::temp_dir().join(format!("latchkey-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let (cert_s, key_s) = (cert.to_string_lossy().to_string(), key.to_string_lossy().to_string());
    let app = spawn_app_with(Options {
        tweak: Box::new(move |c| {
            c.tls_cert = Some(cert_s.into());
            c.tls_key = Some(key_s.into());
        }),
        ..Default::default()
    })
    .await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["strict-transport-security"].to_str().unwrap().contains("max-age"));
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(app.url("/healthz").replace("https://", "http://"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let _ = std::fs::remove_dir_all(&dir);
}
