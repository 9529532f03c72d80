use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// An entity with a license and one assigned (not yet set up) user: (license id, admin token, email).
async fn setup(app: &TestApp) -> (String, String, String) {
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 5).await;
    let email = app.email("bob");
    let r = app.post(&format!("/api/v1/licenses/{license}/assignments"), Some(&admin), json!({ "email": email })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    (license, admin, email)
}

#[tokio::test]
async fn assigning_a_license_to_a_new_email_mails_a_setup_link_that_sets_a_password() {
    let app = spawn_app().await;
    let (_, _, email) = setup(&app).await;
    let mails = app.mails_to(&email, 1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject(), "Choose your latchkey password");
    assert!(mail.html().contains("href=\""), "multipart with an HTML part");
    assert_eq!(mail.0["parts"], json!(["text/plain", "text/html"]));
    let link = mail.link("/account/setup?token=").unwrap();
    assert!(link.starts_with(&app.base), "{link}");

    // The page opens without JavaScript and shows a form.
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\" action=\"/account/setup\">"), "{html}");
    assert!(html.contains(&email));

    // Submitting the form sets the password, and the password works.
    let token = mail.token().unwrap();
    let r = app
        .submit(
            &format!("/account/setup?token={token}"),
            "/account/setup",
            &[("token", &token), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Your password is set"));
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    assert_eq!(t["token_type"], "Bearer");
}

#[tokio::test]
async fn a_setup_link_works_once() {
    let app = spawn_app().await;
    let (_, _, email) = setup(&app).await;
    let token = app.mails_to(&email, 1).await[0].token().unwrap();
    let r = app.post("/api/v1/account/password", None, json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post("/api/v1/account/password", None, json!({ "token": token, "password": "another fine password" }))
        .await;
    assert_problem(r, StatusCode::GONE, "link_used").await;
    // The page says so too, and offers a new link.
    let r = app.get(&format!("/account/setup?token={token}"), None).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("/account/forgot"));
    // The first password still holds.
    app.tokens(&email, PASSWORD, "readyapi").await;
}

#[tokio::test]
async fn a_setup_link_expires() {
    let app = spawn_app().await;
    let (_, _, email) = setup(&app).await;
    let token = app.mails_to(&email, 1).await[0].token().unwrap();
    app.advance(Duration::from_secs(72 * 3600 + 1));
    let r = app.post("/api/v1/account/password", None, json!({ "token": token, "password": PASSWORD })).await;
    assert_problem(r, StatusCode::GONE, "link_expired").await;
    let r = app.password_grant(&email, PASSWORD, "readyapi").await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn unknown_and_malformed_links_are_refused() {
    let app = spawn_app().await;
    let r = app
        .post("/api/v1/account/password", None, json!({ "token": "lk_ln_doesnotexist", "password": PASSWORD }))
        .await;
    assert_problem(r, StatusCode::BAD_REQUEST, "invalid_link").await;
    let r = app.post("/api/v1/account/password", None, json!({ "token": "x", "password": PASSWORD })).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "invalid_link").await;
    let r = app.get("/account/setup", None).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn weak_passwords_are_refused_and_the_link_stays_usable() {
    let app = spawn_app().await;
    let (_, _, email) = setup(&app).await;
    let token = app.mails_to(&email, 1).await[0].token().unwrap();
    for weak in ["short", "eleven char", email.as_str(), &email.to_uppercase(), "123456789012", "aaaaaaaaaaaaaaaa"] {
        let r = app.post("/api/v1/account/password", None, json!({ "token": token, "password": weak })).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    }
    let r = app.post("/api/v1/account/password", None, json!({ "token": token, "password": "x".repeat(1025) })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    // The form shows the reason and keeps the token.
    let page = format!("/account/setup?token={token}");
    let r =
        app.submit(&page, "/account/setup", &[("token", &token), ("password", "short"), ("confirm", "short")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("at least 12 characters") && html.contains(&token));
    let fields = [("token", token.as_str()), ("password", PASSWORD), ("confirm", "something else entirely")];
    let r = app.submit(&page, "/account/setup", &fields).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("differ"));
    // Nothing was spent.
    let r = app.post("/api/v1/account/password", None, json!({ "token": token, "password": PASSWORD })).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn malformed_json_and_forms_get_clear_errors() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/api/v1/account/password"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "invalid_json").await;
    let r = app.client.post(app.url("/api/v1/account/password")).body("token=x").send().await.unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let r = app.post("/api/v1/account/password", None, json!({ "token": 5 })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = app
        .client
        .post(app.url("/account/setup"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Forgot-password answers 202 whatever it is given: the answer says nothing.
    let r = app.post("/api/v1/account/forgot", None, json!({ "email": "not-an-email" })).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    // A JSON array is not an object, even where serde could read it field by field.
    let r = app.post("/api/v1/account/password", None, json!(["lk_ln_x", PASSWORD])).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    // No NUL characters, in bodies or addresses (no store can keep them).
    let r = app.post("/api/v1/account/password", None, json!({ "token": "lk_ln_\u{0}x", "password": PASSWORD })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = app.get("/api/v1/entities/a%00b/licenses", None).await;
    assert_problem(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .body("grant_type=password&username=a@b.example&password=x&client_id=a%00b")
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    // A wrong method is a problem document too.
    let r = app.client.put(app.url("/api/v1/account/password")).send().await.unwrap();
    assert_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

#[tokio::test]
async fn forgot_password_always_answers_202_and_mails_only_existing_accounts() {
    let app = spawn_app().await;
    let (_, _, email) = setup(&app).await;
    app.set_password_from_mail(&email, PASSWORD).await;
    let session = app.tokens(&email, PASSWORD, "readyapi").await;

    let stranger = app.email("nobody");
    for who in [&email, &stranger] {
        let r = app.post("/api/v1/account/forgot", None, json!({ "email": who })).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    // The answer came before the work: wait for it, then look at what was queued.
    app.state.background.settled().await;
    assert_eq!(app.queued_templates(&email).await, ["reset", "setup"]);
    assert!(app.queued_templates(&stranger).await.is_empty(), "a mail was queued for an address without account");
    let mails = app.mails_to(&email, 2).await;
    let reset = mails.iter().find(|m| m.subject() == "Reset your latchkey password").unwrap();
    let link = reset.link("/account/reset?token=").unwrap();
    assert!(app.client.get(&link).send().await.unwrap().status().is_success());

    // Resetting replaces the password and ends the sessions signed in with the old one.
    let token = reset.token().unwrap();
    let r = app
        .submit(
            &format!("/account/reset?token={token}"),
            "/account/reset",
            &[("token", &token), ("password", "a brand new passphrase"), ("confirm", "a brand new passphrase")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_oauth_error(
        app.password_grant(&email, PASSWORD, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    app.tokens(&email, "a brand new passphrase", "readyapi").await;
    let r = app.refresh_grant(session["refresh_token"].as_str().unwrap(), "readyapi").await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn reset_mails_are_limited_per_hour() {
    let app = spawn_app().await;
    let (_, _, email) = setup(&app).await;
    app.set_password_from_mail(&email, PASSWORD).await;
    for _ in 0..5 {
        let r = app.post("/api/v1/account/forgot", None, json!({ "email": email })).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    app.state.background.settled().await;
    // One setup mail, then three resets at most; each delivered once.
    assert_eq!(app.queued_templates(&email).await, ["reset", "reset", "reset", "setup"]);
    app.mails_to(&email, 4).await;
    assert_eq!(app.sink().messages_to(&email).len(), 4);
}

#[tokio::test]
async fn the_forgot_password_page_works_without_javascript() {
    let app = spawn_app().await;
    let r = app.get("/account/forgot", None).await;
    assert!(r.text().await.unwrap().contains("<form method=\"post\" action=\"/account/forgot\">"));
    let r = app.submit("/account/forgot", "/account/forgot", &[("email", &app.email("nobody"))]).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.text().await.unwrap().contains("Check your mail"));
}
