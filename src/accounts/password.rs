//! Password policy and hashing. argon2id at the OWASP parameters (m=19456 KiB, t=2, p=1), computed
//! on the blocking pool behind a semaphore so at most one hash per core runs at once (each holds
//! 19 MiB); unknown accounts cost one dummy verification so timing does not reveal them.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use tokio::sync::Semaphore;

use crate::error::ApiError;

pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;
pub const MIN_CHARS: usize = 12;
pub const MAX_BYTES: usize = 1024;

pub fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid; `Params::new` only fails on out-of-range values.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(32)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Refuse passwords that are too short, too long, or trivially guessable for this account.
pub fn check_policy(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |why: &str| Err(ApiError::unprocessable("weak_password", why.to_string()));
    if password.len() > MAX_BYTES {
        return weak("the password is longer than 1024 bytes");
    }
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return weak("the password must have at least 12 characters");
    }
    let lower = password.to_lowercase();
    let email = email.to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if lower == email || lower.trim() == email || (local.len() >= 4 && lower == local) {
        return weak("the password must not be your email address");
    }
    let first = password.chars().next();
    if password.chars().all(|c| Some(c) == first) {
        return weak("the password must not be one character repeated");
    }
    if is_sequence(&lower) {
        return weak("the password must not be a simple sequence such as 123456789012");
    }
    if COMMON.iter().any(|c| *c == lower) {
        return weak("this password is among the most common ones; choose another");
    }
    Ok(())
}

fn is_sequence(s: &str) -> bool {
    let b: Vec<u32> = s.chars().map(|c| c as u32).collect();
    b.windows(2).all(|w| w[1] == w[0] + 1) || b.windows(2).all(|w| w[0] == w[1] + 1)
}

/// Very common passwords of 12 characters or more (from public breach top lists).
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "password1234",
    "password123!",
    "passwordpassword",
    "qwertyuiop12",
    "qwertyuiopasdfgh",
    "iloveyou1234",
    "administrator",
    "changeme1234",
    "welcome12345",
    "letmein12345",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "qazwsxedcrfv",
    "aaaaaa111111",
    "111111111111",
    "abc123abc123",
    "football1234",
    "baseball1234",
    "superman1234",
    "trustno11234",
    "monkey123456",
    "dragon123456",
    "sunshine1234",
    "princess1234",
    "passw0rd1234",
    "p@ssw0rd1234",
    "p@ssword1234",
    "qwerty123456",
    "asdfghjkl123",
    "zaq12wsxcde3",
];

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").field("permits", &self.permits.available_permits()).finish()
    }
}

impl Hasher {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        let dummy = argon2()
            .hash_password(b"latchkey dummy password for unknown accounts")
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string();
        Ok(Hasher { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy: Arc::new(dummy) })
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        self.run(move || {
            argon2()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await?
    }

    /// Verify `password` against `hash`; with no hash (unknown account, or no password set) verify
    /// against a dummy so the answer takes as long, and return false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.as_ref().clone(), false),
        };
        let ok = self.run(move || argon2().verify_password(password.as_bytes(), hash.as_str()).is_ok()).await?;
        Ok(ok && real)
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.map_err(|_| anyhow::anyhow!("hasher closed"))?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(f)).await.map_err(|e| anyhow::anyhow!("hash task: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_refuses_short_long_email_and_common() {
        let e = "alice@example.com";
        assert!(check_policy("short", e).is_err());
        assert!(check_policy(&"x".repeat(1025), e).is_err());
        assert!(check_policy("Alice@Example.com", e).is_err());
        assert!(check_policy("aaaaaaaaaaaaaaaa", e).is_err());
        assert!(check_policy("123456789012", e).is_err());
        assert!(check_policy("Password1234", e).is_err());
        assert!(check_policy("correct horse battery staple", e).is_ok());
        // 12 characters, more than 12 bytes: counted in characters.
        assert!(check_policy("ééééééééééé1", e).is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_accounts_fail() {
        let h = Hasher::new(1).unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(h.verify("correct horse battery staple", Some(&hash)).await.unwrap());
        assert!(!h.verify("wrong horse battery staple", Some(&hash)).await.unwrap());
        assert!(!h.verify("correct horse battery staple", None).await.unwrap());
        assert!(!h.verify("x", Some("not a phc string")).await.unwrap());
    }
}
