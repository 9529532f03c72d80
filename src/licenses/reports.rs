//! Usage reports: per license and UTC day, the peak of concurrent seats, seat-hours, checkouts
//! refused for want of a seat, and distinct users; computed from the leases themselves (every lease
//! is a usage record: [checkout, release or lapse)), as JSON or CSV, optionally for one group.

use std::collections::{HashMap, HashSet};

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Date, Duration as TDuration, macros::format_description};

use crate::{
    auth::Admin,
    clock::{self, Millis},
    error::{ApiError, ApiPath, ApiQuery, Result},
    state::AppState,
    store::{self, leases::Interval, licenses::License},
};

#[derive(Deserialize)]
pub struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
    group: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub date: Date,
    pub license_id: String,
    pub product: String,
    pub group: Option<String>,
    pub seats: i64,
    pub peak_concurrent: i64,
    pub seat_ms: i64,
    pub denials: i64,
    pub distinct_users: i64,
}

const MAX_DAYS: i64 = 366;

/// A piece of a lease within one day: [start, end) and its user.
type Segment<'a> = (Millis, Millis, &'a str);

fn parse_day(field: &str, s: &str) -> Result<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]"))
        .ok()
        .filter(|d| (1970..=9999).contains(&d.year()))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_request",
                format!("`{field}` must be a date like 2026-11-27 (years 1970 to 9999)"),
            )
        })
}

/// The report rows for `licenses` over the days `from..=to`, at `now`.
pub fn compute(
    licenses: &[License],
    intervals: &[Interval],
    denials: &[(String, String, i64)],
    from: Date,
    to: Date,
    now: Millis,
) -> Vec<Row> {
    let range_start = clock::day_start(from);
    let range_end = clock::day_start(to) + 86_400_000;
    // Clip every interval to the range and to now (a live lease counts until now), then cut it
    // into its days.
    let mut per_day: HashMap<(&str, Date), Vec<Segment>> = HashMap::new();
    for i in intervals {
        let (start, end) = (i.start.max(range_start), i.end.min(range_end).min(now));
        let mut s = start;
        while s < end {
            let day = clock::utc_day(s);
            let day_end = clock::day_start(day) + 86_400_000;
            let e = end.min(day_end);
            per_day.entry((i.license_id.as_str(), day)).or_default().push((s, e, i.user_id.as_str()));
            s = e;
        }
    }
    let denied: HashMap<(&str, &str), i64> = denials.iter().map(|(l, d, n)| ((l.as_str(), d.as_str()), *n)).collect();
    let mut rows = Vec::new();
    let mut day = from;
    while day <= to {
        let day_s = clock::day_start(day);
        let day_key = day.to_string();
        for l in licenses {
            // No rows before the license existed, nor for days that have not begun.
            if day_s + 86_400_000 <= l.created_at || day_s > now {
                continue;
            }
            let segs = per_day.get(&(l.id.as_str(), day)).map(Vec::as_slice).unwrap_or_default();
            let seat_ms: i64 = segs.iter().map(|(s, e, _)| e - s).sum();
            let users: HashSet<&str> = segs.iter().map(|(_, _, u)| *u).collect();
            // Peak: sweep the starts (+1) and ends (-1); an end at the same instant as a start
            // comes first (back-to-back leases do not overlap).
            let mut events: Vec<(Millis, i64)> = segs.iter().flat_map(|(s, e, _)| [(*s, 1), (*e, -1)]).collect();
            events.sort();
            let (mut cur, mut peak) = (0i64, 0i64);
            for (_, d) in events {
                cur += d;
                peak = peak.max(cur);
            }
            rows.push(Row {
                date: day,
                license_id: l.id.clone(),
                product: l.product_sku.clone(),
                group: l.group_name.clone(),
                seats: l.seats,
                peak_concurrent: peak,
                seat_ms,
                denials: denied.get(&(l.id.as_str(), day_key.as_str())).copied().unwrap_or(0),
                distinct_users: users.len() as i64,
            });
        }
        day = match day.next_day() {
            Some(d) => d,
            None => break,
        };
    }
    rows
}

fn seat_hours(ms: i64) -> f64 {
    (ms as f64 / 3_600_000.0 * 100.0).round() / 100.0
}

pub fn csv_field(s: &str) -> String {
    // Quote when needed; neutralise spreadsheet formulas (a group name is typed by a person).
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

pub const CSV_HEADER: &str = "date,license_id,product,group,seats,peak_concurrent,seat_hours,denials,distinct_users";

pub fn to_csv(rows: &[Row]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.2},{},{}\r\n",
            r.date,
            csv_field(&r.license_id),
            csv_field(&r.product),
            csv_field(r.group.as_deref().unwrap_or("")),
            r.seats,
            r.peak_concurrent,
            seat_hours(r.seat_ms),
            r.denials,
            r.distinct_users
        ));
    }
    out
}

