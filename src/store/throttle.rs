//! Failed sign-in counters, shared by every replica through the database.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Debug, Clone, FromRow)]
pub struct Counter {
    pub key: String,
    pub failures: i64,
    pub window_start: Millis,
    pub blocked_until: Millis,
}

/// The counters of up to three keys in one round trip (absent keys have none).
pub async fn counters<'e>(db: impl AnyExecutor<'e>, keys: &[&str]) -> sqlx::Result<Vec<Counter>> {
    let (a, b, c) =
        (keys.first().copied().unwrap_or(""), keys.get(1).copied().unwrap_or(""), keys.get(2).copied().unwrap_or(""));
    sqlx::query_as("SELECT key, failures, window_start, blocked_until FROM login_throttle WHERE key IN ($1, $2, $3)")
        .bind(a)
        .bind(b)
        .bind(c)
        .fetch_all(db)
        .await
}

pub async fn counter<'e>(db: impl AnyExecutor<'e>, key: &str) -> sqlx::Result<Option<Counter>> {
    sqlx::query_as("SELECT key, failures, window_start, blocked_until FROM login_throttle WHERE key = $1")
        .bind(key)
        .fetch_optional(db)
        .await
}

pub async fn put<'e>(db: impl AnyExecutor<'e>, c: &Counter) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO login_throttle (key, failures, window_start, blocked_until) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (key) DO UPDATE SET failures = $2, window_start = $3, blocked_until = $4",
    )
    .bind(&c.key)
    .bind(c.failures)
    .bind(c.window_start)
    .bind(c.blocked_until)
    .execute(db)
    .await
    .map(|_| ())
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
