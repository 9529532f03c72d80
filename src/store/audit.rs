//! Audit events, the chain heads, signed checkpoints and the sealer's lease. Writers only INSERT
//! (with `seq`, `hash` and `seal_order` NULL); the sealer fills those in; readers page by `seal_order`.

use sqlx::{AnyExecutor, AnyPool, FromRow};

use crate::clock::Millis;

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct EventRow {
    pub id: String,
    /// The entity's id, or '' for the operator's own events.
    pub chain: String,
    /// The entity's slug (None on the operator chain).
    pub entity: Option<String>,
    pub at: Millis,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    /// JSON array of `{"type","id","name"}`.
    pub targets: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// JSON object.
    pub details: String,
    pub seq: Option<i64>,
    pub hash: Option<String>,
    pub sealed: Option<i64>,
}

const COLUMNS: &str = "id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, user_agent, \
                       request_id, details, seq, hash, seal_order AS sealed";

pub async fn insert_event<'e>(db: impl AnyExecutor<'e>, e: &EventRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, \
         user_agent, request_id, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&e.id)
    .bind(&e.chain)
    .bind(&e.entity)
    .bind(e.at)
    .bind(&e.actor_type)
    .bind(&e.actor_id)
    .bind(&e.actor_name)
    .bind(&e.action)
    .bind(&e.targets)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(&e.request_id)
    .bind(&e.details)
    .execute(db)
    .await
    .map(|_| ())
}

/// [`insert_event`] on the chain of the entity that owns `license_id` (one statement: the seat
/// paths do not pay for a lookup).
pub async fn insert_event_of_license<'e>(db: impl AnyExecutor<'e>, e: &EventRow, license_id: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_events (id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, \
         user_agent, request_id, details) SELECT $1, l.entity_id, n.slug, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
         FROM licenses l JOIN entities n ON n.id = l.entity_id WHERE l.id = $12",
    )
    .bind(&e.id)
    .bind(e.at)
    .bind(&e.actor_type)
    .bind(&e.actor_id)
    .bind(&e.actor_name)
    .bind(&e.action)
    .bind(&e.targets)
    .bind(&e.ip)
    .bind(&e.user_agent)
    .bind(&e.request_id)
    .bind(&e.details)
    .bind(license_id)
    .execute(db)
    .await
    .map(|_| ())
}

// ---- the sealer -------------------------------------------------------------------------------

/// Take the sealer's lease when it is free or expired (or already ours). True when we hold it.
pub async fn take_lease<'e>(db: impl AnyExecutor<'e>, holder: &str, now: Millis, ttl: Millis) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE audit_sealer SET holder = $1, expires_at = $2 \
         WHERE id = 1 AND (holder IS NULL OR holder = $1 OR expires_at <= $3)",
    )
    .bind(holder)
    .bind(now + ttl)
    .bind(now)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Inside the sealing transaction: confirm the lease is still ours (and, on PostgreSQL, lock its
/// row until commit), returning the last global seal number.
pub async fn confirm_lease<'e>(db: impl AnyExecutor<'e>, holder: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "UPDATE audit_sealer SET last_order = last_order WHERE id = 1 AND holder = $1 RETURNING last_order",
    )
    .bind(holder)
    .fetch_optional(db)
    .await
}

pub async fn set_last_sealed<'e>(db: impl AnyExecutor<'e>, last: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE audit_sealer SET last_order = $1 WHERE id = 1").bind(last).execute(db).await.map(|_| ())
}

pub async fn release_lease<'e>(db: impl AnyExecutor<'e>, holder: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE audit_sealer SET holder = NULL, expires_at = 0 WHERE id = 1 AND holder = $1")
        .bind(holder)
        .execute(db)
        .await
        .map(|_| ())
}

/// Events not sealed yet, oldest first.
pub async fn unsealed<'e>(db: impl AnyExecutor<'e>, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seal_order IS NULL ORDER BY at, id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn count_unsealed<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE seal_order IS NULL").fetch_one(db).await
}

