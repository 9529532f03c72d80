//! Reading the audit log: an entity's events (its administrators, or the operator key), every
//! event (the operator key), and the signed checkpoints. Read-only: no route changes an event.
//! Only sealed events are shown; each read seals first, so a caller sees what it just did.

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use super::{chain, views};
use crate::{
    auth::{Admin, Operator},
    clock::{self, Millis},
    error::{ApiError, ApiPath, ApiQuery, Result},
    licenses::reports::csv_field,
    state::AppState,
    store::{
        self,
        audit::{EventRow, Filter},
    },
};

pub const MAX_LIMIT: i64 = 1000;
const DEFAULT_LIMIT: i64 = 100;
/// Rows fetched per query while exporting: memory stays flat whatever the export's size.
const EXPORT_PAGE: i64 = 1000;

/// The OpenAPI description of this router's JSON routes (one entry per handler it routes).
#[derive(utoipa::OpenApi)]
#[openapi(paths(entity_events, all_events, list_checkpoints,))]
pub struct Doc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/entities/{slug}/audit", get(entity_events))
        .route("/api/v1/audit", get(all_events))
        .route("/api/v1/audit/checkpoints", get(list_checkpoints))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub after: Option<String>,
    pub limit: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Ndjson,
    Csv,
}

/// `from`/`to`: RFC 3339, or a UTC day (`to` then includes that whole day).
fn parse_bound(field: &str, s: &str, end: bool) -> Result<Millis> {
    if let Ok(d) = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        && (1970..=9999).contains(&d.year())
    {
        let start = clock::day_start(d);
        return Ok(if end { start + 86_400_000 - 1 } else { start });
    }
    crate::licenses::parse_time(field, s).map_err(|_| {
        ApiError::unprocessable(
            "invalid_request",
            format!("`{field}` must be an RFC 3339 time (2026-11-30T12:00:00Z) or a UTC day (2026-11-30)"),
        )
    })
}

fn parse_query(q: AuditQuery, chain: Option<String>) -> Result<(Filter, Option<i64>, Format)> {
    let format = match q.format.as_deref() {
        None | Some("json") => Format::Json,
        Some("ndjson") => Format::Ndjson,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                format!("format `{other}`: use json, ndjson or csv"),
            ));
        }
    };
    let after = match q.after.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::unprocessable("invalid_cursor", "`after` takes the `next` value of a previous page")
        })?,
    };
    let limit = match q.limit.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<i64>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            ApiError::unprocessable("invalid_request", format!("`limit` must be between 1 and {MAX_LIMIT}"))
        })?),
    };
    let text = |field: &str, v: Option<String>| -> Result<Option<String>> {
        match v.filter(|s| !s.is_empty()) {
            Some(s) if s.len() > 320 || s.chars().any(char::is_control) => {
                Err(ApiError::unprocessable("invalid_request", format!("`{field}` is too long or not printable")))
            }
            other => Ok(other),
        }
    };
    let from = q.from.as_deref().map(|s| parse_bound("from", s, false)).transpose()?;
    let to = q.to.as_deref().map(|s| parse_bound("to", s, true)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::unprocessable("invalid_request", "`from` is after `to`"));
    }
    let filter = Filter {
        chain,
        after,
        action: text("action", q.action)?,
        actor: text("actor", q.actor)?.map(|a| if a.contains('@') { a.to_lowercase() } else { a }),
        from,
        to,
    };
    Ok((filter, limit, format))
}

