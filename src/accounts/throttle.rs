//! Throttling of password attempts, in the database so it holds across replicas. Three counters:
//! the account from one address (strict), the address across accounts (password spraying), and the
//! account from anywhere (distributed guessing; capped low so nobody can lock a user out for long).
//! After a few free failures each further one doubles a waiting time, up to the cap; quiet for
//! 15 minutes and the counter starts over. Keys are keyed hashes: no address or email is stored.

use std::net::IpAddr;

use sqlx::AnyExecutor;

use crate::{
    clock::Millis,
    error::ApiError,
    state::AppState,
    store::throttle::{self, Counter},
};

struct Rule {
    free: i64,
    cap_ms: Millis,
}

const ACCOUNT_FROM_ADDRESS: Rule = Rule { free: 5, cap_ms: 15 * 60_000 };
const ADDRESS: Rule = Rule { free: 20, cap_ms: 15 * 60_000 };
const ACCOUNT: Rule = Rule { free: 10, cap_ms: 60_000 };
const QUIET_MS: Millis = 15 * 60_000;

pub struct Keys {
    account: String,
    pair: Option<String>,
    address: Option<String>,
}

fn account_key(state: &AppState, email: &str) -> String {
    format!("a:{}", state.master.keyed_hash(&[b"throttle-account", email.as_bytes()]))
}

pub fn keys(state: &AppState, email: &str, ip: Option<IpAddr>) -> Keys {
    let ip = ip.map(|ip| match ip {
        // An IPv6 client controls its whole /64: count it as one address.
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        IpAddr::V4(v4) => v4.to_string(),
    });
    Keys {
        account: account_key(state, email),
        pair: ip
            .as_ref()
            .map(|ip| format!("p:{}", state.master.keyed_hash(&[b"throttle-pair", email.as_bytes(), ip.as_bytes()]))),
        address: ip.as_ref().map(|ip| format!("i:{}", state.master.keyed_hash(&[b"throttle-ip", ip.as_bytes()]))),
    }
}

impl Keys {
    fn all(&self) -> Vec<(&str, &Rule)> {
        let mut v = vec![(self.account.as_str(), &ACCOUNT)];
        if let Some(p) = &self.pair {
            v.push((p, &ACCOUNT_FROM_ADDRESS));
        }
        if let Some(a) = &self.address {
            v.push((a, &ADDRESS));
        }
        v
    }
}

/// What `check` saw: which of the keys had counters (only those need clearing on success).
#[derive(Debug, Default)]
pub struct Seen {
    keys: Vec<String>,
}

/// Refuse with `slow_down` (429 + Retry-After) while any counter is in its waiting time.
pub async fn check(state: &AppState, keys: &Keys, now: Millis) -> Result<Seen, ApiError> {
    let all = keys.all();
    let names: Vec<&str> = all.iter().map(|(k, _)| *k).collect();
    let found = throttle::counters(&state.db.pool, &names).await?;
    let until = found.iter().map(|c| c.blocked_until).max().unwrap_or(0);
    if until > now {
        state.metrics.event("password_attempt", "throttled");
        let secs = ((until - now) + 999) / 1000;
        return Err(ApiError::oauth_slow_down(secs as u64));
    }
    Ok(Seen { keys: found.into_iter().map(|c| c.key).collect() })
}

pub async fn record_failure(state: &AppState, keys: &Keys, now: Millis) -> Result<(), ApiError> {
    let mut tx = state.db.begin_write().await?;
    for (key, rule) in keys.all() {
        let prev = throttle::counter(&mut *tx, key).await?;
        let failures = match &prev {
            Some(c) if now - c.window_start < QUIET_MS => c.failures + 1,
            _ => 1,
        };
        let over = failures - rule.free;
        let blocked_until = if over > 0 { now + (1000i64 << (over - 1).min(20)).min(rule.cap_ms) } else { 0 };
        throttle::put(&mut *tx, &Counter { key: key.to_string(), failures, window_start: now, blocked_until }).await?;
    }
    tx.commit().await?;
    state.metrics.event("password_attempt", "failed");
    Ok(())
}

/// A correct password clears the account's counters (the address's own stays: one good password
/// does not excuse guessing at others). A sign-in with no counter to clear writes nothing.
pub async fn record_success(state: &AppState, keys: &Keys, seen: &Seen) -> Result<(), ApiError> {
    for k in [Some(&keys.account), keys.pair.as_ref()].into_iter().flatten() {
        if seen.keys.contains(k) {
            throttle::clear(&state.db.pool, k).await?;
        }
    }
    state.metrics.event("password_attempt", "succeeded");
    Ok(())
}

/// A new password was set: past failures on the account no longer count.
pub async fn clear_account<'e>(db: impl AnyExecutor<'e>, state: &AppState, email: &str) -> Result<(), ApiError> {
    throttle::clear(db, &account_key(state, email)).await?;
    Ok(())
}
