//! Usage reports: per license and day, the peak of concurrent seats, seat-hours, checkouts refused
//! for want of a seat, and distinct users; computed from the leases themselves (every lease is a
//! usage record: [checkout, release or lapse)), as JSON or CSV, optionally for one group. Days are
//! those of a time zone (`tz`, an IANA name, UTC by default), 23 or 25 hours long across a DST change.
//! Refusals are counted per quarter hour when they happen (see [`refusal_slot`]), so each is
//! reported on the local date it happened on, in any zone.

use std::collections::{HashMap, HashSet};

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use time::{Date, Duration as TDuration, macros::format_description};

use super::views;
use crate::{
    auth::Admin,
    clock::{self, Millis},
    error::{ApiError, ApiPath, ApiQuery, Result},
    state::AppState,
    store::{self, entities::Entity, leases::Interval, licenses::License},
};

#[derive(Deserialize, Default)]
pub struct UsageQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
    pub group: Option<String>,
    pub tz: Option<String>,
}

/// A time zone by its IANA name (`Europe/Berlin`); absent: UTC.
pub fn parse_tz(s: Option<&str>) -> Result<Tz> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| {
            ApiError::unprocessable(
                "invalid_request",
                "`tz` must be an IANA time zone name such as Europe/Berlin or America/New_York",
            )
        }),
    }
}

fn to_naive(d: Date) -> Option<NaiveDate> {
    NaiveDate::from_yo_opt(d.year(), u32::from(d.ordinal()))
}

fn from_naive(d: NaiveDate) -> Date {
    Date::from_ordinal_date(d.year(), d.ordinal() as u16).unwrap_or(Date::MIN)
}

/// The instant local day `d` of `tz` begins (the first valid local time on or after midnight).
pub fn day_start_in(d: Date, tz: Tz) -> Millis {
    let Some(nd) = to_naive(d) else { return clock::day_start(d) };
    // A DST change at midnight skips it in a few zones: the day then starts at the first hour that exists.
    (0..3)
        .find_map(|h| nd.and_hms_opt(h, 0, 0).and_then(|t| tz.from_local_datetime(&t).earliest()))
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|| clock::day_start(d))
}

/// The local date of an instant in `tz`.
pub fn day_in(ms: Millis, tz: Tz) -> Date {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => from_naive(t.with_timezone(&tz).date_naive()),
        None => clock::utc_day(ms),
    }
}

/// The quarter hour a refusal at `now` is counted in (its first instant). Every zone's offset
/// from UTC is a whole number of quarter hours, so a quarter hour never straddles a local midnight.
pub fn refusal_slot(now: Millis) -> Millis {
    now - now.rem_euclid(QUARTER_HOUR)
}

const QUARTER_HOUR: Millis = 15 * 60 * 1000;

fn next_day(d: Date) -> Date {
    d.next_day().unwrap_or(d)
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

/// The report rows for `licenses` over the days `from..=to` of `tz`, at `now`; `denials` are
/// `(license, quarter hour, count)`.
pub fn compute(
    licenses: &[License],
    intervals: &[Interval],
    denials: &[(String, Millis, i64)],
    from: Date,
    to: Date,
    tz: Tz,
    now: Millis,
) -> Vec<Row> {
    let range_start = day_start_in(from, tz);
    let range_end = day_start_in(next_day(to), tz);
    // Clip every interval to the range and to now (a live lease counts until now), then cut it
    // into its days.
    let mut per_day: HashMap<(&str, Date), Vec<Segment>> = HashMap::new();
    for i in intervals {
        let (start, end) = (i.start.max(range_start), i.end.min(range_end).min(now));
        let mut s = start;
        while s < end {
            let day = day_in(s, tz);
            let day_end = day_start_in(next_day(day), tz).max(s + 1);
            let e = end.min(day_end);
            per_day.entry((i.license_id.as_str(), day)).or_default().push((s, e, i.user_id.as_str()));
            s = e;
        }
    }
    let mut denied: HashMap<(&str, Date), i64> = HashMap::new();
    for (l, at, n) in denials {
        *denied.entry((l.as_str(), day_in(*at, tz))).or_default() += n;
    }
    let mut rows = Vec::new();
    let mut day = from;
    while day <= to {
        let day_s = day_start_in(day, tz);
        let day_e = day_start_in(next_day(day), tz);
        for l in licenses {
            // No rows before the license existed, nor for days that have not begun.
            if day_e <= l.created_at || day_s > now {
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
                denials: denied.get(&(l.id.as_str(), day)).copied().unwrap_or(0),
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

/// The columns; the last, `tz`, names the zone whose days the rows are.
pub const CSV_HEADER: &str = "date,license_id,product,group,seats,peak_concurrent,seat_hours,denials,distinct_users,tz";

pub fn to_csv(rows: &[Row], tz: Tz) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.2},{},{},{}\r\n",
            r.date,
            csv_field(&r.license_id),
            csv_field(&r.product),
            csv_field(r.group.as_deref().unwrap_or("")),
            r.seats,
            r.peak_concurrent,
            seat_hours(r.seat_ms),
            r.denials,
            r.distinct_users,
            tz.name()
        ));
    }
    out
}

