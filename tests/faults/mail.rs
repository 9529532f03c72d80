//! The mail server is down while mail is queued, the service is killed and started again, then
//! the mail server comes back: every queued mail arrives, once.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use serde_json::{Value, json};

use crate::support::*;

/// The SMTP sink of the API tests (aiosmtpd), started on `port`; each message it accepts is a
/// JSON file in `dir`.
struct Sink(std::process::Child);

impl Sink {
    fn start(port: u16, dir: &std::path::Path) -> Sink {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = std::process::Command::new(python)
            .arg(script)
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (pip install -r tests/requirements.txt)");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), port.to_string(), "the SMTP sink did not start");
        Sink(child)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn received(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name().to_string_lossy().ends_with(".json")
                        && !e.file_name().to_string_lossy().starts_with('.')
                })
                .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_queued_while_smtp_is_down_arrives_once_after_a_restart() {
    let _shared = TIMING.read().await;
    let dir = TempDir::new("mail");
    let (database_url, _pg) =
        match std::env::var("LATCHKEY_TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) {
            Some(admin) => (fresh_database(&admin).await, "postgres"),
            None => (format!("sqlite://{}/latchkey.db?mode=rwc", dir.path().display()), "sqlite"),
        };
    let smtp_port = free_port();
    let mut cfg = ServerConfig::new(&database_url, dir.path());
    cfg.smtp_url = Some(format!("smtp://127.0.0.1:{smtp_port}"));
    cfg.extra_env.push(("LATCHKEY_MAIL_RETRY".into(), "1s".into()));
    let op = cfg.operator_key();
    let mut server = cfg.start();

    // An entity (its administrator's setup mail) and five assignments (five setup mails).
    let c = client();
    let op = Some(op.as_str());
    created(post(&c, &server.url("/api/v1/products"), op, json!({ "sku": "readyapi", "name": "ReadyAPI" })).await)
        .await;
    let entity = json!({ "slug": "acme", "name": "Acme", "admin_email": "admin@acme.example" });
    created(post(&c, &server.url("/api/v1/entities"), op, entity).await).await;
    let body = json!({ "product": "readyapi", "type": "fixed", "seats": 10 });
    let license = created(post(&c, &server.url("/api/v1/entities/acme/licenses"), op, body).await).await;
    let emails: Vec<String> = (0..5).map(|i| format!("user{i}@acme.example")).collect();
    let url = server.url(&format!("/api/v1/licenses/{}/assignments", license["id"].as_str().unwrap()));
    created(post(&c, &url, op, json!({ "emails": emails })).await).await;
    let expected: Vec<String> = std::iter::once("admin@acme.example".to_string()).chain(emails).collect();

    // Every mail has been tried and failed (nothing listens on the SMTP port)...
    eventually(Duration::from_secs(20), "every mail tried once", || {
        let url = database_url.clone();
        async move {
            let tried = query_i64(&url, "SELECT COUNT(*) FROM outbox WHERE attempts >= 1 AND sent_at IS NULL").await;
            (tried == [6]).then_some(())
        }
    })
    .await;
    // ...then the service dies without a goodbye, the mail server comes back, the service too.
    server.kill();
    // Failed mails wait out their backoff (1 s, doubling per attempt), which survives the
    // restart: on a slow machine a mail can be several attempts in, with its next try half a
    // minute away. Wait for the latest scheduled try plus 30 s, not for a fixed 30 s.
    let latest_try =
        query_i64(&database_url, "SELECT COALESCE(MAX(next_attempt_at), 0) FROM outbox WHERE sent_at IS NULL").await;
    let now_ms = latchkey::clock::Clock::now(&latchkey::clock::SystemClock);
    let backoff_left = Duration::from_millis(latest_try.first().map_or(0, |t| (t - now_ms).max(0)) as u64);
    let inbox = TempDir::new("inbox");
    let _sink = Sink::start(smtp_port, inbox.path());
    let server = cfg.start();

    let got = eventually(backoff_left + Duration::from_secs(30), "every queued mail delivered", || {
        let got = received(inbox.path());
        let want = expected.len();
        async move { (got.len() >= want).then_some(got) }
    })
    .await;
    // A few more worker rounds: nothing arrives twice.
    eventually(Duration::from_secs(10), "the outbox marks every mail sent", || {
        let url = database_url.clone();
        async move { (query_i64(&url, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").await == [0]).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let got_after = received(inbox.path());
    assert_eq!(got_after.len(), got.len(), "a mail arrived twice");
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for m in &got_after {
        for r in m["rcpt_tos"].as_array().unwrap() {
            *per_recipient.entry(r.as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let want: BTreeMap<String, usize> = expected.iter().map(|e| (e.clone(), 1)).collect();
    assert_eq!(per_recipient, want);
    drop(server);
}
