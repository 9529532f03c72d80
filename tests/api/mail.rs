use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_smtp_outage_delays_mail_without_losing_or_doubling_it() {
    let dir = std::env::temp_dir().join(format!("latchkey-own-sink-{}", uuid::Uuid::new_v4()));
    let sink = SmtpSink::start_on(0, &dir);
    let port = sink.port;
    let mut app = spawn_app_with(Options { smtp_url: Some(sink.url()), ..Default::default() }).await;
    app.set_own_sink(sink);
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;

    // The SMTP server goes away; assignments still succeed and their mail waits in the outbox.
    let mut sink = app.take_own_sink().unwrap();
    sink.stop();
    let emails: Vec<String> = (0..3).map(|i| app.email(&format!("u{i}"))).collect();
    for e in &emails {
        let r = app.post(&format!("/api/v1/licenses/{license}/assignments"), Some(&admin), json!({ "email": e })).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let stats = app.drain_mail().await;
    assert_eq!(stats.sent, 0);
    let pending: i64 = latchkey::store::outbox::pending_count(&app.state.db.pool).await.unwrap();
    assert_eq!(pending, 3);
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(metrics.contains("latchkey_mail_outbox_pending 3"), "{metrics}");

    // Back on the same port; nothing is retried before its backoff is over...
    let sink = SmtpSink::start_on(port, &dir);
    app.set_own_sink(sink);
    assert_eq!(app.drain_mail().await.sent, 0);
    // ...then everything goes out, once.
    // (The background worker may deliver some of them before this drain does: either way, once.)
    app.advance(Duration::from_secs(31));
    app.drain_mail().await;
    for e in &emails {
        app.mails_to(e, 1).await;
    }
    // The background worker may still be between the server's 250 and marking the row sent.
    app.outbox_empty().await;
    for _ in 0..5 {
        app.advance(Duration::from_secs(3600));
        assert_eq!(app.drain_mail().await.sent, 0);
    }
    for e in &emails {
        let mails = app.mails_to(e, 1).await;
        assert_eq!(mails.len(), 1, "{e} got {} mails", mails.len());
        assert!(mails[0].token().is_some());
    }
    // The retried message kept one Message-ID.
    let ids: Vec<String> =
        emails.iter().map(|e| app.sink().messages_to(e)[0].0["message_id"].as_str().unwrap().to_string()).collect();
    assert!(ids.iter().all(|i| i.starts_with('<') && i.ends_with('>')));
    // The links still work after the delay.
    app.set_password_from_mail(&emails[0], PASSWORD).await;
}

#[tokio::test]
async fn without_smtp_mail_is_written_as_eml_files() {
    let app =
        spawn_app_with(Options { tweak: Box::new(|c| c.smtp_url = None), smtp_url: None, ..Default::default() }).await;
    // spawn_app_with defaults smtp_url to the shared sink before the tweak runs; the tweak unset it.
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let dir = app.dir.join("outbox");
    let eml = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .collect::<Vec<_>>()
    };
    // The background worker may be the one writing it: wait for the file.
    for _ in 0..200 {
        app.drain_mail().await;
        if !eml().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let files = eml();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(eml.contains(&format!("To: {}", app.email("admin-acme"))), "{eml}");
}

/// The flood of a malicious (or looping) administrator: twenty assign/revoke cycles on a floating
/// license, at a stranger's address and at a user of another entity. The stranger gets one setup
/// mail (its link stays pending), the other entity's user one notice; other kinds and products are
/// bounded per address and hour; a new link is sent once the pending one has expired.
#[tokio::test]
async fn assign_and_revoke_in_a_loop_does_not_flood_anyone() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    let beta_admin = app.entity_with_admin("beta").await;
    let beta_license = app.create_license("beta", "readyapi", "fixed", 1).await;
    let neighbour = app.licensed_user(&beta_license, "neighbour", &beta_admin).await;
    let stranger = app.email("stranger");
    let cycle = |email: String| {
        let (app, license) = (&app, license.clone());
        async move {
            let path = format!("/api/v1/licenses/{license}/assignments");
            let r = app.post(&path, app.op(), json!({ "email": email })).await;
            assert_eq!(r.status(), StatusCode::CREATED);
            let r = app.delete(&format!("{path}/{email}"), app.op()).await;
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
    };
    for _ in 0..20 {
        cycle(stranger.clone()).await;
        cycle(neighbour.clone()).await;
    }
    assert_eq!(app.mails_queued(&stranger, "setup").await, 1);
    assert_eq!(app.mails_queued(&neighbour, "setup").await, 1, "only the one of their own entity");
    assert_eq!(app.mails_queued(&neighbour, "assigned").await, 1);
    let mails = app.mails_to(&stranger, 1).await;
    assert!(mails[0].token().is_some(), "the one mail holds a working link");

    // Licenses of other products: a notice each, but at most three of a kind an hour.
    for sku in ["alpha", "bravo", "charlie", "delta"] {
        app.create_product(sku).await;
        let l = app.create_license("acme", sku, "floating", 5).await;
        let r = app.post(&format!("/api/v1/licenses/{l}/assignments"), app.op(), json!({ "email": neighbour })).await;
        assert_eq!(r.status(), StatusCode::CREATED, "the assignment itself always happens");
    }
    assert_eq!(app.mails_queued(&neighbour, "assigned").await, 3);
    app.advance(Duration::from_secs(3601));
    cycle(neighbour.clone()).await;
    assert_eq!(app.mails_queued(&neighbour, "assigned").await, 3, "one notice per product and day");
    app.create_product("echo").await;
    let l = app.create_license("acme", "echo", "floating", 5).await;
    app.post(&format!("/api/v1/licenses/{l}/assignments"), app.op(), json!({ "email": neighbour })).await;
    assert_eq!(app.mails_queued(&neighbour, "assigned").await, 4, "a new hour, a new notice");

    // Once the pending link has expired, the stranger may be invited again.
    app.advance(Duration::from_secs(72 * 3600));
    cycle(stranger.clone()).await;
    cycle(stranger.clone()).await;
    assert_eq!(app.mails_queued(&stranger, "setup").await, 2);
}

/// Forgot-password mails are bounded the same way, whoever asks and however often.
#[tokio::test]
async fn forgot_password_mails_are_bounded_per_address() {
    let app = spawn_app().await;
    app.create_entity("acme").await;
    let email = app.email("admin-acme");
    app.set_password_from_mail(&email, PASSWORD).await;
    for _ in 0..10 {
        latchkey::accounts::forgot(&app.state, &email).await.unwrap();
    }
    assert_eq!(app.mails_queued(&email, "reset").await, 3);
    app.advance(Duration::from_secs(3601));
    latchkey::accounts::forgot(&app.state, &email).await.unwrap();
    assert_eq!(app.mails_queued(&email, "reset").await, 4);
}