/// A report asked for: its days, zone and group.
pub struct Range {
    pub from: Date,
    pub to: Date,
    pub tz: Tz,
}

/// Read `from`, `to` and `tz` (defaults: the 30 days up to today in that zone).
pub fn parse_range(q: &UsageQuery, now: Millis) -> Result<Range> {
    let tz = parse_tz(q.tz.as_deref())?;
    let to = match q.to.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_day("to", s)?,
        None => day_in(now, tz),
    };
    let from = match q.from.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_day("from", s)?,
        None => to.checked_sub(TDuration::days(29)).unwrap_or(to),
    };
    if from > to {
        return Err(ApiError::unprocessable("invalid_request", "`from` is after `to`"));
    }
    if (to - from).whole_days() >= MAX_DAYS {
        return Err(ApiError::unprocessable("invalid_request", format!("a report covers at most {MAX_DAYS} days")));
    }
    Ok(Range { from, to, tz })
}

/// The usage report of an entity (optionally one group's licenses), by date, product and license.
pub async fn report(
    state: &AppState,
    entity: &Entity,
    range: &Range,
    group: Option<&str>,
    now: Millis,
) -> Result<Vec<Row>> {
    let mut licenses = store::licenses::licenses_of_entity(&state.db.pool, &entity.id).await?;
    if let Some(g) = group {
        if store::entities::group_by_name(&state.db.pool, &entity.id, g).await?.is_none() {
            return Err(ApiError::unprocessable("unknown_group", format!("{} has no group named `{g}`", entity.slug)));
        }
        licenses.retain(|l| l.group_name.as_deref() == Some(g));
    }
    let start = day_start_in(range.from, range.tz);
    let end = day_start_in(next_day(range.to), range.tz);
    let intervals = store::leases::intervals(&state.db.pool, &entity.id, start, end).await?;
    let denials = store::leases::denials(&state.db.pool, &entity.id, start, end).await?;
    let mut rows = compute(&licenses, &intervals, &denials, range.from, range.to, range.tz, now);
    // On-premise servers report whole days of their own; each is added on the date it names.
    let reported =
        store::onprem::usage_of_entity(&state.db.pool, &entity.id, &range.from.to_string(), &range.to.to_string())
            .await?;
    crate::onprem::vendor::merge_usage(&mut rows, &reported);
    rows.sort_by(|a, b| (a.date, &a.product, &a.license_id).cmp(&(b.date, &b.product, &b.license_id)));
    Ok(rows)
}