#[derive(Debug, Clone, FromRow)]
pub struct ChainHead {
    pub chain: String,
    pub entity: Option<String>,
    pub seq: i64,
    pub hash: String,
}

pub async fn chain_head<'e>(db: impl AnyExecutor<'e>, chain: &str) -> sqlx::Result<Option<ChainHead>> {
    sqlx::query_as("SELECT chain, entity, seq, hash FROM audit_chains WHERE chain = $1")
        .bind(chain)
        .fetch_optional(db)
        .await
}

pub async fn chain_heads<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<ChainHead>> {
    sqlx::query_as("SELECT chain, entity, seq, hash FROM audit_chains ORDER BY chain").fetch_all(db).await
}

pub async fn put_chain_head<'e>(db: impl AnyExecutor<'e>, h: &ChainHead) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_chains (chain, entity, seq, hash) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(&h.chain)
    .bind(&h.entity)
    .bind(h.seq)
    .bind(&h.hash)
    .execute(db)
    .await
    .map(|_| ())
}

/// Chain heads that moved since their last checkpoint, when that one is older than `cutoff` (or
/// there is none).
pub async fn heads_due<'e>(db: impl AnyExecutor<'e>, cutoff: Millis) -> sqlx::Result<Vec<ChainHead>> {
    sqlx::query_as(
        "SELECT chain, entity, seq, hash FROM audit_chains \
         WHERE seq > checkpoint_seq AND (checkpoint_seq = 0 OR checkpoint_at <= $1) ORDER BY chain",
    )
    .bind(cutoff)
    .fetch_all(db)
    .await
}

pub async fn set_checkpointed<'e>(db: impl AnyExecutor<'e>, chain: &str, seq: i64, at: Millis) -> sqlx::Result<()> {
    sqlx::query("UPDATE audit_chains SET checkpoint_seq = $1, checkpoint_at = $2 WHERE chain = $3")
        .bind(seq)
        .bind(at)
        .bind(chain)
        .execute(db)
        .await
        .map(|_| ())
}

/// Give an unsealed event its place. False when it was sealed meanwhile (another sealer).
pub async fn seal_event<'e>(
    db: impl AnyExecutor<'e>,
    id: &str,
    seq: i64,
    hash: &str,
    sealed: i64,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE audit_events SET seq = $1, hash = $2, seal_order = $3 WHERE id = $4 AND seal_order IS NULL",
    )
    .bind(seq)
    .bind(hash)
    .bind(sealed)
    .bind(id)
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

#[derive(Debug, Clone, FromRow)]
pub struct CheckpointRow {
    pub chain: String,
    pub entity: Option<String>,
    pub seq: i64,
    pub hash: String,
    pub at: Millis,
    pub kid: String,
    pub signature: String,
}

pub async fn insert_checkpoint<'e>(db: impl AnyExecutor<'e>, c: &CheckpointRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (chain, entity, seq, hash, at, kid, signature) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.chain)
    .bind(&c.entity)
    .bind(c.seq)
    .bind(&c.hash)
    .bind(c.at)
    .bind(&c.kid)
    .bind(&c.signature)
    .execute(db)
    .await
    .map(|_| ())
}

/// The newest checkpoint of a chain.
pub async fn last_checkpoint<'e>(db: impl AnyExecutor<'e>, chain: &str) -> sqlx::Result<Option<CheckpointRow>> {
    sqlx::query_as(
        "SELECT chain, entity, seq, hash, at, kid, signature FROM audit_checkpoints WHERE chain = $1 \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(chain)
    .fetch_optional(db)
    .await
}

/// A chain's checkpoints, oldest first.
pub async fn checkpoints<'e>(db: impl AnyExecutor<'e>, chain: &str) -> sqlx::Result<Vec<CheckpointRow>> {
    sqlx::query_as(
        "SELECT chain, entity, seq, hash, at, kid, signature FROM audit_checkpoints WHERE chain = $1 ORDER BY seq",
    )
    .bind(chain)
    .fetch_all(db)
    .await
}

