//! SSO configuration per entity, claimed and verified email domains, pending SAML requests, the
//! replay cache and the log of refused responses.

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
    /// Fingerprint of the IdP configuration that last passed a test sign-in.
    pub tested_hash: Option<String>,
    pub tested_at: Option<Millis>,
    /// Where the metadata is fetched from (`None`: uploaded as a document).
    pub idp_metadata_url: Option<String>,
    /// The last successful fetch.
    pub metadata_fetched_at: Option<Millis>,
    /// Why the last refresh failed (cleared by the next success), and when.
    pub metadata_error: Option<String>,
    pub metadata_error_at: Option<Millis>,
    pub metadata_next_fetch_at: Option<Millis>,
    /// Certificate-expiry warnings already mailed: a JSON array of `<sha256>:<days>`.
    pub cert_warnings_sent: Option<String>,
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
                    sp_sealed_key, sp_cert, created_at, updated_at, tested_hash, tested_at, idp_metadata_url, \
                    metadata_fetched_at, metadata_error, metadata_error_at, metadata_next_fetch_at, cert_warnings_sent";

pub async fn config<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Option<SsoConfig>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM sso_configs WHERE entity_id = $1")))
        .bind(entity_id)
        .fetch_optional(db)
        .await
}

/// Insert or replace the entity's configuration (the SP key and test record are kept by the caller).
pub async fn put_config<'e>(db: impl AnyExecutor<'e>, c: &SsoConfig) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sso_configs (entity_id, vendor, idp_metadata_xml, idp_entity_id, idp_sso_redirect_url, idp_sso_post_url, \
            idp_certs, want_authn_requests_signed, email_attribute, enabled, allow_idp_initiated, jit_accounts, allow_sha1, \
            sp_sealed_key, sp_cert, created_at, updated_at, tested_hash, tested_at, idp_metadata_url, metadata_fetched_at, \
            metadata_error, metadata_error_at, metadata_next_fetch_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24) \
         ON CONFLICT (entity_id) DO UPDATE SET vendor = $2, idp_metadata_xml = $3, idp_entity_id = $4, \
            idp_sso_redirect_url = $5, idp_sso_post_url = $6, idp_certs = $7, want_authn_requests_signed = $8, \
            email_attribute = $9, enabled = $10, allow_idp_initiated = $11, jit_accounts = $12, allow_sha1 = $13, \
            sp_sealed_key = $14, sp_cert = $15, updated_at = $17, tested_hash = $18, tested_at = $19, \
            idp_metadata_url = $20, metadata_fetched_at = $21, metadata_error = $22, metadata_error_at = $23, \
            metadata_next_fetch_at = $24",
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
    .bind(&c.tested_hash)
    .bind(c.tested_at)
    .bind(&c.idp_metadata_url)
    .bind(c.metadata_fetched_at)
    .bind(&c.metadata_error)
    .bind(c.metadata_error_at)
    .bind(c.metadata_next_fetch_at)
    .execute(db)
    .await
    .map(|_| ())
}

/// Take the configuration row's write lock until the transaction ends (serialises changes).
pub async fn lock_config<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE sso_configs SET updated_at = updated_at WHERE entity_id = $1")
        .bind(entity_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Record that the IdP configuration with this fingerprint passed a test sign-in.
pub async fn set_tested<'e>(db: impl AnyExecutor<'e>, entity_id: &str, hash: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE sso_configs SET tested_hash = $1, tested_at = $2 WHERE entity_id = $3")
        .bind(hash)
        .bind(now)
        .bind(entity_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Remove the configuration, its domain claims and its pending requests.
pub async fn delete_config(tx: &mut crate::store::Tx, entity_id: &str) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM saml_requests WHERE entity_id = $1").bind(entity_id).execute(&mut **tx).await?;
    clear_domains(&mut **tx, entity_id).await?;
    let r = sqlx::query("DELETE FROM sso_configs WHERE entity_id = $1").bind(entity_id).execute(&mut **tx).await?;
    Ok(r.rows_affected() == 1)
}

/// The entity (id, slug) that holds `domain` verified and has SSO enabled: its IdP, and only
/// its IdP, signs in the addresses of that domain.
pub async fn enabled_entity_for_domain<'e>(
    db: impl AnyExecutor<'e>,
    domain: &str,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "SELECT e.id, e.slug FROM sso_domains d JOIN sso_configs c ON c.entity_id = d.entity_id \
         JOIN entities e ON e.id = d.entity_id WHERE d.domain = $1 AND d.verified = 1 AND c.enabled = 1",
    )
    .bind(domain)
    .fetch_optional(db)
    .await
}

