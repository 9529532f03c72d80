//! JSON, SCIM, form and multipart bodies (and query strings) of the HTTP endpoints, through the
//! real router in-process, with the credentials each endpoint wants (bearer tokens, session and
//! pre-session cookies, the form token) so that bodies get past the doors. The world and the list
//! of routes are in `http/world.rs`.

mod world;

use std::time::Instant;

use axum::http::{StatusCode, header};
use serde_json::Value;

use crate::{PER_INPUT, budget, fail, mutate, regressions, rng};
use world::{Door, Kind, Route, World};

/// A route's seed body, as its client sends it (with the form token of a form).
fn seed_of(route: &Route) -> Vec<u8> {
    match route.kind {
        Kind::Json | Kind::Scim => serde_json::to_vec(&route.seed).unwrap(),
        Kind::Form => world::form_of(&route.seed, route.csrf.as_deref()).into_bytes(),
        Kind::Query => world::form_of(&route.seed, None).into_bytes(),
        Kind::Multipart => world::multipart_of(&fields(&route.seed), route.csrf.as_deref()),
    }
}

fn fields(seed: &Value) -> Vec<(String, Vec<u8>)> {
    seed.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().as_bytes().to_vec()))
        .collect()
}

/// The form token as sent: as issued nearly always, so that the body reaches the handler;
/// sometimes left out, cut or altered (the check must refuse those, whatever the body).
fn csrf_as_sent(rng: &mut crate::Rng, csrf: Option<&str>) -> Option<String> {
    let c = csrf?;
    if !rng.chance(12) {
        return Some(c.to_string());
    }
    match rng.below(3) {
        0 => None,
        1 => Some(c[..rng.below(c.len())].to_string()),
        _ => Some(String::from_utf8_lossy(&mutate::xml(rng, c.as_bytes(), b"")).into_owned()),
    }
}

fn mutate_body(rng: &mut crate::Rng, route: &Route, other: &[u8]) -> Vec<u8> {
    match route.kind {
        Kind::Json | Kind::Scim => mutate::json(rng, &route.seed, other),
        Kind::Form | Kind::Query | Kind::Multipart if rng.chance(2) => {
            // Edit the values (kept well-encoded, so that the handler sees them).
            let mut edited = Vec::new();
            for (k, v) in fields(&route.seed) {
                if rng.chance(6) {
                    continue;
                }
                let v = if rng.chance(2) { mutate::xml(rng, &v, other) } else { v };
                edited.push((k, v));
            }
            if rng.chance(8) {
                // A field twice, or one the form does not have.
                let k = if rng.chance(2) { "csrf".to_string() } else { format!("x{}", rng.below(3)) };
                edited.push((k, mutate::xml(rng, b"", other)));
            }
            let csrf = csrf_as_sent(rng, route.csrf.as_deref());
            match route.kind {
                Kind::Multipart => world::multipart_of(&edited, csrf.as_deref()),
                _ => {
                    let mut s = url::form_urlencoded::Serializer::new(String::new());
                    for (k, v) in &edited {
                        s.append_pair(k, &String::from_utf8_lossy(v));
                    }
                    if route.kind == Kind::Form
                        && let Some(c) = csrf
                    {
                        s.append_pair("csrf", &c);
                    }
                    s.finish().into_bytes()
                }
            }
        }
        // Or the encoded text itself.
        Kind::Form | Kind::Query | Kind::Multipart => mutate::xml(rng, &seed_of(route), other),
    }
}

/// `input` with this world's ids and secrets replaced by `{name}` (a saved input replays in
/// another world), or the reverse.
fn templated(w: &World, input: &[u8]) -> Vec<u8> {
    let mut s = String::from_utf8_lossy(input).into_owned();
    for (k, v) in &w.ids {
        s = s.replace(v.as_str(), &format!("{{{k}}}"));
    }
    if String::from_utf8(input.to_vec()).is_ok() { s.into_bytes() } else { input.to_vec() }
}

