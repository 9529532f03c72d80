//! Heartbeats coalesced into batches: concurrent heartbeats of one process are written by one
//! statement, in one transaction, instead of one each.
//!
//! A heartbeat costs little work in the database (one row, found by its primary key) and a lot
//! around it: a round trip, a statement to parse, bind and plan, a transaction to start and
//! commit, and on the server the driver's work for each of them. Batching shares all of that
//! among the heartbeats that arrive together. How it works:
//!
//! - A request queues its heartbeat and waits for its answer. If fewer than [`writers`] writers
//!   are running, it starts one (a task on the request's runtime); otherwise a running writer
//!   takes it with its next batch.
//! - A writer takes up to [`MAX_BATCH`] queued heartbeats of distinct leases (a second heartbeat of
//!   a lease already in the batch waits for the next one), runs them as one statement
//!   ([`leases::heartbeat_batch`]), answers each request with its own row after that statement
//!   committed, and goes on while heartbeats are queued. With none queued it ends.
//!
//! Nothing ever waits for a batch to fill: a heartbeat arriving at an idle process is written at
//! once, alone, so latency at low rates is that of one statement. Under load, the heartbeats that
//! arrive while a batch runs form the next one, so batches grow with the rate and the cost per
//! heartbeat falls as it does.
//!
//! What is not changed: every heartbeat gets the checks it got alone (its owner, its session and
//! access token not revoked, not an offline license file's seat, the lease live at that
//! heartbeat's own `now`), and the lease row stays the one place where a lease's expiry is kept and
//! read, by every replica. Nothing is held in memory past the commit, so a replica that crashes
//! loses only the heartbeats not yet answered (their products retry on their next interval), and
//! replicas need no coordination. Each replica batches its own requests.
//!
//! If a batch's statement fails on a deadlock or a serialization failure, or for a reason that is
//! not the database being unreachable (a row that makes the statement fail), each of its requests
//! runs its heartbeat alone ([`leases::heartbeat`]), so one bad row or a rare conflict never fails
//! its neighbours. When the database is unreachable (no connection within the acquire timeout, a
//! connection that broke, a server shutting down), each request gets that answer (503), as it
//! would have alone. A batch waits for its connection no longer than its earliest request would
//! have waited alone, so an outage is answered as fast as before batching. A heartbeat waits in the queue at most as long as a request waits for a connection
//! (`LATCHKEY_DATABASE_ACQUIRE_TIMEOUT`): if no writer took it by then, the database is not keeping
//! up, and it is taken out of the queue and answered like an exhausted pool (503 with
//! Retry-After), so an overload sheds heartbeats instead of queueing them without bound. One whose
//! request is gone (its client hung up) is dropped from the queue unwritten.
//!
//! PostgreSQL: up to two writers, so that the database works on one batch while the server
//! answers the previous one. Batches lock their rows in lease-id order, so two of them cannot
//! deadlock each other. SQLite: one writer, because SQLite has one: a second would only queue for
//! its write lock. There a batch is one write transaction instead of one per heartbeat, which is
//! what bounds SQLite's rate (see docs/operations.md, "Durability of heartbeats").

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::oneshot;

use super::{
    Backend, Db,
    leases::{self, Beat, BeatArgs},
};
use crate::clock::Millis;

/// The most heartbeats one statement writes.
pub const MAX_BATCH: usize = 128;

/// How many batches may run at once.
pub fn writers(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    }
}

/// One heartbeat, as queued.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub lease_id: String,
    pub user_id: String,
    pub sid: String,
    pub jti: String,
    pub now: Millis,
    pub expires_at: Millis,
    pub idle_seconds: i64,
}

impl Heartbeat {
    fn args(&self) -> BeatArgs<'_> {
        BeatArgs {
            lease_id: &self.lease_id,
            user_id: &self.user_id,
            sid: &self.sid,
            jti: &self.jti,
            now: self.now,
            expires_at: self.expires_at,
            idle_seconds: self.idle_seconds,
        }
    }
}

enum Answer {
    Beat(Option<Beat>),
    /// The batch failed: run it alone.
    Alone(Heartbeat),
    Failed(sqlx::Error),
}

