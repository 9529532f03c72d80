//! SSO configuration per entity, claimed email domains, pending SAML requests and the replay cache.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Clone, FromRow)]
pub struct SsoConfig {
    pub entity_id: String,
    pub vendor: String,
    pub idp_metadata_xml: String,
    pub idp_entity_id: String,
    pub idp_sso_redirect_url: Option<String>,
    pub idp_sso_post_url: Option<String>,
    pub idp_certs: String,
    pub want_authn_requests_signed: i64,
    pub email_attribute: Option<String>,
    pub enabled: i64,
    pub allow_idp_initiated: i64,
    pub jit_accounts: i64,
    pub allow_sha1: i64,
    pub sp_sealed_key: String,
    pub sp_cert: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl std::fmt::Debug for SsoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoConfig")
            .field("entity_id", &self.entity_id)
            .field("vendor", &self.vendor)
            .field("enabled", &self.enabled)
            .finish()
    }
}

const COLS: &str = "entity_id, vendor, idp_metadata_xml, idp_entity_id, idp_sso_redirect_url, idp_sso_post_url, idp_certs, \
                    want_authn_requests_signed, email_attribute, enabled, allow_idp_initiated, jit_accounts, allow_sha1, \
                    sp_sealed_key, sp_cert, created_at, updated_at";

pub async fn config<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Option<SsoConfig>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM sso_configs WHERE entity_id = $1")))
        .bind(entity_id)
        .fetch_optional(db)
        .await
}

/// Insert or replace the entity's configuration (the SP key is kept by the caller).
pub async fn put_config<'e>(db: impl AnyExecutor<'e>, c: &SsoConfig) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sso_configs (entity_id, vendor, idp_metadata_xml, idp_entity_id, idp_sso_redirect_url, idp_sso_post_url, \
            idp_certs, want_authn_requests_signed, email_attribute, enabled, allow_idp_initiated, jit_accounts, allow_sha1, \
            sp_sealed_key, sp_cert, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT (entity_id) DO UPDATE SET vendor = $2, idp_metadata_xml = $3, idp_entity_id = $4, \
            idp_sso_redirect_url = $5, idp_sso_post_url = $6, idp_certs = $7, want_authn_requests_signed = $8, \
            email_attribute = $9, enabled = $10, allow_idp_initiated = $11, jit_accounts = $12, allow_sha1 = $13, \
            sp_sealed_key = $14, sp_cert = $15, updated_at = $17",
    )
    .bind(&c.entity_id)
    .bind(&c.vendor)
    .bind(&c.idp_metadata_xml)
    .bind(&c.idp_entity_id)
    .bind(&c.idp_sso_redirect_url)
    .bind(&c.idp_sso_post_url)
    .bind(&c.idp_certs)
    .bind(c.want_authn_requests_signed)
    .bind(&c.email_attribute)
    .bind(c.enabled)
    .bind(c.allow_idp_initiated)
    .bind(c.jit_accounts)
    .bind(c.allow_sha1)
    .bind(&c.sp_sealed_key)
    .bind(&c.sp_cert)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(db)
    .await
    .map(|_| ())
}

/// The slug of the entity whose SSO is enabled and that `user`'s sign-in is governed by.
pub async fn enabled_for_entity<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT e.slug FROM sso_configs c JOIN entities e ON e.id = c.entity_id WHERE c.entity_id = $1 AND c.enabled = 1",
    )
    .bind(entity_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.0))
}

pub async fn domains<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT domain FROM sso_domains WHERE entity_id = $1 ORDER BY domain")
        .bind(entity_id)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The entity claiming `domain`, and whether the vendor verified the claim.
pub async fn domain_owner<'e>(db: impl AnyExecutor<'e>, domain: &str) -> sqlx::Result<Option<(String, bool)>> {
    let row: Option<(String, i64)> = sqlx::query_as("SELECT entity_id, verified FROM sso_domains WHERE domain = $1")
        .bind(domain)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|(e, v)| (e, v == 1)))
}

/// The verified domains of an entity.
pub async fn verified_domains<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT domain FROM sso_domains WHERE entity_id = $1 AND verified = 1 ORDER BY domain")
            .bind(entity_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn clear_domains<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sso_domains WHERE entity_id = $1").bind(entity_id).execute(db).await.map(|_| ())
}

pub async fn add_domain<'e>(
    db: impl AnyExecutor<'e>,
    domain: &str,
    entity_id: &str,
    verified: bool,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO sso_domains (domain, entity_id, verified) VALUES ($1, $2, $3)")
        .bind(domain)
        .bind(entity_id)
        .bind(i64::from(verified))
        .execute(db)
        .await
        .map(|_| ())
}

pub struct PendingRequest<'a> {
    pub id: &'a str,
    pub relay_hash: &'a str,
    pub entity_id: &'a str,
    pub browser_hash: &'a str,
    pub return_to: Option<&'a str>,
    pub now: Millis,
    pub expires_at: Millis,
}

pub async fn insert_request<'e>(db: impl AnyExecutor<'e>, r: &PendingRequest<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO saml_requests (id, relay_hash, entity_id, browser_hash, return_to, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(r.id)
    .bind(r.relay_hash)
    .bind(r.entity_id)
    .bind(r.browser_hash)
    .bind(r.return_to)
    .bind(r.now)
    .bind(r.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct Pending {
    pub id: String,
    pub relay_hash: String,
    pub entity_id: String,
    pub browser_hash: String,
    pub return_to: Option<String>,
    pub expires_at: Millis,
}

/// Take (read and delete) a pending request: each AuthnRequest ID answers once. One statement,
/// so of concurrent answers to the same request exactly one gets the row, on both backends
/// (a SELECT then DELETE let every reader through before the first delete committed).
pub async fn take_request(tx: &mut crate::store::Tx, id: &str) -> sqlx::Result<Option<Pending>> {
    sqlx::query_as(
        "DELETE FROM saml_requests WHERE id = $1 \
         RETURNING id, relay_hash, entity_id, browser_hash, return_to, expires_at",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Remember an assertion id until it could no longer be valid; false when it was seen before.
pub async fn first_sighting<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    assertion_id: &str,
    expires_at: Millis,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO saml_assertions_seen (entity_id, assertion_id, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (entity_id, assertion_id) DO NOTHING",
    )
    .bind(entity_id)
    .bind(assertion_id)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn purge<'e>(db: impl AnyExecutor<'e> + Copy, now: Millis) -> sqlx::Result<u64> {
    let a = sqlx::query("DELETE FROM saml_requests WHERE expires_at < $1").bind(now).execute(db).await?;
    let b = sqlx::query("DELETE FROM saml_assertions_seen WHERE expires_at < $1").bind(now).execute(db).await?;
    Ok(a.rows_affected() + b.rows_affected())
}
