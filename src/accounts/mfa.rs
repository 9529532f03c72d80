//! The second factor: a TOTP authenticator (RFC 6238: HMAC-SHA-1, six digits, 30-second steps,
//! one step of skew either way) and ten single-use recovery codes.
//!
//! The secret is sealed with the master key; recovery codes are kept as keyed hashes. Every code
//! tried is counted on the same kind of throttle as passwords (the account, the account from one
//! address, the address) before it is evaluated. A TOTP code is accepted once: its time step must
//! be later than the last accepted one, by one conditional UPDATE, so even concurrent requests
//! with the same code get one success.

use std::net::IpAddr;

use totp_rs::{Builder, Totp};

use crate::{
    accounts::throttle,
    clock::Millis,
    crypto::random_bytes,
    error::{ApiError, Result},
    state::AppState,
    store::{self, accounts::User},
};

pub const ISSUER: &str = "latchkey";
pub const RECOVERY_CODES: usize = 10;
const STEP_S: u64 = 30;

fn aad(user_id: &str) -> String {
    format!("totp_factors:{user_id}")
}

fn totp(secret: Vec<u8>) -> Result<Totp> {
    Builder::new()
        .with_secret(secret)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(STEP_S)
        .build()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("TOTP parameters: {e}")))
}

/// RFC 4648 base32 without padding, as authenticator apps take it.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(char::from(ALPHABET[((buf >> (bits - 5)) & 31) as usize]));
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buf << (5 - bits)) & 31) as usize]));
    }
    out
}

/// An enrolment in progress: the secret to show (base32) and the `otpauth://` URI of the QR code.
pub struct Enrolment {
    pub secret: String,
    pub uri: String,
}

fn uri(email: &str, secret: &str) -> String {
    let label: String = url::form_urlencoded::byte_serialize(format!("{ISSUER}:{email}").as_bytes()).collect();
    format!("otpauth://totp/{label}?secret={secret}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_S}")
}

/// The enrolment of `user`, started now unless one is in progress; `None` when one is confirmed.
pub async fn enrolment(state: &AppState, user: &User, now: Millis) -> Result<Option<Enrolment>> {
    let existing = store::mfa::totp_of(&state.db.pool, &user.id).await?;
    let secret = match existing {
        Some(t) if t.confirmed_at.is_some() => return Ok(None),
        Some(t) => state.master.decrypt(&t.sealed_secret, aad(&user.id).as_bytes())?,
        None => {
            let secret = random_bytes::<20>().to_vec();
            let sealed = state.master.encrypt(&secret, aad(&user.id).as_bytes())?;
            let mut tx = state.db.begin_write().await?;
            store::mfa::insert_pending(&mut tx, &user.id, &sealed, now).await?;
            tx.commit().await?;
            // A concurrent request may have started another: show the one stored.
            match store::mfa::totp_of(&state.db.pool, &user.id).await? {
                Some(t) if t.confirmed_at.is_none() => {
                    state.master.decrypt(&t.sealed_secret, aad(&user.id).as_bytes())?
                }
                _ => return Ok(None),
            }
        }
    };
    let secret = base32(&secret);
    Ok(Some(Enrolment { uri: uri(&user.email, &secret), secret }))
}

fn wrong_code() -> ApiError {
    ApiError::unprocessable("invalid_code", "that code is wrong, expired or already used")
}

fn limits(state: &AppState, user_id: &str, ip: Option<IpAddr>) -> throttle::Limits {
    throttle::second_factor_limits(state, user_id, ip)
}

/// The step of `code` when it is a current code of `secret` at `now`.
fn matching_step(secret: Vec<u8>, code: &str, now: Millis) -> Result<Option<i64>> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret)?;
    Ok(t.check(&code, (now.max(0) / 1000) as u64).map(|step| step as i64))
}

fn recovery_hash(state: &AppState, user_id: &str, code: &str) -> String {
    state.master.keyed_hash(&[b"recovery-code", user_id.as_bytes(), code.as_bytes()])
}

/// A recovery code as typed: lower case, no spaces or dashes.
fn normal_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// Ten fresh recovery codes (`xxxx-xxxx-xxxx-xxxx`, 80 bits each), as shown once.
fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let s = base32(&random_bytes::<10>()).to_lowercase();
            format!("{}-{}-{}-{}", &s[..4], &s[4..8], &s[8..12], &s[12..16])
        })
        .collect()
}

