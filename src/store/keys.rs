//! Operator API keys (stored as hashes) and token-signing keys (private halves sealed).

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Debug, Clone, FromRow)]
pub struct OperatorKey {
    pub id: String,
    pub name: String,
}

pub async fn insert_operator_key<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    name: &str,
    key_hash: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO operator_keys (id, name, key_hash, created_at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(name)
        .bind(key_hash)
        .bind(now)
        .execute(db)
        .await
        .map(|_| ())
}

/// Revoke the active keys named `name`; returns their ids.
pub async fn revoke_operator_keys<'e>(db: impl AnyExecutor<'e>, name: &str, now: Millis) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("UPDATE operator_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL RETURNING id")
        .bind(now)
        .bind(name)
        .fetch_all(db)
        .await
}

/// Revoke the active key `id`; its name, or `None` when there is no such active key.
pub async fn revoke_operator_key<'e>(db: impl AnyExecutor<'e>, id: &str, now: Millis) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("UPDATE operator_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL RETURNING name")
        .bind(now)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// An operator key as the console lists it (never its hash).
#[derive(Debug, Clone, FromRow)]
pub struct OperatorKeyRow {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// Every operator key: active ones first, newest first.
pub async fn list_operator_keys<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<OperatorKeyRow>> {
    sqlx::query_as(
        "SELECT id, name, created_at, revoked_at FROM operator_keys \
         ORDER BY CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END, created_at DESC, id",
    )
    .fetch_all(db)
    .await
}

pub async fn operator_key_by_id<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<Option<OperatorKeyRow>> {
    sqlx::query_as("SELECT id, name, created_at, revoked_at FROM operator_keys WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn operator_key_by_hash<'e>(db: impl AnyExecutor<'e>, key_hash: &str) -> sqlx::Result<Option<OperatorKey>> {
    sqlx::query_as("SELECT id, name FROM operator_keys WHERE key_hash = $1 AND revoked_at IS NULL")
        .bind(key_hash)
        .fetch_optional(db)
        .await
}

#[derive(Clone, FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub sealed_private: String,
    pub public_jwk: String,
    pub created_at: Millis,
    pub superseded_at: Option<Millis>,
}

pub async fn insert_signing_key<'e>(db: impl AnyExecutor<'e>, k: &SigningKeyRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, sealed_private, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&k.kid)
    .bind(&k.alg)
    .bind(&k.sealed_private)
    .bind(&k.public_jwk)
    .bind(k.created_at)
    .execute(db)
    .await
    .map(|_| ())
}

/// Mark every current key as superseded (a newer key signs from now on).
pub async fn supersede_signing_keys<'e>(db: impl AnyExecutor<'e>, except_kid: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE signing_keys SET superseded_at = $1 WHERE superseded_at IS NULL AND kid <> $2")
        .bind(now)
        .bind(except_kid)
        .execute(db)
        .await
        .map(|_| ())
}

/// Keys to publish: current ones, those superseded after `cutoff` (their tokens may still be
/// alive), and those that signed an audit checkpoint after `audit_cutoff` (kept for as long as
/// audit events are).
pub async fn live_signing_keys<'e>(
    db: impl AnyExecutor<'e>,
    cutoff: Millis,
    audit_cutoff: Millis,
) -> sqlx::Result<Vec<SigningKeyRow>> {
    sqlx::query_as(
        "SELECT kid, alg, sealed_private, public_jwk, created_at, superseded_at FROM signing_keys \
         WHERE superseded_at IS NULL OR superseded_at > $1 \
         OR EXISTS (SELECT 1 FROM audit_checkpoints c WHERE c.kid = signing_keys.kid AND c.at > $2) \
         ORDER BY CASE WHEN superseded_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid DESC",
    )
    .bind(cutoff)
    .bind(audit_cutoff)
    .fetch_all(db)
    .await
}

/// The license signing key (Ed25519, private half sealed).
#[derive(Clone, FromRow)]
pub struct LicenseKeyRow {
    pub kid: String,
    pub sealed_private: String,
    pub public_jwk: String,
    pub created_at: Millis,
    pub superseded_at: Option<Millis>,
    pub signed_until: Option<Millis>,
}

const LICENSE_KEY_COLS: &str = "kid, sealed_private, public_jwk, created_at, superseded_at, signed_until";

pub async fn insert_license_key<'e>(db: impl AnyExecutor<'e>, k: &LicenseKeyRow) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO license_keys (kid, sealed_private, public_jwk, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&k.kid)
        .bind(&k.sealed_private)
        .bind(&k.public_jwk)
        .bind(k.created_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn supersede_license_keys<'e>(db: impl AnyExecutor<'e>, except_kid: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE license_keys SET superseded_at = $1 WHERE superseded_at IS NULL AND kid <> $2")
        .bind(now)
        .bind(except_kid)
        .execute(db)
        .await
        .map(|_| ())
}

/// The key that signs now (the newest current one).
pub async fn current_license_key<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Option<LicenseKeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LICENSE_KEY_COLS} FROM license_keys WHERE superseded_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1"
    )))
    .fetch_optional(db)
    .await
}

/// Keys to publish: the current one, and older ones while something they signed is valid.
pub async fn published_license_keys<'e>(db: impl AnyExecutor<'e>, now: Millis) -> sqlx::Result<Vec<LicenseKeyRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {LICENSE_KEY_COLS} FROM license_keys WHERE superseded_at IS NULL OR signed_until > $1 \
         ORDER BY created_at DESC, kid DESC"
    )))
    .bind(now)
    .fetch_all(db)
    .await
}

/// Remember that `kid` signed something valid until `until` (it stays published that long).
pub async fn extend_license_key_use<'e>(db: impl AnyExecutor<'e>, kid: &str, until: Millis) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE license_keys SET signed_until = $1 WHERE kid = $2 AND (signed_until IS NULL OR signed_until < $1)",
    )
    .bind(until)
    .bind(kid)
    .execute(db)
    .await
    .map(|_| ())
}
