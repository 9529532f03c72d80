//! Hostile input, fuzzed: a bounded run of every fuzz target (seconds, so `cargo test` runs it),
//! and every input that ever broke a target replayed first (`tests/fuzz/regressions/<target>/`).
//!
//! Targets: the SAML response path (`acs::validate_response`, seeded with every vendor's response
//! and the attack corpus), IdP metadata import (`metadata::parse_idp_metadata`, seeded with the
//! vendors' and real-world metadata), the SCIM filter and PATCH parsers (seeded with the shapes
//! Okta and Entra ID send) and the JSON, SCIM, form and multipart bodies and query strings of the
//! HTTP endpoints (the real router, in-process, each route with the credentials it wants, on a
//! fresh SQLite database, or PostgreSQL when `LATCHKEY_TEST_DATABASE_URL` names one). No input
//! may panic, take more than a second, or (HTTP) answer a 5xx other than 503.
//!
//! The in-test mutator is not coverage-guided; the coverage-guided run (libFuzzer, same targets)
//! lives in `fuzz/` and is described in docs/testing.md. `LATCHKEY_FUZZ_SECONDS` (default 3) is
//! the budget per target, `LATCHKEY_FUZZ_SEED` repeats a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http;
mod mutate;
mod saml;
mod scim;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

pub use mutate::Rng;

/// No single input may take longer than this.
pub const PER_INPUT: Duration = Duration::from_secs(1);

pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn budget() -> Duration {
    let s = std::env::var("LATCHKEY_FUZZ_SECONDS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

pub fn rng(target: &str) -> Rng {
    let seed = std::env::var("LATCHKEY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap()));
    eprintln!("fuzz {target}: LATCHKEY_FUZZ_SEED={seed}");
    Rng::new(seed)
}

/// Every file of a directory (not recursive), sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The inputs that once broke `target`, replayed on every run.
pub fn regressions(target: &str) -> Vec<Vec<u8>> {
    files(&repo(&format!("tests/fuzz/regressions/{target}"))).iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Keep a failing input where a person can find it (and copy it into the regressions), then fail.
pub fn fail(target: &str, input: &[u8], why: &str) -> ! {
    let dir = repo("target/fuzz-failures").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let name = openssl::sha::sha256(input).iter().take(8).map(|b| format!("{b:02x}")).collect::<String>();
    let path = dir.join(name);
    std::fs::write(&path, input).unwrap();
    panic!("fuzz {target}: {why}\ninput saved to {} (copy it into tests/fuzz/regressions/{target}/)", path.display());
}

/// Run `f` on `input`; a panic or an answer slower than [`PER_INPUT`] fails the target.
pub fn check(target: &str, input: &[u8], f: impl FnOnce(&[u8]) -> Result<(), String>) {
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input)));
    let took = started.elapsed();
    match outcome {
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            fail(target, input, &format!("panicked: {}", msg.unwrap_or_default()))
        }
        Ok(Err(why)) => fail(target, input, &why),
        Ok(Ok(())) if took > PER_INPUT => fail(target, input, &format!("took {took:?}")),
        Ok(Ok(())) => {}
    }
}
