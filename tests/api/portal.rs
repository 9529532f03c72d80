//! The portal's pages over HTTP: what each kind of user sees, the forms (CSRF, 303 and flash),
//! and that nobody reaches another entity's pages, even with a guessed id.

use reqwest::{Client, Response, StatusCode, multipart};
use serde_json::{Value, json};

use crate::helpers::*;

struct Portal {
    app: TestApp,
    /// The administrator of `acme`, signed in.
    admin: Client,
    admin_email: String,
    /// A `portal` token of the same administrator, for checking through the JSON API.
    token: String,
    license: String,
}

async fn portal(kind: &str, seats: i64) -> Portal {
    portal_with(kind, seats, spawn_app().await).await
}

/// The same, on a server whose clock starts at `at` (RFC 3339).
async fn portal_at(kind: &str, seats: i64, at: &str) -> Portal {
    let start = latchkey::clock::parse_rfc3339(at).expect("an RFC 3339 instant");
    let clock = latchkey::clock::ManualClock::new(start);
    portal_with(kind, seats, spawn_app_with(Options { clock: Some(clock), ..Options::default() }).await).await
}

async fn portal_with(kind: &str, seats: i64, app: TestApp) -> Portal {
    app.create_product("readyapi").await;
    app.create_entity("acme").await;
    let admin_email = app.email("admin-acme");
    let license = app.create_license("acme", "readyapi", kind, seats).await;
    let admin = app.signed_in_browser(&admin_email).await;
    let token = app.token_for(&admin_email, "portal").await;
    Portal { app, admin, admin_email, token, license }
}

