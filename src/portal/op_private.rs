//! Operator console: licenses in private networks. The overview lists every license the vendor
//! allowed on an on-premise server (floating) or offline (fixed), and where it is now; a license's
//! page shows its on-premise entitlements or offline files and takes the files that move it:
//! a server's fingerprint (answered with its entitlement, shown once), that server's usage and
//! return files, an activation request (answered with an offline license file, shown once), and a
//! deactivation code. Each form goes to the JSON API's handler acting as the operator
//! (`onprem::vendor`, `onprem::offline`), so both validate and record exactly the same.

use askama::Template;
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;
use serde_json::json;

use super::{Posted, Shell, Viewer, fail, not_found, operator::gate, refused, see_other, show, view};
use crate::{
    auth::Admin,
    error::{ApiError, ApiJson, ApiPath},
    onprem::{offline, vendor, views},
    state::AppState,
    store::{self, licenses::License},
};

pub struct PrivateView {
    pub id: String,
    pub entity_slug: String,
    pub entity_name: String,
    pub product: String,
    pub kind: String,
    pub seats: i64,
    pub expiry: String,
    pub onprem_allowed: bool,
    pub offline_allowed: bool,
    /// Where it is: "online", "on host until ...", "3 offline files".
    pub place: String,
}

#[derive(Template)]
#[template(path = "portal/op_private.html")]
struct Overview {
    shell: Shell,
    rows: Vec<PrivateView>,
}

pub async fn overview(State(state): State<AppState>, headers: HeaderMap, v: Viewer) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let now = state.now();
    let rows = match store::onprem::private_licenses(&state.db.pool, now).await {
        Ok(rows) => rows,
        Err(e) => return fail(e),
    };
    let page = Overview {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        rows: rows
            .into_iter()
            .map(|r| {
                let place = match (&r.onprem_host, r.onprem_until, r.offline_live) {
                    (Some(host), Some(until), _) => {
                        format!("on the on-premise server {host} until {}", crate::clock::utc_day(until))
                    }
                    (_, _, 0) => "online".into(),
                    (_, _, 1) => "online; 1 offline file in force".into(),
                    (_, _, n) => format!("online; {n} offline files in force"),
                };
                PrivateView {
                    expiry: view::expiry(r.expires_at, now),
                    id: r.id,
                    entity_slug: r.entity_slug,
                    entity_name: r.entity_name,
                    product: r.product_name,
                    kind: r.kind,
                    seats: r.seats,
                    onprem_allowed: r.onprem_allowed == 1,
                    offline_allowed: r.offline_allowed == 1,
                    place,
                }
            })
            .collect(),
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

pub struct ExportView {
    pub host: String,
    pub server_id: String,
    pub seats: i64,
    pub issued: view::When,
    pub expires: view::When,
    pub state: String,
    pub live: bool,
}

pub struct OfflineView {
    pub email: String,
    pub issued: view::When,
    pub expires: view::When,
    pub state: String,
    pub live: bool,
}

#[derive(Template)]
#[template(path = "portal/op_license.html")]
struct LicensePage {
    shell: Shell,
    l: License,
    expiry: String,
    fixed: bool,
    exports: Vec<ExportView>,
    offline: Vec<OfflineView>,
    on_premise: bool,
}

async fn license(state: &AppState, id: &str) -> Result<License, Response> {
    store::licenses::license_by_id(&state.db.pool, id).await.map_err(fail)?.ok_or_else(not_found)
}

fn license_path(id: &str) -> String {
    format!("/portal/operator/licenses/{id}")
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(id): ApiPath<String>,
) -> Response {
    if let Err(r) = gate(&state, &v).await {
        return r;
    }
    let l = match license(&state, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let now = state.now();
    let pool = &state.db.pool;
    let result = async {
        let x = store::onprem::exports_of(pool, &l.id).await?;
        let o = store::onprem::offline_of(pool, &l.id).await?;
        Ok::<_, sqlx::Error>((x, o))
    }
    .await;
    let (exports, offline) = match result {
        Ok(x) => x,
        Err(e) => return fail(e),
    };
    let state_of = |returned: Option<i64>, expires: i64| match returned {
        Some(t) => (format!("returned {}", view::when(t).text), false),
        None if expires <= now => ("expired".to_string(), false),
        None => ("in force".to_string(), true),
    };
    let exports: Vec<ExportView> = exports
        .into_iter()
        .map(|x| {
            let (state, live) = state_of(x.returned_at, x.expires_at);
            ExportView {
                host: x.server_host,
                server_id: x.server_id,
                seats: x.seats,
                issued: view::when(x.issued_at),
                expires: view::when(x.expires_at),
                state,
                live,
            }
        })
        .collect();
    let page = LicensePage {
        shell: Shell::new(&state, &headers, &v, "operator", None),
        expiry: view::expiry(l.expires_at, now),
        fixed: l.is_fixed(),
        on_premise: exports.iter().any(|x| x.live),
        exports,
        offline: offline
            .into_iter()
            .map(|o| {
                let (state, live) = state_of(o.returned_at, o.expires_at);
                OfflineView {
                    email: o.email,
                    issued: view::when(o.issued_at),
                    expires: view::when(o.expires_at),
                    state,
                    live,
                }
            })
            .collect(),
        l,
    };
    show(&state, StatusCode::OK, &page.shell, &page)
}

/// A file handed over once: the entitlement of an on-premise server or an offline license file.
#[derive(Template)]
#[template(path = "portal/op_file.html")]
struct FileMade {
    shell: Shell,
    heading: String,
    text: String,
    file: String,
    filename: String,
    next: String,
    back: String,
}

#[derive(Deserialize)]
pub struct FileForm {
    csrf: Option<String>,
    /// The pasted text: a fingerprint, a usage or return file, a request or a deactivation code.
    #[serde(default)]
    text: String,
}

/// A form's text as the JSON body `{field: text}` of an API handler (a malformed one is its 422).
fn body<T: serde::de::DeserializeOwned>(field: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_value(json!({ field: text.trim() }))
        .map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))
}