struct Waiting {
    id: u64,
    /// Until when its request waits for a connection, as it would have alone.
    deadline: tokio::time::Instant,
    beat: Heartbeat,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    writers: usize,
    next_id: u64,
}

/// The process's heartbeat queue (one in `AppState`).
#[derive(Default)]
pub struct Batcher {
    queue: Arc<Mutex<Queue>>,
}

fn lock(q: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // Nothing panics while holding the lock; if something did, the queue is still consistent.
    q.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batcher {
    /// Extend the caller's lease as [`leases::heartbeat`] does, in a batch with the heartbeats
    /// that come at the same time.
    pub async fn beat(&self, db: &Db, beat: Heartbeat) -> sqlx::Result<Option<Beat>> {
        let (tx, mut rx) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + db.pool.options().get_acquire_timeout();
        let id = {
            let mut q = lock(&self.queue);
            q.next_id += 1;
            let id = q.next_id;
            q.waiting.push_back(Waiting { id, deadline, beat, answer: tx });
            if q.writers < writers(db.backend) {
                q.writers += 1;
                tokio::spawn(write(Writer { queue: self.queue.clone(), running: true }, db.clone()));
            }
            id
        };
        // Queued as long as a request would wait for a connection, at most: past it, if no writer
        // took it yet, the database is not keeping up and the caller gets the same answer as
        // from an exhausted pool (503). Once taken, it is answered when its batch ends.
        let answer = match tokio::time::timeout_at(deadline, &mut rx).await {
            Ok(answer) => answer,
            Err(_) => {
                let withdrawn = {
                    let mut q = lock(&self.queue);
                    let at = q.waiting.iter().position(|w| w.id == id);
                    at.and_then(|at| q.waiting.remove(at)).is_some()
                };
                if withdrawn {
                    return Err(sqlx::Error::PoolTimedOut);
                }
                rx.await
            }
        };
        match answer {
            Ok(Answer::Beat(b)) => Ok(b),
            Ok(Answer::Alone(beat)) => leases::heartbeat(&db.pool, db.backend, &beat.args()).await,
            Ok(Answer::Failed(e)) => Err(e),
            // The writer panicked or its runtime is shutting down.
            Err(_) => Err(sqlx::Error::WorkerCrashed),
        }
    }
}

/// A running writer; counted off when it ends, also by a panic.
struct Writer {
    queue: Arc<Mutex<Queue>>,
    running: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.running {
            lock(&self.queue).writers -= 1;
        }
    }
}

async fn write(mut writer: Writer, db: Db) {
    loop {
        let batch = {
            let mut q = lock(&writer.queue);
            let batch = take(&mut q.waiting);
            if batch.is_empty() {
                // Under the same lock a request checks the count: none is left unserved.
                q.writers -= 1;
                writer.running = false;
                return;
            }
            batch
        };
        // The connection is waited for no longer than the batch's most pressed request would have
        // waited alone: with the database unreachable, every request still answers within the
        // acquire timeout, however long it queued.
        let deadline = batch.iter().map(|w| w.deadline).min().unwrap_or_else(tokio::time::Instant::now);
        let result = match tokio::time::timeout_at(deadline, db.pool.acquire()).await {
            Err(_) => Err(sqlx::Error::PoolTimedOut),
            Ok(Err(e)) => Err(e),
            Ok(Ok(mut conn)) => {
                let args: Vec<BeatArgs> = batch.iter().map(|w| w.beat.args()).collect();
                leases::heartbeat_batch(&mut *conn, db.backend, &args).await
            }
        };
        match result {
            Ok(rows) => {
                for (w, row) in batch.into_iter().zip(rows) {
                    // The request may have gone (its client hung up): nothing to answer.
                    let _ = w.answer.send(Answer::Beat(row));
                }
            }
            Err(e) => {
                // The database unreachable (the pool's wait ran out, a connection broke, the
                // server shutting down): each request gets that answer (503), as it would have
                // alone; trying each again would only make it wait twice. Anything else (a
                // deadlock, a row the statement chokes on): each runs alone.
                let alone = !super::is_transient(&e) || is_conflict(&e);
                if alone {
                    tracing::warn!(error = %e, heartbeats = batch.len(), "a batch of heartbeats failed; each runs alone");
                }
                for w in batch {
                    let answer = if alone { Answer::Alone(w.beat) } else { Answer::Failed(same_kind(&e)) };
                    let _ = w.answer.send(answer);
                }
            }
        }
    }
}

