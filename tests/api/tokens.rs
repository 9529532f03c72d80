use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A product, an entity and a user with a password: returns the user's email.
async fn user(app: &TestApp) -> String {
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 5).await;
    app.licensed_user(&license, "bob", &admin).await
}

const VERIFY_WITH_PYJWT: &str = r#"
import json, sys, jwt
d = json.load(sys.stdin)
header = jwt.get_unverified_header(d["token"])
jwk = [k for k in d["jwks"]["keys"] if k["kid"] == header["kid"]][0]
key = jwt.PyJWK(jwk).key
claims = jwt.decode(d["token"], key, algorithms=[jwk["alg"]], audience=d["aud"], issuer=d["iss"])
print(json.dumps({"header": header, "claims": claims}))
"#;

async fn verify_independently(app: &TestApp, token: &str, aud: &str) -> Value {
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    python_json(VERIFY_WITH_PYJWT, &json!({ "token": token, "jwks": jwks, "aud": aud, "iss": app.base })).await
}

#[tokio::test]
async fn the_password_grant_issues_tokens_that_verify_with_an_independent_library() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let r = app.password_grant(&email, PASSWORD, "readyapi").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    assert!(t["refresh_token"].as_str().unwrap().starts_with("lk_rt_"));

    let v = verify_independently(&app, t["access_token"].as_str().unwrap(), "readyapi").await;
    assert_eq!(v["header"]["alg"], "EdDSA");
    assert_eq!(v["header"]["typ"], "at+jwt");
    assert!(v["header"]["kid"].is_string());
    let c = &v["claims"];
    assert_eq!(c["iss"], app.base);
    assert_eq!(c["email"], email);
    assert_eq!(c["entity"], "acme");
    assert_eq!(c["aud"], "readyapi");
    assert_eq!(c["amr"], json!(["pwd"]));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 900);
    assert!(c["jti"].is_string() && c["sub"].is_string());

    // The same token works on the API, for whatever client it was issued to.
    let me: Value = app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert_eq!(me["licenses"][0]["product"], "readyapi");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let a = assert_oauth_error(
        app.password_grant(&email, "not the password at all", "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let b = assert_oauth_error(
        app.password_grant(&app.email("nobody"), PASSWORD, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = assert_oauth_error(
        app.password_grant("not an email", PASSWORD, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(a, b);
    assert_eq!(b, c);
    // An invited user who has not set a password yet looks the same too.
    let invited = app.email("invited");
    let admin = app.tokens(&app.email("admin-acme"), PASSWORD, "portal").await;
    let lic: Value =
        app.get("/api/v1/entities/acme/licenses", admin["access_token"].as_str()).await.json().await.unwrap();
    let id = lic[0]["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/licenses/{id}/assignments"),
        admin["access_token"].as_str(),
        json!({ "email": invited }),
    )
    .await;
    let d = assert_oauth_error(
        app.password_grant(&invited, "", "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(d["error_description"].as_str().unwrap().contains("password"));
    let e = assert_oauth_error(
        app.password_grant(&invited, PASSWORD, "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert_eq!(a, e);
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_requests_in_oauth_form() {
    let app = spawn_app().await;
    let email = user(&app).await;
    assert_oauth_error(
        app.password_grant(&email, PASSWORD, "no-such-product").await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let r = app.client.post(app.url("/oauth/token")).form(&[("username", email.as_str())]).send().await.unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r =
        app.client.post(app.url("/oauth/token")).form(&[("grant_type", "client_credentials")]).send().await.unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    let r = app.client.post(app.url("/oauth/token")).json(&json!({ "grant_type": "password" })).send().await.unwrap();
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_request").await;
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&%zz")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    let r = app.refresh_grant("lk_rt_nope", "readyapi").await;
    assert_oauth_error(r, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_spent_one_presented_again_revokes_its_family() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let first = app.tokens(&email, PASSWORD, "readyapi").await;
    let rt1 = first["refresh_token"].as_str().unwrap();

    let r = app.refresh_grant(rt1, "readyapi").await;
    assert_eq!(r.status(), StatusCode::OK);
    let second: Value = r.json().await.unwrap();
    let rt2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(rt1, rt2);
    verify_independently(&app, second["access_token"].as_str().unwrap(), "readyapi").await;

    // A refresh token issued to one product does not serve another.
    assert_oauth_error(app.refresh_grant(rt2, "portal").await, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // The spent token again: refused, and the whole family ends, including the newest token...
    let v =
        assert_oauth_error(app.refresh_grant(rt1, "readyapi").await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(v["error_description"].as_str().unwrap().contains("revoked"));
    assert_oauth_error(app.refresh_grant(rt2, "readyapi").await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // ...and its access tokens.
    let r = app.get("/api/v1/me", second["access_token"].as_str()).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let intro = introspect(&app, second["access_token"].as_str().unwrap()).await;
    assert_eq!(intro, json!({ "active": false }));

    // Another session of the same user is untouched.
    let other = app.tokens(&email, PASSWORD, "readyapi").await;
    assert_eq!(app.refresh_grant(other["refresh_token"].as_str().unwrap(), "readyapi").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_tokens_expire() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    app.advance(Duration::from_secs(30 * 86_400 + 1));
    let v = assert_oauth_error(
        app.refresh_grant(t["refresh_token"].as_str().unwrap(), "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(v["error_description"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn access_tokens_expire_and_tampered_ones_fail() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let at = t["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/me", Some(at)).await.status(), StatusCode::OK);

    // Change a claim without re-signing.
    let parts: Vec<&str> = at.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    claims["email"] = json!("mallory@evil.example");
    let forged = format!("{}.{}.{}", parts[0], b64.encode(claims.to_string()), parts[2]);
    assert_problem(app.get("/api/v1/me", Some(&forged)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    // `alg: none`.
    let none = format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"at+jwt"}"#), parts[1]);
    assert_problem(app.get("/api/v1/me", Some(&none)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_problem(app.get("/api/v1/me", Some("garbage")).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_problem(app.get("/api/v1/me", None).await, StatusCode::UNAUTHORIZED, "unauthorized").await;

    app.advance(Duration::from_secs(15 * 60));
    let v = assert_problem(app.get("/api/v1/me", Some(at)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert!(v["detail"].as_str().unwrap().contains("expired"));
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let r = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&app.operator_key)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn revoke(app: &TestApp, token: &str) {
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .form(&[("token", token), ("client_id", "readyapi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn revocation_and_introspection_agree() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let (at, rt) = (t["access_token"].as_str().unwrap(), t["refresh_token"].as_str().unwrap());

    let a = introspect(&app, at).await;
    assert_eq!(a["active"], true);
    assert_eq!(a["client_id"], "readyapi");
    assert_eq!(a["username"], email);
    assert_eq!(a["token_type"], "Bearer");
    let r = introspect(&app, rt).await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "refresh_token");

    // Revoking the access token: inactive, and refused by the API; the refresh token lives on.
    revoke(&app, at).await;
    assert_eq!(introspect(&app, at).await["active"], false);
    assert_problem(app.get("/api/v1/me", Some(at)).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    assert_eq!(introspect(&app, rt).await["active"], true);

    // Revoking the refresh token ends the session: both inactive, and refresh fails.
    let t2: Value = app.refresh_grant(rt, "readyapi").await.json().await.unwrap();
    let (at2, rt2) = (t2["access_token"].as_str().unwrap(), t2["refresh_token"].as_str().unwrap());
    assert_eq!(introspect(&app, rt).await["active"], false, "a spent refresh token is inactive");
    revoke(&app, rt2).await;
    assert_eq!(introspect(&app, rt2).await["active"], false);
    assert_eq!(introspect(&app, at2).await["active"], false);
    assert_oauth_error(app.refresh_grant(rt2, "readyapi").await, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Unknown tokens: revocation still answers 200, introspection says inactive.
    revoke(&app, "lk_rt_unknown").await;
    revoke(&app, "not-a-token").await;
    assert_eq!(introspect(&app, "not-a-token").await, json!({ "active": false }));
}

#[tokio::test]
async fn introspection_needs_the_operator_key() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let t = app.tokens(&email, PASSWORD, "readyapi").await;
    let at = t["access_token"].as_str().unwrap();
    let r = app.client.post(app.url("/oauth/introspect")).form(&[("token", at)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.client.post(app.url("/oauth/introspect")).bearer_auth(at).form(&[("token", at)]).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth("lk_op_forged")
        .form(&[("token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_verifiable_and_signs_with_the_new_key() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let old = app.tokens(&email, PASSWORD, "readyapi").await;
    let old_at = old["access_token"].as_str().unwrap();
    // The first key signs an audit checkpoint (of the events so far) before it is superseded.
    latchkey::audit::seal_now(&app.state).await;

    let kid = latchkey::tokens::keys::rotate(
        &app.state.db,
        &app.state.master,
        latchkey::tokens::keys::KeyAlg::Es256,
        &latchkey::audit::Context::system("tests"),
        app.clock_now(),
    )
    .await
    .unwrap();
    app.state.keys.reload(app.clock_now()).await.unwrap();

    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    // Both keys are on the operator's audit log: the first made at startup, then this one, each
    // by who made it, named by its kid and algorithm.
    let first = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] != kid.as_str()).unwrap();
    let rotated = app.audited(None, "key.rotated").await;
    let seen: Vec<(&Value, &Value, &Value)> =
        rotated.iter().map(|e| (&e["actor"], &e["targets"], &e["entity"])).collect();
    assert_eq!(
        seen,
        [
            (
                &system_actor("startup"),
                &json!([audit_target("signing_key", first["kid"].as_str().unwrap(), Some("EdDSA"))]),
                &Value::Null
            ),
            (&system_actor("tests"), &json!([audit_target("signing_key", &kid, Some("ES256"))]), &Value::Null),
        ]
    );
    let new = app.tokens(&email, PASSWORD, "readyapi").await;
    let v = verify_independently(&app, new["access_token"].as_str().unwrap(), "readyapi").await;
    assert_eq!(v["header"]["kid"], kid);
    assert_eq!(v["header"]["alg"], "ES256");
    verify_independently(&app, old_at, "readyapi").await;
    assert_eq!(app.get("/api/v1/me", Some(old_at)).await.status(), StatusCode::OK);

    // Once every token of the old key has expired (the lease grace is the longest), it no longer
    // signs for anyone; it stays published while the audit checkpoints it signed are kept.
    app.advance(Duration::from_secs(24 * 3600 + 1));
    app.state.keys.reload(app.clock_now()).await.unwrap();
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(app.get("/api/v1/me", Some(old_at)).await.status(), StatusCode::UNAUTHORIZED);
    app.advance(Duration::from_secs(400 * 24 * 3600));
    app.state.keys.reload(app.clock_now()).await.unwrap();
    let jwks: Value = app.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(jwks["keys"][0]["kid"], kid);
}

#[tokio::test]
async fn password_attempts_are_throttled_then_allowed_again() {
    let app = spawn_app().await;
    let email = user(&app).await;
    for _ in 0..5 {
        assert_oauth_error(
            app.password_grant(&email, "wrong password guess", "readyapi").await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
        )
        .await;
    }
    // The sixth failure starts the waiting time; from then on even the right password waits.
    assert_oauth_error(
        app.password_grant(&email, "wrong password guess", "readyapi").await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let r = app.password_grant(&email, PASSWORD, "readyapi").await;
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_oauth_error(r, StatusCode::TOO_MANY_REQUESTS, "slow_down").await;
    // Another account from the same address is not held back by it.
    let other = app.email("admin-acme");
    assert_eq!(app.password_grant(&other, PASSWORD, "portal").await.status(), StatusCode::OK);
    // No permanent lock: after the wait the right password works.
    app.advance(Duration::from_secs(retry));
    assert_eq!(app.password_grant(&email, PASSWORD, "readyapi").await.status(), StatusCode::OK);
}

/// Send `n` password grants for `email` at once, alternately to `a` and `b`; returns how many were
/// answered `invalid_grant` (evaluated), `slow_down` (refused unevaluated) and 200.
async fn password_burst(a: &TestApp, b: &TestApp, email: &str, passwords: &[&str]) -> (usize, usize, usize) {
    let mut tasks = Vec::new();
    for (i, pw) in passwords.iter().enumerate() {
        let app = if i % 2 == 0 { a } else { b };
        let (client, url, email, pw) = (app.client.clone(), app.url("/oauth/token"), email.to_string(), pw.to_string());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .form(&[("grant_type", "password"), ("username", &email), ("password", &pw), ("client_id", "readyapi")])
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body["error"].as_str().unwrap_or_default().to_string())
        }));
    }
    let (mut wrong, mut refused, mut ok) = (0, 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            (StatusCode::BAD_REQUEST, e) if e == "invalid_grant" => wrong += 1,
            (StatusCode::TOO_MANY_REQUESTS, e) if e == "slow_down" => refused += 1,
            (StatusCode::OK, _) => ok += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (wrong, refused, ok)
}

/// The attack of a check-then-act throttle: many guesses at once, all evaluated before any is
/// counted. Here they are counted first, in the database, so two replicas share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_at_two_replicas_is_evaluated_only_up_to_the_budget() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let replica = app.replica().await;
    let evaluated = || async {
        app.event_count("password_attempt", "evaluated").await
            + replica.event_count("password_attempt", "evaluated").await
    };
    let before = evaluated().await;
    let guesses: Vec<String> = (0..100).map(|i| format!("wrong guess number {i}")).collect();
    let guesses: Vec<&str> = guesses.iter().map(String::as_str).collect();
    // Five free attempts, and the sixth, which starts the wait: six evaluated, whatever the timing.
    let (wrong, refused, ok) = password_burst(&app, &replica, &email, &guesses).await;
    assert_eq!((wrong, refused, ok), (6, 94, 0));
    assert_eq!(evaluated().await - before, 6, "no hash was computed for a refused guess");
    // The budget is spent: the right password among a new burst gets nowhere either.
    let mut burst = vec!["another wrong guess"; 19];
    burst.insert(7, PASSWORD);
    assert_eq!(password_burst(&app, &replica, &email, &burst).await, (0, 20, 0));
    assert_eq!(evaluated().await - before, 6);
    // Backoff, not a lock: after the wait one attempt is let through, and the right one works.
    app.advance(Duration::from_secs(1));
    assert_eq!(password_burst(&app, &replica, &email, &[PASSWORD]).await, (0, 0, 1));
    // Success cleared the account's counters: its owner has the free attempts again.
    let (wrong, refused, _) = password_burst(&app, &replica, &email, &guesses[..5]).await;
    assert_eq!((wrong, refused), (5, 0));
}

/// Spraying: one guess at each of many accounts from one address is bounded by the address's own
/// counter, which a correct sign-in of another account does not reset.
#[tokio::test]
async fn guessing_across_accounts_from_one_address_is_throttled() {
    let app = spawn_app().await;
    let email = user(&app).await;
    let mut answers = Vec::new();
    for i in 0..30 {
        let r = app.password_grant(&app.email(&format!("victim{i}")), "a sprayed password", "readyapi").await;
        answers.push(r.status());
        if i == 10 {
            // The attacker's own account signing in now and then does not wipe the address's count.
            assert_eq!(app.password_grant(&email, PASSWORD, "readyapi").await.status(), StatusCode::OK);
        }
    }
    let evaluated = answers.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count();
    // Twenty free failures and the twenty-first, which starts the wait.
    assert_eq!(evaluated, 21, "{answers:?}");
    assert!(answers[21..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{answers:?}");
}

#[tokio::test]
async fn the_server_metadata_describes_the_endpoints() {
    let app = spawn_app().await;
    let m: Value = app.get("/.well-known/oauth-authorization-server", None).await.json().await.unwrap();
    assert_eq!(m["issuer"], app.base);
    assert_eq!(m["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(m["jwks_uri"], app.url("/.well-known/jwks.json"));
    assert_eq!(m["revocation_endpoint"], app.url("/oauth/revoke"));
    assert_eq!(m["introspection_endpoint"], app.url("/oauth/introspect"));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert!(m["grant_types_supported"].as_array().unwrap().contains(&json!("refresh_token")));
}
