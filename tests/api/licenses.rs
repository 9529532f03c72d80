use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn assign(app: &TestApp, license: &str, token: &str, email: &str) -> reqwest::Response {
    app.post(&format!("/api/v1/licenses/{license}/assignments"), Some(token), json!({ "email": email })).await
}

#[tokio::test]
async fn creating_an_entity_creates_its_admin_and_mails_the_setup_link() {
    let app = spawn_app().await;
    let e = app.create_entity("acme").await;
    assert_eq!(e["slug"], "acme");
    let admin = app.email("admin-acme");
    assert_eq!(e["admin_email"], admin);
    app.set_password_from_mail(&admin, PASSWORD).await;
    let t = app.tokens(&admin, PASSWORD, "portal").await;
    let me: Value = app.get("/api/v1/me", t["access_token"].as_str()).await.json().await.unwrap();
    assert_eq!(me["admin_of"], json!(["acme"]));
}

#[tokio::test]
async fn the_operator_api_validates_its_input_and_changes_nothing_on_error() {
    let app = spawn_app().await;
    let r = app
        .post("/api/v1/entities", None, json!({ "slug": "acme", "name": "Acme", "admin_email": app.email("a") }))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .post(
            "/api/v1/entities",
            Some("lk_op_wrong"),
            json!({ "slug": "acme", "name": "Acme", "admin_email": app.email("a") }),
        )
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let r = app
        .post(
            "/api/v1/entities",
            app.op(),
            json!({ "slug": "Not A Slug", "name": "Acme", "admin_email": app.email("a") }),
        )
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_slug").await;
    let r =
        app.post("/api/v1/entities", app.op(), json!({ "slug": "acme", "name": "Acme", "admin_email": "nope" })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_email").await;
    let r = app.post("/api/v1/entities", app.op(), json!({ "slug": "acme", "name": "Acme" })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    app.create_entity("acme").await;
    let r = app
        .post(
            "/api/v1/entities",
            app.op(),
            json!({ "slug": "acme", "name": "Other", "admin_email": app.email("other") }),
        )
        .await;
    assert_problem(r, StatusCode::CONFLICT, "entity_exists").await;
    // The refused second entity did not create its admin's account nor mail it.
    app.drain_mail().await;
    assert!(app.sink().messages_to(&app.email("other")).is_empty());

    app.create_product("readyapi").await;
    let r = app.post("/api/v1/products", app.op(), json!({ "sku": "readyapi", "name": "Again" })).await;
    assert_problem(r, StatusCode::CONFLICT, "product_exists").await;
    let r = app.post("/api/v1/products", app.op(), json!({ "sku": "portal", "name": "Portal" })).await;
    assert_problem(r, StatusCode::CONFLICT, "product_exists").await;
    let r = app.post("/api/v1/products", app.op(), json!({ "sku": "Bad SKU!", "name": "x" })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_sku").await;

    let lic = "/api/v1/entities/acme/licenses";
    for (body, code) in [
        (json!({ "product": "nope", "type": "fixed", "seats": 1 }), "unknown_product"),
        (json!({ "product": "readyapi", "type": "rental", "seats": 1 }), "invalid_request"),
        (json!({ "product": "readyapi", "type": "fixed", "seats": 0 }), "invalid_request"),
        (json!({ "product": "readyapi", "type": "fixed", "seats": 2, "expires_at": "tomorrow" }), "invalid_request"),
        (
            json!({ "product": "readyapi", "type": "fixed", "seats": 2, "expires_at": "2001-01-01T00:00:00Z" }),
            "invalid_request",
        ),
        (json!({ "product": "readyapi", "type": "fixed", "seats": 2, "colour": "red" }), "invalid_request"),
    ] {
        assert_problem(app.post(lic, app.op(), body).await, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let r = app
        .post("/api/v1/entities/nope/licenses", app.op(), json!({ "product": "readyapi", "type": "fixed", "seats": 1 }))
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let list: Value = app.get(lic, app.op()).await.json().await.unwrap();
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn licenses_are_created_and_patched_by_the_operator() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let r = app
        .post(
            "/api/v1/entities/acme/licenses",
            app.op(),
            json!({ "product": "readyapi", "type": "fixed", "seats": 3, "expires_at": "2099-01-31T00:00:00Z", "group": "QA" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let l: Value = r.json().await.unwrap();
    assert_eq!(l["type"], "fixed");
    assert_eq!(l["seats"], 3);
    assert_eq!(l["expires_at"], "2099-01-31T00:00:00Z");
    assert_eq!(l["group"], "QA");
    let id = l["id"].as_str().unwrap();
    let r = app.patch(&format!("/api/v1/licenses/{id}"), app.op(), json!({ "seats": 10, "expires_at": null })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let l: Value = r.json().await.unwrap();
    assert_eq!(l["seats"], 10);
    assert_eq!(l["expires_at"], Value::Null);
    assert_eq!(l["group"], "QA");
    for bad in ["9999-12-31T23:59:59-05:00", "0000-01-01T00:00:00+01:00"] {
        let r = app.patch(&format!("/api/v1/licenses/{id}"), app.op(), json!({ "expires_at": bad })).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    }
    let r = app.patch(&format!("/api/v1/licenses/{id}"), app.op(), json!({ "seats": -1 })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
    let r = app.patch("/api/v1/licenses/nope", app.op(), json!({ "seats": 2 })).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn assigning_is_idempotent_and_mails_once() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 2).await;
    let email = app.email("Bob");
    let r = assign(&app, &license, &admin, &email).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["email"], email.to_lowercase());
    let r = assign(&app, &license, &admin, &email.to_uppercase()).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.mails_to(&email, 1).await;
    app.drain_mail().await;
    assert_eq!(app.sink().messages_to(&email).len(), 1, "one mail only");
    let l: Value = app.get(&format!("/api/v1/licenses/{license}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(l["assigned"], 1);
}

#[tokio::test]
async fn a_fixed_license_refuses_assignments_past_its_seats_without_creating_the_account() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 1).await;
    assert_eq!(assign(&app, &license, &admin, &app.email("one")).await.status(), StatusCode::CREATED);
    let v = assert_problem(
        assign(&app, &license, &admin, &app.email("two")).await,
        StatusCode::CONFLICT,
        "seats_exhausted",
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains('1'));
    let users: Value = app.get("/api/v1/entities/acme/users", Some(&admin)).await.json().await.unwrap();
    let emails: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
    assert!(!emails.contains(&app.email("two").as_str()), "{emails:?}");
    app.drain_mail().await;
    assert!(app.sink().messages_to(&app.email("two")).is_empty());

    // A floating license adds any number of users to its pool.
    let floating = app.create_license("acme", "readyapi", "floating", 1).await;
    for who in ["a", "b", "c"] {
        assert_eq!(assign(&app, &floating, &admin, &app.email(who)).await.status(), StatusCode::CREATED);
    }
}

#[tokio::test]
async fn bulk_assignment_answers_per_email() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 2).await;
    let (a, b, c) = (app.email("a"), app.email("b"), app.email("c"));
    let r = app
        .post(
            &format!("/api/v1/licenses/{license}/assignments"),
            Some(&admin),
            json!({ "emails": [a, b, a, "bogus", c] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let statuses: Vec<(&str, &str)> =
        v.as_array().unwrap().iter().map(|x| (x["email"].as_str().unwrap(), x["status"].as_str().unwrap())).collect();
    assert_eq!(
        statuses,
        vec![
            (a.as_str(), "assigned"),
            (b.as_str(), "assigned"),
            (a.as_str(), "already_assigned"),
            ("bogus", "error"),
            (c.as_str(), "error")
        ]
    );
    assert_eq!(v[3]["code"], "invalid_email");
    assert_eq!(v[4]["code"], "seats_exhausted");
    let r = app.post(&format!("/api/v1/licenses/{license}/assignments"), Some(&admin), json!({ "emails": [] })).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
}

#[tokio::test]
async fn a_fixed_license_allows_as_many_revokes_as_it_has_seats() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 2).await;
    let path = |e: &str| format!("/api/v1/licenses/{license}/assignments/{e}");
    for who in ["a", "b"] {
        assign(&app, &license, &admin, &app.email(who)).await;
    }
    assert_problem(app.delete(&path(&app.email("zed")), Some(&admin)).await, StatusCode::NOT_FOUND, "not_assigned")
        .await;
    assert_eq!(app.delete(&path(&app.email("a")), Some(&admin)).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(assign(&app, &license, &admin, &app.email("c")).await.status(), StatusCode::CREATED);
    assert_eq!(app.delete(&path(&app.email("b")), Some(&admin)).await.status(), StatusCode::NO_CONTENT);
    assert_problem(app.delete(&path(&app.email("c")), Some(&admin)).await, StatusCode::CONFLICT, "reassignment_limit")
        .await;
    let l: Value = app.get(&format!("/api/v1/licenses/{license}"), Some(&admin)).await.json().await.unwrap();
    assert_eq!(l["reassignments_left"], 0);
    assert_eq!(l["assigned"], 1);
    // A floating license has no such limit.
    let floating = app.create_license("acme", "readyapi", "floating", 1).await;
    for _ in 0..3 {
        assign(&app, &floating, &admin, &app.email("f")).await;
        let r = app.delete(&format!("/api/v1/licenses/{floating}/assignments/{}", app.email("f")), Some(&admin)).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn administrators_see_and_change_only_their_own_entity() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let acme = app.entity_with_admin("acme").await;
    let globex = app.entity_with_admin("globex").await;
    let acme_license = app.create_license("acme", "readyapi", "fixed", 3).await;
    let user_email = app.licensed_user(&acme_license, "bob", &acme).await;

    // Another entity's administrator: 404, as if it did not exist.
    for path in
        ["/api/v1/entities/acme/licenses", "/api/v1/entities/acme/users", &format!("/api/v1/licenses/{acme_license}")]
    {
        assert_problem(app.get(path, Some(&globex)).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    assert_problem(assign(&app, &acme_license, &globex, &app.email("x")).await, StatusCode::NOT_FOUND, "not_found")
        .await;
    let r = app.delete(&format!("/api/v1/licenses/{acme_license}/assignments/{user_email}"), Some(&globex)).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    assert_problem(app.get("/api/v1/entities/nope/licenses", Some(&globex)).await, StatusCode::NOT_FOUND, "not_found")
        .await;

    // A user who administers nothing: 403.
    let user = app.tokens(&user_email, PASSWORD, "portal").await;
    let ut = user["access_token"].as_str();
    assert_problem(app.get("/api/v1/entities/acme/licenses", ut).await, StatusCode::FORBIDDEN, "not_an_administrator")
        .await;
    // An administrator's token issued to a product, not to the portal: 403.
    let product_token = app.tokens(&app.email("admin-acme"), PASSWORD, "readyapi").await;
    let r = app.get("/api/v1/entities/acme/licenses", product_token["access_token"].as_str()).await;
    assert_problem(r, StatusCode::FORBIDDEN, "wrong_audience").await;
    // No token: 401.
    assert_problem(app.get("/api/v1/entities/acme/licenses", None).await, StatusCode::UNAUTHORIZED, "unauthorized")
        .await;
    // Administrators do not change seats or expiry.
    let r = app.patch(&format!("/api/v1/licenses/{acme_license}"), Some(&acme), json!({ "seats": 100 })).await;
    assert_problem(r, StatusCode::FORBIDDEN, "operator_only").await;
    // The operator key is not a user token.
    let r = app.get("/api/v1/me", app.op()).await;
    assert_problem(r, StatusCode::FORBIDDEN, "user_token_required").await;
    // Their own entity works.
    let list: Value = app.get("/api/v1/entities/acme/licenses", Some(&acme)).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn administrators_manage_groups_and_other_administrators() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 3).await;
    let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": "Engineering" })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.post("/api/v1/entities/acme/groups", Some(&admin), json!({ "name": "Engineering" })).await;
    assert_problem(r, StatusCode::CONFLICT, "group_exists").await;
    let r = app.patch(&format!("/api/v1/licenses/{license}"), Some(&admin), json!({ "group": "Engineering" })).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["group"], "Engineering");
    let r = app.patch(&format!("/api/v1/licenses/{license}"), Some(&admin), json!({ "group": null })).await;
    assert_eq!(r.json::<Value>().await.unwrap()["group"], Value::Null);
    let groups: Value = app.get("/api/v1/entities/acme/groups", Some(&admin)).await.json().await.unwrap();
    assert_eq!(groups[0]["name"], "Engineering");

    let second = app.email("second-admin");
    let r = app.post("/api/v1/entities/acme/admins", Some(&admin), json!({ "email": second })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    app.set_password_from_mail(&second, PASSWORD).await;
    let t = app.tokens(&second, PASSWORD, "portal").await;
    let r = app.get("/api/v1/entities/acme/licenses", t["access_token"].as_str()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let admins: Value = app.get("/api/v1/entities/acme/admins", Some(&admin)).await.json().await.unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 2);
    let users: Value = app.get("/api/v1/entities/acme/users", Some(&admin)).await.json().await.unwrap();
    let s = users.as_array().unwrap().iter().find(|u| u["email"] == second).unwrap().clone();
    assert_eq!(s["admin"], true);
    assert_eq!(s["status"], "active");

    let first = app.email("admin-acme");
    assert_eq!(
        app.delete(&format!("/api/v1/entities/acme/admins/{first}"), Some(&admin)).await.status(),
        StatusCode::NO_CONTENT
    );
    let r = app.delete(&format!("/api/v1/entities/acme/admins/{second}"), t["access_token"].as_str()).await;
    assert_problem(r, StatusCode::CONFLICT, "last_admin").await;
}

#[tokio::test]
async fn a_share_link_assigns_whoever_accepts_it_while_seats_last() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "fixed", 2).await;
    let r = app.post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin), json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let link: Value = r.json().await.unwrap();
    let url = link["url"].as_str().unwrap();
    let path = url.strip_prefix(&app.base).unwrap().to_string();

    // The page works without JavaScript.
    let page = app.get(&path, None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("READYAPI") && html.contains("<form method=\"post\""));
    // A newcomer creates an account on the spot and is mailed the setup link.
    let newcomer = app.email("newcomer");
    let r = app.submit(&path, &path, &[("email", &newcomer)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.set_password_from_mail(&newcomer, PASSWORD).await;
    // A signed-in user accepts through the API.
    let holder =
        app.licensed_user(&app.create_license("acme", "readyapi", "floating", 1).await, "holder", &admin).await;
    let t = app.tokens(&holder, PASSWORD, "readyapi").await;
    let token = path.rsplit('/').next().unwrap();
    let r = app.post(&format!("/api/v1/share-links/{token}/accept"), t["access_token"].as_str(), json!({})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    // No seat left.
    let r = app.submit(&path, &path, &[("email", &app.email("late"))]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // Stopped links stop.
    let link_id = link["id"].as_str().unwrap();
    let r = app.delete(&format!("/api/v1/licenses/{license}/share-links/{link_id}"), Some(&admin)).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, None).await.status(), StatusCode::GONE);
    let r = app.post(&format!("/api/v1/share-links/{token}/accept"), t["access_token"].as_str(), json!({})).await;
    assert_problem(r, StatusCode::GONE, "share_link_revoked").await;
    assert_eq!(app.get("/share/lk_sh_madeup", None).await.status(), StatusCode::NOT_FOUND);

    // Each acceptance is in the entity's audit log, by whoever accepted (the newcomer only typed
    // an address: no account id), naming the link, the license and the account; the refused
    // ones (no seat left, link stopped) recorded none.
    let accepted = app.audited(Some("acme"), "share_link.accepted").await;
    assert_eq!(accepted.len(), 2, "{accepted:#?}");
    let license_target = audit_target("license", &license, Some("readyapi fixed"));
    for (e, who, actor_id) in
        [(&accepted[0], &newcomer, Value::Null), (&accepted[1], &holder, json!(user_id(&app, &holder).await))]
    {
        assert_eq!(e["actor"], json!({ "type": "user", "id": actor_id, "name": who }), "{e}");
        assert_eq!(e["entity"], "acme");
        let account = audit_target("user", &user_id(&app, who).await, Some(who.as_str()));
        assert_eq!(e["targets"], json!([audit_target("share_link", link_id, None), license_target, account]), "{e}");
    }
    // Its assignment names the link too.
    let assigned = app.audited(Some("acme"), "assignment.created").await;
    let via_link: Vec<&Value> = assigned.iter().filter(|e| e["details"]["share_link"] == link_id).collect();
    assert_eq!(via_link.len(), 2, "{assigned:#?}");
}

async fn user_id(app: &TestApp, email: &str) -> String {
    latchkey::store::accounts::user_by_email(&app.state.db.pool, email).await.unwrap().unwrap().id
}

#[tokio::test]
async fn a_signed_in_user_accepts_a_share_link_in_the_browser() {
    let app = spawn_app().await;
    app.create_product("readyapi").await;
    let admin = app.entity_with_admin("acme").await;
    let license = app.create_license("acme", "readyapi", "floating", 3).await;
    let other = app.create_license("acme", "readyapi", "fixed", 1).await;
    let user = app.licensed_user(&other, "carol", &admin).await;
    let link: Value = app
        .post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin), json!({ "expires_in_days": 2 }))
        .await
        .json()
        .await
        .unwrap();
    let path = link["url"].as_str().unwrap().strip_prefix(&app.base).unwrap().to_string();
    // Not signed in: a sign-in link that comes back here, and the newcomer form.
    let html = app.get(&path, None).await.text().await.unwrap();
    assert!(html.contains("/login?return_to=%2Fshare%2F"), "{html}");
    let r = app
        .submit("/login", "/login/password", &[("email", &user), ("password", PASSWORD), ("return_to", &path)])
        .await;
    assert_eq!(r.headers()["location"], path.as_str());
    let html = app.get(&path, None).await.text().await.unwrap();
    assert!(html.contains(&format!("Accept as {user}")), "{html}");
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert_eq!(app.form(&path, &[("csrf", "forged")]).await.status(), StatusCode::FORBIDDEN);
    let r = app.form(&path, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let assigned: Value =
        app.get(&format!("/api/v1/licenses/{license}/assignments"), Some(&admin)).await.json().await.unwrap();
    assert!(assigned.as_array().unwrap().iter().any(|a| a["email"] == user), "{assigned}");
    // An expiry outside 1 to 90 days is refused.
    let r = app
        .post(&format!("/api/v1/licenses/{license}/share-links"), Some(&admin), json!({ "expires_in_days": 365 }))
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;
}

#[tokio::test]
async fn the_slug_of_the_operators_entity_is_reserved() {
    let app = spawn_app().await;
    let reserved = latchkey::accounts::operators::OPERATORS_ENTITY;
    assert_eq!(reserved, "latchkey-operators");
    let taker = app.email("taker");
    let body = json!({ "slug": reserved, "name": "Not the operators", "admin_email": taker });
    let refused = |r: reqwest::Response| assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_slug");
    let v = refused(app.post("/api/v1/entities", app.op(), body.clone()).await).await;
    assert!(v["detail"].as_str().unwrap().contains("reserved"), "{v}");
    // Nothing was made: no entity, no account, no mail, no event.
    assert_problem(
        app.get(&format!("/api/v1/entities/{reserved}"), app.op()).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let pool = &app.state.db.pool;
    assert!(latchkey::store::accounts::user_by_email(pool, &taker).await.unwrap().is_none());
    assert_eq!(app.mails_queued(&taker, "setup").await, 0);
    assert_eq!(app.audited(None, "entity.created").await, Vec::<Value>::new());

    // An operator account made afterwards lands in the built-in entity, which nobody
    // administers; and once that exists, the slug is refused the same way (not "taken").
    let ops = app.email("ops");
    latchkey::accounts::operators::add(&app.state, &ops, app.clock_now()).await.unwrap();
    let home = latchkey::store::entities::entity_by_slug(pool, reserved).await.unwrap().unwrap();
    assert_eq!(home.name, "latchkey operators");
    let user = latchkey::store::accounts::user_by_email(pool, &ops).await.unwrap().unwrap();
    assert_eq!(user.entity_id, home.id);
    refused(app.post("/api/v1/entities", app.op(), body).await).await;
    assert!(latchkey::store::accounts::user_by_email(pool, &taker).await.unwrap().is_none());
    let admins: Value = app.get(&format!("/api/v1/entities/{reserved}/admins"), app.op()).await.json().await.unwrap();
    assert_eq!(admins, json!([]));
    assert_eq!(app.audited(None, "entity.created").await, Vec::<Value>::new());
    // A slug that only looks like it is an ordinary slug.
    app.create_entity("latchkey-operators-eu").await;
}
