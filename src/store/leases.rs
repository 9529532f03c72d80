//! Seat leases and denials. A lease is live while `ended_at IS NULL AND expires_at > now`.

use sqlx::{AnyExecutor, FromRow};

use super::Backend;
use crate::clock::Millis;

#[derive(Debug, Clone, FromRow)]
pub struct Lease {
    pub id: String,
    pub license_id: String,
    pub user_id: String,
    pub machine: Option<String>,
    pub machine_hash: String,
    pub created_at: Millis,
    pub last_heartbeat_at: Millis,
    pub expires_at: Millis,
    pub idle_seconds: i64,
    pub ended_at: Option<Millis>,
    pub end_reason: Option<String>,
}

const LEASE_COLS: &str = "id, license_id, user_id, machine, machine_hash, created_at, last_heartbeat_at, expires_at, \
                          idle_seconds, ended_at, end_reason";

pub async fn insert<'e>(db: impl AnyExecutor<'e>, l: &Lease) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO leases (id, license_id, user_id, machine, machine_hash, created_at, last_heartbeat_at, expires_at, idle_seconds) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&l.id)
    .bind(&l.license_id)
    .bind(&l.user_id)
    .bind(&l.machine)
    .bind(&l.machine_hash)
    .bind(l.created_at)
    .bind(l.last_heartbeat_at)
    .bind(l.expires_at)
    .bind(l.idle_seconds)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn by_id<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<Option<Lease>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {LEASE_COLS} FROM leases WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// With a machine: that computer's live lease of the user on the license (one index probe,
/// however many seats the user holds). Without: any live lease of the user on the license.
pub async fn live_of_user<'e>(
    db: impl AnyExecutor<'e>,
    user_id: &str,
    license_id: &str,
    machine_hash: Option<&str>,
    now: Millis,
) -> sqlx::Result<Option<Lease>> {
    let live = "user_id = $1 AND license_id = $2 AND ended_at IS NULL AND expires_at > $3";
    let q = match machine_hash {
        Some(m) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {LEASE_COLS} FROM leases WHERE {live} AND machine_hash = $4 LIMIT 1"
        )))
        .bind(user_id)
        .bind(license_id)
        .bind(now)
        .bind(m.to_string()),
        None => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {LEASE_COLS} FROM leases WHERE {live} LIMIT 1")))
            .bind(user_id)
            .bind(license_id)
            .bind(now),
    };
    q.fetch_optional(db).await
}

pub async fn count_live<'e>(db: impl AnyExecutor<'e>, license_id: &str, now: Millis) -> sqlx::Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM leases WHERE license_id = $1 AND ended_at IS NULL AND expires_at > $2")
            .bind(license_id)
            .bind(now)
            .fetch_one(db)
            .await?;
    Ok(n)
}

/// Extend a live lease (a heartbeat, or a re-run on the same machine). Returns false when the lease
/// is not live any more.
pub async fn extend<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    now: Millis,
    expires_at: Millis,
    idle_seconds: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE leases SET last_heartbeat_at = $1, expires_at = $2, idle_seconds = $3 \
         WHERE id = $4 AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(expires_at)
    .bind(idle_seconds)
    .bind(id)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// What a heartbeat learns about its lease and license.
#[derive(Debug, Clone, FromRow)]
pub struct Beat {
    pub license_id: String,
    pub machine: Option<String>,
    pub idle_timeout_s: Option<i64>,
    pub license_expires_at: Option<Millis>,
    pub product: String,
}

pub struct BeatArgs<'a> {
    pub lease_id: &'a str,
    pub user_id: &'a str,
    /// The caller's session and token: a revoked one cannot keep a seat.
    pub sid: &'a str,
    pub jti: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
    pub idle_seconds: i64,
}

