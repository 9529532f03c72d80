//! Licenses, their assignments and share links.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Debug, Clone, FromRow)]
pub struct License {
    pub id: String,
    pub entity_id: String,
    pub entity_slug: String,
    pub product_id: String,
    pub product_sku: String,
    pub product_name: String,
    pub kind: String,
    pub seats: i64,
    pub expires_at: Option<Millis>,
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub changes_used: i64,
    pub idle_timeout_s: Option<i64>,
    pub assigned: i64,
    pub created_at: Millis,
    pub offline_allowed: i64,
    pub onprem_allowed: i64,
    /// The SCIM group whose membership is this license's assignment list.
    pub scim_group_id: Option<String>,
    /// What the last synchronisation with that group could not do (JSON array).
    pub scim_sync_report: Option<String>,
}

impl License {
    pub fn is_fixed(&self) -> bool {
        self.kind == "fixed"
    }
}

const LICENSE_SELECT: &str = "SELECT l.id, l.entity_id, e.slug AS entity_slug, l.product_id, p.sku AS product_sku, p.name AS product_name, \
       l.kind, l.seats, l.expires_at, l.group_id, g.name AS group_name, l.changes_used, l.idle_timeout_s, \
       (SELECT COUNT(*) FROM assignments a WHERE a.license_id = l.id) AS assigned, l.created_at, \
       l.offline_allowed, l.onprem_allowed, l.scim_group_id, l.scim_sync_report \
     FROM licenses l \
     JOIN entities e ON e.id = l.entity_id \
     JOIN products p ON p.id = l.product_id \
     LEFT JOIN license_groups g ON g.id = l.group_id";

pub struct NewLicense<'a> {
    pub id: &'a str,
    pub entity_id: &'a str,
    pub product_id: &'a str,
    pub kind: &'a str,
    pub seats: i64,
    pub expires_at: Option<Millis>,
    pub group_id: Option<&'a str>,
    pub idle_timeout_s: Option<i64>,
    pub now: Millis,
}

pub async fn insert_license<'e>(db: impl AnyExecutor<'e>, l: &NewLicense<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO licenses (id, entity_id, product_id, kind, seats, expires_at, group_id, idle_timeout_s, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(l.id)
    .bind(l.entity_id)
    .bind(l.product_id)
    .bind(l.kind)
    .bind(l.seats)
    .bind(l.expires_at)
    .bind(l.group_id)
    .bind(l.idle_timeout_s)
    .bind(l.now)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn license_by_id<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<Option<License>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{LICENSE_SELECT} WHERE l.id = $1"))).bind(id).fetch_optional(db).await
}

pub async fn licenses_of_entity<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<License>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{LICENSE_SELECT} WHERE l.entity_id = $1 ORDER BY p.sku, l.created_at")))
        .bind(entity_id)
        .fetch_all(db)
        .await
}

/// Take the license row's write lock (and bump its version) so that everything counted against
/// its seats in this transaction is serialised with every other replica.
pub async fn lock_license<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE licenses SET version = version + 1 WHERE id = $1").bind(id).execute(db).await?;
    Ok(r.rows_affected() == 1)
}

pub async fn set_seats<'e>(db: impl AnyExecutor<'e>, id: &str, seats: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET seats = $1 WHERE id = $2").bind(seats).bind(id).execute(db).await.map(|_| ())
}

pub async fn set_expiry<'e>(db: impl AnyExecutor<'e>, id: &str, expires_at: Option<Millis>) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET expires_at = $1 WHERE id = $2")
        .bind(expires_at)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn set_group<'e>(db: impl AnyExecutor<'e>, id: &str, group_id: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET group_id = $1 WHERE id = $2").bind(group_id).bind(id).execute(db).await.map(|_| ())
}

pub async fn set_idle_timeout<'e>(db: impl AnyExecutor<'e>, id: &str, secs: Option<i64>) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET idle_timeout_s = $1 WHERE id = $2")
        .bind(secs)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn spend_change<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET changes_used = changes_used + 1 WHERE id = $1")
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn count_assignments<'e>(db: impl AnyExecutor<'e>, license_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM assignments WHERE license_id = $1").bind(license_id).fetch_one(db).await?;
    Ok(n)
}

pub async fn is_assigned<'e>(db: impl AnyExecutor<'e>, license_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM assignments WHERE license_id = $1 AND user_id = $2")
            .bind(license_id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(row.is_some())
}

pub async fn insert_assignment<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    user_id: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO assignments (license_id, user_id, created_at) VALUES ($1, $2, $3)")
        .bind(license_id)
        .bind(user_id)
        .bind(now)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn delete_assignment<'e>(db: impl AnyExecutor<'e>, license_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM assignments WHERE license_id = $1 AND user_id = $2")
        .bind(license_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct Assignee {
    pub user_id: String,
    pub email: String,
    pub created_at: Millis,
}

pub async fn assignees<'e>(db: impl AnyExecutor<'e>, license_id: &str) -> sqlx::Result<Vec<Assignee>> {
    sqlx::query_as(
        "SELECT a.user_id, u.email, a.created_at FROM assignments a JOIN users u ON u.id = a.user_id \
         WHERE a.license_id = $1 ORDER BY u.email",
    )
    .bind(license_id)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, FromRow)]
