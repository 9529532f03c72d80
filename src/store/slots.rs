//! Seat slots: a floating license has one row per seat in `seat_slots`, and a checkout claims one
//! (migrations `0009_seat_slots.sql`). A live floating lease holds exactly one slot, so a license
//! never has more live leases than slots; checkouts of one license do not queue behind one row
//! lock, and their cost does not grow with the pool: a claim is one probe of the
//! `(license_id, expires_at)` index.
//!
//! A slot is free when it names no lease (`lease_id` NULL, `expires_at` 0) or when its lease is no
//! longer live. A slot's `expires_at` is a lower bound of its lease's expiry: heartbeats extend only
//! the lease row (one heap-only update, as before), so a claim that meets a slot whose bound has
//! passed reads the lease and either takes the slot (the lease lapsed: a crashed product) or moves
//! the bound up to the lease's expiry and looks further. Each slot is moved up at most once per
//! lease TTL, so that work stays small and bounded whatever the pool. Ending a lease (release,
//! disconnect, idle, unassignment, license expiry) frees its slot in the same statement, by the
//! trigger `leases_end_frees_slot`.
//!
//! On PostgreSQL claims take their slot with `FOR UPDATE SKIP LOCKED`: concurrent checkouts of one
//! license, on any replica, each lock a different slot, and one that finds every free slot locked
//! by others is refused (those others are taking them). SQLite has a single writer (every write
//! transaction starts with `BEGIN IMMEDIATE`), which makes the plain claim exact.
//!
//! A checkout on PostgreSQL (off-premise) is bound by round trips, not by the database's work, so
//! there the common case is two statements under `BEGIN`/`COMMIT`: [`lock_and_probe`] (the
//! assignment's lock, the license's export, the caller's lease on that computer) and
//! [`claim_folded`] (the same probe as [`claim`], the slot's update, the lease's insert and its
//! audit event, as data-modifying CTEs of one statement; a slot whose bound has passed while its
//! lease is live has its bound moved up between two tries, as in [`claim`]). A pool with no free
//! slot, or with a surplus, falls back to [`claim`].
//!
//! Lowering a license's seats deletes free slots; slots held by live leases stay with them (a
//! running product is never cut off) and count in `licenses.seat_surplus`. While that is above
//! zero, a slot that frees is deleted instead of being claimed, under the license's row lock, until
//! the license has as many slots as seats: so no checkout is granted before fewer leases than the
//! new number of seats are live. Invariant: slots of a floating license = seats + seat_surplus.

use sqlx::{AnyConnection, FromRow, Row};

use super::{Backend, audit::EventRow, leases::Lease};
use crate::clock::Millis;

/// Take the caller's assignment to the license for this transaction, so that two checkouts of the
/// same user and license (a product re-run racing itself) find one another's lease, and a
/// concurrent revocation (or suspension) either waits for the checkout or makes it find no
/// assignment. Returns false when the user is not (any more) assigned, or the assignment is suspended. Checkouts of other users are not held up.
pub async fn lock_assignment(
    conn: &mut AnyConnection,
    backend: Backend,
    license_id: &str,
    user_id: &str,
) -> sqlx::Result<bool> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT user_id FROM assignments WHERE license_id = $1 AND user_id = $2 AND suspended_at IS NULL \
             FOR NO KEY UPDATE"
        }
        // The transaction already holds the database's only write lock.
        Backend::Sqlite => {
            "SELECT user_id FROM assignments WHERE license_id = $1 AND user_id = $2 AND suspended_at IS NULL"
        }
    };
    let row: Option<(String,)> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(license_id).bind(user_id).fetch_optional(conn).await?;
    Ok(row.is_some())
}

/// What [`lock_and_probe`] finds under the assignment's lock.
pub struct Assigned {
    /// The host of the on-premise server the license is exported to, if it is.
    pub exported_to: Option<String>,
    /// The caller's live lease of the license (on `machine_hash`, when given).
    pub mine: Option<Lease>,
}

#[derive(FromRow)]
struct AssignedRow {
    exported_to: Option<String>,
    id: Option<String>,
    license_id: Option<String>,
    user_id: Option<String>,
    machine: Option<String>,
    machine_hash: Option<String>,
    created_at: Option<Millis>,
    last_heartbeat_at: Option<Millis>,
    expires_at: Option<Millis>,
    idle_seconds: Option<i64>,
}

