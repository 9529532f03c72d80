//! The chain rules, pure functions over rows: how an event is shown, its canonical JSON, its hash,
//! and [`ChainVerifier`], which walks one chain in order and names the first event that was
//! changed, removed or inserted.
//!
//! `hash` = lowercase hex SHA-256 of the previous event's `hash` (the empty string before the
//! first event of a chain) followed by the event's canonical JSON: the event as the API shows it
//! without `hash`, object keys sorted, no insignificant whitespace. Anyone holding an export can
//! recompute it.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use super::views::{AuditEvent, AuditEventActor};
use crate::{clock::Millis, store::audit::EventRow};

pub const CHECKPOINT_TYP: &str = "audit-checkpoint+jwt";

/// RFC 3339 in UTC with milliseconds (`2026-11-30T12:00:00.123Z`).
pub fn timestamp(ms: Millis) -> String {
    let secs = crate::clock::rfc3339(ms);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms.rem_euclid(1000))
}

/// The event as the API shows it, `hash` included (null until it is sealed).
pub fn view(e: &EventRow) -> AuditEvent {
    let parse = |s: &str, empty: Value| serde_json::from_str::<Value>(s).unwrap_or(empty);
    AuditEvent {
        action: e.action.clone(),
        actor: AuditEventActor { id: e.actor_id.clone(), name: e.actor_name.clone(), kind: e.actor_type.clone() },
        at: timestamp(e.at),
        details: parse(&e.details, json!({})),
        entity: e.entity.clone(),
        hash: e.hash.clone(),
        id: e.id.clone(),
        ip: e.ip.clone(),
        request_id: e.request_id.clone(),
        seq: e.seq,
        targets: parse(&e.targets, json!([])),
        user_agent: e.user_agent.clone(),
    }
}