/// A deadlock or serialization failure: transient, but of this transaction, not of the database.
fn is_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40001" | "40P01")))
}

/// An error that says the same (the database could not serve the request now), for each request
/// of a batch: `sqlx::Error` cannot be cloned.
fn same_kind(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Io(std::io::Error::other(other.to_string())),
    }
}

/// The next batch: up to [`MAX_BATCH`] heartbeats of distinct leases, oldest first, sorted by
/// lease id; those whose request is gone are dropped. A heartbeat of a lease already in the batch stays queued, in its place, for the next
/// one (looking at most a few batches' worth into the queue).
fn take(waiting: &mut VecDeque<Waiting>) -> Vec<Waiting> {
    let mut batch = Vec::new();
    let mut seen = HashSet::new();
    let mut later = Vec::new();
    while batch.len() < MAX_BATCH && later.len() < 4 * MAX_BATCH {
        let Some(w) = waiting.pop_front() else { break };
        if w.answer.is_closed() {
            // Its request is gone (the client hung up): nobody waits for this one.
            continue;
        }
        if seen.insert(w.beat.lease_id.clone()) {
            batch.push(w);
        } else {
            later.push(w);
        }
    }
    for w in later.into_iter().rev() {
        waiting.push_front(w);
    }
    batch.sort_by(|a, b| a.beat.lease_id.cmp(&b.beat.lease_id));
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(lease: &str) -> (Waiting, oneshot::Receiver<Answer>) {
        let (tx, rx) = oneshot::channel();
        let beat = Heartbeat {
            lease_id: lease.into(),
            user_id: "u".into(),
            sid: "s".into(),
            jti: "j".into(),
            now: 0,
            expires_at: 1,
            idle_seconds: 0,
        };
        (Waiting { id: 0, deadline: tokio::time::Instant::now(), beat, answer: tx }, rx)
    }

    fn ids(v: &[Waiting]) -> Vec<&str> {
        v.iter().map(|w| w.beat.lease_id.as_str()).collect()
    }

    #[test]
    fn a_batch_holds_each_lease_once_sorted_and_the_repeats_wait_in_order() {
        let mut answers = Vec::new();
        let mut q: VecDeque<Waiting> = ["c", "a", "c", "b", "a", "c"]
            .iter()
            .map(|l| {
                let (w, rx) = waiting(l);
                answers.push(rx);
                w
            })
            .collect();
        let first = take(&mut q);
        assert_eq!(ids(&first), ["a", "b", "c"]);
        let rest: Vec<&str> = q.iter().map(|w| w.beat.lease_id.as_str()).collect();
        assert_eq!(rest, ["c", "a", "c"]);
        assert_eq!(ids(&take(&mut q)), ["a", "c"]);
        assert_eq!(ids(&take(&mut q)), ["c"]);
        assert!(take(&mut q).is_empty());
    }

    #[test]
    fn a_batch_is_bounded() {
        let mut answers = Vec::new();
        let mut q: VecDeque<Waiting> = (0..MAX_BATCH + 5)
            .map(|i| {
                let (w, rx) = waiting(&format!("{i:04}"));
                answers.push(rx);
                w
            })
            .collect();
        assert_eq!(take(&mut q).len(), MAX_BATCH);
        assert_eq!(take(&mut q).len(), 5);
    }

    #[test]
    fn a_heartbeat_whose_request_is_gone_is_not_written() {
        let (gone, rx) = waiting("a");
        drop(rx);
        let (kept, _rx) = waiting("b");
        let mut q: VecDeque<Waiting> = [gone, kept].into_iter().collect();
        assert_eq!(ids(&take(&mut q)), ["b"]);
        assert!(q.is_empty());
    }
}
