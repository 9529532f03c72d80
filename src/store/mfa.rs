//! Operator users, TOTP authenticators and recovery codes.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

pub async fn is_operator<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT user_id FROM operator_users WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// Make the account an operator; `false` when it was one already.
pub async fn add_operator<'e>(db: impl AnyExecutor<'e>, user_id: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query("INSERT INTO operator_users (user_id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(user_id)
        .bind(now)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn remove_operator<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM operator_users WHERE user_id = $1").bind(user_id).execute(db).await?;
    Ok(r.rows_affected() == 1)
}

/// Operators' emails and since when, by email.
pub async fn operators<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<(String, Millis)>> {
    sqlx::query_as(
        "SELECT u.email, o.created_at FROM operator_users o JOIN users u ON u.id = o.user_id ORDER BY u.email",
    )
    .fetch_all(db)
    .await
}

#[derive(Clone, FromRow)]
pub struct Totp {
    pub user_id: String,
    pub sealed_secret: String,
    pub confirmed_at: Option<Millis>,
    pub last_step: i64,
    pub created_at: Millis,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp").field("user_id", &self.user_id).field("confirmed_at", &self.confirmed_at).finish()
    }
}

pub async fn totp_of<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<Option<Totp>> {
    sqlx::query_as(
        "SELECT user_id, sealed_secret, confirmed_at, last_step, created_at FROM totp_factors WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(db)
    .await
}

/// Whether the account has a confirmed authenticator.
pub async fn has_totp<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL")
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(row.is_some())
}

/// Start an enrolment (only when none is confirmed): `false` when one is confirmed already.
pub async fn insert_pending(tx: &mut crate::store::Tx, user_id: &str, sealed: &str, now: Millis) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM totp_factors WHERE user_id = $1 AND confirmed_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let r = sqlx::query(
        "INSERT INTO totp_factors (user_id, sealed_secret, confirmed_at, last_step, created_at) \
         VALUES ($1, $2, NULL, 0, $3) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(sealed)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Confirm a pending enrolment with the step of its first code; `false` when there is none.
pub async fn confirm<'e>(db: impl AnyExecutor<'e>, user_id: &str, step: i64, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE totp_factors SET confirmed_at = $2, last_step = $3 WHERE user_id = $1 AND confirmed_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .bind(step)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Spend the code of time step `step`: only a later step than any accepted before works, so a
/// code (or an earlier one) never works twice, however many requests race.
pub async fn spend_step<'e>(db: impl AnyExecutor<'e>, user_id: &str, step: i64) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE totp_factors SET last_step = $2 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2",
    )
    .bind(user_id)
    .bind(step)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn delete_totp(tx: &mut crate::store::Tx, user_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM totp_factors WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    Ok(())
}

/// Replace the account's recovery codes.
pub async fn set_recovery_codes(tx: &mut crate::store::Tx, user_id: &str, hashes: &[String]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    for h in hashes {
        sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, used_at) VALUES ($1, $2, NULL)")
            .bind(user_id)
            .bind(h)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Spend a recovery code; `false` when it is unknown or used.
pub async fn spend_recovery_code<'e>(
    db: impl AnyExecutor<'e>,
    user_id: &str,
    hash: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let r =
        sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL")
            .bind(user_id)
            .bind(hash)
            .bind(now)
            .execute(db)
            .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn recovery_codes_left<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .fetch_one(db)
        .await?;
    Ok(n)
}