/// What the API answered a form's file with.
enum Answer {
    Export(views::OnPremEntitlement),
    Usage(views::OnPremUsageImported),
    Return,
    Issue(views::OfflineLicense),
    Deactivate,
}

/// Which file a form posts, and what to call the API with.
#[derive(Clone, Copy)]
enum Act {
    Export,
    Usage,
    Return,
    Issue,
    Deactivate,
}

async fn act(
    state: AppState,
    headers: HeaderMap,
    ctx: crate::audit::Context,
    id: String,
    v: Viewer,
    form: Option<FileForm>,
    what: Act,
) -> Response {
    let op = match gate(&state, &v).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let l = match license(&state, &id).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let back = license_path(&l.id);
    let text = form.map(|f| f.text).unwrap_or_default();
    if text.trim().is_empty() {
        return see_other(&state, &back, false, "Paste the text first.");
    }
    let admin = Admin::Operator(op);
    let path = ApiPath(l.id.clone());
    let st = State(state.clone());
    let answer: Result<Answer, ApiError> = match what {
        Act::Export => match body("fingerprint", &text) {
            Ok(b) => vendor::export_json(st, admin, ctx, path, ApiJson(b)).await.map(|Json(a)| Answer::Export(a)),
            Err(e) => Err(e),
        },
        Act::Usage => match body("usage", &text) {
            Ok(b) => vendor::usage_json(st, admin, ctx, path, ApiJson(b)).await.map(|Json(a)| Answer::Usage(a)),
            Err(e) => Err(e),
        },
        Act::Return => match body("return", &text) {
            Ok(b) => vendor::return_json(st, admin, ctx, path, ApiJson(b)).await.map(|_| Answer::Return),
            Err(e) => Err(e),
        },
        Act::Issue => match body("request", &text) {
            Ok(b) => offline::issue_json(st, admin, ctx, path, ApiJson(b)).await.map(|Json(a)| Answer::Issue(a)),
            Err(e) => Err(e),
        },
        Act::Deactivate => match body("deactivation", &text) {
            Ok(b) => offline::return_json(st, admin, ctx, path, ApiJson(b)).await.map(|_| Answer::Deactivate),
            Err(e) => Err(e),
        },
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return refused(&state, &back, e),
    };
    let day = |t: &str| t.get(..10).unwrap_or_default().to_string();
    let made = |heading: String, text: String, file: String, filename: String, next: String| {
        let page = FileMade {
            shell: Shell::new(&state, &headers, &v, "operator", None),
            heading,
            text,
            file,
            filename,
            next,
            back: back.clone(),
        };
        show(&state, StatusCode::OK, &page.shell, &page)
    };
    match answer {
        Answer::Export(a) => made(
            format!("{} moves to the on-premise server", l.product_name),
            format!(
                "The entitlement grants the server {} seats until {} (UTC). Its online seats ended now; online checkouts are refused until the license is returned.",
                a.seats,
                day(&a.expires_at)
            ),
            a.entitlement,
            format!("{}-{}.entitlement", l.entity_slug, l.product_sku),
            "On the on-premise server: latchkey onprem import FILE".into(),
        ),
        Answer::Issue(a) => made(
            format!("Offline license file for {}", l.product_name),
            format!(
                "The file runs {} on that one computer until {} (UTC), without any server, and holds one seat of this license until it is returned.",
                l.product_name,
                day(&a.expires_at)
            ),
            a.license_file,
            format!("{}-{}.license", l.entity_slug, l.product_sku),
            "On the computer: latchkey product run --license-file FILE --license-public-key KEYS".into(),
        ),
        Answer::Usage(a) => see_other(
            &state,
            &back,
            true,
            &format!("{} days of on-premise usage ({} to {}) are in the usage report now.", a.days, a.from, a.to),
        ),
        Answer::Return => see_other(&state, &back, true, "The license is back: its seats are available online again."),
        Answer::Deactivate => {
            see_other(&state, &back, true, "The offline license is returned: its seat is free again.")
        }
    }
}

macro_rules! file_action {
    ($name:ident, $act:expr) => {
        pub async fn $name(
            State(state): State<AppState>,
            headers: HeaderMap,
            ctx: crate::audit::Context,
            ApiPath(id): ApiPath<String>,
            Posted { v, form }: Posted<FileForm>,
        ) -> Response {
            act(state, headers, ctx, id, v, form, $act).await
        }
    };
}

file_action!(export, Act::Export);
file_action!(usage, Act::Usage);
file_action!(give_back, Act::Return);
file_action!(issue, Act::Issue);
file_action!(deactivate, Act::Deactivate);

super::csrf_forms!(FileForm);
