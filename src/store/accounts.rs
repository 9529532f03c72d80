//! User accounts and their single-use password-setup / reset links.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Clone, FromRow)]
pub struct User {
    pub id: String,
    pub email: String,
    pub entity_id: String,
    pub password_hash: Option<String>,
    pub password_changed_at: Option<Millis>,
    pub created_at: Millis,
    /// Set while the account's organisation has deactivated it (SCIM `active:false`).
    pub deactivated_at: Option<Millis>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("entity_id", &self.entity_id)
            .field("has_password", &self.password_hash.is_some())
            .field("deactivated", &self.deactivated_at.is_some())
            .finish()
    }
}

const USER_COLS: &str = "id, email, entity_id, password_hash, password_changed_at, created_at, deactivated_at";

/// Insert unless the email already has an account; true when inserted.
pub async fn insert_user_if_absent<'e>(db: impl AnyExecutor<'e>, u: &User) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO users (id, email, entity_id, password_hash, password_changed_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email) DO NOTHING",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.entity_id)
    .bind(&u.password_hash)
    .bind(u.password_changed_at)
    .bind(u.created_at)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn user_by_email<'e>(db: impl AnyExecutor<'e>, email: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE email = $1")))
        .bind(email)
        .fetch_optional(db)
        .await
}

pub async fn user_by_id<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<Option<User>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The accounts whose address is in `domain` (`...@domain` exactly, not its subdomains).
pub async fn user_ids_in_domain<'e>(db: impl AnyExecutor<'e>, domain: &str) -> sqlx::Result<Vec<String>> {
    // Domains hold only [a-z0-9.-] (checked when claimed): no LIKE wildcard can slip in.
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM users WHERE email LIKE ('%@' || $1)").bind(domain).fetch_all(db).await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The accounts of `domain` make `entity_id` their home (the domain was verified for it).
pub async fn rehome_domain<'e>(db: impl AnyExecutor<'e>, domain: &str, entity_id: &str) -> sqlx::Result<u64> {
    let r = sqlx::query("UPDATE users SET entity_id = $1 WHERE email LIKE ('%@' || $2) AND entity_id <> $1")
        .bind(entity_id)
        .bind(domain)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Take the account row's write lock until the transaction ends.
pub async fn lock_user<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET created_at = created_at WHERE id = $1").bind(user_id).execute(db).await.map(|_| ())
}

pub async fn set_password<'e>(db: impl AnyExecutor<'e>, user_id: &str, hash: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
        .bind(hash)
        .bind(now)
        .bind(user_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Users of an entity as its administrators see them: its own accounts and every account holding
/// one of its licenses.
#[derive(Debug, Clone, FromRow)]
pub struct EntityUser {
    pub id: String,
    pub email: String,
    pub home: i64,
    pub has_password: i64,
    pub is_admin: i64,
    pub created_at: Millis,
}

const ENTITY_USERS: &str = "SELECT u.id, u.email, \
                CASE WHEN u.entity_id = $1 THEN 1 ELSE 0 END AS home, \
                CASE WHEN u.password_hash IS NULL THEN 0 ELSE 1 END AS has_password, \
                CASE WHEN EXISTS (SELECT 1 FROM entity_admins a WHERE a.entity_id = $1 AND a.user_id = u.id) \
                     THEN 1 ELSE 0 END AS is_admin, \
                u.created_at \
         FROM users u \
         WHERE (u.entity_id = $1 \
            OR EXISTS (SELECT 1 FROM assignments s JOIN licenses l ON l.id = s.license_id \
                       WHERE s.user_id = u.id AND l.entity_id = $1) \
            OR EXISTS (SELECT 1 FROM entity_admins a WHERE a.entity_id = $1 AND a.user_id = u.id)) \
           AND ($2 = '' OR u.email LIKE $2 ESCAPE '\\')";

pub async fn entity_users<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<EntityUser>> {
    entity_users_page(db, entity_id, None, &super::Keyset::First, i64::from(i32::MAX)).await
}

/// A page of an entity's users by email (at most `limit`, in email order), optionally only those
/// whose email contains `search`.
pub async fn entity_users_page<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    search: Option<&str>,
    at: &super::Keyset,
    limit: i64,
) -> sqlx::Result<Vec<EntityUser>> {
    let (cond, order) = at.sql("u.email", 4);
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(format!("{ENTITY_USERS}{cond} ORDER BY u.email {order} LIMIT $3")))
        .bind(entity_id)
        .bind(search.map(super::licenses::contains_pattern).unwrap_or_default())
        .bind(limit);
    if let Some(k) = at.key() {
        q = q.bind(k.to_string());
    }
    let mut rows: Vec<EntityUser> = q.fetch_all(db).await?;
    if at.backwards() {
        rows.reverse();
    }
    Ok(rows)
}

pub async fn count_entity_users<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    search: Option<&str>,
) -> sqlx::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM ({ENTITY_USERS}) t")))
        .bind(entity_id)
        .bind(search.map(super::licenses::contains_pattern).unwrap_or_default())
        .fetch_one(db)
        .await?;
    Ok(n)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    Setup,
    Reset,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Setup => "setup",
            LinkPurpose::Reset => "reset",
        }
    }
}

pub async fn insert_link<'e>(
    db: impl AnyExecutor<'e>,
    token_hash: &str,
    user_id: &str,
    purpose: LinkPurpose,
    now: Millis,
    expires_at: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO account_links (token_hash, user_id, purpose, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await
    .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct Link {
    pub user_id: String,
    pub purpose: String,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

pub async fn link_by_hash<'e>(db: impl AnyExecutor<'e>, token_hash: &str) -> sqlx::Result<Option<Link>> {
    sqlx::query_as("SELECT user_id, purpose, expires_at, used_at FROM account_links WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(db)
        .await
}

/// Spend a link; the predicate in the UPDATE makes two concurrent uses impossible.
pub async fn spend_link<'e>(db: impl AnyExecutor<'e>, token_hash: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE account_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token_hash)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// After a password is set, every other outstanding link of the account stops working.
pub async fn spend_all_links<'e>(db: impl AnyExecutor<'e>, user_id: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE account_links SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Whether the account has an outstanding (unspent, unexpired) link of this purpose.
pub async fn has_live_link<'e>(
    db: impl AnyExecutor<'e>,
    user_id: &str,
    purpose: LinkPurpose,
    now: Millis,
) -> sqlx::Result<bool> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM account_links WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
    )
    .bind(user_id)
    .bind(purpose.as_str())
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(n > 0)
}
