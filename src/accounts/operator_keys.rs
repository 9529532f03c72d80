//! Operator API keys (`Authorization: Bearer lk_op_...`), for the vendor's scripts: made with a
//! name and shown once (only a hash is kept), listed, and revoked. The command line
//! (`latchkey operator-key create|revoke`) and the operator console use these same functions.

use crate::{
    audit::{self, Target},
    auth::OPERATOR_KEY_PREFIX,
    clock::Millis,
    crypto::{random_secret, secret_hash},
    error::{ApiError, Result},
    store::{self, Db},
};

/// Longest key name, in characters.
pub const MAX_NAME: usize = 100;

/// A key's name as given, trimmed; 1 to 100 printable characters.
pub fn check_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "invalid_name",
            format!("give the key a name of 1 to {MAX_NAME} characters, without line breaks (such as `billing-sync`)"),
        ));
    }
    Ok(name.to_string())
}

/// A key just made: its id and the secret itself, which exists nowhere else.
pub struct Made {
    pub id: String,
    pub name: String,
    pub key: String,
}

/// Make a key named `name` (names need not be unique). Records `operator_key.created`.
pub async fn create(db: &Db, ctx: &audit::Context, name: &str, now: Millis) -> Result<Made> {
    let name = check_name(name)?;
    let key = random_secret(OPERATOR_KEY_PREFIX);
    let id = store::new_id();
    let mut tx = db.begin_write().await?;
    store::keys::insert_operator_key(&mut *tx, &id, &name, &secret_hash(&key), now).await?;
    audit::Event::new("operator_key.created")
        .target(Target::new("operator_key", &id, Some(&name)))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    Ok(Made { id, name, key })
}

/// Revoke the key `id`: its name, or `None` when there is no such active key.
pub async fn revoke(db: &Db, ctx: &audit::Context, id: &str, now: Millis) -> Result<Option<String>> {
    let mut tx = db.begin_write().await?;
    let Some(name) = store::keys::revoke_operator_key(&mut *tx, id, now).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    audit::Event::new("operator_key.revoked")
        .target(Target::new("operator_key", id, Some(&name)))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    Ok(Some(name))
}

/// Revoke every active key named `name`: their ids (none when there was no such key).
pub async fn revoke_named(db: &Db, ctx: &audit::Context, name: &str, now: Millis) -> Result<Vec<String>> {
    let name = name.trim();
    let mut tx = db.begin_write().await?;
    let revoked = store::keys::revoke_operator_keys(&mut *tx, name, now).await?;
    for id in &revoked {
        audit::Event::new("operator_key.revoked")
            .target(Target::new("operator_key", id, Some(name)))
            .record(&mut tx, ctx, now)
            .await?;
    }
    tx.commit().await?;
    Ok(revoked)
}
