//! The sealer: one at a time across replicas (a lease row taken with a conditional UPDATE, which
//! passes on when a holder dies), it numbers new events per chain, hashes them onto the chain head,
//! gives them their global seal number, and signs checkpoints of the heads it advanced. Writers
//! never wait for it: they append to `audit_pending`, and each batch moves from there into
//! `audit_events` in one transaction. Taking the batch out of `audit_pending` (all of it, or
//! nothing) and the unique indexes on `(chain, seq)` and `seal_order` make a second sealer (one
//! whose lease lapsed while it worked) fail and roll back instead of forking a chain.

use std::{collections::HashMap, time::Duration};

use crate::{
    audit::chain::{self, CHECKPOINT_TYP, CheckpointClaims},
    clock::Millis,
    state::AppState,
    store::{
        self,
        audit::{ChainHead, CheckpointRow},
    },
};

/// How often the background task seals (the longest an event waits unsealed while a sealer lives).
pub const SEAL_EVERY: Duration = Duration::from_secs(5);
/// A lease not renewed for this long passes to another replica.
pub const LEASE_TTL_MS: Millis = 30_000;
/// A chain whose head moved gets a new signed checkpoint once this much time passed since its last.
pub const CHECKPOINT_EVERY_MS: Millis = 30_000;
/// Events sealed per transaction.
const BATCH: i64 = 1000;
/// How long a reader waits for another replica's sealing to finish before answering without it.
const READER_PATIENCE: Duration = Duration::from_secs(2);

/// This process's identity as a sealer.
pub struct Sealer {
    holder: String,
}

impl Default for Sealer {
    fn default() -> Self {
        Sealer { holder: uuid::Uuid::new_v4().to_string() }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sealed {
    pub events: u64,
    pub checkpoints: u64,
}

/// Seal what is waiting, if the lease is free. `None`: another replica holds it.
pub async fn seal_once(state: &AppState) -> anyhow::Result<Option<Sealed>> {
    let holder = &state.audit.holder;
    let now = state.now();
    if !store::audit::take_lease(&state.db.pool, holder, now, LEASE_TTL_MS).await? {
        return Ok(None);
    }
    let result = seal_held(state).await;
    if let Err(e) = store::audit::release_lease(&state.db.pool, holder).await {
        tracing::warn!(error = %e, "releasing the audit sealer lease");
    }
    result.map(Some)
}

async fn seal_held(state: &AppState) -> anyhow::Result<Sealed> {
    let holder = &state.audit.holder;
    let mut done = Sealed::default();
    loop {
        let now = state.now();
        let mut tx = state.db.begin_write().await?;
        // Still ours (renewed), and on PostgreSQL its row stays locked until we commit.
        if !store::audit::take_lease(&mut *tx, holder, now, LEASE_TTL_MS).await? {
            anyhow::bail!("lost the audit sealer lease");
        }
        let Some(mut last) = store::audit::confirm_lease(&mut *tx, holder).await? else {
            anyhow::bail!("lost the audit sealer lease");
        };
        let pending = store::audit::unsealed(&mut *tx, BATCH).await?;
        // Taken out of the waiting table first: a second sealer that read the same rows finds
        // them gone (on PostgreSQL it waits on their row locks until we commit) and gives up.
        let positions: Vec<i64> = pending.iter().map(|p| p.pos).collect();
        if store::audit::take_pending(&mut *tx, &positions).await? != positions.len() as u64 {
            anyhow::bail!("audit events were sealed by another sealer");
        }
        let mut heads: HashMap<String, ChainHead> = HashMap::new();
        let mut sealed = Vec::with_capacity(pending.len());
        for store::audit::Pending { event: mut e, .. } in pending {
            let head = match heads.get(&e.chain) {
                Some(h) => h.clone(),
                None => store::audit::chain_head(&mut *tx, &e.chain).await?.unwrap_or(ChainHead {
                    chain: e.chain.clone(),
                    entity: e.entity.clone(),
                    seq: 0,
                    hash: String::new(),
                }),
            };
            let seq = head.seq + 1;
            last += 1;
            e.seq = Some(seq);
            let h = chain::hash(&head.hash, &e);
            e.hash = Some(h.clone());
            e.sealed = Some(last);
            heads.insert(e.chain.clone(), ChainHead { seq, hash: h, ..head });
            sealed.push(e);
        }
        // Unique on (chain, seq) and on the seal order: a sealer whose lease lapsed fails here.
        store::audit::insert_sealed(&mut tx, &sealed).await?;
        if let (Some(first), Some(max_at)) = (sealed.first().and_then(|e| e.sealed), sealed.iter().map(|e| e.at).max())
        {
            store::audit::mark_sealed(&mut tx, first, max_at).await?;
        }
        for h in heads.values() {
            store::audit::put_chain_head(&mut *tx, h).await?;
        }
        store::audit::set_last_sealed(&mut *tx, last).await?;
        done.checkpoints += sign_due(state, &mut tx, now).await?;
        tx.commit().await?;
        done.events += sealed.len() as u64;
        if (sealed.len() as i64) < BATCH {
            return Ok(done);
        }
    }
}

/// Sign a checkpoint of every chain head that moved since its last checkpoint, when that one is
/// old enough (or there is none yet).
async fn sign_due(state: &AppState, tx: &mut store::Tx, now: Millis) -> anyhow::Result<u64> {
    let due = store::audit::heads_due(&mut **tx, now - CHECKPOINT_EVERY_MS).await?;
    for h in &due {
        let claims = CheckpointClaims {
            iss: state.issuer().to_string(),
            entity: h.entity.clone(),
            seq: h.seq,
            hash: h.hash.clone(),
            iat: now / 1000,
        };
        let signature = state.keys.sign(CHECKPOINT_TYP, &claims)?;
        let kid = jsonwebtoken::decode_header(&signature)?.kid.unwrap_or_default();
        let row = CheckpointRow {
            chain: h.chain.clone(),
            entity: h.entity.clone(),
            seq: h.seq,
            hash: h.hash.clone(),
            at: now,
            kid,
            signature,
        };
        store::audit::insert_checkpoint(&mut **tx, &row).await?;
        store::audit::set_checkpointed(&mut **tx, &h.chain, h.seq, now).await?;
    }
    Ok(due.len() as u64)
}

/// Seal before reading events, so a caller sees what it just did: [`seal_now`], unless no event
/// waits. Then a read costs no write transaction and never waits for another replica's sealer
/// (whose batch, while not committed, still shows here as waiting, so a caller's own events are
/// never missed). Checkpoints that are due are left to the background sealer.
pub async fn seal_for_read(state: &AppState) {
    match store::audit::any_pending(&state.db.pool).await {
        Ok(false) => {}
        Ok(true) => seal_now(state).await,
        Err(e) => {
            tracing::warn!(error = %e, "looking for audit events to seal before a read");
            seal_now(state).await;
        }
    }
}

/// Seal before reading, so a caller sees what it just did. When another replica holds the lease,
/// wait (briefly) for it to finish and seal again: its run may have started before our write.
pub async fn seal_now(state: &AppState) {
    let deadline = tokio::time::Instant::now() + READER_PATIENCE;
    loop {
        match seal_once(state).await {
            Ok(Some(_)) => return,
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "sealing audit events before a read");
                return;
            }
        }
    }
}

