//! Licensing in private networks: offline license files and licenses moved to on-premise servers
//! (the vendor's records), and on an on-premise server its own key and imported entitlements.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

// ---- the vendor's switches on a license ------------------------------------------------------

pub async fn set_offline_allowed<'e>(db: impl AnyExecutor<'e>, license_id: &str, on: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET offline_allowed = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(license_id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_onprem_allowed<'e>(db: impl AnyExecutor<'e>, license_id: &str, on: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET onprem_allowed = $1 WHERE id = $2")
        .bind(i64::from(on))
        .bind(license_id)
        .execute(db)
        .await
        .map(|_| ())
}

// ---- vendor: offline licenses ----------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct OfflineLicense {
    pub jti: String,
    pub license_id: String,
    pub user_id: String,
    pub lease_id: String,
    pub fingerprint_hash: String,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub returned_at: Option<Millis>,
}

pub async fn insert_offline<'e>(db: impl AnyExecutor<'e>, o: &OfflineLicense) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO offline_licenses (jti, license_id, user_id, lease_id, fingerprint_hash, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&o.jti)
    .bind(&o.license_id)
    .bind(&o.user_id)
    .bind(&o.lease_id)
    .bind(&o.fingerprint_hash)
    .bind(o.issued_at)
    .bind(o.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn offline_by_jti<'e>(db: impl AnyExecutor<'e>, jti: &str) -> sqlx::Result<Option<OfflineLicense>> {
    sqlx::query_as(
        "SELECT jti, license_id, user_id, lease_id, fingerprint_hash, issued_at, expires_at, returned_at \
         FROM offline_licenses WHERE jti = $1",
    )
    .bind(jti)
    .fetch_optional(db)
    .await
}

/// Mark an offline license returned; false when it was returned already.
pub async fn return_offline<'e>(db: impl AnyExecutor<'e>, jti: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE offline_licenses SET returned_at = $1 WHERE jti = $2 AND returned_at IS NULL")
        .bind(now)
        .bind(jti)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Live offline seats of a license (issued, not returned, not expired).
pub async fn count_live_offline<'e>(db: impl AnyExecutor<'e>, license_id: &str, now: Millis) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM offline_licenses WHERE license_id = $1 AND returned_at IS NULL AND expires_at > $2",
    )
    .bind(license_id)
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(n)
}

/// An offline license file as the operator console lists it.
#[derive(Debug, Clone, FromRow)]
pub struct OfflineRow {
    pub jti: String,
    pub email: String,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub returned_at: Option<Millis>,
}

/// The offline license files of a license, newest first.
pub async fn offline_of<'e>(db: impl AnyExecutor<'e>, license_id: &str) -> sqlx::Result<Vec<OfflineRow>> {
    sqlx::query_as(
        "SELECT o.jti, u.email, o.issued_at, o.expires_at, o.returned_at FROM offline_licenses o \
         JOIN users u ON u.id = o.user_id WHERE o.license_id = $1 ORDER BY o.issued_at DESC, o.jti",
    )
    .bind(license_id)
    .fetch_all(db)
    .await
}

/// A license the vendor allowed on an on-premise server or offline, with where it is now.
#[derive(Debug, Clone, FromRow)]
pub struct PrivateRow {
    pub id: String,
    pub entity_slug: String,
    pub entity_name: String,
    pub product_name: String,
    pub kind: String,
    pub seats: i64,
    pub expires_at: Option<Millis>,
    pub onprem_allowed: i64,
    pub offline_allowed: i64,
    /// The on-premise server holding it now, and until when.
    pub onprem_host: Option<String>,
    pub onprem_until: Option<Millis>,
    /// Offline files in force.
    pub offline_live: i64,
}

