//! Refresh-token families and revoked access tokens.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

pub async fn insert_family<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    user_id: &str,
    client_id: &str,
    amr: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO refresh_families (id, user_id, client_id, amr, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(user_id)
        .bind(client_id)
        .bind(amr)
        .bind(now)
        .execute(db)
        .await
        .map(|_| ())
}

pub struct NewRefresh<'a> {
    pub token_hash: &'a str,
    pub family_id: &'a str,
    pub user_id: &'a str,
    pub client_id: &'a str,
    pub amr: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
}

pub async fn insert_refresh<'e>(db: impl AnyExecutor<'e>, r: &NewRefresh<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, amr, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.token_hash)
    .bind(r.family_id)
    .bind(r.user_id)
    .bind(r.client_id)
    .bind(r.amr)
    .bind(r.now)
    .bind(r.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

pub struct Rotation<'a> {
    pub old_hash: &'a str,
    pub new_hash: &'a str,
    /// When given, only a token issued to this client is spent.
    pub client_id: Option<&'a str>,
    pub now: Millis,
    pub expires_at: Millis,
}

/// A spent refresh token's session and subject.
#[derive(Debug, Clone, FromRow)]
pub struct Rotated {
    pub family_id: String,
    pub user_id: String,
    pub client_id: String,
    pub amr: String,
    pub email: String,
    pub entity_slug: String,
}

/// Spend a live refresh token, insert its successor and read the subject, in one statement
/// (PostgreSQL's data-modifying CTEs). `None` when the token is unknown, spent, expired, of a
/// revoked family (revocation spends unspent tokens) or of another client.
pub async fn rotate_refresh_pg<'e>(db: impl AnyExecutor<'e>, r: &Rotation<'_>) -> sqlx::Result<Option<Rotated>> {
    sqlx::query_as(
        "WITH spent AS ( \
           UPDATE refresh_tokens SET used_at = $1 \
           WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 AND ($3::text IS NULL OR client_id = $3) \
           RETURNING family_id, user_id, client_id, amr \
         ), fresh AS ( \
           INSERT INTO refresh_tokens (token_hash, family_id, user_id, client_id, amr, created_at, expires_at) \
           SELECT $4, family_id, user_id, client_id, amr, $1, $5 FROM spent RETURNING family_id \
         ) \
         SELECT s.family_id, s.user_id, s.client_id, s.amr, u.email, e.slug AS entity_slug \
         FROM spent s JOIN fresh f ON f.family_id = s.family_id \
         JOIN users u ON u.id = s.user_id JOIN entities e ON e.id = u.entity_id",
    )
    .bind(r.now)
    .bind(r.old_hash)
    .bind(r.client_id)
    .bind(r.new_hash)
    .bind(r.expires_at)
    .fetch_optional(db)
    .await
}