/// PostgreSQL, a server that is not on-premise: [`lock_assignment`], the license's export in force
/// (`store::onprem::active_export`) and the caller's live lease (`store::leases::live_of_user`) in
/// one statement. `None`: not (any more) assigned, or suspended.
///
/// The lease is read from the statement's snapshot, taken before the lock was granted: when the
/// lock was waited for, a lease its holder committed meanwhile is not seen here. [`claim_folded`]
/// looks again in a snapshot of its own, after the lock, and reports such a lease.
pub async fn lock_and_probe(
    conn: &mut AnyConnection,
    license_id: &str,
    user_id: &str,
    machine_hash: Option<&str>,
    now: Millis,
) -> sqlx::Result<Option<Assigned>> {
    const SQL: &str = "SELECT (SELECT x.server_host FROM onprem_exports x WHERE x.license_id = $1 AND x.returned_at IS NULL \
           AND x.expires_at > $3 ORDER BY x.issued_at DESC LIMIT 1) AS exported_to, \
         m.id, m.license_id, m.user_id, m.machine, m.machine_hash, m.created_at, m.last_heartbeat_at, m.expires_at, \
         m.idle_seconds \
         FROM assignments a LEFT JOIN LATERAL (SELECT l.id, l.license_id, l.user_id, l.machine, l.machine_hash, \
           l.created_at, l.last_heartbeat_at, l.expires_at, l.idle_seconds FROM leases l \
           WHERE l.user_id = $2 AND l.license_id = $1 AND l.ended_at IS NULL AND l.expires_at > $3 {machine} LIMIT 1) m ON true \
         WHERE a.license_id = $1 AND a.user_id = $2 AND a.suspended_at IS NULL FOR NO KEY UPDATE OF a";
    static ANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| SQL.replace("{machine} ", ""));
    static ON_MACHINE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| SQL.replace("{machine}", "AND l.machine_hash = $4"));
    let row: Option<AssignedRow> = match machine_hash {
        Some(m) => {
            sqlx::query_as(sqlx::AssertSqlSafe(ON_MACHINE.as_str()))
                .bind(license_id)
                .bind(user_id)
                .bind(now)
                .bind(m.to_string())
                .fetch_optional(conn)
                .await?
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(ANY.as_str()))
                .bind(license_id)
                .bind(user_id)
                .bind(now)
                .fetch_optional(conn)
                .await?
        }
    };
    Ok(row.map(|r| Assigned {
        exported_to: r.exported_to,
        mine: match (r.id, r.license_id, r.user_id, r.machine_hash) {
            (Some(id), Some(license_id), Some(user_id), Some(machine_hash)) => Some(Lease {
                id,
                license_id,
                user_id,
                machine: r.machine,
                machine_hash,
                created_at: r.created_at.unwrap_or_default(),
                last_heartbeat_at: r.last_heartbeat_at.unwrap_or_default(),
                expires_at: r.expires_at.unwrap_or_default(),
                idle_seconds: r.idle_seconds.unwrap_or_default(),
                ended_at: None,
                end_reason: None,
            }),
            _ => None,
        },
    }))
}

/// What [`claim_folded`] did.
pub enum Claimed {
    /// The slot is the lease's; the lease and its audit event are written.
    Granted,
    /// Nothing written: the caller's live lease on this computer, committed by a checkout that held
    /// the assignment's lock before this one (a product re-run racing itself).
    Mine(String),
    /// Nothing written: no free slot without the license's lock (every seat taken, or the seats
    /// were lowered: [`claim`] decides).
    NoFreeSlot,
}

