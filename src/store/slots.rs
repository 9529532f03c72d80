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
//! Lowering a license's seats deletes free slots; slots held by live leases stay with them (a
//! running product is never cut off) and count in `licenses.seat_surplus`. While that is above
//! zero, a slot that frees is deleted instead of being claimed, under the license's row lock, until
//! the license has as many slots as seats: so no checkout is granted before fewer leases than the
//! new number of seats are live. Invariant: slots of a floating license = seats + seat_surplus.

use sqlx::AnyConnection;

use super::Backend;
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