pub struct ShareLink {
    pub id: String,
    pub license_id: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub revoked_at: Option<Millis>,
}

pub async fn insert_share_link<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    license_id: &str,
    token_hash: &str,
    created_by: &str,
    now: Millis,
    expires_at: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO share_links (id, license_id, token_hash, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(license_id)
    .bind(token_hash)
    .bind(created_by)
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn share_link_by_hash<'e>(db: impl AnyExecutor<'e>, token_hash: &str) -> sqlx::Result<Option<ShareLink>> {
    sqlx::query_as("SELECT id, license_id, created_at, expires_at, revoked_at FROM share_links WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(db)
        .await
}

pub async fn share_links_of<'e>(db: impl AnyExecutor<'e>, license_id: &str) -> sqlx::Result<Vec<ShareLink>> {
    sqlx::query_as(
        "SELECT id, license_id, created_at, expires_at, revoked_at FROM share_links WHERE license_id = $1 ORDER BY created_at",
    )
    .bind(license_id)
    .fetch_all(db)
    .await
}

pub async fn revoke_share_link<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    id: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let r =
        sqlx::query("UPDATE share_links SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND license_id = $3")
            .bind(now)
            .bind(id)
            .bind(license_id)
            .execute(db)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// (user id, license id) of every assignment of an entity's licenses.
pub async fn assignments_of_entity<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT a.user_id, a.license_id FROM assignments a JOIN licenses l ON l.id = a.license_id WHERE l.entity_id = $1",
    )
    .bind(entity_id)
    .fetch_all(db)
    .await
}

/// A user's licenses as they see them: (license id, product SKU, product name, kind, entity slug, expiry).
#[derive(Debug, Clone, FromRow)]
pub struct HeldLicense {
    pub id: String,
    pub sku: String,
    pub product_name: String,
    pub kind: String,
    pub entity_slug: String,
    pub expires_at: Option<Millis>,
}

pub async fn licenses_held_by<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<Vec<HeldLicense>> {
    sqlx::query_as(
        "SELECT l.id, p.sku, p.name AS product_name, l.kind, e.slug AS entity_slug, l.expires_at FROM assignments a \
         JOIN licenses l ON l.id = a.license_id JOIN products p ON p.id = l.product_id JOIN entities e ON e.id = l.entity_id \
         WHERE a.user_id = $1 ORDER BY p.sku",
    )
    .bind(user_id)
    .fetch_all(db)
    .await
}

/// `text` as a LIKE pattern that matches it anywhere, its wildcards taken literally (use with
/// `ESCAPE '\'`).
pub fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// An assignee as the license's administrators see it in a list.
#[derive(Debug, Clone, FromRow)]
pub struct AssigneeRow {
    pub user_id: String,
    pub email: String,
    pub created_at: Millis,
    pub has_password: i64,
    /// The last heartbeat (or checkout) of any of the user's seats on this license.
    pub last_use: Option<Millis>,
}

/// A page of a license's assignees by email (at most `limit`, in email order), optionally only
/// those whose email contains `search`.
///
/// With and without a search these are two statements (not one with `$2 = '' OR ...`), so that each
/// is planned for what it does: a prepared statement's generic plan is made once for both cases.
pub async fn assignee_page<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    search: Option<&str>,
    at: &super::Keyset,
    limit: i64,
) -> sqlx::Result<Vec<AssigneeRow>> {
    let (cond, order) = at.sql("u.email", 4);
    let matching = if search.is_some() { " AND u.email LIKE $2 ESCAPE '\\'" } else { " AND $2 = ''" };
    let sql = format!(
        "SELECT a.user_id, u.email, a.created_at, \
                CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS has_password, \
                (SELECT MAX(s.last_heartbeat_at) FROM leases s WHERE s.user_id = a.user_id AND s.license_id = a.license_id) AS last_use \
         FROM assignments a JOIN users u ON u.id = a.user_id \
         WHERE a.license_id = $1{matching}{cond} \
         ORDER BY u.email {order} LIMIT $3"
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(license_id)
        .bind(search.map(contains_pattern).unwrap_or_default())
        .bind(limit);
    if let Some(k) = at.key() {
        q = q.bind(k.to_string());
    }
    let mut rows: Vec<AssigneeRow> = q.fetch_all(db).await?;
    if at.backwards() {
        rows.reverse();
    }
    Ok(rows)
}

/// How many assignees the license has (whose email contains `search`, when given). Without a
/// search only the assignments' primary key is read, not the users.
pub async fn count_assignees<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    search: Option<&str>,
) -> sqlx::Result<i64> {
    let q = match search {
        None => sqlx::query_as("SELECT COUNT(*) FROM assignments WHERE license_id = $1").bind(license_id),
        Some(s) => sqlx::query_as(
            "SELECT COUNT(*) FROM assignments a JOIN users u ON u.id = a.user_id \
             WHERE a.license_id = $1 AND u.email LIKE $2 ESCAPE '\\'",
        )
        .bind(license_id)
        .bind(contains_pattern(s)),
    };
    let (n,): (i64,) = q.fetch_one(db).await?;
    Ok(n)
}
