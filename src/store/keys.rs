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

/// Keys whose tokens may still be alive: current ones, and those superseded after `cutoff`.
pub async fn live_signing_keys<'e>(db: impl AnyExecutor<'e>, cutoff: Millis) -> sqlx::Result<Vec<SigningKeyRow>> {
    sqlx::query_as(
        "SELECT kid, alg, sealed_private, public_jwk, created_at, superseded_at FROM signing_keys \
         WHERE superseded_at IS NULL OR superseded_at > $1 \
         ORDER BY CASE WHEN superseded_at IS NULL THEN 0 ELSE 1 END, created_at DESC, kid DESC",
    )
    .bind(cutoff)
    .fetch_all(db)
    .await
}
