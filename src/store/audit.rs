//! Audit events, the chain heads, signed checkpoints and the sealer's lease. Writers only INSERT
//! into `audit_pending` (no `seq`, `hash` or `seal_order` yet, one index); the sealer moves them into
//! `audit_events` with those filled in; readers page `audit_events` by `seal_order`.

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

/// The columns an event is recorded with, in the order [`bind_event`] binds them.
const EVENT_COLUMNS: &str =
    "id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, user_agent, request_id, details";

/// Bind an event's [`EVENT_COLUMNS`], in their order.
fn bind_event<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    e: &'q EventRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(&e.id)
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
}

pub async fn insert_event<'e>(db: impl AnyExecutor<'e>, e: &EventRow) -> sqlx::Result<()> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO audit_pending ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )
    });
    bind_event(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), e).execute(db).await.map(|_| ())
}

/// [`insert_event`] on the chain of the entity that owns `license_id` (one statement: the seat
/// paths do not pay for a lookup).
pub async fn insert_event_of_license<'e>(db: impl AnyExecutor<'e>, e: &EventRow, license_id: &str) -> sqlx::Result<()> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| event_of_license_sql(1, ""));
    bind_event_of_license(sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())), e, license_id).execute(db).await.map(|_| ())
}

/// The INSERT of [`insert_event_of_license`] with its twelve parameters numbered from `$first`
/// (bound by [`bind_event_of_license`]), its row written only when the condition `also` holds
/// (empty: always): a caller folds it into a larger statement as a data-modifying CTE (the
/// checkout, `store::slots::claim_folded`), so the event is written by the same code either way.
pub fn event_of_license_sql(first: usize, also: &str) -> String {
    let p: Vec<String> = (first..first + 12).map(|i| format!("${i}")).collect();
    let also = if also.is_empty() { String::new() } else { format!(" AND {also}") };
    format!(
        "INSERT INTO audit_pending ({EVENT_COLUMNS}) SELECT {}, l.entity_id, n.slug, {}, {}, {}, {}, {}, {}, {}, {}, {}, {} \
         FROM licenses l JOIN entities n ON n.id = l.entity_id WHERE l.id = {}{also}",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]
    )
}

/// Bind the parameters of [`event_of_license_sql`], in its order.
pub fn bind_event_of_license<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    e: &EventRow,
    license_id: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    q.bind(e.id.clone())
        .bind(e.at)
        .bind(e.actor_type.clone())
        .bind(e.actor_id.clone())
        .bind(e.actor_name.clone())
        .bind(e.action.clone())
        .bind(e.targets.clone())
        .bind(e.ip.clone())
        .bind(e.user_agent.clone())
        .bind(e.request_id.clone())
        .bind(e.details.clone())
        .bind(license_id.to_string())
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

const PENDING_COLUMNS: &str = "pos, id, chain, entity, at, actor_type, actor_id, actor_name, action, targets, ip, \
                               user_agent, request_id, details, NULL AS seq, NULL AS hash, NULL AS sealed";

/// An event waiting for the sealer, and its place in `audit_pending`.
#[derive(Debug, Clone, FromRow)]
pub struct Pending {
    pub pos: i64,
    #[sqlx(flatten)]
    pub event: EventRow,
}

/// Events not sealed yet, in the order they were recorded.
pub async fn unsealed<'e>(db: impl AnyExecutor<'e>, limit: i64) -> sqlx::Result<Vec<Pending>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {PENDING_COLUMNS} FROM audit_pending ORDER BY pos LIMIT $1")))
        .bind(limit)
        .fetch_all(db)
        .await
}

