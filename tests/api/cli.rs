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
        // `serve` takes every setting and checks them all before it binds; were one accepted, it
        // would serve, and the timeout would say so.
        let out =
            tokio::time::timeout(Duration::from_secs(30), bin().arg("serve").current_dir(&cwd).env(k, v).output())
                .await
                .unwrap_or_else(|_| panic!("{k}={v} was accepted: the server started"))
                .unwrap();
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

/// The long flags a `--help` text lists.
async fn flags_of(args: &[&str]) -> Vec<String> {
    let out = bin().args(args).arg("--help").output().await.unwrap();
    assert!(out.status.success(), "{args:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '.']).to_string())
        .collect()
}

#[tokio::test]
async fn each_command_lists_only_the_settings_it_takes() {
    let serve = flags_of(&["serve"]).await;
    for f in ["--database-url", "--listen", "--smtp-url", "--tls-cert", "--master-key-file", "--lease-ttl"] {
        assert!(serve.contains(&f.to_string()), "serve lacks {f}: {serve:?}");
    }
    // A product talks to a server over HTTP: no database, mail, TLS or key settings.
    let product = flags_of(&["product"]).await;
    assert!(product.contains(&"--server".to_string()), "{product:?}");
    for f in ["--database-url", "--smtp-url", "--tls-cert", "--master-key-file", "--listen", "--lease-ttl"] {
        assert!(!product.contains(&f.to_string()), "product lists {f}: {product:?}");
    }
    // Administrative commands take the database, and the master key only where keys are sealed.
    let migrate = flags_of(&["migrate"]).await;
    assert!(migrate.contains(&"--database-url".to_string()), "{migrate:?}");
    for f in ["--smtp-url", "--listen", "--master-key-file", "--tls-cert"] {
        assert!(!migrate.contains(&f.to_string()), "migrate lists {f}: {migrate:?}");
    }
    let op_key = flags_of(&["operator-key", "create"]).await;
    assert!(op_key.contains(&"--database-url".to_string()) && op_key.contains(&"--name".to_string()));
    assert!(!op_key.contains(&"--smtp-url".to_string()), "{op_key:?}");
    let rotate = flags_of(&["keys", "rotate"]).await;
    assert!(rotate.contains(&"--master-key-file".to_string()) && rotate.contains(&"--alg".to_string()));
    assert!(!rotate.contains(&"--smtp-url".to_string()), "{rotate:?}");
    // A server setting given to another command is an error, not silently ignored.
    let out = bin().args(["migrate", "--smtp-url", "smtp://x"]).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--smtp-url"));
}

#[tokio::test]
async fn the_binary_tells_its_version() {
    let out = bin().arg("--version").output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), format!("latchkey {}", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn text_logs_to_a_file_or_pipe_carry_no_terminal_colour_codes() {
    let cwd = std::env::temp_dir().join(format!("latchkey-text-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut child = bin()
        .arg("serve")
        .current_dir(&cwd)
        .env("LATCHKEY_LISTEN", "127.0.0.1:0")
        .env("LATCHKEY_LOG_FORMAT", "text")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let done = l.contains("latchkey listening");
            seen.push(l);
            if done {
                return;
            }
        }
        panic!("the server's log ended early: {seen:?}");
    })
    .await
    .expect("no listening line");
    child.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&cwd);
    assert!(seen.iter().any(|l| l.contains(" INFO ")), "{seen:?}");
    assert!(!seen.iter().any(|l| l.contains('\u{1b}')), "escape codes in a piped log: {seen:?}");
}