problems!(EntityAuditProblems:
    400 invalid_query,
    401 unauthorized,
    422 invalid_request "a bad `limit`, `from`, `to`, `format`, `action` or `actor`",
    422 invalid_cursor,
    403 wrong_audience,
    403 not_an_administrator "the user administers no entity",
    404 not_found "no such entity, or one the caller does not administer",
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/audit",
    operation_id = "entityAudit",
    tag = "audit",
    summary = "An entity's audit log",
    description = "Sealed events only; the read seals waiting events first, so a caller sees its own changes.",
    params(
        ("slug" = String, Path, description = "the entity's slug"),
        ("after" = Option<String>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 1000 (default 100); for ndjson and csv the most rows to send (default all)", minimum = 1, maximum = 1000),
        ("action" = Option<String>, Query, description = "only this action, e.g. `seat.denied`"),
        ("actor" = Option<String>, Query, description = "only this actor: an email (the actor's name) or an id"),
        ("from" = Option<String>, Query, description = "RFC 3339 time or UTC day `YYYY-MM-DD`"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or UTC day `YYYY-MM-DD` (the whole day)"),
        ("format" = Option<String>, Query, description = "`json` (default), `ndjson` or `csv`", /*enum ['json', 'ndjson', 'csv']*/),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "events, oldest first (in seal order); ndjson and csv stream every matching event", content((crate::audit::views::AuditPage = "application/json"), (crate::audit::views::AuditEvent = "application/x-ndjson"), (String = "text/csv"))),
        EntityAuditProblems,
    ),
)]
pub async fn entity_events(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response> {
    let entity = admin.entity(&state, &slug).await?;
    let (filter, limit, format) = parse_query(q, Some(entity.id.clone()))?;
    answer(state, filter, limit, format, &format!("latchkey-audit-{slug}")).await
}

problems!(AllAuditProblems:
    400 invalid_query,
    401 unauthorized,
    422 invalid_request "a bad `limit`, `from`, `to`, `format`, `action` or `actor`",
    422 invalid_cursor,
);
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    operation_id = "allAudit",
    tag = "audit",
    summary = "Every audit event (every entity's and the operator's own)",
    params(
        ("after" = Option<String>, Query, description = "the `next` value of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 1000 (default 100); for ndjson and csv the most rows to send (default all)", minimum = 1, maximum = 1000),
        ("action" = Option<String>, Query, description = "only this action, e.g. `seat.denied`"),
        ("actor" = Option<String>, Query, description = "only this actor: an email (the actor's name) or an id"),
        ("from" = Option<String>, Query, description = "RFC 3339 time or UTC day `YYYY-MM-DD`"),
        ("to" = Option<String>, Query, description = "RFC 3339 time or UTC day `YYYY-MM-DD` (the whole day)"),
        ("format" = Option<String>, Query, description = "`json` (default), `ndjson` or `csv`", /*enum ['json', 'ndjson', 'csv']*/),
    ),
    security(("operatorKey" = [])),
    responses(
        (status = 200, description = "events, oldest first (in seal order); ndjson and csv stream every matching event", content((crate::audit::views::AuditPage = "application/json"), (crate::audit::views::AuditEvent = "application/x-ndjson"), (String = "text/csv"))),
        AllAuditProblems,
    ),
)]
pub async fn all_events(
    State(state): State<AppState>,
    _op: Operator,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response> {
    let (filter, limit, format) = parse_query(q, None)?;
    answer(state, filter, limit, format, "latchkey-audit").await
}

async fn answer(state: AppState, filter: Filter, limit: Option<i64>, format: Format, name: &str) -> Result<Response> {
    super::sealer::seal_for_read(&state).await;
    if format == Format::Json {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        let mut rows = store::audit::page(&state.db.pool, &filter, limit + 1).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = if more { rows.last().and_then(|r| r.sealed).map(|s| s.to_string()) } else { None };
        let events = rows.iter().map(chain::view).collect();
        return Ok(Json(views::AuditPage { events, next }).into_response());
    }
    let (content_type, ext) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        _ => ("application/x-ndjson", "ndjson"),
    };
    let body = Body::from_stream(export(state, filter, limit, format));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// The portal's audit pages: one page of events (as the API's JSON shows them) and the cursor of
/// the next, with the API's own filters; `chain`: an entity's id, or `None` for every event.
pub async fn page_of(
    state: &AppState,
    q: AuditQuery,
    chain: Option<String>,
    limit: i64,
) -> Result<(Vec<views::AuditEvent>, Option<String>)> {
    let (filter, _, _) = parse_query(q, chain)?;
    super::sealer::seal_for_read(state).await;
    let mut rows = store::audit::page(&state.db.pool, &filter, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().and_then(|r| r.sealed).map(|s| s.to_string()) } else { None };
    Ok((rows.iter().map(chain::view).collect(), next))
}

/// The same events as the API's CSV export (streamed).
pub async fn csv_of(state: AppState, mut q: AuditQuery, chain: Option<String>, name: &str) -> Result<Response> {
    q.format = Some("csv".into());
    q.after = None;
    let (filter, limit, format) = parse_query(q, chain)?;
    answer(state, filter, limit, format, name).await
}

pub const CSV_HEADER: &str =
    "id,seq,at,entity,actor_type,actor_id,actor_name,action,targets,ip,user_agent,request_id,details,hash";

fn csv_line(e: &EventRow, out: &mut String) {
    let opt = |s: &Option<String>| csv_field(s.as_deref().unwrap_or(""));
    let fields = [
        csv_field(&e.id),
        e.seq.map(|s| s.to_string()).unwrap_or_default(),
        chain::timestamp(e.at),
        opt(&e.entity),
        csv_field(&e.actor_type),
        opt(&e.actor_id),
        opt(&e.actor_name),
        csv_field(&e.action),
        csv_field(&e.targets),
        opt(&e.ip),
        opt(&e.user_agent),
        opt(&e.request_id),
        csv_field(&e.details),
        opt(&e.hash),
    ];
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

struct Export {
    state: AppState,
    filter: Filter,
    left: Option<i64>,
    format: Format,
    header: bool,
    done: bool,
}

/// The export as a stream of chunks, one page of rows each, read page by page (keyset on the seal
/// order), so neither the server's memory nor a database connection is held for the whole export.
fn export(
    state: AppState,
    filter: Filter,
    limit: Option<i64>,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let start = Export { state, filter, left: limit, format, header: format == Format::Csv, done: false };
    futures_util::stream::unfold(start, |mut x| async move {
        if x.done {
            return None;
        }
        let mut out = String::new();
        if x.header {
            x.header = false;
            out.push_str(CSV_HEADER);
            out.push_str("\r\n");
        }
        let n = x.left.map_or(EXPORT_PAGE, |l| l.min(EXPORT_PAGE));
        let rows = match store::audit::page(&x.state.db.pool, &x.filter, n).await {
            Ok(r) => r,
            Err(e) => {
                // The status line is gone already: end the body short, which the client sees.
                tracing::error!(error = %e, "audit export");
                x.done = true;
                return Some((Err(std::io::Error::other("database error during export")), x));
            }
        };
        if let Some(l) = x.left.as_mut() {
            *l -= rows.len() as i64;
        }
        if (rows.len() as i64) < n || x.left == Some(0) {
            x.done = true;
        }
        if let Some(last) = rows.last().and_then(|r| r.sealed) {
            x.filter.after = last;
        }
        for r in &rows {
            match x.format {
                Format::Csv => csv_line(r, &mut out),
                _ => {
                    // A view is strings, numbers and JSON values only: it always serialises.
                    out.push_str(&serde_json::to_string(&chain::view(r)).unwrap_or_default());
                    out.push('\n');
                }
            }
        }
        if out.is_empty() && x.done {
            return None;
        }
        Some((Ok(Bytes::from(out)), x))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    entity: Option<String>,
}

problems!(AuditCheckpointsProblems:
    401 unauthorized,
    404 not_found "no entity with that slug",
);
#[utoipa::path(
    get,
    path = "/api/v1/audit/checkpoints",
    operation_id = "auditCheckpoints",
    tag = "audit",
    summary = "Signed checkpoints of a chain",
    params(
        ("entity" = Option<String>, Query, description = "the entity's slug; omitted: the operator chain"),
    ),
    security(("operatorKey" = [])),
    responses(
        (status = 200, description = "the chain's checkpoints, oldest first", body = Vec<crate::audit::views::AuditCheckpoint>),
        AuditCheckpointsProblems,
    ),
)]
pub async fn list_checkpoints(
    State(state): State<AppState>,
    _op: Operator,
    ApiQuery(q): ApiQuery<CheckpointQuery>,
) -> Result<Json<Vec<views::AuditCheckpoint>>> {
    let chain = match q.entity.as_deref().filter(|s| !s.is_empty()) {
        None => String::new(),
        Some(slug) => {
            store::entities::entity_by_slug(&state.db.pool, slug)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no entity `{slug}`")))?
                .id
        }
    };
    super::sealer::seal_now(&state).await;
    let rows = store::audit::checkpoints(&state.db.pool, &chain).await?;
    Ok(Json(
        rows.into_iter()
            .map(|c| views::AuditCheckpoint {
                at: chain::timestamp(c.at),
                entity: c.entity,
                hash: c.hash,
                seq: c.seq,
                signature: c.signature,
            })
            .collect(),
    ))
}