/// The entity holding `domain` verified, enabled or not.
pub async fn verified_owner<'e>(db: impl AnyExecutor<'e>, domain: &str) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT entity_id FROM sso_domains WHERE domain = $1 AND verified = 1")
        .bind(domain)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Every domain the entity claims.
pub async fn domains<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT domain FROM sso_domains WHERE entity_id = $1 ORDER BY domain")
        .bind(entity_id)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
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

/// Whether `entity_id` holds `domain` verified.
pub async fn holds_verified<'e>(db: impl AnyExecutor<'e>, entity_id: &str, domain: &str) -> sqlx::Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM sso_domains WHERE entity_id = $1 AND domain = $2 AND verified = 1")
            .bind(entity_id)
            .bind(domain)
            .fetch_optional(db)
            .await?;
    Ok(row.is_some())
}

pub async fn clear_domains<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sso_domains WHERE entity_id = $1").bind(entity_id).execute(db).await.map(|_| ())
}

/// Add a claim. A second verified holder of a domain is a unique violation (one owner).
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

/// A verified domain belongs to one entity: the others' unverified claims of it lapse.
pub async fn drop_other_claims<'e>(db: impl AnyExecutor<'e>, domain: &str, entity_id: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sso_domains WHERE domain = $1 AND entity_id <> $2 AND verified = 0")
        .bind(domain)
        .bind(entity_id)
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
    /// Started by a test sign-in.
    pub test: bool,
    pub now: Millis,
    pub expires_at: Millis,
}

pub async fn insert_request<'e>(db: impl AnyExecutor<'e>, r: &PendingRequest<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO saml_requests (id, relay_hash, entity_id, browser_hash, return_to, test, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(r.id)
    .bind(r.relay_hash)
    .bind(r.entity_id)
    .bind(r.browser_hash)
    .bind(r.return_to)
    .bind(i64::from(r.test))
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
    pub test: i64,
    pub expires_at: Millis,
}

/// Take (read and delete) a pending request: each AuthnRequest ID answers once. One statement,
/// so of concurrent answers to the same request exactly one gets the row, on both backends
/// (a SELECT then DELETE let every reader through before the first delete committed).
pub async fn take_request(tx: &mut crate::store::Tx, id: &str) -> sqlx::Result<Option<Pending>> {
    sqlx::query_as(
        "DELETE FROM saml_requests WHERE id = $1 \
         RETURNING id, relay_hash, entity_id, browser_hash, return_to, test, expires_at",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Whether this browser has a live test sign-in pending at the entity (a disabled configuration
/// answers nothing else).
pub async fn live_test_of_browser<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    browser_hash: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT 1 FROM saml_requests WHERE entity_id = $1 AND browser_hash = $2 AND test = 1 AND expires_at > $3 LIMIT 1",
    )
    .bind(entity_id)
    .bind(browser_hash)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
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

/// How long refused responses are kept, and how many per entity at most (an attacker can post
/// refusals at will; the newest win).
pub const FAILURE_RETENTION_MS: Millis = 7 * 86_400_000;
pub const MAX_FAILURES_PER_ENTITY: i64 = 1000;

#[derive(Debug, Clone, FromRow)]
pub struct Failure {
    pub id: String,
    pub at: Millis,
    pub code: String,
    pub detail: String,
    pub issuer: Option<String>,
    pub name_id: Option<String>,
}

/// Log a refused response and trim the entity's log to its newest `MAX_FAILURES_PER_ENTITY` (each
/// insert adds one row and may delete up to a hundred, so the log never grows past the bound).
pub async fn record_failure(tx: &mut crate::store::Tx, entity_id: &str, f: &Failure) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sso_failures (id, entity_id, at, code, detail, issuer, name_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&f.id)
    .bind(entity_id)
    .bind(f.at)
    .bind(&f.code)
    .bind(&f.detail)
    .bind(&f.issuer)
    .bind(&f.name_id)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "DELETE FROM sso_failures WHERE entity_id = $1 AND id IN ( \
            SELECT id FROM sso_failures WHERE entity_id = $1 ORDER BY at DESC, id DESC LIMIT 100 OFFSET $2)",
    )
    .bind(entity_id)
    .bind(MAX_FAILURES_PER_ENTITY)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The entity's refused responses since `since`, newest first.
pub async fn failures<'e>(db: impl AnyExecutor<'e>, entity_id: &str, since: Millis) -> sqlx::Result<Vec<Failure>> {
    sqlx::query_as(
        "SELECT id, at, code, detail, issuer, name_id FROM sso_failures WHERE entity_id = $1 AND at >= $2 \
         ORDER BY at DESC, id DESC",
    )
    .bind(entity_id)
    .bind(since)
    .fetch_all(db)
    .await
}