fn location(r: &Response) -> String {
    r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

async fn page(app: &TestApp, b: &Client, path: &str) -> (StatusCode, String) {
    let r = b.get(app.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Open `path` in browser `b`, take the session's form token, post `fields` to `action`.
async fn post_form(app: &TestApp, b: &Client, path: &str, action: &str, fields: &[(&str, &str)]) -> Response {
    let (status, html) = page(app, b, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {html}");
    let csrf = csrf_of(&html);
    let mut all = fields.to_vec();
    all.push(("csrf", &csrf));
    b.post(app.url(action)).form(&all).send().await.unwrap()
}

async fn assign_form(app: &TestApp, b: &Client, license: &str, emails: &str, csv: Option<&str>) -> Response {
    let (_, html) = page(app, b, &format!("/portal/licenses/{license}")).await;
    let mut form = multipart::Form::new().text("csrf", csrf_of(&html)).text("emails", emails.to_string());
    if let Some(csv) = csv {
        form = form
            .part("file", multipart::Part::text(csv.to_string()).file_name("people.csv").mime_str("text/csv").unwrap());
    }
    b.post(app.url(&format!("/portal/licenses/{license}/assign"))).multipart(form).send().await.unwrap()
}

async fn assignees(p: &Portal) -> Vec<String> {
    let r = p.app.get(&format!("/api/v1/licenses/{}/assignments", p.license), Some(&p.token)).await;
    let v: Value = r.json().await.unwrap();
    v.as_array().unwrap().iter().map(|a| a["email"].as_str().unwrap().to_string()).collect()
}

async fn checkout(app: &TestApp, email: &str, machine: &str) -> Value {
    let t = app.token_for(email, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&t), json!({ "product": "readyapi", "machine": machine })).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let mut v: Value = r.json().await.unwrap();
    v["token"] = json!(t);
    v
}

async fn heartbeat(app: &TestApp, seat: &Value, idle: i64) -> Response {
    let path = format!("/api/v1/seats/{}/heartbeat", seat["lease_id"].as_str().unwrap());
    app.post(&path, seat["token"].as_str(), json!({ "idle_seconds": idle })).await
}

#[tokio::test]
async fn the_portal_is_the_landing_page_and_shows_a_users_licenses_and_seats() {
    let p = portal("floating", 5).await;
    let app = &p.app;
    // No session: sign in first, and come back.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/portal"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/login?return_to=%2Fportal");

    let email = app.email("ada");
    app.assign(&p.license, &email).await;
    let ada = app.signed_in_browser(&email).await;
    let (status, html) = page(app, &ada, "/portal").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("READYAPI") && html.contains("floating"), "{html}");
    assert!(html.contains("None of your products holds a seat"), "{html}");
    assert!(!html.contains("/portal/entities/"), "a plain user is offered no administration: {html}");

    let seat = checkout(app, &email, "ada-laptop").await;
    let (_, html) = page(app, &ada, "/portal").await;
    assert!(html.contains("ada-laptop"), "{html}");
    let lease = seat["lease_id"].as_str().unwrap();
    // Releasing needs the session's token.
    let r = ada.post(app.url(&format!("/portal/seats/{lease}/release"))).form(&[("csrf", "forged")]).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(heartbeat(app, &seat, 0).await.status(), StatusCode::OK, "the seat is still live");
    let r = post_form(app, &ada, "/portal", &format!("/portal/seats/{lease}/release"), &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/portal");
    let (_, html) = page(app, &ada, "/portal").await;
    assert!(html.contains("Seat released"), "the flash shows once: {html}");
    let (_, html) = page(app, &ada, "/portal").await;
    assert!(!html.contains("Seat released"), "and only once: {html}");
    assert_problem(heartbeat(app, &seat, 0).await, StatusCode::GONE, "lease_revoked").await;

    // Somebody else's seat cannot be released from here.
    let bob = app.email("bob");
    app.assign(&p.license, &bob).await;
    let bobs = checkout(app, &bob, "bob-pc").await;
    let r =
        post_form(app, &ada, "/portal", &format!("/portal/seats/{}/release", bobs["lease_id"].as_str().unwrap()), &[])
            .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(heartbeat(app, &bobs, 0).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn portal_pages_send_a_strict_policy_and_no_inline_script() {
    let p = portal("floating", 5).await;
    for path in ["/portal", "/portal/entities/acme/licenses", &format!("/portal/licenses/{}", p.license)] {
        let r = p.admin.get(p.app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>") && !html.contains("onclick") && !html.contains("style="), "{path}");
        assert!(html.contains("<script src=\"/static/portal.js\""), "{path}");
    }
    let css = p.app.get("/static/portal.css", None).await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("@media (max-width: 600px)"));
}

#[tokio::test]
async fn an_administrator_assigns_one_many_and_a_csv_and_sees_each_result() {
    let p = portal("fixed", 4).await;
    let app = &p.app;
    let lic = &p.license;
    let (status, html) = page(app, &p.admin, "/portal/entities/acme/licenses").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("/portal/licenses/{lic}")), "{html}");
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(html.contains("Nobody holds this license yet"), "an empty state says what to do: {html}");

    // One address: back to the license with a message.
    let one = app.email("one");
    let r = assign_form(app, &p.admin, lic, &one, None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/portal/licenses/{lic}"));
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(html.contains(&format!("{one} is assigned")), "{html}");
    assert!(html.contains("invited"), "{html}");

    // A pasted list and a CSV: one page with what happened to each address.
    let (two, three, four, five) = (app.email("two"), app.email("three"), app.email("four"), app.email("five"));
    let csv = format!("email,name\n{four},Four\n{five},Five\n");
    let r = assign_form(app, &p.admin, lic, &format!("{two}, {three}\nnot-an-address {one}"), Some(&csv)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("3 assigned, 1 already assigned, 2 not assigned"), "{html}");
    assert!(html.contains("not-an-address"), "{html}");
    assert!(html.contains("all 4 seats of this license are assigned"), "the fifth is refused with the reason: {html}");
    let mut got = assignees(&p).await;
    got.sort();
    let mut want = vec![one.clone(), two.clone(), three.clone(), four.clone()];
    want.sort();
    assert_eq!(got, want, "the JSON API sees what the portal did");

    // Nothing to assign: a message, nothing changes.
    let r = assign_form(app, &p.admin, lic, "  ", None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(assignees(&p).await.len(), 4);
}

#[tokio::test]
async fn revoking_asks_first_and_shows_the_reassignments_left() {
    let p = portal("fixed", 2).await;
    let app = &p.app;
    let lic = &p.license;
    let ada = app.email("ada");
    app.assign(lic, &ada).await;
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(html.contains("Reassignments left"), "{html}");
    let confirm = format!("/portal/licenses/{lic}/revoke?email={}", ada.replace('@', "%40"));
    assert!(html.contains(&confirm), "a revoke link per assignee: {html}");
    let (status, html) = page(app, &p.admin, &confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("Revoke {ada}?")) && html.contains("allows 2 more"), "{html}");
    assert_eq!(assignees(&p).await, vec![ada.clone()], "opening the confirmation changes nothing");
    let r = post_form(app, &p.admin, &confirm, &format!("/portal/licenses/{lic}/revoke"), &[("email", &ada)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(assignees(&p).await.is_empty());
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(html.contains("no longer holds this license"), "{html}");
    // A refusal of the service reads as a message.
    let r = post_form(app, &p.admin, &confirm, &format!("/portal/licenses/{lic}/revoke"), &[("email", &ada)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(html.contains("is not assigned this license"), "{html}");
}

#[tokio::test]
async fn share_links_are_shown_once_and_can_be_stopped() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    let lic = &p.license;
    let r = post_form(
        app,
        &p.admin,
        &format!("/portal/licenses/{lic}"),
        &format!("/portal/licenses/{lic}/share-links"),
        &[("days", "3")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let url = html.split("value=\"").find(|s| s.starts_with("http")).unwrap().split('"').next().unwrap().to_string();
    assert!(url.contains("/share/lk_sh_"), "{url}");
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::OK);
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(!html.contains(&url), "the secret link is not shown again");
    assert!(html.contains(">live<"), "{html}");
    let links: Value =
        app.get(&format!("/api/v1/licenses/{lic}/share-links"), Some(&p.token)).await.json().await.unwrap();
    let id = links[0]["id"].as_str().unwrap();
    let r = post_form(
        app,
        &p.admin,
        &format!("/portal/licenses/{lic}"),
        &format!("/portal/licenses/{lic}/share-links/{id}/delete"),
        &[],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), StatusCode::GONE);
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}")).await;
    assert!(html.contains("share link is stopped") && html.contains(">stopped<"), "{html}");
}

#[tokio::test]
async fn live_seats_show_idle_time_and_disconnect_after_confirmation() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    let lic = &p.license;
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}/seats")).await;
    assert!(html.contains("No seat is in use right now"), "{html}");
    let ada = app.email("ada");
    app.assign(lic, &ada).await;
    let seat = checkout(app, &ada, "build-agent-7").await;
    assert_eq!(heartbeat(app, &seat, 660).await.status(), StatusCode::OK);
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}/seats")).await;
    assert!(html.contains(&ada) && html.contains("build-agent-7") && html.contains("11 min"), "{html}");
    let lease = seat["lease_id"].as_str().unwrap();
    let confirm = format!("/portal/seats/{lease}/disconnect");
    assert!(html.contains(&confirm), "{html}");
    let (status, html) = page(app, &p.admin, &confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!("Disconnect {ada}?")), "{html}");
    assert_eq!(heartbeat(app, &seat, 0).await.status(), StatusCode::OK, "asking changes nothing");
    let r = post_form(app, &p.admin, &confirm, &confirm, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), format!("/portal/licenses/{lic}/seats"));
    assert_problem(heartbeat(app, &seat, 0).await, StatusCode::GONE, "lease_revoked").await;
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{lic}/seats")).await;
    assert!(html.contains("Seat disconnected"), "{html}");
}

/// The address of the pager's link `which` (`first`, `prev`, `next`, `last`) on a page.
fn pager_link(html: &str, which: &str) -> Option<String> {
    let pager = html.split("<nav class=\"pager\"").nth(1)?.split("</nav>").next()?;
    let label = match which {
        "first" => "« First",
        "prev" => "‹ Previous",
        "next" => "Next ›",
        _ => "Last »",
    };
    let a = pager.split("<a href=\"").find(|a| a.contains(label))?;
    Some(a.split('"').next()?.replace("&amp;", "&").replace("&#38;", "&").replace("&#x2f;", "/").replace("&#x3d;", "="))
}

#[tokio::test]
async fn users_and_administrators_are_listed_searched_added_and_removed() {
    let p = portal("floating", 300).await;
    let app = &p.app;
    let emails: Vec<String> = (0..60).map(|i| app.email(&format!("user{i:02}"))).collect();
    let r = app
        .post(&format!("/api/v1/licenses/{}/assignments", p.license), Some(&p.token), json!({ "emails": emails }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // Pages by email, each reached from its neighbour's key (keyset paging, no row counting).
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/users").await;
    assert!(html.contains("Showing 50 of 61, by email"), "{html}");
    assert!(html.contains(&emails[48]) && !html.contains(&emails[49]), "{html}");
    assert!(pager_link(&html, "prev").is_none() && pager_link(&html, "first").is_none(), "{html}");
    let next = pager_link(&html, "next").unwrap();
    assert_eq!(next, format!("/portal/entities/acme/users?after={}", emails[48].replace('@', "%40")));
    let (_, html) = page(app, &p.admin, &next).await;
    assert!(html.contains("Showing 11 of 61"), "{html}");
    assert!(html.contains(&emails[49]) && html.contains(&emails[59]) && !html.contains(&emails[48]), "{html}");
    assert!(pager_link(&html, "next").is_none() && pager_link(&html, "last").is_none(), "{html}");
    let (_, back) = page(app, &p.admin, &pager_link(&html, "prev").unwrap()).await;
    assert!(back.contains("Showing 50 of 61") && back.contains(&p.admin_email) && back.contains(&emails[48]), "{back}");
    assert!(pager_link(&back, "prev").is_none(), "back at the start: {back}");
    let (_, last) = page(app, &p.admin, &pager_link(&back, "last").unwrap()).await;
    assert!(last.contains("Showing 50 of 61") && last.contains(&emails[59]) && !last.contains(&emails[9]), "{last}");
    assert!(last.contains(&emails[10]) && pager_link(&last, "next").is_none(), "the last 50: {last}");
    // A key that is no row's still pages from where it would be; nonsense is no error.
    let (status, html) = page(app, &p.admin, "/portal/entities/acme/users?after=user3").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&emails[30]) && !html.contains(&emails[29]), "{html}");
    let (status, _) = page(app, &p.admin, "/portal/entities/acme/users?before=%27%3B--&last=x").await;
    assert_eq!(status, StatusCode::OK);
    // A search pages too, and its links keep it.
    let license_page = format!("/portal/licenses/{}", p.license);
    let (_, html) = page(app, &p.admin, &format!("{license_page}?q=USER")).await;
    assert!(html.contains("Showing 50 of 60"), "{html}");
    let next = pager_link(&html, "next").unwrap();
    assert!(next.starts_with(&format!("{license_page}?q=user&after=")), "{next}");
    let (_, html) = page(app, &p.admin, &next).await;
    assert!(html.contains("Showing 10 of 60") && html.contains(&emails[59]), "{html}");
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/users?q=USER4").await;
    assert!(html.contains("Showing 10 of 10"), "search ignores case: {html}");
    // A LIKE wildcard in the search is taken literally.
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/users?q=%25").await;
    assert!(html.contains("No user&#39;s email contains") || html.contains("No user's email contains"), "{html}");
    let (_, html) = page(app, &p.admin, &format!("/portal/licenses/{}?q=user1", p.license)).await;
    assert!(html.contains("Showing 10 of 10"), "{html}");

    let grace = app.email("grace");
    let r =
        post_form(app, &p.admin, "/portal/entities/acme/users", "/portal/entities/acme/admins", &[("email", &grace)])
            .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let admins: Value = app.get("/api/v1/entities/acme/admins", Some(&p.token)).await.json().await.unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 2);
    let r = post_form(
        app,
        &p.admin,
        "/portal/entities/acme/users",
        "/portal/entities/acme/admins/remove",
        &[("email", &grace)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The last administrator stays.
    let r = post_form(
        app,
        &p.admin,
        "/portal/entities/acme/users",
        "/portal/entities/acme/admins/remove",
        &[("email", &p.admin_email)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/users").await;
    assert!(html.contains("keeps at least one administrator"), "{html}");
    let admins: Value = app.get("/api/v1/entities/acme/admins", Some(&p.token)).await.json().await.unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn forms_without_the_sessions_token_or_from_elsewhere_change_nothing() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    let lic = &p.license;
    let ada = app.email("ada");
    app.assign(lic, &ada).await;
    let seat = checkout(app, &ada, "pc").await;
    let lease = seat["lease_id"].as_str().unwrap();
    let posts = [
        (format!("/portal/licenses/{lic}/revoke"), vec![("email", ada.as_str())]),
        (format!("/portal/licenses/{lic}/share-links"), vec![]),
        (format!("/portal/seats/{lease}/disconnect"), vec![]),
        ("/portal/entities/acme/admins".to_string(), vec![("email", "evil@example.com")]),
    ];
    let (_, html) = page(app, &p.admin, "/portal").await;
    let good = csrf_of(&html);
    for (action, fields) in &posts {
        for token in [None, Some("forged"), Some(good.as_str())] {
            let mut all = fields.clone();
            if let Some(t) = token {
                all.push(("csrf", t));
            }
            let mut req = p.admin.post(app.url(action)).form(&all);
            if token == Some(good.as_str()) {
                // The right token, posted from another site.
                req = req.header("origin", "https://evil.example");
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action} {token:?}");
        }
    }
    let form = multipart::Form::new().text("emails", app.email("mallory"));
    let r = p.admin.post(app.url(&format!("/portal/licenses/{lic}/assign"))).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(assignees(&p).await, vec![ada.clone()]);
    assert_eq!(heartbeat(app, &seat, 0).await.status(), StatusCode::OK);
    let links: Value =
        app.get(&format!("/api/v1/licenses/{lic}/share-links"), Some(&p.token)).await.json().await.unwrap();
    assert_eq!(links.as_array().unwrap().len(), 0);
    let admins: Value = app.get("/api/v1/entities/acme/admins", Some(&p.token)).await.json().await.unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn another_entitys_administrator_and_plain_users_get_404_even_with_guessed_ids() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    let lic = &p.license;
    let ada = app.email("ada");
    app.assign(lic, &ada).await;
    let seat = checkout(app, &ada, "pc").await;
    let lease = seat["lease_id"].as_str().unwrap().to_string();
    app.create_entity("globex").await;
    let globex = app.signed_in_browser(&app.email("admin-globex")).await;
    let plain = app.signed_in_browser(&ada).await;
    let gets = [
        "/portal/entities/acme".to_string(),
        "/portal/entities/acme/licenses".to_string(),
        "/portal/entities/acme/users".to_string(),
        format!("/portal/licenses/{lic}"),
        format!("/portal/licenses/{lic}/seats"),
        format!("/portal/licenses/{lic}/revoke?email={}", ada.replace('@', "%40")),
        format!("/portal/seats/{lease}/disconnect"),
        "/portal/entities/nope/licenses".to_string(),
        "/portal/licenses/01900000-0000-7000-8000-000000000000".to_string(),
    ];
    for b in [&globex, &plain] {
        for path in &gets {
            let (status, html) = page(app, b, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert!(!html.contains(&ada) && !html.contains("READYAPI"), "{path} leaks: {html}");
        }
        // Their own session's token, on the other entity's forms.
        let (_, html) = page(app, b, "/portal").await;
        let csrf = csrf_of(&html);
        let posts = [
            (format!("/portal/licenses/{lic}/revoke"), vec![("email", ada.as_str()), ("csrf", &csrf)]),
            (format!("/portal/licenses/{lic}/share-links"), vec![("csrf", &csrf)]),
            (format!("/portal/seats/{lease}/disconnect"), vec![("csrf", &csrf)]),
            ("/portal/entities/acme/admins".to_string(), vec![("email", "evil@example.com"), ("csrf", &csrf)]),
            (
                "/portal/entities/acme/admins/remove".to_string(),
                vec![("email", p.admin_email.as_str()), ("csrf", &csrf)],
            ),
        ];
        for (action, fields) in &posts {
            let r = b.post(app.url(action)).form(fields).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
        }
        let form = multipart::Form::new().text("csrf", csrf.clone()).text("emails", app.email("mallory"));
        let r = b.post(app.url(&format!("/portal/licenses/{lic}/assign"))).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    assert_eq!(assignees(&p).await, vec![ada.clone()]);
    assert_eq!(heartbeat(app, &seat, 0).await.status(), StatusCode::OK);
    let admins: Value = app.get("/api/v1/entities/acme/admins", Some(&p.token)).await.json().await.unwrap();
    assert_eq!(admins.as_array().unwrap().len(), 1);
    // And globex's administrator sees their own entity, with an empty state.
    let (status, html) = page(app, &globex, "/portal/entities/globex/licenses").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("has no license yet"), "{html}");
}

#[tokio::test]
async fn licenses_filter_by_product_and_group_and_count_seats_in_use() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    app.create_product("soapui").await;
    let r = app
        .post(
            "/api/v1/entities/acme/licenses",
            app.op(),
            json!({ "product": "soapui", "type": "fixed", "seats": 7, "group": "QA" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let ada = app.email("ada");
    app.assign(&p.license, &ada).await;
    checkout(app, &ada, "pc").await;
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/licenses").await;
    assert!(html.contains("2 of 2 licenses") && html.contains("READYAPI") && html.contains("SOAPUI"), "{html}");
    assert!(html.contains(&format!("<a href=\"/portal/licenses/{}/seats\">1</a>", p.license)), "in use now: {html}");
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/licenses?group=QA").await;
    let readyapi = format!("href=\"/portal/licenses/{}\"", p.license);
    assert!(html.contains("1 of 2 licenses") && !html.contains(&readyapi), "{html}");
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/licenses?product=readyapi").await;
    assert!(html.contains("1 of 2 licenses") && html.contains(&readyapi), "{html}");
}

#[tokio::test]
async fn the_usage_page_charts_peaks_against_seats_and_downloads_the_same_csv_in_a_zone() {
    // Midday in Berlin: the day is the same there and in UTC (the hours around midnight are the
    // subject of the tests below; the clock is pinned so that the hour this runs at does not matter).
    usage_page_in_berlin("2026-11-30T11:00:00+01:00", "2026-11-30").await;
}

#[tokio::test]
async fn the_usage_page_counts_a_refusal_just_after_midnight_in_the_zone_on_that_day() {
    // 00:30 in Berlin is 23:30 UTC the day before: the seat, the refusal and "today" are all of
    // the 1st of December in Berlin.
    usage_page_in_berlin("2026-12-01T00:30:00+01:00", "2026-12-01").await;
    // Summer time: 00:30 in Berlin is 22:30 UTC.
    usage_page_in_berlin("2026-07-15T00:30:00+02:00", "2026-07-15").await;
}

#[tokio::test]
async fn the_usage_page_counts_a_refusal_just_before_midnight_in_the_zone_on_that_day() {
    usage_page_in_berlin("2026-07-14T23:50:00+02:00", "2026-07-14").await;
    let p = usage_page_in_berlin("2026-11-30T23:50:00+01:00", "2026-11-30").await;
    // After midnight in Berlin (23:10 UTC, the same UTC day): today is the 1st there, and the
    // seat (lapsed at 23:56) and the refusal stay on the 30th.
    p.app.clock.set(latchkey::clock::parse_rfc3339("2026-12-01T00:10:00+01:00").unwrap());
    let token = p.app.token_for(&p.admin_email, "portal").await;
    let r = p.app.get("/api/v1/entities/acme/reports/usage?tz=Europe/Berlin", Some(&token)).await;
    let rows: Value = r.json().await.unwrap();
    let days: Vec<_> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["date"].as_str().unwrap(), r["peak_concurrent"].as_i64().unwrap(), r["denials"].as_i64().unwrap()))
        .collect();
    assert_eq!(days, [("2026-11-30", 1, 1), ("2026-12-01", 0, 0)], "{rows}");
}

/// A license made at `at`, its seat taken, a checkout refused and the usage page read a minute
/// later in Europe/Berlin: one row, of `day`, with the peak and the refusal.
async fn usage_page_in_berlin(at: &str, day: &str) -> Portal {
    let p = portal_at("floating", 1, at).await;
    let app = &p.app;
    let (ada, bob) = (app.email("ada"), app.email("bob"));
    app.assign(&p.license, &ada).await;
    app.assign(&p.license, &bob).await;
    checkout(app, &ada, "pc1").await;
    let t = app.token_for(&bob, "readyapi").await;
    let r = app.post("/api/v1/seats", Some(&t), json!({ "product": "readyapi", "machine": "pc2" })).await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "bob is refused: the one seat is taken");
    // A minute of use (the clock stands still otherwise: a seat taken now has used nothing yet).
    app.advance(std::time::Duration::from_secs(60));

    let (status, html) = page(app, &p.admin, "/portal/entities/acme/usage?tz=Europe/Berlin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<svg class=\"chart\""), "{html}");
    assert!(html.contains("1 in use at peak") && html.contains("1 refused"), "{html}");
    assert!(html.contains("value=\"Europe/Berlin\""), "{html}");
    let link = html
        .split("href=\"")
        .find(|s| s.starts_with("/portal/entities/acme/usage.csv"))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let r = p.admin.get(app.url(&link)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("date,license_id,product,group,seats,peak_concurrent,seat_hours,denials,distinct_users,tz\r\n")
    );
    assert!(csv.contains(",1,1,") && csv.contains(",Europe/Berlin\r\n"), "{csv}");
    // The license is a minute old: one row, of that day in Berlin, with the seat and the refusal.
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    let cols: Vec<&str> = rows[0].split(',').collect();
    assert_eq!((cols[0], cols[4], cols[5], cols[7], cols[8]), (day, "1", "1", "1", "1"), "{csv}");
    // The same numbers as the JSON API's report with the same parameters.
    let query = link.split_once('?').unwrap().1;
    let api = app.get(&format!("/api/v1/entities/acme/reports/usage?format=csv&{query}"), Some(&p.token)).await;
    assert_eq!(api.text().await.unwrap(), csv);

    let (status, html) = page(app, &p.admin, "/portal/entities/acme/usage?tz=Mars/Olympus").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("IANA time zone"), "{html}");
    let r = app.get("/api/v1/entities/acme/reports/usage?tz=Mars/Olympus", Some(&p.token)).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request").await;

    app.create_entity("globex").await;
    let globex = app.signed_in_browser(&app.email("admin-globex")).await;
    for path in ["/portal/entities/acme/usage", "/portal/entities/acme/usage.csv"] {
        assert_eq!(page(app, &globex, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    p
}

#[tokio::test]
async fn an_administrator_sets_up_sso_tests_it_reads_what_the_idp_sent_and_enables_it() {
    use crate::sso::{Sso, idp, pysaml2_answer_with};
    let p = portal("floating", 5).await;
    let me = p.admin_email.clone();
    let sso_page = "/portal/entities/acme/sso";

    // Nothing set up: the page says what to do, offers every vendor's help and the SP values.
    let (status, html) = page(&p.app, &p.admin, sso_page).await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "Single sign-on is not set up",
        "Microsoft Entra ID",
        "Okta",
        "OneLogin",
        "PingFederate",
        "Federation Metadata XML",
        "/saml/acme/acs",
        "/saml/acme/metadata",
    ] {
        assert!(html.contains(needle), "{needle}: {html}");
    }
    assert!(html.contains("name=\"metadata_url\""), "the metadata URL field is offered");
    // Saving without metadata is refused, nothing is made.
    let r = post_form(&p.app, &p.admin, sso_page, sso_page, &[("vendor", "okta"), ("metadata_xml", "")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&p.app, &p.admin, sso_page).await;
    assert!(html.contains("Paste your identity provider") && html.contains("not set up"), "{html}");
    // Broken metadata: the reason is shown, nothing is made.
    post_form(&p.app, &p.admin, sso_page, sso_page, &[("vendor", "okta"), ("metadata_xml", "<nope/>")]).await;
    let (_, html) = page(&p.app, &p.admin, sso_page).await;
    assert!(html.contains("That metadata cannot be used") && html.contains("not set up"), "{html}");
    let r = p.app.get("/api/v1/entities/acme/sso", Some(&p.token)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The real thing: Okta's metadata, the test's domain claimed, saved off.
    let md = idp("metadata", &json!({ "vendor": "okta" })).await;
    let xml = md["xml"].as_str().unwrap().to_string();
    let domain = p.app.domain.clone();
    let fields = [
        ("vendor", "okta"),
        ("metadata_xml", xml.as_str()),
        ("domains", domain.as_str()),
        ("email_attribute", ""),
        ("allow_idp_initiated", "on"),
    ];
    let r = post_form(&p.app, &p.admin, sso_page, sso_page, &fields).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let view: Value = p.app.get("/api/v1/entities/acme/sso", Some(&p.token)).await.json().await.unwrap();
    assert_eq!(view["vendor"], "okta");
    assert_eq!(view["enabled"], false);
    assert_eq!(view["email_domains"], json!([domain]));
    assert_eq!(view["verified_email_domains"], json!([]), "an administrator's domain is only claimed");
    let (_, html) = page(&p.app, &p.admin, sso_page).await;
    assert!(html.contains("set up but off") && html.contains("claimed, not verified"), "{html}");
    assert!(html.contains("not yet passed"), "{html}");

    // The SP metadata downloads as a file, the same document the IdP reads.
    let r = p.admin.get(p.app.url("/portal/entities/acme/sso/sp-metadata.xml")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let served = p.app.get("/saml/acme/metadata", None).await.text().await.unwrap();
    assert_eq!(r.text().await.unwrap(), served);

    // Enabling before a test is refused with what to do.
    let r = post_form(&p.app, &p.admin, sso_page, "/portal/entities/acme/sso/enabled", &[("enabled", "true")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(&p.app, &p.admin, sso_page).await;
    assert!(html.contains("Run Test sign-in with these identity provider settings first"), "{html}");

    // Test sign-in, in this browser: to the IdP and back to a report of what it sent.
    let r = post_form(&p.app, &p.admin, sso_page, "/portal/entities/acme/sso/test", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let test_link = location(&r);
    assert!(test_link.starts_with("/saml/acme/test?"), "{test_link}");
    let r = p.admin.get(p.app.url(&test_link)).send().await.unwrap();
    assert!(r.status().is_redirection(), "off to the IdP");
    let req = json!({ "url": location(&r) });
    let s = Sso { app: p.app, slug: "acme".into(), vendor: "okta".into(), license: p.license.clone() };
    let extra = json!({ "attributes": { "department": "Sales", "email": me } });
    let answer = pysaml2_answer_with(&s, &req, &me, extra).await;
    let mut form = vec![("SAMLResponse", answer["saml_response"].as_str().unwrap().to_string())];
    if let Some(relay) = answer["relay_state"].as_str() {
        form.push(("RelayState", relay.to_string()));
    }
    let r = p.admin.post(s.acs()).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report = r.text().await.unwrap();
    for needle in ["Test passed", "http://www.okta.com/", "department", "Sales", &me] {
        assert!(report.contains(needle), "{needle}: {report}");
    }
    let (_, html) = page(&s.app, &p.admin, sso_page).await;
    assert!(html.contains("passed <time"), "{html}");

    // Now enabling works (the operator verifies the domain first, as the vendor does).
    let r = s.app.patch("/api/v1/entities/acme/sso", s.app.op(), json!({ "email_domains": [domain] })).await;
    assert_eq!(r.status(), StatusCode::OK);
    post_form(&s.app, &p.admin, sso_page, "/portal/entities/acme/sso/enabled", &[("enabled", "true")]).await;
    let view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
    assert_eq!(view["enabled"], true, "{view}");

    // A refused answer shows under recent failures in plain words.
    let r = reqwest::Client::new().post(s.acs()).form(&[("SAMLResponse", "bm90IHNhbWw=")]).send().await.unwrap();
    assert!(r.status().is_client_error());
    let mut forged = crate::sso::response_params(&s, &me);
    forged["key"] = json!("attacker");
    let forged = idp("response", &forged).await;
    let r = reqwest::Client::new()
        .post(s.acs())
        .form(&[("SAMLResponse", forged["saml_response"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error());
    // The administrator's own password session ended when SSO took over their domain: back in
    // through the IdP would be the real way; a fresh session stands in for it here.
    let user = latchkey::store::accounts::user_by_email(&s.app.state.db.pool, &me).await.unwrap().unwrap();
    let cookie = latchkey::browser::session::start(&s.app.state, &user.id, "saml").await.unwrap();
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(cookie.to_str().unwrap(), &s.app.url("/").parse().unwrap());
    let admin = Client::builder().redirect(reqwest::redirect::Policy::none()).cookie_provider(jar).build().unwrap();
    let (status, html) = page(&s.app, &admin, sso_page).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<span class=\"tag\">on</span>") && html.contains("Disable single sign-on"), "{html}");
    assert!(html.contains("not a SAML 2.0 response latchkey can read"), "{html}");
    assert!(html.contains("The signature is not from a certificate in the metadata you pasted"), "{html}");
    assert!(html.contains("invalid_signature") && html.contains(&me), "the code and the claimed NameID: {html}");

    // Disabling: passwords again.
    post_form(&s.app, &admin, sso_page, "/portal/entities/acme/sso/enabled", &[("enabled", "false")]).await;
    let view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
    assert_eq!(view["enabled"], false);

    // Another entity's administrator sees none of it, and cannot change it.
    s.app.create_entity("globex").await;
    let globex = s.app.signed_in_browser(&s.app.email("admin-globex")).await;
    for path in [sso_page, "/portal/entities/acme/sso/sp-metadata.xml"] {
        assert_eq!(page(&s.app, &globex, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let r = post_form(&s.app, &globex, "/portal", "/portal/entities/acme/sso/enabled", &[("enabled", "true")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = post_form(&s.app, &globex, "/portal", "/portal/entities/acme/sso/test", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let view: Value = s.app.get("/api/v1/entities/acme/sso", s.app.op()).await.json().await.unwrap();
    assert_eq!(view["enabled"], false);
}

#[tokio::test]
async fn administrators_read_their_entitys_audit_log_with_filters_and_its_csv_and_nobody_elses() {
    let p = portal("floating", 5).await;
    let app = &p.app;
    let ada = app.email("ada");
    app.assign(&p.license, &ada).await;
    let (status, html) = page(app, &p.admin, "/portal/entities/acme/audit").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("<code>assignment.created</code>") && html.contains(&ada), "{html}");
    assert!(html.contains("<code>license.created</code>"), "{html}");
    let (_, html) = page(app, &p.admin, "/portal/entities/acme/audit?action=license.created").await;
    assert!(
        html.contains("<code>license.created</code>") && !html.contains("<code>assignment.created</code>"),
        "{html}"
    );
    let r = p.admin.get(app.url("/portal/entities/acme/audit.csv?action=assignment.created")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("id,seq,at,entity,actor_type"), "{csv}");
    assert!(csv.contains("assignment.created") && !csv.contains("license.created"), "{csv}");
    let (status, html) = page(app, &p.admin, "/portal/entities/acme/audit?from=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("UTC day"), "{html}");

    app.create_entity("globex").await;
    let globex = app.signed_in_browser(&app.email("admin-globex")).await;
    for path in ["/portal/entities/acme/audit", "/portal/entities/acme/audit.csv"] {
        assert_eq!(page(app, &globex, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, html) = page(app, &globex, "/portal/entities/globex/audit").await;
    assert!(!html.contains(&ada), "another entity's events are not shown: {html}");
    for path in ["/portal/operator/audit", "/portal/operator/audit.csv"] {
        assert_eq!(page(app, &p.admin, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
}

/// Post `fields` to `action` with this session's token (taken from `/portal`).
async fn post_with_token(app: &TestApp, b: &Client, action: &str, fields: &[(&str, &str)]) -> Response {
    post_form(app, b, "/portal", action, fields).await
}

/// Each of `posts` refused with 403 without the session's token, with a forged one, and with the
/// right one from another site's page.
async fn refused_without_token_or_from_elsewhere(app: &TestApp, b: &Client, posts: &[(String, Vec<(&str, &str)>)]) {
    let (_, html) = page(app, b, "/portal").await;
    let good = csrf_of(&html);
    for (action, fields) in posts {
        for token in [None, Some("forged"), Some(good.as_str())] {
            let mut all = fields.clone();
            if let Some(t) = token {
                all.push(("csrf", t));
            }
            let mut req = b.post(app.url(action)).form(&all);
            if token == Some(good.as_str()) {
                req = req.header("origin", "https://evil.example");
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action} {token:?}");
        }
    }
}

/// Each of `gets` is 404 for browser `b`, and each of `posts` (with `b`'s own token) too.
async fn not_theirs(app: &TestApp, b: &Client, gets: &[String], posts: &[(String, Vec<(&str, &str)>)]) {
    for path in gets {
        let (status, _) = page(app, b, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    for (action, fields) in posts {
        let r = post_with_token(app, b, action, fields).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{action}");
    }
}

async fn groups_of(p: &Portal) -> Vec<String> {
    let v: Value = p.app.get("/api/v1/entities/acme/groups", Some(&p.token)).await.json().await.unwrap();
    v.as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_string()).collect()
}

async fn license_json(p: &Portal) -> Value {
    p.app.get(&format!("/api/v1/licenses/{}", p.license), Some(&p.token)).await.json().await.unwrap()
}

#[tokio::test]
async fn an_administrator_makes_groups_and_sets_a_licenses_group_and_idle_policy() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    let lic = p.license.clone();
    let groups_page = "/portal/entities/acme/groups";
    let license_page = format!("/portal/licenses/{lic}");

    // Groups: an empty state, then one made through the page, seen by the JSON API.
    let (status, html) = page(app, &p.admin, groups_page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No group yet") && html.contains("<label for=\"group-name\">"), "{html}");
    let r = post_form(app, &p.admin, groups_page, groups_page, &[("name", " QA ")]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, groups_page.to_string()));
    let (_, html) = page(app, &p.admin, groups_page).await;
    assert!(html.contains("The group QA is made"), "{html}");
    assert_eq!(groups_of(&p).await, vec!["QA"]);
    // Bad names and a second QA: the API's refusal on the page, nothing made.
    for (name, code) in [("", "invalid_request"), ("   ", "invalid_request"), ("QA", "group_exists")] {
        let r = post_form(app, &p.admin, groups_page, groups_page, &[("name", name)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, html) = page(app, &p.admin, groups_page).await;
        assert!(html.contains(&format!("({code})")) && html.contains("class=\"flash error\""), "{name:?}: {html}");
    }
    let long = "x".repeat(65);
    post_form(app, &p.admin, groups_page, groups_page, &[("name", &long)]).await;
    assert_eq!(groups_of(&p).await, vec!["QA"]);

    // The license page offers the group and the idle policy, with labels.
    let (_, html) = page(app, &p.admin, &license_page).await;
    assert!(html.contains("<option value=\"QA\">QA</option>"), "{html}");
    assert!(html.contains("<label for=\"group\">") && html.contains("<label for=\"idle-minutes\">"), "{html}");
    assert!(html.contains("idle seats are kept"), "{html}");
    let r = post_form(
        app,
        &p.admin,
        &license_page,
        &format!("{license_page}/settings"),
        &[("group", "QA"), ("idle_minutes", "30")],
    )
    .await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, license_page.clone()));
    let l = license_json(&p).await;
    assert_eq!((l["group"].as_str(), l["idle_timeout_minutes"].as_i64()), (Some("QA"), Some(30)), "{l}");
    let (_, html) = page(app, &p.admin, &license_page).await;
    assert!(html.contains("Saved: READYAPI is in the group QA; seats idle for 30 min are disconnected"), "{html}");
    assert!(html.contains("<option value=\"QA\" selected>") && html.contains("value=\"30\""), "{html}");

    // Out of range, not a number, or a bad group alongside: the API's refusal, nothing changes
    // (not even the part of the form that was fine).
    for (group, idle, code) in [
        ("QA", "0", "invalid_request"),
        ("QA", "20000", "invalid_request"),
        ("QA", "-5", "invalid_request"),
        ("QA", "ten", "invalid_request"),
        ("", "0", "invalid_request"),
        ("\u{7}bell", "45", "invalid_request"),
    ] {
        let r = post_form(
            app,
            &p.admin,
            &license_page,
            &format!("{license_page}/settings"),
            &[("group", group), ("idle_minutes", idle)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, html) = page(app, &p.admin, &license_page).await;
        assert!(html.contains(&format!("({code})")) && html.contains("class=\"flash error\""), "{idle}: {html}");
        let l = license_json(&p).await;
        assert_eq!((l["group"].as_str(), l["idle_timeout_minutes"].as_i64()), (Some("QA"), Some(30)), "{idle}");
    }
    let (_, html) = page(app, &p.admin, &license_page).await;
    assert!(html.contains("seats idle for 30 min are disconnected"), "{html}");

    // The idle limit in force: a seat idle longer is disconnected at its next heartbeat.
    let ada = app.email("ada");
    app.assign(&lic, &ada).await;
    let seat = checkout(app, &ada, "pc").await;
    assert_problem(heartbeat(app, &seat, 31 * 60).await, StatusCode::GONE, "lease_revoked").await;

    // Empty fields: no group, no idle limit.
    post_form(
        app,
        &p.admin,
        &license_page,
        &format!("{license_page}/settings"),
        &[("group", ""), ("idle_minutes", "")],
    )
    .await;
    let l = license_json(&p).await;
    assert!(l["group"].is_null() && l["idle_timeout_minutes"].is_null(), "{l}");
    let (_, html) = page(app, &p.admin, groups_page).await;
    assert!(html.contains("1 license(s) in no group"), "{html}");

    // Forms without the token or from another site change nothing.
    let settings = format!("{license_page}/settings");
    refused_without_token_or_from_elsewhere(
        app,
        &p.admin,
        &[
            (settings.clone(), vec![("group", "QA"), ("idle_minutes", "5")]),
            (groups_page.to_string(), vec![("name", "Evil")]),
        ],
    )
    .await;
    // Another entity's administrator and a plain user: 404, nothing changes.
    app.create_entity("globex").await;
    let globex = app.signed_in_browser(&app.email("admin-globex")).await;
    let plain = app.signed_in_browser(&ada).await;
    for b in [&globex, &plain] {
        not_theirs(
            app,
            b,
            &[groups_page.to_string(), license_page.clone()],
            &[
                (settings.clone(), vec![("group", "QA"), ("idle_minutes", "5")]),
                (groups_page.to_string(), vec![("name", "Evil")]),
            ],
        )
        .await;
    }
    let l = license_json(&p).await;
    assert!(l["group"].is_null() && l["idle_timeout_minutes"].is_null(), "{l}");
    assert_eq!(groups_of(&p).await, vec!["QA"]);
    let (_, html) = page(app, &globex, "/portal/entities/globex/groups").await;
    assert!(html.contains("No group yet") && !html.contains("QA</a>"), "globex sees its own groups only: {html}");
}

async fn scim_tokens(app: &TestApp, token: &str) -> Vec<Value> {
    let v: Value = app.get("/api/v1/entities/acme/scim-tokens", Some(token)).await.json().await.unwrap();
    v.as_array().unwrap().clone()
}

fn scim_user(email: &str) -> Value {
    json!({ "schemas": [crate::scim::USER], "userName": email, "emails": [{ "value": email, "primary": true }], "active": true })
}

#[tokio::test]
async fn an_administrator_makes_and_revokes_scim_tokens_and_binds_a_license_to_a_scim_group() {
    use crate::scim::{call, scim_entity, scim_token, verify_domain};
    let s = scim_entity(2).await;
    let app = &s.app;
    let lic = s.license.clone();
    let admin_email = app.email("admin-acme");
    let admin = app.signed_in_browser(&admin_email).await;
    let scim_page = "/portal/entities/acme/scim";

    // The page: the base URL and the token made through the API, never its secret.
    let (status, html) = page(app, &admin, scim_page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("/scim/v2/acme") && html.contains("idp") && !html.contains(&s.token), "{html}");
    assert!(html.contains("<label for=\"token-name\">"), "{html}");

    // Make one: the secret is on this 200 answer only, not in a cookie or a redirect.
    let r = post_form(app, &admin, scim_page, "/portal/entities/acme/scim/tokens", &[("name", "okta")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|c| c.to_str().unwrap().to_string()).collect();
    let html = r.text().await.unwrap();
    let secret = html.split("value=\"lk_scim_").nth(1).expect("the token on the page").split('"').next().unwrap();
    let secret = format!("lk_scim_{secret}");
    assert!(cookies.iter().all(|c| !c.contains(&secret)), "{cookies:?}");
    assert!(html.contains("shown only on this page"), "{html}");
    assert_eq!(call(app, &secret, "acme", "GET", "/Users", None).await.0, StatusCode::OK, "the new token works");
    let (_, html) = page(app, &admin, scim_page).await;
    assert!(html.contains("okta") && !html.contains(&secret), "listed, never shown again: {html}");
    let list = scim_tokens(app, &s.admin).await;
    assert_eq!(list.len(), 2);
    let okta_id = list.iter().find(|t| t["name"] == "okta").unwrap()["id"].as_str().unwrap().to_string();
    // A bad name: the API's refusal on the page, nothing made.
    for name in ["", "   "] {
        let r = post_form(app, &admin, scim_page, "/portal/entities/acme/scim/tokens", &[("name", name)]).await;
        assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, scim_page.to_string()));
        let (_, html) = page(app, &admin, scim_page).await;
        assert!(html.contains("(invalid_request)") && html.contains("class=\"flash error\""), "{html}");
    }
    assert_eq!(scim_tokens(app, &s.admin).await.len(), 2);

    // Groups from the IdP, a license bound to one through the page.
    let mut ids = Vec::new();
    for who in ["ann", "ben", "cat"] {
        let (st, u) = s.call("POST", "/Users", Some(scim_user(&s.addr(who)))).await;
        assert_eq!(st, StatusCode::CREATED, "{u}");
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    let members: Vec<Value> = ids.iter().map(|i| json!({ "value": i })).collect();
    let body = json!({ "schemas": [crate::scim::GROUP], "displayName": "ReadyAPI users", "members": members });
    let (_, g) = s.call("POST", "/Groups", Some(body)).await;
    let gid = g["id"].as_str().unwrap().to_string();
    // Another entity's group.
    let (domain, other_admin) = crate::sso::entity_in_own_domain(app, "globex").await;
    verify_domain(app, "globex", &other_admin, &domain).await;
    let other = scim_token(app, "globex", &other_admin).await;
    let (st, og) = call(app, &other, "globex", "POST", "/Groups", Some(json!({ "displayName": "Theirs" }))).await;
    assert_eq!(st, StatusCode::CREATED, "{og}");
    let other_gid = og["id"].as_str().unwrap().to_string();

    let license_page = format!("/portal/licenses/{lic}");
    let (_, html) = page(app, &admin, &license_page).await;
    assert!(html.contains("follows no SCIM group") && html.contains("ReadyAPI users"), "{html}");
    assert!(!html.contains("Theirs"), "another entity's groups are not offered: {html}");
    // The confirmation says what binding does, and changes nothing by itself.
    let (status, html) = page(app, &admin, &format!("{license_page}/scim-group?group={gid}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Follow the SCIM group ReadyAPI users?") && html.contains("3 member(s)"), "{html}");
    let l: Value = app.get(&format!("/api/v1/licenses/{lic}"), Some(&s.admin)).await.json().await.unwrap();
    assert!(l["scim_group"].is_null());
    // Another entity's group, or none: refused with the API's code, nothing bound.
    let r = page(app, &admin, &format!("{license_page}/scim-group?group={other_gid}")).await;
    assert_eq!(r.0, StatusCode::SEE_OTHER);
    let scim_group = format!("{license_page}/scim-group");
    for g in [other_gid.as_str(), "nope"] {
        let r = post_form(app, &admin, &license_page, &scim_group, &[("group", g)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, html) = page(app, &admin, &license_page).await;
        assert!(html.contains("(unknown_scim_group)"), "{html}");
    }
    let l: Value = app.get(&format!("/api/v1/licenses/{lic}"), Some(&s.admin)).await.json().await.unwrap();
    assert!(l["scim_group"].is_null() && l["assigned"] == 0, "{l}");

    // Bound: two seats for three members, the one left over shown with the API's code.
    let r = post_form(app, &admin, &license_page, &scim_group, &[("group", &gid)]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, license_page.clone()));
    let l: Value = app.get(&format!("/api/v1/licenses/{lic}"), Some(&s.admin)).await.json().await.unwrap();
    assert_eq!((l["scim_group"].as_str(), l["assigned"].as_i64()), (Some(gid.as_str()), Some(2)), "{l}");
    assert_eq!(l["scim_sync_failures"][0]["email"], s.addr("cat"), "{l}");
    let (_, html) = page(app, &admin, &license_page).await;
    assert!(html.contains("2 assigned, 0 revoked") && html.contains("1 could not be done"), "{html}");
    assert!(html.contains(&s.addr("cat")) && html.contains("seats_exhausted"), "{html}");
    assert!(html.contains("Stop following ReadyAPI users"), "{html}");
    let (_, html) = page(app, &admin, scim_page).await;
    assert!(html.contains(&format!("<a href=\"/portal/licenses/{lic}\">READYAPI</a>")), "{html}");

    // The attacks: no token, a forged one, another site; another entity's administrator and a
    // plain user get 404. Nothing changes.
    let revoke = format!("{scim_page}/tokens/{okta_id}/revoke");
    let posts = vec![
        ("/portal/entities/acme/scim/tokens".to_string(), vec![("name", "evil")]),
        (revoke.clone(), vec![]),
        (scim_group.clone(), vec![("group", "")]),
    ];
    refused_without_token_or_from_elsewhere(app, &admin, &posts).await;
    let globex = app.signed_in_browser(&format!("admin@{domain}")).await;
    let plain = app.signed_in_browser(&s.addr("ann")).await;
    for b in [&globex, &plain] {
        not_theirs(app, b, &[scim_page.to_string(), revoke.clone(), format!("{scim_group}?group={gid}")], &posts).await;
    }
    assert_eq!(scim_tokens(app, &s.admin).await.len(), 2);
    assert_eq!(call(app, &secret, "acme", "GET", "/Users", None).await.0, StatusCode::OK);
    let l: Value = app.get(&format!("/api/v1/licenses/{lic}"), Some(&s.admin)).await.json().await.unwrap();
    assert_eq!(l["scim_group"].as_str(), Some(gid.as_str()));

    // Unbound: the assignees stay.
    let r = post_form(app, &admin, &license_page, &scim_group, &[("group", "")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let l: Value = app.get(&format!("/api/v1/licenses/{lic}"), Some(&s.admin)).await.json().await.unwrap();
    assert!(l["scim_group"].is_null() && l["assigned"] == 2, "{l}");
    let (_, html) = page(app, &admin, &license_page).await;
    assert!(html.contains("no longer follows a SCIM group"), "{html}");

    // Revoke a token: asked first, then it stops working at once.
    let (status, html) = page(app, &admin, &revoke).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Revoke the SCIM token okta?"), "{html}");
    let r = post_form(app, &admin, &revoke, &revoke, &[]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, scim_page.to_string()));
    assert_eq!(call(app, &secret, "acme", "GET", "/Users", None).await.0, StatusCode::UNAUTHORIZED);
    let (_, html) = page(app, &admin, scim_page).await;
    assert!(html.contains("The SCIM token is revoked") && html.contains("revoked</span>"), "{html}");
    // Twice: the API's answer.
    let r = post_form(app, &admin, scim_page, &revoke, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(app, &admin, scim_page).await;
    assert!(html.contains("(not_found)"), "{html}");
    assert_eq!(call(app, &s.token, "acme", "GET", "/Users", None).await.0, StatusCode::OK, "the other token lives");
}

#[tokio::test]
async fn an_administrator_removes_single_sign_on_after_confirming() {
    let p = portal("floating", 5).await;
    let app = &p.app;
    let domain = app.domain.clone();
    crate::scim::verify_domain(app, "acme", &p.token, &domain).await;
    let sso_page = "/portal/entities/acme/sso";
    let remove = "/portal/entities/acme/sso/remove";
    let (_, html) = page(app, &p.admin, sso_page).await;
    assert!(html.contains(&format!("href=\"{remove}\"")), "{html}");
    let (status, html) = page(app, &p.admin, remove).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Remove single sign-on of acme Inc.?") && html.contains(&domain), "{html}");
    assert_eq!(app.get("/api/v1/entities/acme/sso", Some(&p.token)).await.status(), StatusCode::OK);

    // The attacks change nothing.
    refused_without_token_or_from_elsewhere(app, &p.admin, &[(remove.to_string(), vec![])]).await;
    app.create_entity("globex").await;
    let globex = app.signed_in_browser(&app.email("admin-globex")).await;
    let ada = app.email("ada");
    app.assign(&p.license, &ada).await;
    let plain = app.signed_in_browser(&ada).await;
    for b in [&globex, &plain] {
        not_theirs(app, b, &[remove.to_string()], &[(remove.to_string(), vec![])]).await;
    }
    let view: Value = app.get("/api/v1/entities/acme/sso", Some(&p.token)).await.json().await.unwrap();
    assert_eq!(view["verified_email_domains"], json!([domain]), "{view}");

    // Removed: the configuration and its domains are gone, as after the API's DELETE.
    let r = post_form(app, &p.admin, remove, remove, &[]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, sso_page.to_string()));
    let (_, html) = page(app, &p.admin, sso_page).await;
    assert!(html.contains("Single sign-on is removed") && html.contains("not set up"), "{html}");
    assert_problem(
        app.get("/api/v1/entities/acme/sso", Some(&p.token)).await,
        StatusCode::NOT_FOUND,
        "sso_not_configured",
    )
    .await;
    // Nothing left to remove: said so.
    let r = page(app, &p.admin, remove).await;
    assert_eq!(r.0, StatusCode::SEE_OTHER);
    let r = post_form(app, &p.admin, sso_page, remove, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = page(app, &p.admin, sso_page).await;
    assert!(html.contains("(sso_not_configured)"), "{html}");
}

#[tokio::test]
async fn the_usage_page_reports_one_group_and_the_sso_form_sets_allow_sha1() {
    let p = portal("floating", 3).await;
    let app = &p.app;
    app.create_product("soapui").await;
    let r = app
        .post(
            "/api/v1/entities/acme/licenses",
            app.op(),
            json!({ "product": "soapui", "type": "fixed", "seats": 2, "group": "QA" }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let soapui = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let usage = "/portal/entities/acme/usage";

    // Every license, and a choice of the groups.
    let (status, html) = page(app, &p.admin, usage).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("aria-label=\"readyapi\"") && html.contains("aria-label=\"soapui\""), "{html}");
    assert!(
        html.contains("<label for=\"usage-group\">") && html.contains("<option value=\"QA\">QA</option>"),
        "{html}"
    );
    // One group: its licenses only, on the page and in its CSV (the API's `group=`).
    let (status, html) = page(app, &p.admin, &format!("{usage}?group=QA")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("aria-label=\"soapui\"") && !html.contains("aria-label=\"readyapi\""), "{html}");
    assert!(html.contains("<option value=\"QA\" selected>"), "{html}");
    let csv_link = html.split("href=\"").find(|s| s.starts_with(&format!("{usage}.csv"))).unwrap();
    let csv_link = csv_link.split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&");
    assert!(csv_link.contains("group=QA"), "{csv_link}");
    let csv = p.admin.get(app.url(&csv_link)).send().await.unwrap().text().await.unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.contains(&soapui)), "{csv}");
    assert!(!csv.contains(&p.license), "{csv}");
    // An unknown group: the API's refusal, and every license.
    let (status, html) = page(app, &p.admin, &format!("{usage}?group=Nope")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("(unknown_group)") && html.contains("aria-label=\"readyapi\""), "{html}");

    // allow_sha1 on the SSO form, seen by the JSON API.
    let domain = app.domain.clone();
    crate::scim::verify_domain(app, "acme", &p.token, &domain).await;
    let sso_page = "/portal/entities/acme/sso";
    let (_, html) = page(app, &p.admin, sso_page).await;
    assert!(
        html.contains("<label for=\"sha1\">") && !html.contains("name=\"allow_sha1\" value=\"on\" checked"),
        "{html}"
    );
    for (ticked, want) in [(true, true), (false, false)] {
        let mut fields = vec![("vendor", "okta"), ("domains", domain.as_str()), ("allow_idp_initiated", "on")];
        if ticked {
            fields.push(("allow_sha1", "on"));
        }
        let r = post_form(app, &p.admin, sso_page, sso_page, &fields).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let view: Value = app.get("/api/v1/entities/acme/sso", Some(&p.token)).await.json().await.unwrap();
        assert_eq!(view["allow_sha1"], want, "{view}");
    }
}