fn filled(w: &World, input: &[u8]) -> Vec<u8> {
    let Ok(mut s) = String::from_utf8(input.to_vec()) else { return input.to_vec() };
    for (k, v) in &w.ids {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s.into_bytes()
}

/// Send `body` to `route`; a panic, a 5xx other than 503 or a slow answer fails the target.
async fn one(w: &World, route: &Route, body: Vec<u8>, target: &str) -> Option<world::Answer> {
    let started = Instant::now();
    let router = w.server(route.on).router.clone();
    let (method, path, kind) = (route.method.clone(), route.path.clone(), route.kind);
    let (token, cookie) = (route.token.clone(), route.cookie.clone());
    let input = body.clone();
    let outcome = tokio::spawn(async move {
        world::send(&router, method, &path, kind, body, token.as_deref(), cookie.as_deref()).await
    })
    .await;
    let took = started.elapsed();
    let record = |why: String| {
        let mut saved = format!("{}\n", route.key()).into_bytes();
        saved.extend_from_slice(&templated(w, &input));
        fail(target, &saved, &format!("{} ({}): {why}", route.key(), route.path))
    };
    match outcome {
        Err(e) => record(format!("the handler panicked: {e}")),
        Ok(Some(a)) if a.status.is_server_error() && a.status != StatusCode::SERVICE_UNAVAILABLE => {
            record(format!("{} {}", a.status, a.text()))
        }
        Ok(_) if took > PER_INPUT => record(format!("took {took:?}")),
        Ok(a) => a,
    }
}

/// Why the answer to a route's seed shows that its credentials did not do what they should (a
/// target whose bodies stop at the door fuzzes nothing behind it).
fn door_problem(route: &Route, a: &world::Answer) -> Option<String> {
    let to_sign_in = a.status.is_redirection()
        && a.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()).is_some_and(|l| l.starts_with("/login"));
    match route.door {
        Door::Open if route.token.is_some() && a.status == StatusCode::UNAUTHORIZED => {
            Some(format!("the bearer token was refused: {}", a.text()))
        }
        Door::Open if a.status == StatusCode::FORBIDDEN => Some("refused as forbidden or forged (403)".into()),
        Door::Open if to_sign_in => Some("sent to sign in: the session was not taken".into()),
        Door::Shut if a.status != StatusCode::FORBIDDEN => {
            Some(format!("a broken form token was not refused: {}", a.status))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_never_answer_500_panic_or_hang() {
    let target = "http_bodies";
    let set_up = Instant::now();
    let (w, routes) = world::world().await;
    eprintln!("fuzz {target}: {} routes on {}, set up in {:?}", routes.len(), world::backend(), set_up.elapsed());
    // Regressions are saved as "METHOD TEMPLATE as WHO" and the body, ids as `{name}`.
    for input in regressions(target).into_iter().filter(|i| !i.is_empty()) {
        let text = String::from_utf8_lossy(&input).to_string();
        let (line, body) = text.split_once('\n').unwrap_or((&text, ""));
        let route = routes.iter().find(|r| r.key() == line.trim_end());
        let route = route.unwrap_or_else(|| panic!("regression of an unknown route: {line}"));
        one(&w, route, filled(&w, body.as_bytes()), target).await;
    }
    let mut rng = rng(target);
    // Every route once with its seed (whose credentials must open the door, or be refused when
    // they are broken on purpose), then mutated bodies for the rest of the budget.
    for route in &routes {
        let a = one(&w, route, seed_of(route), target).await.expect("a seed makes a request");
        if let Some(why) = door_problem(route, &a) {
            panic!("fuzz {target}: the seed of {} ({}): {why}", route.key(), route.path);
        }
    }
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < budget() {
        let route = rng.pick(&routes);
        let other = seed_of(rng.pick(&routes));
        let body = mutate_body(&mut rng, route, &other);
        one(&w, route, body, target).await;
        n += 1;
    }
    eprintln!("fuzz {target}: {n} mutated requests over {} routes", routes.len());
    assert!(n > 50, "too few inputs in the budget: {n}");
}