/// The heartbeat in one statement: extend the caller's live lease unless its session or its access
/// token was revoked, and read back the license's policy. `None`: the caller finds out why.
/// Requests go through [`crate::store::heartbeats`], which writes them in batches with
/// [`heartbeat_batch`] (the same checks, row by row) and falls back to this one when a batch fails.
///
/// On PostgreSQL this statement's own (implicit) transaction commits with `synchronous_commit` off,
/// set for that transaction alone (`set_config(.., true)` is `SET LOCAL`): the commit returns
/// without waiting for the WAL flush, which the WAL writer does within `3 × wal_writer_delay`
/// (600 ms by default), many heartbeats per flush. A crash can lose the heartbeats of that last
/// fraction of a second: those leases then look one heartbeat older, far inside the lease TTL, and
/// their products' next heartbeat extends them again. Nothing else is affected: the setting ends
/// with the transaction, a lease's expiry is still read from its row by every replica, and a
/// checkout, release or disconnect commits synchronously as before. It must therefore run on the
/// pool (or a connection outside any transaction), never inside a caller's transaction.
/// SQLite runs in WAL mode with `synchronous = NORMAL`, where no commit waits for an fsync.
pub async fn heartbeat<'e>(db: impl AnyExecutor<'e>, backend: Backend, a: &BeatArgs<'_>) -> sqlx::Result<Option<Beat>> {
    // `user_id || ''`: the owner is checked, but never through leases_live_by_user. Before the
    // table's statistics catch up with a burst of checkouts, PostgreSQL's planner may find that
    // index as cheap as the primary key and then filter every live lease of the user on each
    // heartbeat (measured: ~5 ms a heartbeat for a user holding 5,000 seats). The primary key it is.
    const BEAT: &str = "UPDATE leases SET last_heartbeat_at = $1, expires_at = $2, idle_seconds = $3 {from} \
         WHERE id = $4 AND user_id || '' = $5 AND ended_at IS NULL AND expires_at > $1 \
           AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = $6 AND f.revoked_at IS NOT NULL) \
           AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = $7) \
           AND NOT EXISTS (SELECT 1 FROM offline_licenses o WHERE o.lease_id = leases.id) \
         RETURNING license_id, machine, \
           (SELECT c.idle_timeout_s FROM licenses c WHERE c.id = leases.license_id) AS idle_timeout_s, \
           (SELECT c.expires_at FROM licenses c WHERE c.id = leases.license_id) AS license_expires_at, \
           (SELECT p.sku FROM licenses c JOIN products p ON p.id = c.product_id WHERE c.id = leases.license_id) AS product";
    static SQLITE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| BEAT.replace("{from} ", ""));
    static POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH no_flush_wait AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)) {}",
            BEAT.replace("{from}", "FROM no_flush_wait")
        )
    });
    let sql: &'static str = match backend {
        Backend::Sqlite => SQLITE.as_str(),
        Backend::Postgres => POSTGRES.as_str(),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(a.now)
        .bind(a.expires_at)
        .bind(a.idle_seconds)
        .bind(a.lease_id)
        .bind(a.user_id)
        .bind(a.sid)
        .bind(a.jti)
        .fetch_optional(db)
        .await
}

