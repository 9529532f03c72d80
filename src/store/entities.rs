//! Entities (customers), their administrators, products and license groups.

use sqlx::{AnyExecutor, FromRow};

use crate::clock::Millis;

#[derive(Debug, Clone, FromRow)]
pub struct Entity {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, FromRow)]
pub struct Product {
    pub id: String,
    pub sku: String,
    pub name: String,
    pub created_at: Millis,
}

#[derive(Debug, Clone, FromRow)]
pub struct Group {
    pub id: String,
    pub entity_id: String,
    pub name: String,
    pub created_at: Millis,
}

pub async fn insert_entity<'e>(db: impl AnyExecutor<'e>, e: &Entity) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO entities (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&e.id)
        .bind(&e.slug)
        .bind(&e.name)
        .bind(e.created_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn entity_by_slug<'e>(db: impl AnyExecutor<'e>, slug: &str) -> sqlx::Result<Option<Entity>> {
    sqlx::query_as("SELECT id, slug, name, created_at FROM entities WHERE slug = $1")
        .bind(slug)
        .fetch_optional(db)
        .await
}

pub async fn entity_by_id<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<Option<Entity>> {
    sqlx::query_as("SELECT id, slug, name, created_at FROM entities WHERE id = $1").bind(id).fetch_optional(db).await
}

/// Take the entity row's write lock until the transaction ends.
pub async fn lock_entity<'e>(db: impl AnyExecutor<'e>, id: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE entities SET created_at = created_at WHERE id = $1").bind(id).execute(db).await.map(|_| ())
}

pub async fn list_entities<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<Entity>> {
    sqlx::query_as("SELECT id, slug, name, created_at FROM entities ORDER BY slug").fetch_all(db).await
}

pub async fn add_admin<'e>(
    db: impl AnyExecutor<'e>,
    entity_id: &str,
    user_id: &str,
    now: Millis,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO entity_admins (entity_id, user_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (entity_id, user_id) DO NOTHING",
    )
    .bind(entity_id)
    .bind(user_id)
    .bind(now)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn is_admin<'e>(db: impl AnyExecutor<'e>, entity_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM entity_admins WHERE entity_id = $1 AND user_id = $2")
        .bind(entity_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// Slugs of the entities this user administers.
pub async fn administered_by<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT e.slug FROM entity_admins a JOIN entities e ON e.id = a.entity_id WHERE a.user_id = $1 ORDER BY e.slug",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

pub async fn insert_product<'e>(db: impl AnyExecutor<'e>, p: &Product) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO products (id, sku, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&p.id)
        .bind(&p.sku)
        .bind(&p.name)
        .bind(p.created_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn product_by_sku<'e>(db: impl AnyExecutor<'e>, sku: &str) -> sqlx::Result<Option<Product>> {
    sqlx::query_as("SELECT id, sku, name, created_at FROM products WHERE sku = $1").bind(sku).fetch_optional(db).await
}

pub async fn list_products<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<Product>> {
    sqlx::query_as("SELECT id, sku, name, created_at FROM products ORDER BY sku").fetch_all(db).await
}

pub async fn insert_group<'e>(db: impl AnyExecutor<'e>, g: &Group) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO license_groups (id, entity_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&g.id)
        .bind(&g.entity_id)
        .bind(&g.name)
        .bind(g.created_at)
        .execute(db)
        .await
        .map(|_| ())
}

pub async fn group_by_name<'e>(db: impl AnyExecutor<'e>, entity_id: &str, name: &str) -> sqlx::Result<Option<Group>> {
    sqlx::query_as("SELECT id, entity_id, name, created_at FROM license_groups WHERE entity_id = $1 AND name = $2")
        .bind(entity_id)
        .bind(name)
        .fetch_optional(db)
        .await
}

pub async fn list_groups<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<Group>> {
    sqlx::query_as("SELECT id, entity_id, name, created_at FROM license_groups WHERE entity_id = $1 ORDER BY name")
        .bind(entity_id)
        .fetch_all(db)
        .await
}

/// (email, since) of an entity's administrators, by email.
pub async fn admins_of<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<Vec<(String, Millis)>> {
    sqlx::query_as(
        "SELECT u.email, a.created_at FROM entity_admins a JOIN users u ON u.id = a.user_id WHERE a.entity_id = $1 ORDER BY u.email",
    )
    .bind(entity_id)
    .fetch_all(db)
    .await
}

pub async fn count_admins<'e>(db: impl AnyExecutor<'e>, entity_id: &str) -> sqlx::Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM entity_admins WHERE entity_id = $1").bind(entity_id).fetch_one(db).await?;
    Ok(n)
}

/// False when the user was not an administrator of the entity.
pub async fn remove_admin<'e>(db: impl AnyExecutor<'e>, entity_id: &str, user_id: &str) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM entity_admins WHERE entity_id = $1 AND user_id = $2")
        .bind(entity_id)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}