/// The same rotation as a short transaction, for SQLite (no data-modifying CTEs there).
pub async fn rotate_refresh_in(tx: &mut crate::store::Tx, r: &Rotation<'_>) -> sqlx::Result<Option<Rotated>> {
    let spent: Option<(String, String, String, String)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 AND ($3 IS NULL OR client_id = $3) \
         RETURNING family_id, user_id, client_id, amr",
    )
    .bind(r.now)
    .bind(r.old_hash)
    .bind(r.client_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((family_id, user_id, client_id, amr)) = spent else { return Ok(None) };
    let subject: Option<(String, String)> =
        sqlx::query_as("SELECT u.email, e.slug FROM users u JOIN entities e ON e.id = u.entity_id WHERE u.id = $1")
            .bind(&user_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((email, entity_slug)) = subject else { return Ok(None) };
    insert_refresh(
        &mut **tx,
        &NewRefresh {
            token_hash: r.new_hash,
            family_id: &family_id,
            user_id: &user_id,
            client_id: &client_id,
            amr: &amr,
            now: r.now,
            expires_at: r.expires_at,
        },
    )
    .await?;
    Ok(Some(Rotated { family_id, user_id, client_id, amr, email, entity_slug }))
}

#[derive(Debug, Clone, FromRow)]
pub struct RefreshState {
    pub family_id: String,
    pub user_id: String,
    pub client_id: String,
    pub amr: String,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
    pub family_revoked_at: Option<Millis>,
}

pub async fn refresh_state<'e>(db: impl AnyExecutor<'e>, token_hash: &str) -> sqlx::Result<Option<RefreshState>> {
    sqlx::query_as(
        "SELECT r.family_id, r.user_id, r.client_id, r.amr, r.expires_at, r.used_at, f.revoked_at AS family_revoked_at \
         FROM refresh_tokens r JOIN refresh_families f ON f.id = r.family_id WHERE r.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}

/// Revoke a family: mark it and spend its unspent tokens (so rotation, which looks only at
/// unspent tokens, never touches it again; the rows stay until they expire, so a revoked token
/// presented later is recognised and can be told why).
pub async fn revoke_family(tx: &mut crate::store::Tx, family_id: &str, reason: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_families SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(reason)
    .bind(family_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE family_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(family_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Revoke every live family of a user whose sign-in method matches `amr` (e.g. all password-based
/// sessions when the entity turns on SSO). Returns how many families were revoked.
pub async fn revoke_families_of_user(
    tx: &mut crate::store::Tx,
    user_id: &str,
    amr: Option<&str>,
    reason: &str,
    now: Millis,
) -> sqlx::Result<u64> {
    let ids: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM refresh_families WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR amr = $2)",
    )
    .bind(user_id)
    .bind(amr)
    .fetch_all(&mut **tx)
    .await?;
    for (id,) in &ids {
        revoke_family(tx, id, reason, now).await?;
    }
    Ok(ids.len() as u64)
}

pub async fn family_revoked<'e>(db: impl AnyExecutor<'e>, family_id: &str) -> sqlx::Result<bool> {
    let row: Option<(Option<i64>,)> = sqlx::query_as("SELECT revoked_at FROM refresh_families WHERE id = $1")
        .bind(family_id)
        .fetch_optional(db)
        .await?;
    // An unknown family cannot vouch for a token: treat as revoked.
    Ok(row.is_none_or(|(r,)| r.is_some()))
}

pub async fn revoke_access_token<'e>(db: impl AnyExecutor<'e>, jti: &str, expires_at: Millis) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
        .bind(jti)
        .bind(expires_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn access_token_revoked<'e>(db: impl AnyExecutor<'e>, jti: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT jti FROM revoked_access_tokens WHERE jti = $1").bind(jti).fetch_optional(db).await?;
    Ok(row.is_some())
}

/// Housekeeping: forget what can no longer matter (expired tokens and revocations).
pub async fn purge_expired<'e>(db: impl AnyExecutor<'e> + Copy, now: Millis) -> sqlx::Result<u64> {
    let a = sqlx::query("DELETE FROM revoked_access_tokens WHERE expires_at < $1").bind(now).execute(db).await?;
    let b = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1").bind(now).execute(db).await?;
    Ok(a.rows_affected() + b.rows_affected())
}

/// Whether an access token is revoked, itself (its `jti`) or through its session (refresh family
/// `sid`; a session that does not exist counts as revoked). One round trip.
pub async fn access_revoked<'e>(db: impl AnyExecutor<'e>, sid: &str, jti: &str) -> sqlx::Result<bool> {
    let (family_revoked, jti_revoked): (Option<i64>, i64) = sqlx::query_as(
        "SELECT (SELECT COALESCE(revoked_at, 0) FROM refresh_families WHERE id = $1), \
                (SELECT COUNT(*) FROM revoked_access_tokens WHERE jti = $2)",
    )
    .bind(sid)
    .bind(jti)
    .fetch_one(db)
    .await?;
    Ok(family_revoked.is_none_or(|r| r != 0) || jti_revoked > 0)
}
