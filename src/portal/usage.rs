//! The usage report page: per license, a chart of the daily peak of seats in use against the seats
//! owned, and the checkouts refused; a date range and zone; the same report as a CSV download.
//! Both come from `licenses::reports`, as the JSON API's report does.

use std::fmt::Write;

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use super::{Shell, Viewer, admin::entity_of, fail, show, with_query};
use crate::{
    error::{ApiError, ApiPath, ApiQuery},
    licenses::reports::{self, Range, Row, UsageQuery},
    state::AppState,
    store::{self, entities::Entity},
};

pub struct LicenseChart {
    pub product: String,
    pub group: String,
    pub seats: i64,
    pub peak: i64,
    pub denials: i64,
    pub seat_hours: String,
    pub svg: String,
    pub rows: Vec<DayRow>,
}

pub struct DayRow {
    pub date: String,
    pub peak: i64,
    pub seats: i64,
    pub denials: i64,
    pub users: i64,
    pub hours: String,
}

#[derive(Template)]
#[template(path = "portal/usage.html")]
struct UsagePage {
    shell: Shell,
    entity: Entity,
    from: String,
    to: String,
    tz: String,
    error: Option<String>,
    charts: Vec<LicenseChart>,
    csv: String,
    /// The entity's groups, and the one chosen ("" for every license).
    groups: Vec<String>,
    group: String,
}

const W: f64 = 720.0;
const H: f64 = 240.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 30.0;

/// An inline SVG (no script, no style attribute): a bar per day for the peak of seats in use, a
/// line for the seats owned, a red bar beside it for the refusals, axes with a few labels.
pub fn chart(title: &str, rows: &[&Row]) -> String {
    let n = rows.len().max(1) as f64;
    let top = rows.iter().map(|r| r.seats.max(r.peak_concurrent).max(r.denials)).max().unwrap_or(1).max(1) as f64;
    let scale = (top * 1.15).ceil();
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h - v / scale * plot_h;
    let slot = plot_w / n;
    // A short range (one day, a few) draws bars of a bar's width, not blocks as wide as the chart.
    let bar = (slot * 0.6).clamp(1.0, 48.0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title)
    );
    // Horizontal grid and its labels: 0, half, top.
    for v in [0.0, (scale / 2.0).round(), scale] {
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#d0d7de\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"end\" fill=\"#59636e\">{v}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let x0 = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let peak = r.peak_concurrent as f64;
        let _ = write!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#54aeff\"><title>{}: {} in use at peak</title></rect>",
            y(peak),
            if r.denials > 0 { bar * 0.62 } else { bar },
            plot_h - (y(peak) - TOP),
            r.date,
            r.peak_concurrent
        );
        if r.denials > 0 {
            let d = r.denials as f64;
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#cf222e\"><title>{}: {} refused</title></rect>",
                x0 + bar * 0.66,
                y(d),
                bar * 0.34,
                plot_h - (y(d) - TOP),
                r.date,
                r.denials
            );
        }
    }
    // Seats owned: a step line over the days.
    let mut path = String::new();
    for (i, r) in rows.iter().enumerate() {
        let (xa, xb, yy) = (LEFT + slot * i as f64, LEFT + slot * (i + 1) as f64, y(r.seats as f64));
        let _ = write!(path, "{}{xa:.1},{yy:.1} L{xb:.1},{yy:.1} ", if i == 0 { "M" } else { "L" });
    }
    if !path.is_empty() {
        let _ = write!(
            s,
            "<path d=\"{}\" fill=\"none\" stroke=\"#1f2328\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>",
            path.trim()
        );
    }
    // Dates: first, middle and last.
    let picks: Vec<usize> = match rows.len() {
        0 => vec![],
        1 => vec![0],
        2 => vec![0, 1],
        k => vec![0, k / 2, k - 1],
    };
    for i in picks {
        let x = LEFT + slot * i as f64 + slot / 2.0;
        let anchor = if i == 0 && rows.len() > 1 {
            "start"
        } else if i + 1 == rows.len() && rows.len() > 1 {
            "end"
        } else {
            "middle"
        };
        let x = match anchor {
            "start" => LEFT,
            "end" => W - RIGHT,
            _ => x,
        };
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"{anchor}\" fill=\"#59636e\">{}</text>",
            H - 10.0,
            rows[i].date
        );
    }
    s.push_str("</svg>");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn hours(ms: i64) -> String {
    format!("{:.1}", ms as f64 / 3_600_000.0)
}