/// Several heartbeats of different leases in one statement, and so one transaction and one
/// commit: each row gets exactly the checks of [`heartbeat`] (the owner, the caller's session and
/// access token not revoked, not an offline license file's seat, the lease live at that beat's own
/// `now`), and the answer for each beat, in the order given, is what [`heartbeat`] would have
/// answered alone. The beats travel as one JSON array bound as a single parameter (the `Any`
/// driver binds no arrays), unpacked by `json_to_recordset` on PostgreSQL and `json_each` on SQLite.
///
/// The lease ids must be distinct: an `UPDATE .. FROM` whose source names one row twice updates it
/// once and returns it once. [`crate::store::heartbeats`] makes sure of it, and passes them sorted
/// by id, so two batches running at once lock their rows in the same order.
///
/// On PostgreSQL the transaction commits with `synchronous_commit` off, as [`heartbeat`] does; it
/// must run on the pool, never inside a caller's transaction. The license and product are joined
/// once per row instead of read by three subqueries (PostgreSQL may return the `FROM` tables'
/// columns; SQLite may not, so it keeps the subqueries).
pub async fn heartbeat_batch<'e>(
    db: impl AnyExecutor<'e>,
    backend: Backend,
    beats: &[BeatArgs<'_>],
) -> sqlx::Result<Vec<Option<Beat>>> {
    const POSTGRES: &str = "WITH no_flush_wait AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true)) \
         UPDATE leases l SET last_heartbeat_at = b.beat_at, expires_at = b.expires, idle_seconds = b.idle \
         FROM no_flush_wait, \
           json_to_recordset($1::json) AS b(lease text, owner text, sid text, jti text, beat_at bigint, expires bigint, idle bigint), \
           licenses c JOIN products p ON p.id = c.product_id \
         WHERE l.id = b.lease AND l.user_id || '' = b.owner AND l.ended_at IS NULL AND l.expires_at > b.beat_at \
           AND c.id = l.license_id \
           AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = b.sid AND f.revoked_at IS NOT NULL) \
           AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = b.jti) \
           AND NOT EXISTS (SELECT 1 FROM offline_licenses o WHERE o.lease_id = l.id) \
         RETURNING l.id, l.license_id, l.machine, c.idle_timeout_s, c.expires_at AS license_expires_at, p.sku AS product";
    const SQLITE: &str = "UPDATE leases SET last_heartbeat_at = b.beat_at, expires_at = b.expires, idle_seconds = b.idle \
         FROM (SELECT value ->> 'lease' AS lease, value ->> 'owner' AS owner, value ->> 'sid' AS sid, \
                 value ->> 'jti' AS jti, value ->> 'beat_at' AS beat_at, value ->> 'expires' AS expires, \
                 value ->> 'idle' AS idle FROM json_each($1)) AS b \
         WHERE leases.id = b.lease AND leases.user_id || '' = b.owner AND leases.ended_at IS NULL \
           AND leases.expires_at > b.beat_at \
           AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = b.sid AND f.revoked_at IS NOT NULL) \
           AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = b.jti) \
           AND NOT EXISTS (SELECT 1 FROM offline_licenses o WHERE o.lease_id = leases.id) \
         RETURNING id, license_id, machine, \
           (SELECT c.idle_timeout_s FROM licenses c WHERE c.id = leases.license_id) AS idle_timeout_s, \
           (SELECT c.expires_at FROM licenses c WHERE c.id = leases.license_id) AS license_expires_at, \
           (SELECT p.sku FROM licenses c JOIN products p ON p.id = c.product_id WHERE c.id = leases.license_id) AS product";
    #[derive(serde::Serialize)]
    struct Row<'a> {
        lease: &'a str,
        owner: &'a str,
        sid: &'a str,
        jti: &'a str,
        beat_at: Millis,
        expires: Millis,
        idle: i64,
    }
    #[derive(FromRow)]
    struct Beaten {
        id: String,
        #[sqlx(flatten)]
        beat: Beat,
    }
    if beats.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = beats
        .iter()
        .map(|a| Row {
            lease: a.lease_id,
            owner: a.user_id,
            sid: a.sid,
            jti: a.jti,
            beat_at: a.now,
            expires: a.expires_at,
            idle: a.idle_seconds,
        })
        .collect();
    let json = serde_json::to_string(&rows).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let sql = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    let beaten: Vec<Beaten> = sqlx::query_as(sql).bind(json).fetch_all(db).await?;
    let mut by_id: std::collections::HashMap<String, Beat> = beaten.into_iter().map(|b| (b.id, b.beat)).collect();
    Ok(beats.iter().map(|a| by_id.remove(a.lease_id)).collect())
}

/// A license the user may draw a seat of `product` from.
#[derive(Debug, Clone, FromRow)]
pub struct Candidate {
    pub id: String,
    pub kind: String,
    pub seats: i64,
    pub expires_at: Option<Millis>,
}

pub async fn candidates<'e>(db: impl AnyExecutor<'e>, user_id: &str, product: &str) -> sqlx::Result<Vec<Candidate>> {
    sqlx::query_as(
        "SELECT l.id, l.kind, l.seats, l.expires_at FROM assignments a \
         JOIN licenses l ON l.id = a.license_id JOIN products p ON p.id = l.product_id \
         WHERE a.user_id = $1 AND p.sku = $2 AND a.suspended_at IS NULL",
    )
    .bind(user_id)
    .bind(product)
    .fetch_all(db)
    .await
}

