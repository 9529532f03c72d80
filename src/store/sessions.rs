//! Browser sessions, authorization requests waiting for sign-in, authorization codes and device codes.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Debug, Clone, FromRow)]
pub struct WebSession {
    pub user_id: String,
    pub amr: String,
    pub expires_at: Millis,
}

pub async fn insert_session<'e>(
    db: impl AnyExecutor<'e>,
    id_hash: &str,
    user_id: &str,
    amr: &str,
    now: Millis,
    expires_at: Millis,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO web_sessions (id_hash, user_id, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id_hash)
        .bind(user_id)
        .bind(amr)
        .bind(now)
        .bind(expires_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn session<'e>(db: impl AnyExecutor<'e>, id_hash: &str, now: Millis) -> sqlx::Result<Option<WebSession>> {
    sqlx::query_as("SELECT user_id, amr, expires_at FROM web_sessions WHERE id_hash = $1 AND expires_at > $2")
        .bind(id_hash)
        .bind(now)
        .fetch_optional(db)
        .await
}

pub async fn delete_session<'e>(db: impl AnyExecutor<'e>, id_hash: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1").bind(id_hash).execute(db).await.map(|_| ())
}

/// End a user's browser sessions except `keep` (the hash of the one that asked).
pub async fn delete_other_sessions<'e>(db: impl AnyExecutor<'e>, user_id: &str, keep: &str) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND id_hash <> $2")
        .bind(user_id)
        .bind(keep)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// End a user's browser sessions that were signed in by `amr` (`pwd` or `saml`).
pub async fn delete_sessions_of_user<'e>(db: impl AnyExecutor<'e>, user_id: &str, amr: &str) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM web_sessions WHERE user_id = $1 AND amr = $2")
        .bind(user_id)
        .bind(amr)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// End every browser session of a user, and what those sessions issued and nobody has collected
/// yet: unexchanged authorization codes and approved, unpolled device codes (which then answer
/// `access_denied`). Returns how many rows changed.
pub async fn end_sign_ins_of_user(tx: &mut crate::store::Tx, user_id: &str, now: Millis) -> sqlx::Result<u64> {
    let mut n = 0;
    n += sqlx::query("DELETE FROM web_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    n += sqlx::query("DELETE FROM auth_codes WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    n += sqlx::query(
        "UPDATE device_codes SET denied_at = $2 WHERE user_id = $1 AND used_at IS NULL AND denied_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n)
}

#[derive(Debug, Clone, FromRow)]
pub struct AuthzRequest {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub state: Option<String>,
    pub login_hint: Option<String>,
    pub expires_at: Millis,
}

pub async fn insert_authz<'e>(db: impl AnyExecutor<'e>, r: &AuthzRequest, now: Millis) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO authz_requests (id, client_id, redirect_uri, code_challenge, state, login_hint, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&r.id)
    .bind(&r.client_id)
    .bind(&r.redirect_uri)
    .bind(&r.code_challenge)
    .bind(&r.state)
    .bind(&r.login_hint)
    .bind(now)
    .bind(r.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn authz<'e>(db: impl AnyExecutor<'e>, id: &str, now: Millis) -> sqlx::Result<Option<AuthzRequest>> {
    sqlx::query_as(
        "SELECT id, client_id, redirect_uri, code_challenge, state, login_hint, expires_at FROM authz_requests \
         WHERE id = $1 AND expires_at > $2",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(db)
    .await
}

pub async fn delete_authz<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM authz_requests WHERE id = $1").bind(id).execute(db).await?;
    Ok(r.rows_affected() == 1)
}

pub struct NewCode<'a> {
    pub code_hash: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub user_id: &'a str,
    pub amr: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
}

pub async fn insert_code<'e>(db: impl AnyExecutor<'e>, c: &NewCode<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO auth_codes (code_hash, client_id, redirect_uri, code_challenge, user_id, amr, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.code_hash)
    .bind(c.client_id)
    .bind(c.redirect_uri)
    .bind(c.code_challenge)
    .bind(c.user_id)
    .bind(c.amr)
    .bind(c.now)
    .bind(c.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub user_id: String,
    pub amr: String,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
    pub family_id: Option<String>,
}