/// The group of `?group=` (none when empty).
fn chosen_group(q: &UsageQuery) -> Option<String> {
    q.group.as_deref().map(str::trim).filter(|g| !g.is_empty()).map(str::to_string)
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let now = state.now();
    let shell = Shell::new(&state, &headers, &v, "usage", Some(&e.slug));
    let (range, error) = match reports::parse_range(&q, now) {
        Ok(r) => (r, None),
        Err(err) => {
            let msg = match &err {
                ApiError::Problem(p) => format!("{} The last 30 days in UTC are shown.", p.detail),
                _ => return err.into_response(),
            };
            (
                reports::parse_range(&UsageQuery::default(), now).unwrap_or(Range {
                    from: time::Date::MIN,
                    to: time::Date::MIN,
                    tz: chrono_tz::Tz::UTC,
                }),
                Some(msg),
            )
        }
    };
    let groups: Vec<String> = match store::entities::list_groups(&state.db.pool, &e.id).await {
        Ok(g) => g.into_iter().map(|g| g.name).collect(),
        Err(err) => return fail(err),
    };
    let mut group = chosen_group(&q);
    let mut error = error;
    let rows = match reports::report(&state, &e, &range, group.as_deref(), now).await {
        Ok(r) => r,
        Err(ApiError::Problem(p)) if group.is_some() => {
            // An unknown group: said so, with every license shown.
            error = Some(format!("{} ({}). Every license is shown.", p.detail, p.code));
            group = None;
            match reports::report(&state, &e, &range, None, now).await {
                Ok(r) => r,
                Err(err) => return err.into_response(),
            }
        }
        Err(err) => return err.into_response(),
    };
    // One chart per license, in the order of the report.
    let mut ids: Vec<&str> = Vec::new();
    for r in &rows {
        if !ids.contains(&r.license_id.as_str()) {
            ids.push(&r.license_id);
        }
    }
    let charts = ids
        .iter()
        .map(|id| {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.license_id == *id).collect();
            let first = mine[0];
            let title = format!(
                "{}: daily peak of seats in use against {} seats owned, and refused checkouts, {} to {}",
                first.product, first.seats, range.from, range.to
            );
            LicenseChart {
                product: first.product.clone(),
                group: first.group.clone().unwrap_or_default(),
                seats: mine.iter().map(|r| r.seats).max().unwrap_or(0),
                peak: mine.iter().map(|r| r.peak_concurrent).max().unwrap_or(0),
                denials: mine.iter().map(|r| r.denials).sum(),
                seat_hours: hours(mine.iter().map(|r| r.seat_ms).sum()),
                svg: chart(&title, &mine),
                rows: mine
                    .iter()
                    .map(|r| DayRow {
                        date: r.date.to_string(),
                        peak: r.peak_concurrent,
                        seats: r.seats,
                        denials: r.denials,
                        users: r.distinct_users,
                        hours: hours(r.seat_ms),
                    })
                    .collect(),
            }
        })
        .collect();
    let (from, to, tz) = (range.from.to_string(), range.to.to_string(), range.tz.name().to_string());
    let group = group.unwrap_or_default();
    let csv = with_query(
        &format!("/portal/entities/{}/usage.csv", e.slug),
        &[("from", &from), ("to", &to), ("tz", &tz), ("group", &group)],
    );
    let page = UsagePage { shell, entity: e, from, to, tz, error, charts, csv, groups, group };
    let status = if page.error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    show(&state, status, &page.shell, &page)
}

/// The same report as the page, as CSV (the API's format).
pub async fn csv(
    State(state): State<AppState>,
    v: Viewer,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Response {
    let e = match entity_of(&state, &v, &slug).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let now = state.now();
    let result = async {
        let range = reports::parse_range(&q, now)?;
        let rows = reports::report(&state, &e, &range, chosen_group(&q).as_deref(), now).await?;
        Ok::<_, ApiError>(reports::csv_response(&e.slug, &range, &rows))
    }
    .await;
    match result {
        Ok(r) => r,
        Err(ApiError::Problem(p)) => crate::browser::message(p.status, "This report cannot be made", &p.detail),
        Err(err) => err.into_response(),
    }
}
