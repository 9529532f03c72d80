//! The audit log in the portal: an administrator reads their entity's events, an operator user
//! every event; filters by action, actor and dates, pages by the API's cursor, and downloads the
//! same selection as the API's CSV export. Both go through `audit::api`, as the JSON API does.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::Value;

use super::{Shell, Viewer, admin::entity_of, operator::gate, show, view, with_query};
use crate::{
    audit::{
        api::{self, AuditQuery},
        views::AuditEvent,
    },
    browser::message,
    clock,
    error::{ApiError, ApiPath, ApiQuery},
    state::AppState,
};

const PAGE: i64 = 50;

pub struct EventView {
    pub at: Option<view::When>,
    pub at_text: String,
    pub actor: String,
    pub action: String,
    pub targets: String,
    pub entity: String,
    pub ip: String,
    pub details: String,
}

fn event_view(e: &AuditEvent) -> EventView {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let kind = e.actor.kind.replace('_', " ");
    let actor = match &e.actor.name {
        Some(n) => format!("{n} ({kind})"),
        None => kind,
    };
    let targets = e
        .targets
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{} {}", s(&t["type"]), t["name"].as_str().or(t["id"].as_str()).unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let details = match &e.details {
        Value::Object(m) if m.is_empty() => String::new(),
        d => d.to_string(),
    };
    EventView {
        at: clock::parse_rfc3339(&e.at).map(view::when),
        at_text: e.at.clone(),
        actor,
        action: e.action.clone(),
        targets,
        entity: e.entity.clone().unwrap_or_default(),
        ip: e.ip.clone().unwrap_or_default(),
        details,
    }
}

#[derive(Template)]
#[template(path = "portal/audit.html")]
struct AuditPage {
    shell: Shell,
    heading: String,
    path: String,
    action: String,
    actor: String,
    from: String,
    to: String,
    events: Vec<EventView>,
    next: Option<String>,
    csv: String,
    error: Option<String>,
    every_entity: bool,
}

fn filters(q: &AuditQuery) -> [(&'static str, String); 4] {
    let f = |v: &Option<String>| v.clone().unwrap_or_default();
    [("action", f(&q.action)), ("actor", f(&q.actor)), ("from", f(&q.from)), ("to", f(&q.to))]
}

/// Whose events a page shows, and where it lives.
struct Scope<'a> {
    section: &'static str,
    entity: Option<&'a str>,
    heading: String,
    path: String,
    /// An entity's id; `None`: every event.
    chain: Option<String>,
}

async fn render(state: &AppState, headers: &HeaderMap, v: &Viewer, scope: Scope<'_>, q: AuditQuery) -> Response {
    let Scope { section, entity, heading, path, chain } = scope;
    let pairs = filters(&q);
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (events, next, error) = match api::page_of(state, q, chain.clone(), PAGE).await {
        Ok((events, next)) => (events, next, None),
        Err(ApiError::Problem(p)) => (Vec::new(), None, Some(p.detail)),
        Err(e) => return e.into_response(),
    };
    let next = next.map(|n| {
        let mut all = refs.clone();
        all.push(("after", &n));
        with_query(&path, &all)
    });
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = AuditPage {
        shell: Shell::new(state, headers, v, section, entity),
        csv: with_query(&format!("{path}.csv"), &refs),
        heading,
        action: pairs[0].1.clone(),
        actor: pairs[1].1.clone(),
        from: pairs[2].1.clone(),
        to: pairs[3].1.clone(),
        events: events.iter().map(event_view).collect(),
        next,
        error,
        every_entity: chain.is_none(),
        path,
    };
    show(state, status, &page.shell, &page)
}

fn csv_refused(e: ApiError) -> Response {
    match e {
        ApiError::Problem(p) => message(p.status, "This export cannot be made", &p.detail),
        e => e.into_response(),
    }
}

pub async fn entity_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let path = format!("/portal/entities/{}/audit", e.slug);
    let scope = Scope {
        section: "audit",
        entity: Some(&e.slug),
        heading: format!("Audit log of {}", e.name),
        path,
        chain: Some(e.id.clone()),
    };
    render(&state, &headers, &v, scope, q).await
}

pub async fn entity_csv(
    State(state): State<AppState>,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let name = format!("latchkey-audit-{}", e.slug);
    api::csv_of(state, q, Some(e.id), &name).await.unwrap_or_else(csv_refused)
}

pub async fn operator_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let path = "/portal/operator/audit".to_string();
    let scope =
        Scope { section: "operator", entity: None, heading: "Audit log of everything".into(), path, chain: None };
    render(&state, &headers, &v, scope, q).await
}

pub async fn operator_csv(State(state): State<AppState>, v: Viewer, ApiQuery(q): ApiQuery<AuditQuery>) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    api::csv_of(state, q, None, "latchkey-audit").await.unwrap_or_else(csv_refused)
}
