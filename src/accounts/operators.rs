//! Operator users: accounts that may use the portal's operator console (`latchkey operator add`).
//! An account made for an operator lives in a small built-in entity, `latchkey-operators`, made on
//! first use; an existing account keeps its entity.

use crate::{
    accounts::{find_or_create, normalize_email, welcome},
    clock::Millis,
    error::Result,
    state::AppState,
    store::{self, entities::Entity},
};

/// The entity that holds operator accounts made by `operator add`.
pub const OPERATORS_ENTITY: &str = "latchkey-operators";

/// What `add` did.
#[derive(Debug, PartialEq, Eq)]
pub struct Added {
    /// The account was made now (a password-setup mail is queued).
    pub account_created: bool,
    /// It was not an operator before.
    pub newly_operator: bool,
}

/// Make the account of `email` an operator, creating it (and queueing its setup mail) when needed.
pub async fn add(state: &AppState, email: &str, now: Millis) -> Result<Added> {
    let email = normalize_email(email)?;
    let mut tx = state.db.begin_write().await?;
    let home = match store::entities::entity_by_slug(&mut *tx, OPERATORS_ENTITY).await? {
        Some(e) => e,
        None => {
            let e = Entity {
                id: store::new_id(),
                slug: OPERATORS_ENTITY.into(),
                name: "latchkey operators".into(),
                created_at: now,
            };
            store::entities::insert_entity(&mut *tx, &e).await?;
            e
        }
    };
    let (user, created) = find_or_create(&mut tx, &email, &home.id, now).await?;
    let newly_operator = store::mfa::add_operator(&mut *tx, &user.id, now).await?;
    if created || user.password_hash.is_none() {
        welcome(&mut tx, state, &user, created, "latchkey operators", None, now).await?;
    }
    tx.commit().await?;
    Ok(Added { account_created: created, newly_operator })
}

/// The account of `email` is no longer an operator; `false` when it was none (or has no account).
pub async fn remove(state: &AppState, email: &str) -> Result<bool> {
    let email = normalize_email(email)?;
    let Some(user) = store::accounts::user_by_email(&state.db.pool, &email).await? else { return Ok(false) };
    Ok(store::mfa::remove_operator(&state.db.pool, &user.id).await?)
}
