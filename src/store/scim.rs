//! SCIM provisioning: the tokens an entity's IdP calls with, the accounts it provisions (the
//! entity's view of them: its verified domains only), deactivation, groups and their members.

use sqlx::{AnyExecutor, FromRow};

use crate::{clock::Millis, store::Tx};

#[derive(Debug, Clone, FromRow)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

pub async fn insert_token<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    entity_id: &str,
    name: &str,
    token_hash: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO scim_tokens (id, entity_id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(entity_id)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn tokens_of<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(
        "SELECT id, name, created_at, last_used_at, revoked_at FROM scim_tokens WHERE entity_id = $1 ORDER BY created_at, id",
    )
    .bind(entity_id)
    .fetch_all(db)
    .await
}

/// False when the entity has no such live token.
pub async fn revoke_token<'e>(db: impl AnyExecutor<'e>, entity_id: &str, id: &str, now: Millis) -> sqlx::Result<bool> {
    let r =
        sqlx::query("UPDATE scim_tokens SET revoked_at = $1 WHERE id = $2 AND entity_id = $3 AND revoked_at IS NULL")
            .bind(now)
            .bind(id)
            .bind(entity_id)
            .execute(db)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// (token id, token name, entity id, entity slug, last used) of a live token.
pub async fn token_by_hash<'e>(
    db: impl AnyExecutor<'e>,
    token_hash: &str,
) -> sqlx::Result<Option<(String, String, String, String, Option<Millis>)>> {
    sqlx::query_as(
        "SELECT t.id, t.name, t.entity_id, e.slug, t.last_used_at FROM scim_tokens t JOIN entities e ON e.id = t.entity_id \
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
}

pub async fn touch_token<'e>(db: impl AnyExecutor<'e>, id: &str, now: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE scim_tokens SET last_used_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// An account as the entity's IdP sees it.
#[derive(Debug, Clone, FromRow)]
pub struct ScimUser {
    pub id: String,
    pub email: String,
    pub external_id: Option<String>,
    pub deactivated_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The accounts an entity provisions: those in its verified domains (which makes it their home),
/// less those its IdP deleted.
const USERS_IN_SCOPE: &str = "SELECT u.id, u.email, s.external_id, u.deactivated_at, u.created_at, \
        COALESCE(s.updated_at, u.created_at) AS updated_at \
     FROM users u LEFT JOIN scim_users s ON s.user_id = u.id AND s.entity_id = $1 \
     WHERE u.entity_id = $1 AND s.deleted_at IS NULL \
       AND EXISTS (SELECT 1 FROM sso_domains d WHERE d.entity_id = $1 AND d.verified = 1 \
                   AND u.email LIKE ('%@' || d.domain))";

/// Conditions of a user list (all must hold). Emails are compared lower-cased, external ids exactly.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UserQuery {
    pub emails: Vec<String>,
    pub external_ids: Vec<String>,
    pub ids: Vec<String>,
}

fn user_conditions(q: &UserQuery, sql: &mut String, next: &mut usize) -> Vec<String> {
    let mut binds = Vec::new();
    for (col, values) in [("u.email", &q.emails), ("s.external_id", &q.external_ids), ("u.id", &q.ids)] {
        for v in values {
            *next += 1;
            sql.push_str(&format!(" AND {col} = ${next}"));
            binds.push(v.clone());
        }
    }
    binds
}

/// (total, page) of the users matching `q`, ordered by creation, `offset`/`limit` applied.
pub async fn list_users(
    db: &sqlx::AnyPool,
    entity_id: &str,
    q: &UserQuery,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(i64, Vec<ScimUser>)> {
    let mut cond = String::new();
    let mut next = 1;
    let binds = user_conditions(q, &mut cond, &mut next);
    let count_sql = format!("SELECT COUNT(*) FROM ({USERS_IN_SCOPE}{cond}) x");
    let mut cq = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql)).bind(entity_id);
    for b in &binds {
        cq = cq.bind(b);
    }
    let (total,) = cq.fetch_one(db).await?;
    if limit == 0 {
        return Ok((total, Vec::new()));
    }
    let page_sql =
        format!("{USERS_IN_SCOPE}{cond} ORDER BY u.created_at, u.id LIMIT ${} OFFSET ${}", next + 1, next + 2);
    let mut pq = sqlx::query_as::<_, ScimUser>(sqlx::AssertSqlSafe(page_sql)).bind(entity_id);
    for b in &binds {
        pq = pq.bind(b);
    }
    let page = pq.bind(limit).bind(offset).fetch_all(db).await?;
    Ok((total, page))
}