pub async fn purge<'e>(db: impl AnyExecutor<'e> + Copy, now: Millis) -> sqlx::Result<u64> {
    let a = sqlx::query("DELETE FROM saml_requests WHERE expires_at < $1").bind(now).execute(db).await?;
    let b = sqlx::query("DELETE FROM saml_assertions_seen WHERE expires_at < $1").bind(now).execute(db).await?;
    let c = sqlx::query("DELETE FROM sso_failures WHERE at < $1").bind(now - FAILURE_RETENTION_MS).execute(db).await?;
    Ok(a.rows_affected() + b.rows_affected() + c.rows_affected())
}

/// Entities whose metadata URL is due for a refresh.
pub async fn due_refreshes<'e>(db: impl AnyExecutor<'e>, now: Millis) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT entity_id FROM sso_configs WHERE idp_metadata_url IS NOT NULL AND metadata_next_fetch_at <= $1 \
         AND (metadata_claimed_until IS NULL OR metadata_claimed_until <= $1) ORDER BY metadata_next_fetch_at",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Claim one refresh until `until`: true for exactly one replica per period (the predicate is
/// re-checked in the UPDATE itself).
pub async fn claim_refresh<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    now: Millis,
    until: Millis,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE sso_configs SET metadata_claimed_until = $1 WHERE entity_id = $2 AND idp_metadata_url IS NOT NULL \
         AND metadata_next_fetch_at <= $3 AND (metadata_claimed_until IS NULL OR metadata_claimed_until <= $3)",
    )
    .bind(until)
    .bind(entity_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn release_refresh<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sso_configs SET metadata_claimed_until = NULL WHERE entity_id = $1")
        .bind(entity_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// A refresh failed: keep the configuration, say why, try again at `next`.
pub async fn record_refresh_failure<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    url: &str,
    error: &str,
    now: Millis,
    next: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sso_configs SET metadata_error = $1, metadata_error_at = $2, metadata_next_fetch_at = $3, \
         metadata_claimed_until = NULL WHERE entity_id = $4 AND idp_metadata_url = $5",
    )
    .bind(error)
    .bind(now)
    .bind(next)
    .bind(entity_id)
    .bind(url)
    .execute(db)
    .await
    .map(|_| ())
}

/// Every entity with an SSO configuration.
pub async fn configured_entities<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT entity_id FROM sso_configs ORDER BY entity_id").fetch_all(db).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn set_cert_warnings<'e>(db: impl AnyExecutor<'e>, entity_id: &str, sent: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sso_configs SET cert_warnings_sent = $1 WHERE entity_id = $2")
        .bind(sent)
        .bind(entity_id)
        .execute(db)
        .await
        .map(|_| ())
}