/// Every license allowed on-premise or offline use, by entity and product.
pub async fn private_licenses<'e>(db: impl AnyExecutor<'e>, now: Millis) -> sqlx::Result<Vec<PrivateRow>> {
    sqlx::query_as(
        "SELECT l.id, e.slug AS entity_slug, e.name AS entity_name, p.name AS product_name, l.kind, l.seats, \
                l.expires_at, l.onprem_allowed, l.offline_allowed, \
                (SELECT x.server_host FROM onprem_exports x WHERE x.license_id = l.id AND x.returned_at IS NULL \
                   AND x.expires_at > $1 ORDER BY x.issued_at DESC LIMIT 1) AS onprem_host, \
                (SELECT x.expires_at FROM onprem_exports x WHERE x.license_id = l.id AND x.returned_at IS NULL \
                   AND x.expires_at > $1 ORDER BY x.issued_at DESC LIMIT 1) AS onprem_until, \
                (SELECT COUNT(*) FROM offline_licenses o WHERE o.license_id = l.id AND o.returned_at IS NULL \
                   AND o.expires_at > $1) AS offline_live \
         FROM licenses l JOIN entities e ON e.id = l.entity_id JOIN products p ON p.id = l.product_id \
         WHERE l.onprem_allowed = 1 OR l.offline_allowed = 1 ORDER BY e.slug, p.name, l.id",
    )
    .bind(now)
    .fetch_all(db)
    .await
}

// ---- vendor: licenses moved to on-premise servers --------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct Export {
    pub entitlement_jti: String,
    pub license_id: String,
    pub server_id: String,
    pub server_host: String,
    pub server_key: String,
    pub server_thumb: String,
    pub seats: i64,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub returned_at: Option<Millis>,
}

const EXPORT_COLS: &str = "entitlement_jti, license_id, server_id, server_host, server_key, server_thumb, seats, \
                           issued_at, expires_at, returned_at";

pub async fn insert_export<'e>(db: impl AnyExecutor<'e>, x: &Export) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO onprem_exports (entitlement_jti, license_id, server_id, server_host, server_key, server_thumb, \
         seats, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&x.entitlement_jti)
    .bind(&x.license_id)
    .bind(&x.server_id)
    .bind(&x.server_host)
    .bind(&x.server_key)
    .bind(&x.server_thumb)
    .bind(x.seats)
    .bind(x.issued_at)
    .bind(x.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

/// The license's export in force (not returned, not expired), if any.
pub async fn active_export<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    now: Millis,
) -> sqlx::Result<Option<Export>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPORT_COLS} FROM onprem_exports \
         WHERE license_id = $1 AND returned_at IS NULL AND expires_at > $2 ORDER BY issued_at DESC LIMIT 1"
    )))
    .bind(license_id)
    .bind(now)
    .fetch_optional(db)
    .await
}

/// Every export of a license, newest first.
pub async fn exports_of<'e>(db: impl AnyExecutor<'e>, license_id: &str) -> sqlx::Result<Vec<Export>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EXPORT_COLS} FROM onprem_exports WHERE license_id = $1 ORDER BY issued_at DESC"
    )))
    .bind(license_id)
    .fetch_all(db)
    .await
}

/// Mark an export returned by the return file `return_jti`; false when it was returned already.
pub async fn return_export<'e>(
    db: impl AnyExecutor<'e>,
    entitlement_jti: &str,
    return_jti: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE onprem_exports SET returned_at = $1, return_jti = $2 WHERE entitlement_jti = $3 AND returned_at IS NULL",
    )
    .bind(now)
    .bind(return_jti)
    .bind(entitlement_jti)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// One day of on-premise usage.
#[derive(Debug, Clone, FromRow)]
pub struct UsageDay {
    pub license_id: String,
    pub day: String,
    pub peak_seats: i64,
    pub denials: i64,
    pub distinct_users: i64,
}