/// PostgreSQL: [`claim`] for a new floating lease, the lease's insert and its audit event in one
/// statement (data-modifying CTEs), under the caller's assignment lock ([`lock_and_probe`]). The
/// slot is taken as by [`claim`] (the same probe, `FOR UPDATE SKIP LOCKED`, honouring the
/// surplus); a slot whose bound has passed but whose lease is live has its bound moved up, and the
/// claim looks again. `event`: the row of `seat.checked_out` and its license (None: auditing off).
pub async fn claim_folded(
    conn: &mut AnyConnection,
    lease: &Lease,
    event: Option<&(EventRow, String)>,
    now: Millis,
) -> sqlx::Result<Claimed> {
    const SQL: &str = "WITH cand AS MATERIALIZED ( \
           SELECT s.slot, (SELECT l.expires_at FROM leases l WHERE l.id = s.lease_id AND l.ended_at IS NULL \
             AND l.expires_at > $2) AS live_until \
           FROM seat_slots s WHERE s.license_id = $1 AND s.expires_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM licenses c WHERE c.id = $1 AND c.seat_surplus > 0) \
           ORDER BY s.expires_at LIMIT 1 FOR UPDATE OF s SKIP LOCKED), \
         mine AS MATERIALIZED ( \
           SELECT l.id FROM leases l WHERE l.user_id = $3 AND l.license_id = $1 AND l.ended_at IS NULL \
             AND l.expires_at > $2 AND l.machine_hash = $4 LIMIT 1), \
         took AS ( \
           UPDATE seat_slots t SET lease_id = $5, expires_at = $6 FROM cand \
           WHERE t.license_id = $1 AND t.slot = cand.slot AND cand.live_until IS NULL AND NOT EXISTS (SELECT 1 FROM mine) \
           RETURNING t.slot), \
         lease AS ( \
           INSERT INTO leases (id, license_id, user_id, machine, machine_hash, created_at, last_heartbeat_at, expires_at, \
             idle_seconds) SELECT $5, $1, $3, $7, $4, $2, $2, $6, 0 FROM took RETURNING id){event} \
         SELECT (SELECT slot FROM cand) AS slot, (SELECT live_until FROM cand) AS live_until, \
           (SELECT id FROM mine) AS mine, (SELECT COUNT(*) FROM lease) AS granted";
    static PLAIN: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| SQL.replace("{event}", ""));
    static AUDITED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let insert = super::audit::event_of_license_sql(8, "EXISTS (SELECT 1 FROM lease)");
        SQL.replace("{event}", &format!(", event AS ({insert})"))
    });
    loop {
        let sql = if event.is_some() { AUDITED.as_str() } else { PLAIN.as_str() };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease.license_id.clone())
            .bind(now)
            .bind(lease.user_id.clone())
            .bind(lease.machine_hash.clone())
            .bind(lease.id.clone())
            .bind(lease.expires_at)
            .bind(lease.machine.clone());
        if let Some((row, license_id)) = event {
            q = super::audit::bind_event_of_license(q, row, license_id);
        }
        let r = q.fetch_one(&mut *conn).await?;
        let slot: Option<i64> = r.try_get("slot")?;
        let live_until: Option<Millis> = r.try_get("live_until")?;
        let mine: Option<String> = r.try_get("mine")?;
        let granted: i64 = r.try_get("granted")?;
        if granted == 1 {
            return Ok(Claimed::Granted);
        }
        if let Some(id) = mine {
            return Ok(Claimed::Mine(id));
        }
        match (slot, live_until) {
            (Some(slot), Some(live_until)) => set_slot(conn, &lease.license_id, slot, None, live_until).await?,
            _ => return Ok(Claimed::NoFreeSlot),
        }
    }
}

/// Add free slots numbered after the license's last one.
pub async fn add(conn: &mut AnyConnection, license_id: &str, count: i64) -> sqlx::Result<()> {
    if count <= 0 {
        return Ok(());
    }
    let (next,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(slot) + 1, 0) FROM seat_slots WHERE license_id = $1")
        .bind(license_id)
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT CAST($2 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $3) \
         INSERT INTO seat_slots (license_id, slot, lease_id, expires_at) SELECT $1, i, NULL, 0 FROM n",
    )
    .bind(license_id)
    .bind(next)
    .bind(next + count)
    .execute(conn)
    .await?;
    Ok(())
}

/// One slot whose bound has passed, locked (PostgreSQL: skipping slots other transactions hold),
/// with its lease's expiry when that lease is still live.
async fn candidate(
    conn: &mut AnyConnection,
    backend: Backend,
    license_id: &str,
    now: Millis,
    honour_surplus: bool,
) -> sqlx::Result<Option<(i64, Option<Millis>)>> {
    const SELECT: &str = "SELECT s.slot, \
           (SELECT l.expires_at FROM leases l WHERE l.id = s.lease_id AND l.ended_at IS NULL AND l.expires_at > $2) \
             AS live_until \
         FROM seat_slots s WHERE s.license_id = $1 AND s.expires_at <= $2";
    const NO_SURPLUS: &str = " AND NOT EXISTS (SELECT 1 FROM licenses c WHERE c.id = $1 AND c.seat_surplus > 0)";
    let mut sql = String::from(SELECT);
    if honour_surplus {
        sql.push_str(NO_SURPLUS);
    }
    sql.push_str(" ORDER BY s.expires_at LIMIT 1");
    if backend == Backend::Postgres {
        sql.push_str(" FOR UPDATE OF s SKIP LOCKED");
    }
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(license_id).bind(now).fetch_optional(conn).await
}

async fn set_slot(
    conn: &mut AnyConnection,
    license_id: &str,
    slot: i64,
    lease_id: Option<&str>,
    expires_at: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE seat_slots SET lease_id = COALESCE($3, lease_id), expires_at = $4 WHERE license_id = $1 AND slot = $2",
    )
    .bind(license_id)
    .bind(slot)
    .bind(lease_id)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// A free slot, locked until the transaction ends: the bounds met on the way are moved up to their