/// [`candidates`] and, in the same statement, whether the caller's access token was revoked (itself,
/// its `jti`, or its session `sid`, exactly as `store::tokens::access_revoked` decides): the
/// checkout pays one round trip for both. `(revoked, candidates)`.
pub async fn candidates_unless_revoked<'e>(
    db: impl AnyExecutor<'e>,
    user_id: &str,
    product: &str,
    sid: &str,
    jti: &str,
) -> sqlx::Result<(bool, Vec<Candidate>)> {
    #[derive(FromRow)]
    struct Row {
        revoked: i64,
        id: Option<String>,
        kind: Option<String>,
        seats: Option<i64>,
        expires_at: Option<Millis>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.revoked, c.id, c.kind, c.seats, c.expires_at FROM ( \
           SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = $3 AND COALESCE(f.revoked_at, 0) = 0) \
             AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens t WHERE t.jti = $4) THEN 0 ELSE 1 END AS BIGINT) AS revoked) r \
         LEFT JOIN ( \
           SELECT l.id, l.kind, l.seats, l.expires_at FROM assignments a \
           JOIN licenses l ON l.id = a.license_id JOIN products p ON p.id = l.product_id \
           WHERE a.user_id = $1 AND p.sku = $2 AND a.suspended_at IS NULL) c ON 1 = 1",
    )
    .bind(user_id)
    .bind(product)
    .bind(sid)
    .bind(jti)
    .fetch_all(db)
    .await?;
    let revoked = rows.first().is_none_or(|r| r.revoked != 0);
    let candidates = rows
        .into_iter()
        .filter_map(|r| Some(Candidate { id: r.id?, kind: r.kind?, seats: r.seats?, expires_at: r.expires_at }))
        .collect();
    Ok((revoked, candidates))
}

pub async fn end<'e>(db: impl AnyExecutor<'e>, id: &str, reason: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE leases SET ended_at = $1, end_reason = $2 WHERE id = $3 AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(reason)
    .bind(id)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn end_all_of_user_on_license<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    user_id: &str,
    reason: &str,
    now: Millis,
) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE leases SET ended_at = $1, end_reason = $2 \
         WHERE license_id = $3 AND user_id = $4 AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(reason)
    .bind(license_id)
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

#[derive(Debug, Clone, FromRow)]
pub struct SeatRow {
    pub id: String,
    pub email: String,
    pub machine: Option<String>,
    pub created_at: Millis,
    pub last_heartbeat_at: Millis,
    pub idle_seconds: i64,
    pub expires_at: Millis,
}

pub async fn live_seats<'e>(db: impl AnyExecutor<'e>, license_id: &str, now: Millis) -> sqlx::Result<Vec<SeatRow>> {
    sqlx::query_as(
        "SELECT l.id, u.email, l.machine, l.created_at, l.last_heartbeat_at, l.idle_seconds, l.expires_at \
         FROM leases l JOIN users u ON u.id = l.user_id \
         WHERE l.license_id = $1 AND l.ended_at IS NULL AND l.expires_at > $2 ORDER BY l.created_at",
    )
    .bind(license_id)
    .bind(now)
    .fetch_all(db)
    .await
}

/// Count a refused checkout in the quarter hour `slot` (its first instant, see
/// `licenses::reports::refusal_slot`).
pub async fn record_denial<'e>(db: impl AnyExecutor<'e>, license_id: &str, slot: Millis) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO seat_refusals (license_id, at, denials) VALUES ($1, $2, 1) \
         ON CONFLICT (license_id, at) DO UPDATE SET denials = seat_refusals.denials + 1",
    )
    .bind(license_id)
    .bind(slot)
    .execute(db)
    .await
    .map(|_| ())
}

/// A lease as a usage interval: [start, end) in unix ms.
#[derive(Debug, Clone, FromRow)]
pub struct Interval {
    pub license_id: String,
    pub user_id: String,
    pub start: Millis,
    pub end: Millis,
}