/// Store a day reported by an on-premise server (a later report of the same day replaces it).
pub async fn upsert_usage<'e>(db: impl AnyExecutor<'e>, u: &UsageDay, now: Millis) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO onprem_usage (license_id, day, peak_seats, denials, distinct_users, imported_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (license_id, day) DO UPDATE SET \
         peak_seats = excluded.peak_seats, denials = excluded.denials, distinct_users = excluded.distinct_users, \
         imported_at = excluded.imported_at",
    )
    .bind(&u.license_id)
    .bind(&u.day)
    .bind(u.peak_seats)
    .bind(u.denials)
    .bind(u.distinct_users)
    .bind(now)
    .execute(db)
    .await
    .map(|_| ())
}

/// Reported on-premise usage of an entity's licenses over `from_day..=to_day`.
pub async fn usage_of_entity<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    from_day: &str,
    to_day: &str,
) -> sqlx::Result<Vec<UsageDay>> {
    sqlx::query_as(
        "SELECT u.license_id, u.day, u.peak_seats, u.denials, u.distinct_users FROM onprem_usage u \
         JOIN licenses c ON c.id = u.license_id WHERE c.entity_id = $1 AND u.day >= $2 AND u.day <= $3",
    )
    .bind(entity_id)
    .bind(from_day)
    .bind(to_day)
    .fetch_all(db)
    .await
}

// ---- on-premise server: its key and its entitlements -----------------------------------------

#[derive(Clone, FromRow)]
pub struct ServerKey {
    pub id: String,
    pub sealed_private: String,
    pub public_jwk: String,
    pub thumbprint: String,
    pub created_at: Millis,
}

/// Insert the server key unless one exists (the first writer wins).
pub async fn insert_server_key<'e>(db: impl AnyExecutor<'e>, k: &ServerKey) -> sqlx::Result<()> {
    // One row ever: a second key is refused by the check below in the same statement.
    sqlx::query(
        "INSERT INTO onprem_server_key (id, sealed_private, public_jwk, thumbprint, created_at) \
         SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM onprem_server_key)",
    )
    .bind(&k.id)
    .bind(&k.sealed_private)
    .bind(&k.public_jwk)
    .bind(&k.thumbprint)
    .bind(k.created_at)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn server_key<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Option<ServerKey>> {
    sqlx::query_as(
        "SELECT id, sealed_private, public_jwk, thumbprint, created_at FROM onprem_server_key \
         ORDER BY created_at, id LIMIT 1",
    )
    .fetch_optional(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct Entitlement {
    pub jti: String,
    pub license_id: String,
    pub token: String,
    pub imported_at: Millis,
    pub expires_at: Millis,
    pub removed_at: Option<Millis>,
}

pub async fn insert_entitlement<'e>(db: impl AnyExecutor<'e>, e: &Entitlement) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO onprem_entitlements (jti, license_id, token, imported_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&e.jti)
    .bind(&e.license_id)
    .bind(&e.token)
    .bind(e.imported_at)
    .bind(e.expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn entitlement_exists<'e>(db: impl AnyExecutor<'e>, jti: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT jti FROM onprem_entitlements WHERE jti = $1").bind(jti).fetch_optional(db).await?;
    Ok(row.is_some())
}

/// The license's entitlements not removed, newest first.
pub async fn active_entitlements<'e>(db: impl AnyExecutor<'e>, license_id: &str) -> sqlx::Result<Vec<Entitlement>> {
    sqlx::query_as(
        "SELECT jti, license_id, token, imported_at, expires_at, removed_at FROM onprem_entitlements \
         WHERE license_id = $1 AND removed_at IS NULL ORDER BY imported_at DESC, jti",
    )
    .bind(license_id)
    .fetch_all(db)
    .await
}

/// Every license that ever held an entitlement here.
pub async fn entitled_license_ids<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT license_id FROM onprem_entitlements ORDER BY license_id").fetch_all(db).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn remove_entitlements_of<'e>(db: impl AnyExecutor<'e>, license_id: &str, now: Millis) -> sqlx::Result<u64> {
    let r = sqlx::query("UPDATE onprem_entitlements SET removed_at = $1 WHERE license_id = $2 AND removed_at IS NULL")
        .bind(now)
        .bind(license_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// End every live lease of a license (it left this server, or went on-premise).
pub async fn end_live_leases<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    reason: &str,
    now: Millis,
) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "UPDATE leases SET ended_at = $1, end_reason = $2 WHERE license_id = $3 AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(reason)
    .bind(license_id)
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

pub async fn everyone_user<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as("SELECT user_id FROM onprem_everyone WHERE entity_id = $1")
        .bind(entity_id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| r.0))
}

