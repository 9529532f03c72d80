//! Throttle counters, shared by every replica through the database: password attempts, device-code
//! guesses and mail quotas. Keys are keyed hashes with a short prefix per purpose; no address or
//! email is stored. Every decision is taken by one atomic statement on the counter's row, so two
//! requests (or two replicas) can never both see the same count.

use sqlx::AnyExecutor;

use crate::clock::Millis;

/// Backoff parameters of one counter: `free` attempts, then each further one doubles a waiting
/// time from 1 s up to `cap_ms`; quiet for `quiet_ms` and the count starts over.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub free: i64,
    pub cap_ms: Millis,
    pub quiet_ms: Millis,
}

impl Backoff {
    /// The wait after the `n`-th counted attempt (the same formula as the SQL of `take_attempt`).
    pub fn delay_after(&self, n: i64) -> Millis {
        if n <= self.free { 0 } else { (1000i64 << (n - self.free - 1).min(20)).min(self.cap_ms) }
    }
}

/// Count one attempt on `key` at `now`, unless the key is in its waiting time. Returns the
/// attempt's number within the current run when it was counted, `None` when it was refused (and
/// nothing changed). The row lock taken here is held until the caller's transaction ends.
pub async fn take_attempt<'e>(
    db: impl AnyExecutor<'e>,
    key: &str,
    b: &Backoff,
    now: Millis,
) -> sqlx::Result<Option<i64>> {
    // In SET, `login_throttle.x` is the row before this update (both dialects). The new count is
    // `failures + 1` (or 1 after a quiet spell); its wait is `delay_after(new count)`.
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO login_throttle (key, failures, window_start, blocked_until) VALUES ($1, 1, $2, $2 + $6) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.window_start <= $3 THEN 1 ELSE login_throttle.failures + 1 END, \
           blocked_until = CASE \
             WHEN login_throttle.window_start <= $3 THEN $2 + $6 \
             WHEN login_throttle.failures + 1 <= $4 THEN 0 \
             WHEN login_throttle.failures - $4 >= 20 THEN $2 + $5 \
             WHEN (CAST(1000 AS BIGINT) << CAST(login_throttle.failures - $4 AS INTEGER)) > $5 THEN $2 + $5 \
             ELSE $2 + (CAST(1000 AS BIGINT) << CAST(login_throttle.failures - $4 AS INTEGER)) END, \
           window_start = $2 \
         WHERE login_throttle.blocked_until <= $2 \
         RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .bind(now - b.quiet_ms)
    .bind(b.free)
    .bind(b.cap_ms)
    .bind(b.delay_after(1))
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(n,)| n))
}

/// The latest end of a waiting time among `keys` (0 when none waits).
pub async fn blocked_until<'e>(db: impl AnyExecutor<'e>, keys: &[&str]) -> sqlx::Result<Millis> {
    if keys.is_empty() {
        return Ok(0);
    }
    let marks: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT COALESCE(MAX(blocked_until), 0) FROM login_throttle WHERE key IN ({})", marks.join(", "));
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for k in keys {
        q = q.bind(*k);
    }
    let (latest,): (i64,) = q.fetch_one(db).await?;
    Ok(latest)
}

/// Take back one counted attempt that turned out to be legitimate, and its wait when the count
/// falls back within the free attempts.
pub async fn undo_attempt<'e>(db: impl AnyExecutor<'e>, key: &str, free: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE login_throttle SET failures = failures - 1, \
           blocked_until = CASE WHEN failures - 1 <= $2 THEN 0 ELSE blocked_until END \
         WHERE key = $1 AND failures > 0",
    )
    .bind(key)
    .bind(free)
    .execute(db)
    .await
    .map(|_| ())
}

/// Take one unit of a fixed-window quota: at most `limit` per `window_ms`, the window starting at
/// its first use. True when taken. Inside a transaction the row stays locked until it ends, so
/// the quota holds exactly under concurrency.
pub async fn take_quota<'e>(
    db: impl AnyExecutor<'e>,
    key: &str,
    limit: i64,
    window_ms: Millis,
    now: Millis,
) -> sqlx::Result<bool> {
    // `blocked_until` holds the end of the window here.
    let row: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO login_throttle (key, failures, window_start, blocked_until) VALUES ($1, 1, $2, $2 + $3) \
         ON CONFLICT (key) DO UPDATE SET \
           failures = CASE WHEN login_throttle.blocked_until <= $2 THEN 1 ELSE login_throttle.failures + 1 END, \
           window_start = CASE WHEN login_throttle.blocked_until <= $2 THEN $2 ELSE login_throttle.window_start END, \
           blocked_until = CASE WHEN login_throttle.blocked_until <= $2 THEN $2 + $3 ELSE login_throttle.blocked_until END \
         WHERE login_throttle.blocked_until <= $2 OR login_throttle.failures < $4 \
         RETURNING failures",
    )
    .bind(key)
    .bind(now)
    .bind(window_ms)
    .bind(limit)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

pub async fn clear<'e>(db: impl AnyExecutor<'e>, key: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1").bind(key).execute(db).await.map(|_| ())
}

pub async fn purge<'e>(db: impl AnyExecutor<'e>, older_than: Millis) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM login_throttle WHERE window_start < $1 AND blocked_until < $1")
        .bind(older_than)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_after_the_free_attempts_up_to_the_cap() {
        let b = Backoff { free: 5, cap_ms: 60_000, quiet_ms: 900_000 };
        let waits: Vec<Millis> = (1..=13).map(|n| b.delay_after(n)).collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
        assert_eq!(b.delay_after(1000), 60_000);
    }
}