/// What the hash covers: the view without `hash`.
fn body(e: &EventRow) -> Value {
    // A view is strings, numbers and JSON values only: it always converts.
    let mut v = serde_json::to_value(view(e)).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.remove("hash");
    }
    v
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let b: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, sorted(v))).collect();
                let mut out = serde_json::Map::new();
                for (k, v) in b {
                    out.insert(k.clone(), v);
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's map keeps keys sorted unless `preserve_order` is on; sorting again costs little
    // and keeps the rule whatever features other crates turn on.
    let s = sorted(v);
    let mut out = String::new();
    write_canonical(&s, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The hash of `e` (with its `seq` set) on top of `prev`.
pub fn hash(prev: &str, e: &EventRow) -> String {
    let mut input = Vec::with_capacity(prev.len() + 512);
    input.extend_from_slice(prev.as_bytes());
    input.extend_from_slice(canonical(&body(e)).as_bytes());
    hex(&openssl::sha::sha256(&input))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The claims of a signed checkpoint.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CheckpointClaims {
    pub iss: String,
    pub entity: Option<String>,
    pub seq: i64,
    pub hash: String,
    pub iat: i64,
}

/// What was wrong with a chain: the first problem found, naming the event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error("event {id} (seq {seq}) was changed: its hash does not match its content")]
    Changed { id: String, seq: i64 },
    #[error("event seq {seq} was removed (the chain goes from {before} to {after})")]
    Removed { seq: i64, before: i64, after: i64 },
    #[error("event {id} (seq {seq}) was inserted: {why}")]
    Inserted { id: String, seq: i64, why: String },
    #[error("events after seq {seq} were removed (checkpoint or chain head at seq {expected})")]
    TailRemoved { seq: i64, expected: i64 },
    #[error("checkpoint at seq {seq}: {why}")]
    Checkpoint { seq: i64, why: String },
}

/// A checkpoint, its signature already checked, as the verifier uses it.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
}

/// Walks one chain's sealed events in `seq` order.
pub struct ChainVerifier {
    /// Checkpoint hashes by seq.
    checkpoints: HashMap<i64, String>,
    last_checkpoint: i64,
    prev_hash: String,
    prev_seq: i64,
    /// Where the retained chain starts (0, or the checkpoint that pruning kept).
    start_seq: i64,
    started: bool,
    pub events: u64,
}

impl ChainVerifier {
    /// `checkpoints` oldest first, signatures verified. The chain may start after a checkpoint
    /// (older events pruned); otherwise at seq 1.
    pub fn new(checkpoints: &[Checkpoint]) -> ChainVerifier {
        ChainVerifier {
            checkpoints: checkpoints.iter().map(|c| (c.seq, c.hash.clone())).collect(),
            last_checkpoint: checkpoints.iter().map(|c| c.seq).max().unwrap_or(0),
            prev_hash: String::new(),
            prev_seq: 0,
            start_seq: 0,
            started: false,
            events: 0,
        }
    }

    pub fn push(&mut self, e: &EventRow) -> Result<(), Finding> {
        let (Some(seq), Some(stored)) = (e.seq, e.hash.as_deref()) else {
            return Err(Finding::Inserted {
                id: e.id.clone(),
                seq: e.seq.unwrap_or(0),
                why: "a sealed position without a hash".into(),
            });
        };
        if !self.started {
            self.started = true;
            if seq != 1 {
                // Pruned up to a checkpoint: the chain resumes from that checkpoint's hash.
                match self.checkpoints.get(&(seq - 1)) {
                    Some(h) => {
                        self.prev_hash = h.clone();
                        self.prev_seq = seq - 1;
                        self.start_seq = seq - 1;
                    }
                    None => return Err(Finding::Removed { seq: 1, before: 0, after: seq }),
                }
            }
        }
        if seq <= self.prev_seq {
            return Err(Finding::Inserted { id: e.id.clone(), seq, why: format!("a second event at seq {seq}") });
        }
        if seq != self.prev_seq + 1 {
            return Err(Finding::Removed { seq: self.prev_seq + 1, before: self.prev_seq, after: seq });
        }
        let computed = hash(&self.prev_hash, e);
        if computed != stored {
            // An event that does not chain: changed, or put in where none was. A row whose own
            // hash is right but whose predecessor differs was inserted in front of it.
            return Err(Finding::Changed { id: e.id.clone(), seq });
        }
        if let Some(h) = self.checkpoints.get(&seq)
            && *h != computed
        {
            return Err(Finding::Checkpoint { seq, why: "it signed another hash than the chain has here".into() });
        }
        self.prev_hash = computed;
        self.prev_seq = seq;
        self.events += 1;
        Ok(())
    }

    /// After the last event: the chain must reach its recorded head and every checkpoint.
    /// `head` is the head the sealer recorded (seq, hash). Returns the seq checked up to.
    pub fn finish(mut self, head: Option<(i64, &str)>) -> Result<Summary, Finding> {
        if !self.started
            && let Some(h) = self.checkpoints.get(&self.last_checkpoint)
        {
            // Every event pruned: the chain is its last checkpoint.
            self.prev_hash = h.clone();
            self.prev_seq = self.last_checkpoint;
            self.start_seq = self.last_checkpoint;
        }
        if let Some((seq, h)) = head {
            if seq > self.prev_seq {
                return Err(Finding::TailRemoved { seq: self.prev_seq, expected: seq });
            }
            if seq < self.prev_seq {
                return Err(Finding::Inserted {
                    id: String::from("(beyond the head)"),
                    seq: seq + 1,
                    why: format!("the sealer's head is seq {seq}"),
                });
            }
            if self.prev_seq > 0 && h != self.prev_hash {
                return Err(Finding::Changed { id: String::from("(chain head)"), seq });
            }
        }
        if self.last_checkpoint > self.prev_seq {
            return Err(Finding::TailRemoved { seq: self.prev_seq, expected: self.last_checkpoint });
        }
        Ok(Summary {
            from_seq: self.start_seq,
            head_seq: self.prev_seq,
            head_hash: self.prev_hash.clone(),
            checkpointed_seq: self.last_checkpoint,
            events: self.events,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// 0, or the checkpoint the retained chain starts after.
    pub from_seq: i64,
    pub head_seq: i64,
    pub head_hash: String,
    /// The newest signed checkpoint; events after it are sealed but not signed yet.
    pub checkpointed_seq: i64,
    pub events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: i64) -> EventRow {
        EventRow {
            id: format!("e{i}"),
            chain: "c".into(),
            entity: Some("acme".into()),
            at: 1_800_000_000_000 + i,
            actor_type: "user".into(),
            actor_id: Some("u1".into()),
            actor_name: Some("a@example.com".into()),
            action: "license.created".into(),
            targets: r#"[{"type":"license","id":"l1","name":null}]"#.into(),
            ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: Some("r".into()),
            details: r#"{"seats":5,"a":{"z":1,"b":2}}"#.into(),
            seq: None,
            hash: None,
            sealed: None,
        }
    }

    fn chain(n: i64) -> Vec<EventRow> {
        let mut prev = String::new();
        (1..=n)
            .map(|i| {
                let mut e = event(i);
                e.seq = Some(i);
                e.sealed = Some(i);
                let h = hash(&prev, &e);
                e.hash = Some(h.clone());
                prev = h;
                e
            })
            .collect()
    }

    fn run(events: &[EventRow], cps: &[Checkpoint], head: Option<(i64, &str)>) -> Result<Summary, Finding> {
        let mut v = ChainVerifier::new(cps);
        for e in events {
            v.push(e)?;
        }
        v.finish(head)
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[{"y":1,"x":2}],"c":"é\""}}"#).unwrap();
        assert_eq!(canonical(&v), r#"{"a":{"c":"é\"","d":[{"x":2,"y":1}]},"b":1}"#);
        assert_eq!(timestamp(1_800_000_000_007), "2027-01-15T08:00:00.007Z");
    }

    /// The hash rule pinned: SHA-256 of the previous hash and the canonical JSON of the event as
    /// the API shows it without `hash` (computed here by other means, from that rule).
    #[test]
    fn an_events_hash_is_that_of_its_canonical_view() {
        let mut e = event(1);
        e.seq = Some(1);
        assert_eq!(
            canonical(&body(&e)),
            r#"{"action":"license.created","actor":{"id":"u1","name":"a@example.com","type":"user"},"at":"2027-01-15T08:00:00.001Z","details":{"a":{"b":2,"z":1},"seats":5},"entity":"acme","id":"e1","ip":"127.0.0.1","request_id":"r","seq":1,"targets":[{"id":"l1","name":null,"type":"license"}],"user_agent":null}"#
        );
        assert_eq!(hash("", &e), "120505a82ab99312177f87f4456dae92fc76658d7cc8294d07847b5d6bab26ee");
        e.hash = Some(hash("", &e));
        let shown = serde_json::to_value(view(&e)).unwrap();
        assert_eq!(shown["hash"], "120505a82ab99312177f87f4456dae92fc76658d7cc8294d07847b5d6bab26ee");
    }

    #[test]
    fn an_intact_chain_verifies_to_its_head() {
        let c = chain(5);
        let head = c[4].hash.clone().unwrap();
        let cp = [Checkpoint { seq: 3, hash: c[2].hash.clone().unwrap() }];
        let s = run(&c, &cp, Some((5, &head))).unwrap();
        assert_eq!((s.head_seq, s.events, s.checkpointed_seq), (5, 5, 3));
    }

    #[test]
    fn a_changed_removed_or_inserted_event_is_named() {
        let c = chain(5);
        let head = c[4].hash.clone().unwrap();
        let mut changed = c.clone();
        changed[2].details = r#"{"seats":500}"#.into();
        assert_eq!(run(&changed, &[], None), Err(Finding::Changed { id: "e3".into(), seq: 3 }));
        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(run(&removed, &[], None), Err(Finding::Removed { seq: 2, before: 1, after: 3 }));
        // A forged event at the end, hashed correctly: beyond the head the sealer recorded.
        let mut appended = c.clone();
        let mut forged = event(6);
        forged.seq = Some(6);
        forged.hash = Some(hash(&head, &forged));
        appended.push(forged);
        assert!(matches!(run(&appended, &[], Some((5, &head))), Err(Finding::Inserted { seq: 6, .. })));
        // The last events removed: the head (or a checkpoint) says the chain was longer.
        assert_eq!(run(&c[..3], &[], Some((5, &head))), Err(Finding::TailRemoved { seq: 3, expected: 5 }));
        let cp = [Checkpoint { seq: 5, hash: head.clone() }];
        assert_eq!(run(&c[..4], &cp, None), Err(Finding::TailRemoved { seq: 4, expected: 5 }));
        // A duplicate position.
        let mut dup = c.clone();
        dup.insert(2, c[1].clone());
        assert!(matches!(run(&dup, &[], None), Err(Finding::Inserted { seq: 2, .. })));
    }

    #[test]
    fn a_pruned_chain_resumes_from_its_checkpoint_and_only_there() {
        let c = chain(6);
        let cp = [Checkpoint { seq: 3, hash: c[2].hash.clone().unwrap() }];
        let all_pruned = run(&[], &cp, Some((3, c[2].hash.as_deref().unwrap()))).unwrap();
        assert_eq!((all_pruned.from_seq, all_pruned.head_seq, all_pruned.events), (3, 3, 0));
        assert!(run(&[], &cp, Some((4, c[3].hash.as_deref().unwrap()))).is_err());
        let s = run(&c[3..], &cp, None).unwrap();
        assert_eq!((s.from_seq, s.head_seq, s.events), (3, 6, 3));
        assert_eq!(run(&c[4..], &cp, None), Err(Finding::Removed { seq: 1, before: 0, after: 5 }));
        let wrong = [Checkpoint { seq: 3, hash: "00".repeat(32) }];
        assert!(matches!(run(&c[3..], &wrong, None), Err(Finding::Changed { seq: 4, .. })));
    }
}