/// Every lease of the entity's licenses that overlaps [from, to).
pub async fn intervals<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    from: Millis,
    to: Millis,
) -> sqlx::Result<Vec<Interval>> {
    sqlx::query_as(
        "SELECT l.license_id, l.user_id, l.created_at AS start, COALESCE(l.ended_at, l.expires_at) AS \"end\" \
         FROM leases l JOIN licenses c ON c.id = l.license_id \
         WHERE c.entity_id = $1 AND l.created_at < $3 AND COALESCE(l.ended_at, l.expires_at) > $2",
    )
    .bind(entity_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// The refused checkouts of the entity's licenses in [from, to), per license and quarter hour.
pub async fn denials<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    from: Millis,
    to: Millis,
) -> sqlx::Result<Vec<(String, Millis, i64)>> {
    sqlx::query_as(
        "SELECT d.license_id, d.at, d.denials FROM seat_refusals d JOIN licenses c ON c.id = d.license_id \
         WHERE c.entity_id = $1 AND d.at >= $2 AND d.at < $3",
    )
    .bind(entity_id)
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// One page of a license's live seats, oldest first.
/// A page of a license's live seats in the order they were taken (at most `limit`). Their key is
/// `<created_at>.<id>` (see [`seat_key`]).
pub async fn live_seat_page<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    now: Millis,
    at: &super::Keyset,
    limit: i64,
) -> sqlx::Result<Vec<SeatRow>> {
    let key = at.key().and_then(parse_seat_key);
    let (cond, order) = match (at, &key) {
        (super::Keyset::After(_), Some(_)) => (" AND (l.created_at > $4 OR (l.created_at = $4 AND l.id > $5))", "ASC"),
        (super::Keyset::Before(_), Some(_)) => {
            (" AND (l.created_at < $4 OR (l.created_at = $4 AND l.id < $5))", "DESC")
        }
        (super::Keyset::Last, _) => ("", "DESC"),
        // The first page, also for a key that is not one.
        _ => ("", "ASC"),
    };
    let sql = format!(
        "SELECT l.id, u.email, l.machine, l.created_at, l.last_heartbeat_at, l.idle_seconds, l.expires_at \
         FROM leases l JOIN users u ON u.id = l.user_id \
         WHERE l.license_id = $1 AND l.ended_at IS NULL AND l.expires_at > $2{cond} \
         ORDER BY l.created_at {order}, l.id {order} LIMIT $3"
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(license_id).bind(now).bind(limit);
    if !cond.is_empty()
        && let Some((at_ms, id)) = key
    {
        q = q.bind(at_ms).bind(id);
    }
    let mut rows: Vec<SeatRow> = q.fetch_all(db).await?;
    if order == "DESC" {
        rows.reverse();
    }
    Ok(rows)
}

/// A seat's place in the seat list: `<created_at>.<id>`.
pub fn seat_key(s: &SeatRow) -> String {
    format!("{}.{}", s.created_at, s.id)
}

fn parse_seat_key(k: &str) -> Option<(Millis, String)> {
    let (at, id) = k.split_once('.')?;
    Some((at.parse().ok()?, id.to_string()))
}

/// (license id, live seats) of every license of an entity that has any.
pub async fn live_counts_of_entity<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    now: Millis,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT l.license_id, COUNT(*) FROM leases l JOIN licenses c ON c.id = l.license_id \
         WHERE c.entity_id = $1 AND l.ended_at IS NULL AND l.expires_at > $2 GROUP BY l.license_id",
    )
    .bind(entity_id)
    .bind(now)
    .fetch_all(db)
    .await
}

/// A live seat of a user, as they see it.
#[derive(Debug, Clone, FromRow)]
pub struct OwnSeat {
    pub id: String,
    pub license_id: String,
    pub product_name: String,
    pub kind: String,
    pub machine: Option<String>,
    pub created_at: Millis,
    pub last_heartbeat_at: Millis,
    pub idle_seconds: i64,
}

pub async fn live_seats_of_user<'e>(
    db: impl AnyExecutor<'e>,
    user_id: &str,
    now: Millis,
) -> sqlx::Result<Vec<OwnSeat>> {
    sqlx::query_as(
        "SELECT l.id, l.license_id, p.name AS product_name, c.kind, l.machine, l.created_at, l.last_heartbeat_at, l.idle_seconds \
         FROM leases l JOIN licenses c ON c.id = l.license_id JOIN products p ON p.id = c.product_id \
         WHERE l.user_id = $1 AND l.ended_at IS NULL AND l.expires_at > $2 ORDER BY l.created_at",
    )
    .bind(user_id)
    .bind(now)
    .fetch_all(db)
    .await
}