#[tracing::instrument(skip_all)]
pub async fn usage(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response> {
    let entity = store::entities::entity_by_slug(&state.db.pool, &slug).await?;
    admin.require(&state, entity.as_ref().map(|e| e.id.as_str())).await?;
    let entity = entity.ok_or_else(|| ApiError::not_found("no such resource"))?;
    let now = state.now();
    let to = match &q.to {
        Some(s) => parse_day("to", s)?,
        None => clock::utc_day(now),
    };
    let from = match &q.from {
        Some(s) => parse_day("from", s)?,
        None => to.checked_sub(TDuration::days(29)).unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::unprocessable("invalid_request", "`from` is after `to`"));
    }
    if (to - from).whole_days() >= MAX_DAYS {
        return Err(ApiError::unprocessable("invalid_request", format!("a report covers at most {MAX_DAYS} days")));
    }
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::unprocessable("invalid_request", format!("format `{other}`: use json or csv")));
        }
    };
    let mut licenses = store::licenses::licenses_of_entity(&state.db.pool, &entity.id).await?;
    if let Some(g) = &q.group {
        if store::entities::group_by_name(&state.db.pool, &entity.id, g).await?.is_none() {
            return Err(ApiError::unprocessable("unknown_group", format!("{slug} has no group named `{g}`")));
        }
        licenses.retain(|l| l.group_name.as_deref() == Some(g.as_str()));
    }
    let range_end = clock::day_start(to) + 86_400_000;
    let intervals = store::leases::intervals(&state.db.pool, &entity.id, clock::day_start(from), range_end).await?;
    let denials = store::leases::denials(&state.db.pool, &entity.id, &from.to_string(), &to.to_string()).await?;
    let mut rows = compute(&licenses, &intervals, &denials, from, to, now);
    let reported =
        store::onprem::usage_of_entity(&state.db.pool, &entity.id, &from.to_string(), &to.to_string()).await?;
    crate::onprem::vendor::merge_usage(&mut rows, &reported);
    rows.sort_by(|a, b| (a.date, &a.product, &a.license_id).cmp(&(b.date, &b.product, &b.license_id)));
    if csv {
        let mut resp = to_csv(&rows).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"latchkey-usage-{slug}-{from}-{to}.csv\""))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(resp);
    }
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "date": r.date.to_string(),
                "license_id": r.license_id,
                "product": r.product,
                "group": r.group,
                "seats": r.seats,
                "peak_concurrent": r.peak_concurrent,
                "seat_hours": seat_hours(r.seat_ms),
                "denials": r.denials,
                "distinct_users": r.distinct_users,
            })
        })
        .collect();
    Ok(Json(Value::Array(items)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn license(id: &str) -> License {
        License {
            id: id.into(),
            entity_id: "e".into(),
            entity_slug: "acme".into(),
            product_id: "p".into(),
            product_sku: "readyapi".into(),
            product_name: "ReadyAPI".into(),
            kind: "floating".into(),
            seats: 3,
            expires_at: None,
            group_id: None,
            group_name: Some("QA, \"core\"".into()),
            changes_used: 0,
            idle_timeout_s: None,
            assigned: 0,
            created_at: 0,
            offline_allowed: 0,
            onprem_allowed: 0,
            scim_group_id: None,
            scim_sync_report: None,
        }
    }

    fn iv(user: &str, start_h: f64, end_h: f64, day0: Millis) -> Interval {
        Interval {
            license_id: "L".into(),
            user_id: user.into(),
            start: day0 + (start_h * 3_600_000.0) as i64,
            end: day0 + (end_h * 3_600_000.0) as i64,
        }
    }

    #[test]
    fn peaks_hours_users_and_day_boundaries() {
        let d0: Date = parse_day("d", "2026-03-01").unwrap();
        let d1 = d0.next_day().unwrap();
        let t0 = clock::day_start(d0);
        let intervals = vec![
            iv("a", 1.0, 3.0, t0),
            iv("b", 2.0, 4.0, t0),
            iv("a", 3.0, 5.0, t0),   // back to back with a's first lease: no extra overlap
            iv("c", 23.0, 25.0, t0), // crosses midnight
        ];
        let denials = vec![("L".to_string(), "2026-03-01".to_string(), 2)];
        let rows = compute(&[license("L")], &intervals, &denials, d0, d1, t0 + 10 * 86_400_000);
        assert_eq!(rows.len(), 2);
        let (a, b) = (&rows[0], &rows[1]);
        assert_eq!(a.peak_concurrent, 2);
        assert_eq!(a.seat_ms, (2 + 2 + 2 + 1) * 3_600_000);
        assert_eq!(a.distinct_users, 3);
        assert_eq!(a.denials, 2);
        assert_eq!(b.date, d1);
        assert_eq!(b.peak_concurrent, 1);
        assert_eq!(b.seat_ms, 3_600_000);
        assert_eq!(b.distinct_users, 1);
        let csv = to_csv(&rows);
        assert!(csv.starts_with(CSV_HEADER));
        assert!(csv.contains("2026-03-01,L,readyapi,\"QA, \"\"core\"\"\",3,2,7.00,2,3\r\n"), "{csv}");
    }

    #[test]
    fn live_leases_count_until_now_and_future_days_are_left_out() {
        let d0: Date = parse_day("d", "2026-03-01").unwrap();
        let t0 = clock::day_start(d0);
        let now = t0 + 12 * 3_600_000;
        let intervals = vec![iv("a", 10.0, 100.0, t0)];
        let rows = compute(&[license("L")], &intervals, &[], d0, d0.next_day().unwrap(), now);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].seat_ms, 2 * 3_600_000);
    }

    #[test]
    fn csv_neutralises_formulas() {
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("plain"), "plain");
    }
}