pub async fn code<'e>(db: impl AnyExecutor<'e>, code_hash: &str) -> sqlx::Result<Option<Code>> {
    sqlx::query_as(
        "SELECT client_id, redirect_uri, code_challenge, user_id, amr, expires_at, used_at, family_id FROM auth_codes WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(db)
    .await
}

/// Spend a code; false when it was spent already (concurrently or before).
pub async fn spend_code<'e>(db: impl AnyExecutor<'e>, code_hash: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL")
        .bind(now)
        .bind(code_hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_code_family<'e>(db: impl AnyExecutor<'e>, code_hash: &str, family_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE auth_codes SET family_id = $1 WHERE code_hash = $2")
        .bind(family_id)
        .bind(code_hash)
        .execute(db)
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct Device {
    pub device_code_hash: String,
    pub user_code: String,
    pub client_id: String,
    pub expires_at: Millis,
    pub interval_s: i64,
    pub last_poll_at: Option<Millis>,
    pub user_id: Option<String>,
    pub amr: Option<String>,
    pub approved_at: Option<Millis>,
    pub denied_at: Option<Millis>,
    pub used_at: Option<Millis>,
}

const DEVICE_COLS: &str = "device_code_hash, user_code, client_id, expires_at, interval_s, last_poll_at, user_id, amr, \
                           approved_at, denied_at, used_at";

pub async fn insert_device<'e>(
    db: impl AnyExecutor<'e>,
    device_code_hash: &str,
    user_code: &str,
    client_id: &str,
    now: Millis,
    expires_at: Millis,
    interval_s: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO device_codes (device_code_hash, user_code, client_id, created_at, expires_at, interval_s) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(device_code_hash)
    .bind(user_code)
    .bind(client_id)
    .bind(now)
    .bind(expires_at)
    .bind(interval_s)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn device_by_hash<'e>(db: impl AnyExecutor<'e>, device_code_hash: &str) -> sqlx::Result<Option<Device>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {DEVICE_COLS} FROM device_codes WHERE device_code_hash = $1")))
        .bind(device_code_hash)
        .fetch_optional(db)
        .await
}

pub async fn device_by_user_code<'e>(db: impl AnyExecutor<'e>, user_code: &str) -> sqlx::Result<Option<Device>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {DEVICE_COLS} FROM device_codes WHERE user_code = $1")))
        .bind(user_code)
        .fetch_optional(db)
        .await
}

pub async fn note_poll<'e>(
    db: impl AnyExecutor<'e>,
    device_code_hash: &str,
    now: Millis,
    interval_s: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE device_codes SET last_poll_at = $1, interval_s = $2 WHERE device_code_hash = $3")
        .bind(now)
        .bind(interval_s)
        .bind(device_code_hash)
        .execute(db)
        .await
        .map(|_| ())
}

/// Approve or deny a pending device code (only once, only before it expires).
pub async fn decide_device<'e>(
    db: impl AnyExecutor<'e>,
    user_code: &str,
    user_id: &str,
    amr: &str,
    approve: bool,
    now: Millis,
) -> sqlx::Result<bool> {
    let sql = if approve {
        "UPDATE device_codes SET approved_at = $1, user_id = $2, amr = $3 \
         WHERE user_code = $4 AND approved_at IS NULL AND denied_at IS NULL AND expires_at > $1"
    } else {
        "UPDATE device_codes SET denied_at = $1, user_id = $2, amr = $3 \
         WHERE user_code = $4 AND approved_at IS NULL AND denied_at IS NULL AND expires_at > $1"
    };
    let r = sqlx::query(sql).bind(now).bind(user_id).bind(amr).bind(user_code).execute(db).await?;
    Ok(r.rows_affected() == 1)
}

pub async fn spend_device<'e>(db: impl AnyExecutor<'e>, device_code_hash: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE device_codes SET used_at = $1 WHERE device_code_hash = $2 AND used_at IS NULL AND approved_at IS NOT NULL")
        .bind(now)
        .bind(device_code_hash)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn purge<'e>(db: impl AnyExecutor<'e> + Copy, now: Millis) -> sqlx::Result<u64> {
    let mut n = 0;
    for sql in [
        "DELETE FROM web_sessions WHERE expires_at < $1",
        "DELETE FROM authz_requests WHERE expires_at < $1",
        "DELETE FROM auth_codes WHERE expires_at < $1 - 86400000",
        "DELETE FROM device_codes WHERE expires_at < $1 - 86400000",
    ] {
        n += sqlx::query(sql).bind(now).execute(db).await?.rows_affected();
    }
    Ok(n)
}