/// Confirm the enrolment in progress with a first code. Returns the recovery codes, to be shown
/// once. The account's other browser sessions end: from now on every session passed the factor.
pub async fn confirm(
    state: &AppState,
    user: &User,
    keep_session: &str,
    code: &str,
    ip: Option<IpAddr>,
    now: Millis,
) -> Result<Vec<String>> {
    let limits = limits(state, &user.id, ip);
    let attempt = throttle::attempt(state, &limits, now).await?;
    let Some(t) = store::mfa::totp_of(&state.db.pool, &user.id).await?.filter(|t| t.confirmed_at.is_none()) else {
        attempt.failed(state);
        return Err(ApiError::conflict("already_enrolled", "an authenticator is enrolled already"));
    };
    let secret = state.master.decrypt(&t.sealed_secret, aad(&user.id).as_bytes())?;
    let Some(step) = matching_step(secret, code, now)? else {
        attempt.failed(state);
        return Err(wrong_code());
    };
    let codes = new_recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(state, &user.id, &normal_recovery(c))).collect();
    let mut tx = state.db.begin_write().await?;
    if !store::mfa::confirm(&mut *tx, &user.id, step, now).await? {
        tx.rollback().await?;
        attempt.failed(state);
        return Err(ApiError::conflict("already_enrolled", "an authenticator is enrolled already"));
    }
    store::mfa::set_recovery_codes(&mut tx, &user.id, &hashes).await?;
    store::sessions::delete_other_sessions(&mut *tx, &user.id, keep_session).await?;
    tx.commit().await?;
    attempt.succeeded(state).await?;
    Ok(codes)
}

/// Check a sign-in's second factor: a current TOTP code not used before, or an unused recovery
/// code (spent by this). Throttled like passwords; `slow_down` when waiting.
pub async fn verify(state: &AppState, user: &User, code: &str, ip: Option<IpAddr>, now: Millis) -> Result<()> {
    let limits = limits(state, &user.id, ip);
    let attempt = throttle::attempt(state, &limits, now).await?;
    let Some(t) = store::mfa::totp_of(&state.db.pool, &user.id).await?.filter(|t| t.confirmed_at.is_some()) else {
        attempt.failed(state);
        return Err(wrong_code());
    };
    let secret = state.master.decrypt(&t.sealed_secret, aad(&user.id).as_bytes())?;
    let ok = match matching_step(secret, code, now)? {
        Some(step) => store::mfa::spend_step(&state.db.pool, &user.id, step).await?,
        None => {
            let normal = normal_recovery(code);
            normal.len() == 16
                && store::mfa::spend_recovery_code(
                    &state.db.pool,
                    &user.id,
                    &recovery_hash(state, &user.id, &normal),
                    now,
                )
                .await?
        }
    };
    if !ok {
        attempt.failed(state);
        return Err(wrong_code());
    }
    attempt.succeeded(state).await?;
    Ok(())
}

/// Remove the account's authenticator and recovery codes (after a valid code).
pub async fn remove(state: &AppState, user: &User, code: &str, ip: Option<IpAddr>, now: Millis) -> Result<()> {
    verify(state, user, code, ip, now).await?;
    let mut tx = state.db.begin_write().await?;
    store::mfa::delete_totp(&mut tx, &user.id).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether sign-ins of this account need a second factor from latchkey.
pub async fn required(state: &AppState, user_id: &str) -> Result<bool> {
    Ok(store::mfa::has_totp(&state.db.pool, user_id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b""), "");
    }

    #[test]
    fn codes_follow_rfc_6238_and_their_window() {
        // RFC 6238 appendix B, SHA-1 key, as six digits.
        let key = b"12345678901234567890".to_vec();
        assert_eq!(matching_step(key.clone(), "287082", 59_000).unwrap(), Some(1));
        assert_eq!(matching_step(key.clone(), "081804", 1_111_111_109_000).unwrap(), Some(37_037_036));
        // One step of skew either way, not two.
        assert!(matching_step(key.clone(), "081804", 1_111_111_109_000 + 30_000).unwrap().is_some());
        assert!(matching_step(key.clone(), "081804", 1_111_111_109_000 + 61_000).unwrap().is_none());
        assert!(matching_step(key.clone(), "28708", 59_000).unwrap().is_none());
        assert!(matching_step(key, "abcdef", 59_000).unwrap().is_none());
    }

    #[test]
    fn recovery_codes_are_ten_distinct_and_typed_forgivingly() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        assert!(codes.iter().all(|c| c.len() == 19 && c.split('-').all(|g| g.len() == 4)));
        let mut d = codes.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 10);
        assert_eq!(normal_recovery(" ABCD-efgh-IJKL-mnop "), "abcdefghijklmnop");
    }
}