// ---- reading ------------------------------------------------------------------------------------

/// What a page of events is filtered by. `chain` None: every chain (the operator's global view).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub chain: Option<String>,
    pub after: i64,
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

enum Bind {
    Text(String),
    Int(i64),
}

/// Sealed events matching `f`, in seal order, at most `limit`.
pub async fn page(pool: &AnyPool, f: &Filter, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seal_order > $1");
    let mut binds = vec![Bind::Int(f.after)];
    let mut push = |sql: &mut String, clause: &str, b: Bind| {
        binds.push(b);
        sql.push_str(&format!(" AND {clause} ${}", binds.len()));
    };
    if let Some(c) = &f.chain {
        push(&mut sql, "chain =", Bind::Text(c.clone()));
    }
    if let Some(a) = &f.action {
        push(&mut sql, "action =", Bind::Text(a.clone()));
    }
    if let Some(a) = &f.actor {
        // An email names the actor by name, anything else by id.
        let column = if a.contains('@') { "actor_name =" } else { "actor_id =" };
        push(&mut sql, column, Bind::Text(a.clone()));
    }
    if let Some(t) = f.from {
        push(&mut sql, "at >=", Bind::Int(t));
    }
    if let Some(t) = f.to {
        push(&mut sql, "at <=", Bind::Int(t));
    }
    binds.push(Bind::Int(limit));
    sql.push_str(&format!(" ORDER BY seal_order LIMIT ${}", binds.len()));
    let mut q = sqlx::query_as::<_, EventRow>(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    q.fetch_all(pool).await
}

/// The sealed events of one chain from `after_seq` on, in chain order, at most `limit`.
pub async fn chain_events<'e>(
    db: impl AnyExecutor<'e>,
    chain: &str,
    after_seq: i64,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    )))
    .bind(chain)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Chains that have events but no recorded head (rows that no sealer wrote).
pub async fn chains_with_events<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT chain FROM audit_events WHERE seq IS NOT NULL ORDER BY chain")
        .fetch_all(db)
        .await
}

/// Every public signing key ever made, as `(kid, alg, public JWK)`: checkpoints are checked with them.
pub async fn public_keys<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<Vec<(String, String, String)>> {
    sqlx::query_as("SELECT kid, alg, public_jwk FROM signing_keys").fetch_all(db).await
}

// ---- retention ------------------------------------------------------------------------------------

/// The seq of a chain's first sealed event at or after `cutoff` (None: there is none).
pub async fn first_seq_since<'e>(db: impl AnyExecutor<'e>, chain: &str, cutoff: Millis) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE chain = $1 AND seq IS NOT NULL AND at >= $2")
        .bind(chain)
        .bind(cutoff)
        .fetch_one(db)
        .await
}

/// The newest checkpoint of a chain at or below `max_seq`.
pub async fn checkpoint_at_or_below<'e>(
    db: impl AnyExecutor<'e>,
    chain: &str,
    max_seq: i64,
) -> sqlx::Result<Option<CheckpointRow>> {
    sqlx::query_as(
        "SELECT chain, entity, seq, hash, at, kid, signature FROM audit_checkpoints WHERE chain = $1 AND seq <= $2 \
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(chain)
    .bind(max_seq)
    .fetch_optional(db)
    .await
}

/// Delete a chain's events up to and including `seq`.
pub async fn prune_events<'e>(db: impl AnyExecutor<'e>, chain: &str, seq: i64) -> sqlx::Result<u64> {
    let r = sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq IS NOT NULL AND seq <= $2")
        .bind(chain)
        .bind(seq)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Delete a chain's checkpoints before `seq` (the one at `seq` is where verification starts).
pub async fn prune_checkpoints<'e>(db: impl AnyExecutor<'e>, chain: &str, seq: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM audit_checkpoints WHERE chain = $1 AND seq < $2")
        .bind(chain)
        .bind(seq)
        .execute(db)
        .await
        .map(|_| ())
}