/// leases' expiries.
async fn free_slot(
    conn: &mut AnyConnection,
    backend: Backend,
    license_id: &str,
    now: Millis,
    honour_surplus: bool,
) -> sqlx::Result<Option<i64>> {
    loop {
        match candidate(conn, backend, license_id, now, honour_surplus).await? {
            None => return Ok(None),
            Some((slot, None)) => return Ok(Some(slot)),
            Some((slot, Some(live_until))) => set_slot(conn, license_id, slot, None, live_until).await?,
        }
    }
}

async fn surplus(conn: &mut AnyConnection, license_id: &str) -> sqlx::Result<i64> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT seat_surplus FROM licenses WHERE id = $1").bind(license_id).fetch_optional(conn).await?;
    Ok(row.map_or(0, |r| r.0))
}

async fn set_surplus(conn: &mut AnyConnection, license_id: &str, surplus: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET seat_surplus = $1 WHERE id = $2")
        .bind(surplus)
        .bind(license_id)
        .execute(conn)
        .await
        .map(|_| ())
}

async fn delete_slot(conn: &mut AnyConnection, license_id: &str, slot: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM seat_slots WHERE license_id = $1 AND slot = $2")
        .bind(license_id)
        .bind(slot)
        .execute(conn)
        .await
        .map(|_| ())
}

/// Claim a free slot of the floating license for `lease_id` (inserted by the caller in the same
/// transaction), bounded by `expires_at`. `false`: every seat is taken.
pub async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    license_id: &str,
    lease_id: &str,
    now: Millis,
    expires_at: Millis,
) -> sqlx::Result<bool> {
    if let Some(slot) = free_slot(conn, backend, license_id, now, true).await? {
        set_slot(conn, license_id, slot, Some(lease_id), expires_at).await?;
        return Ok(true);
    }
    if surplus(conn, license_id).await? == 0 {
        return Ok(false);
    }
    // The seats were lowered below the live leases: retire free slots first, under the license's
    // lock (rare: only until the license is back to as many slots as seats).
    super::licenses::lock_license(&mut *conn, license_id).await?;
    let mut left = surplus(conn, license_id).await?;
    while left > 0 {
        let Some(slot) = free_slot(conn, backend, license_id, now, false).await? else { break };
        delete_slot(conn, license_id, slot).await?;
        left -= 1;
    }
    set_surplus(conn, license_id, left).await?;
    if left > 0 {
        return Ok(false);
    }
    match free_slot(conn, backend, license_id, now, false).await? {
        Some(slot) => {
            set_slot(conn, license_id, slot, Some(lease_id), expires_at).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The floating license's seats change from `from` to `to` (the caller holds the license's lock).
/// More seats: surplus slots count first, then new free slots. Fewer: free slots are deleted, the
/// rest of the difference becomes surplus (see the module's notes).
pub async fn resize(
    conn: &mut AnyConnection,
    backend: Backend,
    license_id: &str,
    from: i64,
    to: i64,
    now: Millis,
) -> sqlx::Result<()> {
    let mut left = surplus(conn, license_id).await?;
    if to >= from {
        let grow = to - from;
        let absorbed = grow.min(left);
        left -= absorbed;
        add(conn, license_id, grow - absorbed).await?;
    } else {
        if backend == Backend::Postgres {
            // Wait for the checkouts holding slots of this license, and keep new ones off them.
            sqlx::query("SELECT slot FROM seat_slots WHERE license_id = $1 FOR UPDATE")
                .bind(license_id)
                .fetch_all(&mut *conn)
                .await?;
        }
        let shrink = from - to;
        let r = sqlx::query(
            "DELETE FROM seat_slots WHERE license_id = $1 AND slot IN ( \
               SELECT s.slot FROM seat_slots s WHERE s.license_id = $1 AND NOT EXISTS ( \
                 SELECT 1 FROM leases l WHERE l.id = s.lease_id AND l.ended_at IS NULL AND l.expires_at > $2) \
               ORDER BY s.slot DESC LIMIT $3)",
        )
        .bind(license_id)
        .bind(now)
        .bind(shrink)
        .execute(&mut *conn)
        .await?;
        left += shrink - r.rows_affected() as i64;
    }
    set_surplus(conn, license_id, left).await
}

/// (slots, surplus) of a license: what the seat-limit tests check the invariant with.
pub async fn count(conn: &mut AnyConnection, license_id: &str) -> sqlx::Result<(i64, i64)> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM seat_slots WHERE license_id = $1")
        .bind(license_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok((n, surplus(conn, license_id).await?))
}