/// Remove these waiting events (the sealer, which inserts them sealed in the same transaction).
/// Returns how many were still there: fewer means another sealer took some.
pub async fn take_pending<'e>(db: impl AnyExecutor<'e>, positions: &[i64]) -> sqlx::Result<u64> {
    if positions.is_empty() {
        return Ok(0);
    }
    // Integers from the database, written as literals: one statement whatever the batch's size.
    let list = positions.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM audit_pending WHERE pos IN ({list})")))
        .persistent(false)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// Rows per INSERT of sealed events (16 parameters each: well under either backend's limit).
const SEALED_PER_INSERT: usize = 100;

/// Write sealed events (their `seq`, `hash` and `sealed` set) into `audit_events`, a hundred rows
/// a statement.
pub async fn insert_sealed(tx: &mut sqlx::AnyConnection, rows: &[EventRow]) -> sqlx::Result<()> {
    for chunk in rows.chunks(SEALED_PER_INSERT) {
        let mut sql = format!("INSERT INTO audit_events ({EVENT_COLUMNS}, seq, hash, seal_order) VALUES ");
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..16 {
                if c > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("${}", i * 16 + c + 1));
            }
            sql.push(')');
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(chunk.len() == SEALED_PER_INSERT);
        for e in chunk {
            q = bind_event(q, e).bind(e.seq).bind(&e.hash).bind(e.sealed);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

/// Seal marks are kept about one per this much event time.
const MARK_GRAIN_MS: Millis = 60_000;

/// Inside the sealing transaction, after a batch from seal order `first_order` whose newest event
/// happened at `max_at`: extend the last seal mark over it, or start a new one (see
/// migration 0013): the marks keep saying that no event from a mark's `first_order` on happened
/// after its `max_at`, and `max_at` only grows.
pub async fn mark_sealed(db: &mut sqlx::AnyConnection, first_order: i64, max_at: Millis) -> sqlx::Result<()> {
    let last: Option<(i64, i64)> =
        sqlx::query_as("SELECT first_order, max_at FROM audit_seal_marks ORDER BY first_order DESC LIMIT 1")
            .fetch_optional(&mut *db)
            .await?;
    match last {
        // Already covered: the batch happened no later than the last mark says.
        Some((_, m)) if max_at <= m => Ok(()),
        // The same minute: the last mark reaches over this batch too.
        Some((f, m)) if max_at.div_euclid(MARK_GRAIN_MS) == m.div_euclid(MARK_GRAIN_MS) => {
            sqlx::query("UPDATE audit_seal_marks SET max_at = $1 WHERE first_order = $2")
                .bind(max_at)
                .bind(f)
                .execute(&mut *db)
                .await
                .map(|_| ())
        }
        _ => sqlx::query("INSERT INTO audit_seal_marks (first_order, max_at) VALUES ($1, $2)")
            .bind(first_order)
            .bind(max_at)
            .execute(&mut *db)
            .await
            .map(|_| ()),
    }
}

/// Where a page of events at or after `from` may start in the read order: `Some(n)`, no such event
/// has a seal order below `n` (`i64::MAX`: there is none at all); `None`, nothing is known (no
/// marks), start from the beginning.
pub async fn first_order_from<'e, E: AnyExecutor<'e> + Copy>(db: E, from: Millis) -> sqlx::Result<Option<i64>> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT first_order FROM audit_seal_marks WHERE max_at >= $1 ORDER BY max_at, first_order LIMIT 1",
    )
    .bind(from)
    .fetch_optional(db)
    .await?;
    if first.is_some() {
        return Ok(first);
    }
    let any: Option<i64> =
        sqlx::query_scalar("SELECT first_order FROM audit_seal_marks LIMIT 1").fetch_optional(db).await?;
    Ok(any.map(|_| i64::MAX))
}

/// Events that happened later than their seal mark says (or before every mark): a mark was
/// changed, or the row was, outside the sealer. Time-filtered pages could miss them. At most
/// `limit` ids.
pub async fn unmarked<'e>(db: impl AnyExecutor<'e>, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT e.id FROM audit_events e WHERE e.seal_order IS NOT NULL AND e.at > COALESCE((SELECT m.max_at \
         FROM audit_seal_marks m WHERE m.first_order <= e.seal_order ORDER BY m.first_order DESC LIMIT 1), -1) \
         ORDER BY e.seal_order LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Marks wholly before the oldest event kept (after pruning).
pub async fn prune_marks<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<u64> {
    let r = sqlx::query(
        "DELETE FROM audit_seal_marks WHERE first_order < (SELECT MAX(first_order) FROM audit_seal_marks \
         WHERE first_order <= (SELECT MIN(seal_order) FROM audit_events))",
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Whether any event waits for the sealer (one probe of the primary key).
pub async fn any_pending<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<bool> {
    let row: Option<i64> = sqlx::query_scalar("SELECT pos FROM audit_pending LIMIT 1").fetch_optional(db).await?;
    Ok(row.is_some())
}

pub async fn count_unsealed<'e>(db: impl AnyExecutor<'e>) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_pending").fetch_one(db).await
}

/// Rows of `audit_events` outside every chain (no `seq` or no `seal_order`): the sealer never
/// writes one, so each was inserted or altered by hand. At most `limit` ids.
pub async fn strays<'e>(db: impl AnyExecutor<'e>, limit: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT id FROM audit_events WHERE seq IS NULL OR seal_order IS NULL ORDER BY id LIMIT $1")
        .bind(limit)
        .fetch_all(db)
        .await
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
    let mut after = f.after;
    if let Some(from) = f.from {
        // Skip the part of the read order that happened before `from` (the index on the seal order
        // knows nothing of time, and the planner cannot know the two go together).
        match first_order_from(pool, from).await? {
            Some(i64::MAX) => return Ok(Vec::new()),
            Some(first) => after = after.max(first - 1),
            None => {}
        }
    }
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events WHERE seal_order > $1");
    let mut binds = vec![Bind::Int(after)];
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
