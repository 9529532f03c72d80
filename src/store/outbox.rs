//! The durable mail outbox. A row is written in the same transaction as the change that causes the
//! mail; the worker claims due rows (re-checking the claim predicate in the UPDATE itself, so two
//! workers never take the same row), sends, and marks them sent.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

pub struct NewMail<'a> {
    pub id: &'a str,
    pub recipient: &'a str,
    pub template: &'a str,
    pub sealed_message: &'a str,
    pub now: Millis,
}

pub async fn insert<'e>(db: impl AnyExecutor<'e>, m: &NewMail<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (id, recipient, template, sealed_message, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(m.id)
    .bind(m.recipient)
    .bind(m.template)
    .bind(m.sealed_message)
    .bind(m.now)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct Pending {
    pub id: String,
    pub recipient: String,
    pub template: String,
    pub sealed_message: Option<String>,
    pub attempts: i64,
}

pub async fn due_ids<'e>(db: impl AnyExecutor<'e>, now: Millis, limit: i64) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
         AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Claim one row until `until`; `None` when another worker got it first or it is no longer due.
pub async fn claim<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    now: Millis,
    until: Millis,
) -> sqlx::Result<Option<Pending>> {
    sqlx::query_as(
        "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 \
         WHERE id = $2 AND sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3) \
         RETURNING id, recipient, template, sealed_message, attempts",
    )
    .bind(until)
    .bind(id)
    .bind(now)
    .fetch_optional(db)
    .await
}

/// The message is with the SMTP server: forget its body (it holds a link) and keep the record.
pub async fn mark_sent<'e>(db: impl AnyExecutor<'e>, id: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox SET sent_at = $1, sealed_message = NULL, claimed_until = NULL, last_error = NULL WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn mark_failed<'e>(db: impl AnyExecutor<'e>, id: &str, retry_at: Millis, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE outbox SET next_attempt_at = $1, claimed_until = NULL, last_error = $2 WHERE id = $3")
        .bind(retry_at)
        .bind(error)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn pending_count<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL").fetch_one(db).await?;
    Ok(n)
}

/// Earliest time a pending mail becomes due (to sleep until then).
pub async fn next_due<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Option<Millis>> {
    let (n,): (Option<i64>,) = sqlx::query_as(
        "SELECT MIN(CASE WHEN claimed_until IS NOT NULL AND claimed_until > next_attempt_at THEN claimed_until \
                    ELSE next_attempt_at END) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(db)
    .await?;
    Ok(n)
}

/// The server refused the message for good (a 5xx reply, several times): stop trying, keep the record.
pub async fn mark_undeliverable<'e>(db: impl AnyExecutor<'e>, id: &str, now: Millis, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE outbox SET failed_at = $1, sealed_message = NULL, claimed_until = NULL, last_error = $2 WHERE id = $3",
    )
    .bind(now)
    .bind(error)
    .bind(id)
    .execute(db)
    .await
    .map(|_| ())
}