#[tokio::test]
async fn json_logs_carry_request_id_route_status_latency_and_entity_and_never_a_path_secret() {
    let cwd = std::env::temp_dir().join(format!("latchkey-json-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut child = bin()
        .arg("serve")
        .current_dir(&cwd)
        .env("LATCHKEY_LISTEN", "127.0.0.1:0")
        .env("LATCHKEY_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen: Vec<serde_json::Value> = Vec::new();
    // Every line is one JSON object; returns the first that `want` accepts.
    async fn next_matching(
        lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
        seen: &mut Vec<serde_json::Value>,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await.unwrap() {
                let v: serde_json::Value =
                    serde_json::from_str(&l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
                seen.push(v.clone());
                if want(&v) {
                    return v;
                }
            }
            panic!("the server's log ended early");
        })
        .await
        .expect("no such log line")
    }
    let listening = next_matching(&mut lines, &mut seen, |v| v["message"] == "latchkey listening").await;
    assert_eq!(listening["level"], "INFO");
    assert!(listening["timestamp"].is_string(), "{listening}");
    let base = format!("http://{}", listening["addr"].as_str().unwrap());
    let c = reqwest::Client::new();

    let r = c.get(format!("{base}/healthz")).header("x-request-id", "probe-42").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let line = next_matching(&mut lines, &mut seen, |v| v["request_id"] == "probe-42").await;
    assert_eq!(line["route"], "/healthz", "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{line}");
    assert!(line.get("entity").is_none(), "{line}");

    // A route with an entity names it; the id the server made is the one it answered with.
    let r = c.get(format!("{base}/api/v1/entities/acme/licenses")).bearer_auth("lk_op_wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let line = next_matching(&mut lines, &mut seen, |v| v["request_id"] == id.as_str()).await;
    assert_eq!(line["route"], "/api/v1/entities/{slug}/licenses", "{line}");
    assert_eq!(line["entity"], "acme", "{line}");
    assert_eq!(line["status"], 401, "{line}");

    // A secret in the path (a share link's token) or the query stays out of the log.
    let r = c.get(format!("{base}/share/lk_sh_pathsecret0123?token=querysecret0123")).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let line = next_matching(&mut lines, &mut seen, |v| v["request_id"] == id.as_str()).await;
    assert_eq!(line["route"], "/share/{token}", "{line}");

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    next_matching(&mut lines, &mut seen, |v| v["message"] == "stopped").await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let all = seen.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
    assert!(!all.contains("pathsecret") && !all.contains("querysecret"), "{all}");
    let _ = std::fs::remove_dir_all(&cwd);
}

#[tokio::test]
async fn operator_keys_and_signing_keys_made_on_the_command_line_are_audited_as_its_doing() {
    let app = spawn_app().await;
    let (ok, key, err) = run_cli(&app, &["operator-key", "create", "--name", "ci-deploy"]).await;
    assert!(ok, "{err}");
    assert!(key.starts_with("lk_op_"), "{key}");
    // On the operator's log, by `cli`, naming the key; that id is the key's own: it is the actor
    // of what the key then does.
    let created = app.audited_once(None, "operator_key.created").await;
    assert_eq!((&created["actor"], &created["entity"]), (&system_actor("cli"), &serde_json::Value::Null));
    let id = created["targets"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(created["targets"], json!([audit_target("operator_key", &id, Some("ci-deploy"))]));
    let r = app.post("/api/v1/products", Some(&key), json!({ "sku": "cli-made", "name": "Made" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let product = app.audited_once(None, "product.created").await;
    assert_eq!(product["actor"], json!({ "type": "operator_key", "id": id, "name": "ci-deploy" }));

    let (ok, _, err) = run_cli(&app, &["operator-key", "revoke", "--name", "ci-deploy"]).await;
    assert!(ok, "{err}");
    assert_eq!(app.get("/api/v1/entities", Some(&key)).await.status(), StatusCode::UNAUTHORIZED);
    // Revoking it again is refused and records nothing.
    let (ok, _, err) = run_cli(&app, &["operator-key", "revoke", "--name", "ci-deploy"]).await;
    assert!(!ok && err.contains("no active operator key"), "{err}");
    let revoked = app.audited_once(None, "operator_key.revoked").await;
    assert_eq!(revoked["actor"], system_actor("cli"));
    assert_eq!(revoked["targets"], created["targets"]);

    // A signing key: after the one made at startup, the one made by `cli`, named by its kid and
    // algorithm.
    let (ok, kid, err) = run_cli(&app, &["keys", "rotate", "--alg", "ES256"]).await;
    assert!(ok, "{err}");
    let rotated = app.audited(None, "key.rotated").await;
    assert_eq!(rotated.len(), 2, "{rotated:#?}");
    assert_eq!(rotated[0]["actor"], system_actor("startup"));
    assert_eq!(rotated[1]["actor"], system_actor("cli"));
    assert_eq!(rotated[1]["targets"], json!([audit_target("signing_key", &kid, Some("ES256"))]));
}