pub async fn insert_everyone<'e>(db: impl AnyExecutor<'e>, entity_id: &str, user_id: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO onprem_everyone (entity_id, user_id) VALUES ($1, $2)")
        .bind(entity_id)
        .bind(user_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Every "everyone" account: their seats are told apart by machine.
pub async fn everyone_users<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT user_id FROM onprem_everyone").fetch_all(db).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Licenses of product `sku` holding an entitlement not removed: (license, entity), by entity.
pub async fn entitled_licenses_of_product<'e>(
    db: impl AnyExecutor<'e>,
    sku: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT c.id, c.entity_id FROM licenses c JOIN products p ON p.id = c.product_id \
         WHERE p.sku = $1 AND EXISTS (SELECT 1 FROM onprem_entitlements n WHERE n.license_id = c.id AND n.removed_at IS NULL) \
         ORDER BY c.entity_id, c.id",
    )
    .bind(sku)
    .fetch_all(db)
    .await
}

/// Leases of the given licenses overlapping [from, to): (license, identity, start, end), where
/// the identity is the user, or for an "everyone" account the machine.
pub async fn usage_intervals<'e>(
    db: impl AnyExecutor<'e>,
    from: Millis,
    to: Millis,
) -> sqlx::Result<Vec<(String, String, Millis, Millis)>> {
    sqlx::query_as(
        "SELECT l.license_id, CASE WHEN w.user_id IS NULL THEN l.user_id ELSE l.machine_hash END, \
         l.created_at, COALESCE(l.ended_at, l.expires_at) FROM leases l \
         LEFT JOIN onprem_everyone w ON w.user_id = l.user_id \
         WHERE l.created_at < $2 AND COALESCE(l.ended_at, l.expires_at) > $1 \
           AND l.license_id IN (SELECT license_id FROM onprem_entitlements)",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// Denials of the licenses that ever held an entitlement here in [from, to), per quarter hour.
pub async fn usage_denials<'e>(
    db: impl AnyExecutor<'e>,
    from: Millis,
    to: Millis,
) -> sqlx::Result<Vec<(String, Millis, i64)>> {
    sqlx::query_as(
        "SELECT d.license_id, d.at, d.denials FROM seat_refusals d \
         WHERE d.at >= $1 AND d.at < $2 AND d.license_id IN (SELECT license_id FROM onprem_entitlements)",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await
}

/// True when `lease_id` is the seat of an offline license not returned and not expired.
pub async fn live_offline_lease<'e>(db: impl AnyExecutor<'e>, lease_id: &str, now: Millis) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT jti FROM offline_licenses WHERE lease_id = $1 AND returned_at IS NULL AND expires_at > $2",
    )
    .bind(lease_id)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}

/// Lock every seat slot of a license until the transaction ends (PostgreSQL; SQLite has one writer).
pub async fn lock_slots(conn: &mut sqlx::AnyConnection, backend: super::Backend, license_id: &str) -> sqlx::Result<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT slot FROM seat_slots WHERE license_id = $1 FOR UPDATE")
            .bind(license_id)
            .fetch_all(conn)
            .await?;
    }
    Ok(())
}

/// True when the user holds an offline license of the license (not returned, not expired).
pub async fn has_live_offline<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    user_id: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT jti FROM offline_licenses WHERE license_id = $1 AND user_id = $2 AND returned_at IS NULL AND expires_at > $3",
    )
    .bind(license_id)
    .bind(user_id)
    .bind(now)
    .fetch_optional(db)
    .await?;
    Ok(row.is_some())
}