pub async fn user_in_scope<'e>(db: impl AnyExecutor<'e>, entity_id: &str, id: &str) -> sqlx::Result<Option<ScimUser>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{USERS_IN_SCOPE} AND u.id = $2")))
        .bind(entity_id)
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The SCIM link of an account: deleted by the IdP (`Some(Some(_))`), live, or none yet.
pub async fn link_state<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<Option<Millis>>> {
    let row: Option<(Option<Millis>,)> =
        sqlx::query_as("SELECT deleted_at FROM scim_users WHERE entity_id = $1 AND user_id = $2")
            .bind(entity_id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|r| r.0))
}

/// Create or update the SCIM link of an account (and bring it back if it was deleted).
pub async fn upsert_link<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    user_id: &str,
    external_id: Option<&str>,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO scim_users (entity_id, user_id, external_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (entity_id, user_id) DO UPDATE SET external_id = $3, updated_at = $4, deleted_at = NULL",
    )
    .bind(entity_id)
    .bind(user_id)
    .bind(external_id)
    .bind(now)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn mark_link_deleted<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    user_id: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO scim_users (entity_id, user_id, created_at, updated_at, deleted_at) VALUES ($1, $2, $3, $3, $3) \
         ON CONFLICT (entity_id, user_id) DO UPDATE SET updated_at = $3, deleted_at = $3",
    )
    .bind(entity_id)
    .bind(user_id)
    .bind(now)
    .execute(db)
    .await
    .map(|_| ())
}

pub async fn rename_user<'e>(db: impl AnyExecutor<'e>, user_id: &str, email: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2").bind(email).bind(user_id).execute(db).await.map(|_| ())
}

/// Deactivate an account: no sign-in, every live seat ended, every assignment suspended. Returns
/// false when it was already deactivated. Sessions and tokens are ended by the caller.
pub async fn deactivate(tx: &mut Tx, user_id: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE users SET deactivated_at = $1 WHERE id = $2 AND deactivated_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    // Assignments first: a checkout holding one of them finishes before, and its lease ends below.
    sqlx::query("UPDATE assignments SET suspended_at = $1 WHERE user_id = $2 AND suspended_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE leases SET ended_at = $1, end_reason = 'deactivated' \
         WHERE user_id = $2 AND ended_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Reactivate an account: it may sign in again and its assignments give seats again. Returns
/// false when it was active.
pub async fn reactivate(tx: &mut Tx, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE users SET deactivated_at = NULL WHERE id = $1 AND deactivated_at IS NOT NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("UPDATE assignments SET suspended_at = NULL WHERE user_id = $1 AND suspended_at IS NOT NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Suspend one assignment (made while its account is deactivated).
pub async fn suspend_assignment<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
    user_id: &str,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE assignments SET suspended_at = $1 WHERE license_id = $2 AND user_id = $3")
        .bind(now)
        .bind(license_id)
        .bind(user_id)
        .execute(db)
        .await
        .map(|_| ())
}

#[derive(Debug, Clone, FromRow)]
pub struct Group {
    pub id: String,
    pub entity_id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

const GROUP_COLS: &str = "id, entity_id, display_name, external_id, created_at, updated_at";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GroupQuery {
    pub display_names: Vec<String>,
    pub external_ids: Vec<String>,
    pub ids: Vec<String>,
    /// Groups that hold this user id as a member.
    pub members: Vec<String>,
}

pub async fn list_groups(
    db: &sqlx::AnyPool,
    entity_id: &str,
    q: &GroupQuery,
    offset: i64,
    limit: i64,
) -> sqlx::Result<(i64, Vec<Group>)> {
    let mut cond = String::new();
    let mut binds = Vec::new();
    let mut next = 1;
    for (col, values) in [("display_name", &q.display_names), ("external_id", &q.external_ids), ("id", &q.ids)] {
        for v in values {
            next += 1;
            cond.push_str(&format!(" AND {col} = ${next}"));
            binds.push(v.clone());
        }
    }
    for v in &q.members {
        next += 1;
        cond.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM scim_group_members m WHERE m.group_id = scim_groups.id AND m.user_id = ${next})"
        ));
        binds.push(v.clone());
    }
    let base = format!("FROM scim_groups WHERE entity_id = $1{cond}");
    let mut cq = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {base}"))).bind(entity_id);
    for b in &binds {
        cq = cq.bind(b);
    }
    let (total,) = cq.fetch_one(db).await?;
    if limit == 0 {
        return Ok((total, Vec::new()));
    }
    let sql = format!("SELECT {GROUP_COLS} {base} ORDER BY created_at, id LIMIT ${} OFFSET ${}", next + 1, next + 2);
    let mut pq = sqlx::query_as::<_, Group>(sqlx::AssertSqlSafe(sql)).bind(entity_id);
    for b in &binds {
        pq = pq.bind(b);
    }
    Ok((total, pq.bind(limit).bind(offset).fetch_all(db).await?))
}

pub async fn group<'e>(db: impl AnyExecutor<'e>, entity_id: &str, id: &str) -> sqlx::Result<Option<Group>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP_COLS} FROM scim_groups WHERE entity_id = $1 AND id = $2"
    )))
    .bind(entity_id)
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn insert_group<'e>(db: impl AnyExecutor<'e>, g: &Group) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO scim_groups (id, entity_id, display_name, external_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&g.id)
    .bind(&g.entity_id)
    .bind(&g.display_name)
    .bind(&g.external_id)
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(db)
    .await
    .map(|_| ())
}