/// The background sealer: every few seconds, and once more on shutdown. Prunes old events daily.
pub async fn run(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SEAL_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Millis = 0;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        if let Err(e) = seal_once(&state).await {
            tracing::warn!(error = %e, "sealing audit events");
        }
        let now = state.now();
        if !stopping && now - last_prune >= 3_600_000 {
            last_prune = now;
            match prune(&state, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "pruned audit events past retention"),
                Err(e) => tracing::warn!(error = %e, "pruning audit events"),
            }
        }
        if stopping {
            break;
        }
    }
}

/// Delete events older than the retention, chain by chain, only up to a signed checkpoint: the
/// chain then starts from that checkpoint, and verification from its hash.
pub async fn prune(state: &AppState, now: Millis) -> anyhow::Result<u64> {
    let cutoff = now - state.config.audit_retention.ms();
    let mut total = 0;
    for head in store::audit::chain_heads(&state.db.pool).await? {
        // Everything before the first event to keep may go; the newest checkpoint below it is
        // where the retained chain starts.
        let keep_from =
            store::audit::first_seq_since(&state.db.pool, &head.chain, cutoff).await?.unwrap_or(head.seq + 1);
        let Some(cp) = store::audit::checkpoint_at_or_below(&state.db.pool, &head.chain, keep_from - 1).await? else {
            continue;
        };
        let mut tx = state.db.begin_write().await?;
        total += store::audit::prune_events(&mut *tx, &head.chain, cp.seq).await?;
        store::audit::prune_checkpoints(&mut *tx, &head.chain, cp.seq).await?;
        tx.commit().await?;
    }
    if total > 0 {
        store::audit::prune_marks(&state.db.pool).await?;
    }
    Ok(total)
}
