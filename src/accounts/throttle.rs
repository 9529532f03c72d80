//! Throttling of guesses, in the database so it holds across replicas: password attempts and
//! device user codes. An attempt is counted *before* it is evaluated (before the password hash is
//! computed, before the code is looked up), all of its counters in one transaction, each by one
//! atomic upsert; an attempt refused by any counter changes none and is answered `slow_down`
//! without any work. So however many guesses arrive at once, only the budget is evaluated.
//!
//! Counters back off rather than lock: after a few free attempts each further one doubles a
//! waiting time, up to a cap; quiet for 15 minutes and the count starts over. Passwords have three:
//! the account from one address (strict), the address across accounts (password spraying), and the
//! account from anywhere (distributed guessing; capped low so nobody can lock a user out for long).
//! A correct password clears the account's counters and takes back its own count on the address
//! (one good password does not excuse guessing at others).

use std::net::IpAddr;

use sqlx::AnyExecutor;

use crate::{
    clock::Millis,
    error::ApiError,
    state::AppState,
    store::throttle::{self, Backoff},
};

const QUIET_MS: Millis = 15 * 60_000;

/// Per account, from one address.
pub const ACCOUNT_FROM_ADDRESS: Backoff = Backoff { free: 5, cap_ms: 15 * 60_000, quiet_ms: QUIET_MS };
/// Per address, across accounts.
pub const ADDRESS: Backoff = Backoff { free: 20, cap_ms: 15 * 60_000, quiet_ms: QUIET_MS };
/// Per account, from anywhere.
pub const ACCOUNT: Backoff = Backoff { free: 10, cap_ms: 60_000, quiet_ms: QUIET_MS };
/// Wrong device user codes, per client address and per signed-in user.
pub const DEVICE_CODE: Backoff = Backoff { free: 10, cap_ms: 15 * 60_000, quiet_ms: QUIET_MS };

/// What a legitimate attempt does to a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnSuccess {
    /// Forget the counter (the account proved itself).
    Clear,
    /// Take back this attempt's own count only.
    Undo,
}

/// The counters one attempt is counted on (at most three, always in the same order, so concurrent
/// transactions lock rows in one order and never deadlock).
pub struct Limits {
    counters: Vec<(String, Backoff, OnSuccess)>,
    what: &'static str,
}

/// An IPv6 client controls its whole /64: count it as one address.
pub fn address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn account_key(state: &AppState, email: &str) -> String {
    format!("a:{}", state.master.keyed_hash(&[b"throttle-account", email.as_bytes()]))
}

/// The counters of a password attempt for `email` (normalised) from `ip`.
pub fn password_limits(state: &AppState, email: &str, ip: Option<IpAddr>) -> Limits {
    let mut counters = vec![(account_key(state, email), ACCOUNT, OnSuccess::Clear)];
    if let Some(ip) = ip.map(address) {
        let pair = state.master.keyed_hash(&[b"throttle-pair", email.as_bytes(), ip.as_bytes()]);
        counters.push((format!("p:{pair}"), ACCOUNT_FROM_ADDRESS, OnSuccess::Clear));
        let addr = state.master.keyed_hash(&[b"throttle-ip", ip.as_bytes()]);
        counters.push((format!("i:{addr}"), ADDRESS, OnSuccess::Undo));
    }
    Limits { counters, what: "password_attempt" }
}

/// The counters of a device user-code lookup by a signed-in user from `ip`. A right code takes
/// back its own count; wrong ones stay counted.
pub fn device_code_limits(state: &AppState, user_id: &str, ip: Option<IpAddr>) -> Limits {
    let user = state.master.keyed_hash(&[b"throttle-device-user", user_id.as_bytes()]);
    let mut counters = vec![(format!("du:{user}"), DEVICE_CODE, OnSuccess::Undo)];
    if let Some(ip) = ip.map(address) {
        let addr = state.master.keyed_hash(&[b"throttle-device-ip", ip.as_bytes()]);
        counters.push((format!("di:{addr}"), DEVICE_CODE, OnSuccess::Undo));
    }
    Limits { counters, what: "device_code_attempt" }
}

/// The counters of a second-factor code (TOTP or recovery code) of `user_id` from `ip`: the same
/// three as for passwords, under their own keys.
pub fn second_factor_limits(state: &AppState, user_id: &str, ip: Option<IpAddr>) -> Limits {
    let user = state.master.keyed_hash(&[b"throttle-second-factor", user_id.as_bytes()]);
    let mut counters = vec![(format!("ma:{user}"), ACCOUNT, OnSuccess::Clear)];
    if let Some(ip) = ip.map(address) {
        let pair = state.master.keyed_hash(&[b"throttle-second-factor-pair", user_id.as_bytes(), ip.as_bytes()]);
        counters.push((format!("mp:{pair}"), ACCOUNT_FROM_ADDRESS, OnSuccess::Clear));
        let addr = state.master.keyed_hash(&[b"throttle-second-factor-ip", ip.as_bytes()]);
        counters.push((format!("mi:{addr}"), ADDRESS, OnSuccess::Undo));
    }
    Limits { counters, what: "second_factor_attempt" }
}

/// An attempt that was counted and may now be evaluated.
#[must_use = "report a legitimate attempt with `succeeded`"]
pub struct Attempt<'l> {
    limits: &'l Limits,
}

/// Count an attempt on every counter of `limits`, or refuse it with `slow_down` (429 with
/// Retry-After) when any of them is waiting; a refused attempt is counted nowhere.
pub async fn attempt<'l>(state: &AppState, limits: &'l Limits, now: Millis) -> Result<Attempt<'l>, ApiError> {
    let mut tx = state.db.begin_write().await?;
    for (key, backoff, _) in &limits.counters {
        if throttle::take_attempt(&mut *tx, key, backoff, now).await?.is_none() {
            tx.rollback().await?;
            state.metrics.event(limits.what, "throttled");
            let keys: Vec<&str> = limits.counters.iter().map(|(k, _, _)| k.as_str()).collect();
            let until = throttle::blocked_until(&state.db.pool, &keys).await?;
            let secs = ((until - now).max(1) + 999) / 1000;
            return Err(ApiError::oauth_slow_down(secs as u64));
        }
    }
    tx.commit().await?;
    state.metrics.event(limits.what, "evaluated");
    Ok(Attempt { limits })
}

impl Attempt<'_> {
    /// The attempt was legitimate (right password, existing code).
    pub async fn succeeded(self, state: &AppState) -> Result<(), ApiError> {
        for (key, backoff, on) in &self.limits.counters {
            match on {
                OnSuccess::Clear => throttle::clear(&state.db.pool, key).await?,
                OnSuccess::Undo => throttle::undo_attempt(&state.db.pool, key, backoff.free).await?,
            }
        }
        state.metrics.event(self.limits.what, "succeeded");
        Ok(())
    }

    /// The attempt failed: it stays counted.
    pub fn failed(self, state: &AppState) {
        state.metrics.event(self.limits.what, "failed");
    }
}

/// A new password was set: past attempts on the account no longer count.
pub async fn clear_account<'e>(db: impl AnyExecutor<'e>, state: &AppState, email: &str) -> Result<(), ApiError> {
    throttle::clear(db, &account_key(state, email)).await?;
    Ok(())
}