/// Take the group row's write lock (serialises membership changes) and note the change time.
pub async fn touch_group<'e>(db: impl AnyExecutor<'e>, id: &str, now: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE scim_groups SET updated_at = $1 WHERE id = $2").bind(now).bind(id).execute(db).await?;
    Ok(r.rows_affected() == 1)
}

pub async fn update_group<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    display_name: &str,
    external_id: Option<&str>,
    now: Millis,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE scim_groups SET display_name = $1, external_id = $2, updated_at = $3 WHERE id = $4")
        .bind(display_name)
        .bind(external_id)
        .bind(now)
        .bind(id)
        .execute(db)
        .await
        .map(|_| ())
}

/// Remove a group: its members, and the binding of any license to it (assignments stay).
pub async fn delete_group(tx: &mut Tx, id: &str) -> sqlx::Result<bool> {
    sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1").bind(id).execute(&mut **tx).await?;
    sqlx::query("UPDATE licenses SET scim_group_id = NULL WHERE scim_group_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let r = sqlx::query("DELETE FROM scim_groups WHERE id = $1").bind(id).execute(&mut **tx).await?;
    Ok(r.rows_affected() == 1)
}

/// (user id, email) of a group's members, by email.
pub async fn members<'e>(db: impl AnyExecutor<'e>, group_id: &str) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT u.id, u.email FROM scim_group_members m JOIN users u ON u.id = m.user_id WHERE m.group_id = $1 ORDER BY u.email",
    )
    .bind(group_id)
    .fetch_all(db)
    .await
}

/// The members of several groups at once, as (group id, user id), each group's ordered by email.
pub async fn members_of_groups<'e>(
    db: impl AnyExecutor<'e>,
    group_ids: &[&str],
) -> sqlx::Result<Vec<(String, String)>> {
    if group_ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=group_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT m.group_id, u.id FROM scim_group_members m JOIN users u ON u.id = m.user_id \
         WHERE m.group_id IN ({}) ORDER BY m.group_id, u.email",
        marks.join(", ")
    );
    let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in group_ids {
        q = q.bind(*id);
    }
    q.fetch_all(db).await
}

/// True when added (not already a member).
pub async fn add_member<'e>(db: impl AnyExecutor<'e>, group_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO scim_group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT (group_id, user_id) DO NOTHING",
    )
    .bind(group_id)
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn remove_member<'e>(db: impl AnyExecutor<'e>, group_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1 AND user_id = $2")
        .bind(group_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn clear_members<'e>(db: impl AnyExecutor<'e>, group_id: &str) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1").bind(group_id).execute(db).await?;
    Ok(r.rows_affected())
}

/// A deleted account leaves every group of the entity.
pub async fn leave_groups<'e>(db: impl AnyExecutor<'e>, entity_id: &str, user_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT m.group_id FROM scim_group_members m JOIN scim_groups g ON g.id = m.group_id \
         WHERE g.entity_id = $1 AND m.user_id = $2",
    )
    .bind(entity_id)
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Licenses bound to a group.
pub async fn licenses_of_group<'e>(db: impl AnyExecutor<'e>, group_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM licenses WHERE scim_group_id = $1 ORDER BY id")
        .bind(group_id)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn bind_license<'e>(db: impl AnyExecutor<'e>, license_id: &str, group_id: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET scim_group_id = $1, scim_sync_report = NULL WHERE id = $2")
        .bind(group_id)
        .bind(license_id)
        .execute(db)
        .await
        .map(|_| ())
}

/// (group id, last sync report) of a license.
pub async fn license_binding<'e>(
    db: impl AnyExecutor<'e>,
    license_id: &str,
) -> sqlx::Result<Option<(Option<String>, Option<String>)>> {
    sqlx::query_as("SELECT scim_group_id, scim_sync_report FROM licenses WHERE id = $1")
        .bind(license_id)
        .fetch_optional(db)
        .await
}

pub async fn set_sync_report<'e>(db: impl AnyExecutor<'e>, license_id: &str, report: Option<&str>) -> sqlx::Result<()> {
    sqlx::query("UPDATE licenses SET scim_sync_report = $1 WHERE id = $2")
        .bind(report)
        .bind(license_id)
        .execute(db)
        .await
        .map(|_| ())
}