/// The report as a CSV download.
pub fn csv_response(slug: &str, range: &Range, rows: &[Row]) -> Response {
    let mut resp = to_csv(rows, range.tz).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    let zone = range.tz.name().replace('/', "_");
    let name = format!("attachment; filename=\"latchkey-usage-{slug}-{}-{}-{zone}.csv\"", range.from, range.to);
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

problems!(UsageReportProblems [admin]:
    400 invalid_query "malformed query string (e.g. a repeated parameter)",
    404 not_found,
    422 invalid_request "`from`/`to` not YYYY-MM-DD, `from` after `to`, more than 366 days, or `format` not json/csv",
    422 unknown_group,
    500 internal,
);
#[utoipa::path(
    get,
    path = "/api/v1/entities/{slug}/reports/usage",
    operation_id = "usageReport",
    tag = "reports",
    summary = "Usage report per license and day of a time zone",
    description = "Computed from the leases: peak concurrent seats, seat-hours, checkouts refused for want of a seat, distinct users. At most 366 days.",
    params(
        ("slug" = String, Path, description = "the entity's slug", max_length = 63),
        ("from" = Option<String>, Query, description = "first day (in `tz`), YYYY-MM-DD; default `to` - 29 days", format = Date),
        ("to" = Option<String>, Query, description = "last day (in `tz`), YYYY-MM-DD; default today in `tz`", format = Date),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv`", /*enum ['json', 'csv']*/),
        ("group" = Option<String>, Query, description = "only the licenses of this group"),
        ("tz" = Option<String>, Query, description = "IANA time zone name whose midnights bound the days (e.g. `Europe/Berlin`); default `UTC`"),
    ),
    security(("bearer" = []), ("operatorKey" = [])),
    responses(
        (status = 200, description = "one row per license and day (no rows before a license existed nor for days not begun), sorted by date, product, license. CSV: header `date,license_id,product,group,seats,peak_concurrent,seat_hours,denials,distinct_users,tz` (the zone of the days on every row), CRLF line ends, served as an attachment.", content((Vec<crate::licenses::views::UsageRow> = "application/json"), (String = "text/csv")), headers(("Content-Disposition" = String, description = "CSV only: `attachment; filename=\"latchkey-usage-{slug}-{from}-{to}-{tz with / as _}.csv\"`"))),
        UsageReportProblems,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn usage(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Response> {
    let entity = admin.entity(&state, &slug).await?;
    let now = state.now();
    let range = parse_range(&q, now)?;
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::unprocessable("invalid_request", format!("format `{other}`: use json or csv")));
        }
    };
    let rows = report(&state, &entity, &range, q.group.as_deref(), now).await?;
    if csv {
        return Ok(csv_response(&slug, &range, &rows));
    }
    let tz = range.tz.name();
    let items: Vec<views::UsageRow> = rows
        .into_iter()
        .map(|r| views::UsageRow {
            date: r.date.to_string(),
            denials: r.denials,
            distinct_users: r.distinct_users,
            group: r.group,
            license_id: r.license_id,
            peak_concurrent: r.peak_concurrent,
            product: r.product,
            seat_hours: seat_hours(r.seat_ms),
            seats: r.seats,
            tz: tz.to_string(),
        })
        .collect();
    Ok(Json(items).into_response())
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
        let denials = vec![("L".to_string(), t0 + 23 * 3_600_000 + 45 * 60_000, 2)];
        let rows = compute(&[license("L")], &intervals, &denials, d0, d1, Tz::UTC, t0 + 10 * 86_400_000);
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
        let csv = to_csv(&rows, Tz::UTC);
        assert!(csv.starts_with(CSV_HEADER));
        assert!(csv.contains("2026-03-01,L,readyapi,\"QA, \"\"core\"\"\",3,2,7.00,2,3,UTC\r\n"), "{csv}");
    }

    #[test]
    fn live_leases_count_until_now_and_future_days_are_left_out() {
        let d0: Date = parse_day("d", "2026-03-01").unwrap();
        let t0 = clock::day_start(d0);
        let now = t0 + 12 * 3_600_000;
        let intervals = vec![iv("a", 10.0, 100.0, t0)];
        let rows = compute(&[license("L")], &intervals, &[], d0, d0.next_day().unwrap(), Tz::UTC, now);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].seat_ms, 2 * 3_600_000);
    }

    #[test]
    fn days_follow_the_zone_including_dst_changes() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let d = |s| parse_day("d", s).unwrap();
        // 2026-03-29: clocks go forward in Berlin, the day has 23 hours.
        let (sat, sun, mon) = (d("2026-03-28"), d("2026-03-29"), d("2026-03-30"));
        assert_eq!(day_start_in(sun, berlin), clock::day_start(sun) - 3_600_000);
        assert_eq!(day_start_in(mon, berlin) - day_start_in(sun, berlin), 23 * 3_600_000);
        // A seat from 23:30 to 00:30 Berlin time on Saturday night falls on two Berlin days.
        let start = day_start_in(sun, berlin) - 1_800_000;
        let intervals = vec![Interval { license_id: "L".into(), user_id: "a".into(), start, end: start + 3_600_000 }];
        // Refused at 23:45 on Saturday and at 00:00 on Sunday, Berlin time (22:45 and 23:00 UTC).
        let denials = vec![("L".to_string(), start + 900_000, 4), ("L".to_string(), start + 1_800_000, 1)];
        let now = clock::day_start(mon) + 86_400_000 * 3;
        let rows = compute(&[license("L")], &intervals, &denials, sat, sun, berlin, now);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].seat_ms, rows[0].denials), (1_800_000, 4));
        assert_eq!((rows[1].seat_ms, rows[1].denials), (1_800_000, 1));
        // In UTC the same seat and refusals are one day's (22:30 to 23:30 UTC).
        let utc = compute(&[license("L")], &intervals, &denials, sat, sun, Tz::UTC, now);
        assert_eq!((utc[0].seat_ms, utc[1].seat_ms), (3_600_000, 0));
        assert_eq!((utc[0].denials, utc[1].denials), (5, 0));
        assert!(parse_tz(Some("Mars/Olympus")).is_err());
        assert_eq!(parse_tz(None).unwrap(), Tz::UTC);
        assert!(to_csv(&rows, berlin).contains(",Europe/Berlin\r\n"));
    }

    #[test]
    fn a_refusal_counts_on_its_local_date_in_every_zone() {
        let d = |s| parse_day("d", s).unwrap();
        let at = |s| clock::parse_rfc3339(s).unwrap();
        let (nov30, dec1) = (d("2026-11-30"), d("2026-12-01"));
        let now = at("2026-12-03T00:00:00Z");
        // Local times just before and after midnight, in zones with whole, half and quarter hour offsets.
        for (zone, before, after) in [
            ("Europe/Berlin", "2026-11-30T23:59:59+01:00", "2026-12-01T00:00:00+01:00"),
            ("America/New_York", "2026-11-30T23:59:59-05:00", "2026-12-01T00:00:00-05:00"),
            ("Asia/Kolkata", "2026-11-30T23:59:59+05:30", "2026-12-01T00:00:00+05:30"),
            ("Asia/Kathmandu", "2026-11-30T23:59:59+05:45", "2026-12-01T00:00:00+05:45"),
            ("Pacific/Chatham", "2026-11-30T23:59:59+13:45", "2026-12-01T00:00:00+13:45"),
        ] {
            let tz: Tz = zone.parse().unwrap();
            let denials =
                vec![("L".to_string(), refusal_slot(at(before)), 2), ("L".to_string(), refusal_slot(at(after)), 3)];
            let rows = compute(&[license("L")], &[], &denials, nov30, dec1, tz, now);
            assert_eq!((rows[0].date, rows[0].denials), (nov30, 2), "{zone}");
            assert_eq!((rows[1].date, rows[1].denials), (dec1, 3), "{zone}");
        }
        assert_eq!(refusal_slot(at("2026-11-30T23:44:59.999Z")), at("2026-11-30T23:30:00Z"));
        assert_eq!(refusal_slot(at("2026-11-30T23:45:00Z")), at("2026-11-30T23:45:00Z"));
    }

    #[test]
    fn csv_neutralises_formulas() {
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("plain"), "plain");
    }
}
