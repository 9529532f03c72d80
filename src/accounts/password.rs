//! Password policy and hashing. argon2id at the OWASP parameters (m=19456 KiB, t=2, p=1), computed
//! by a pool of one thread per core so at most one hash per core runs at once (each holds 19 MiB,
//! released when sign-ins pause); unknown accounts cost one dummy verification so timing does not
//! reveal them.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

use crate::error::ApiError;

pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;
pub const MIN_CHARS: usize = 12;
pub const MAX_BYTES: usize = 1024;

pub fn argon2() -> Argon2<'static> {
    // The parameters are constants known to be valid; `Params::new` only fails on out-of-range values.
    let params = Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or_default();
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

/// The hashing pool: `concurrency` threads of its own, each computing one argon2id at a time in a
/// memory buffer it owns and reuses, taking the next queued hash itself as soon as one ends.
///
/// Why threads of its own rather than tokio's blocking pool behind a semaphore (as before): with
/// as many hashes running as there are cores, handing a finished hash's place to the next one went
/// through an async task (release the permit, wake the waiter, which then starts a blocking task),
/// and that task had to wait for a time slice on cores the other hashes kept busy: measured
/// in-process at 0.72-0.76x of raw argon2id on two cores. Here a worker that finishes one hash
/// goes straight to the next, and requests only queue a job and await its answer.
///
/// Memory: letting the library allocate 19 MiB per hash on whichever thread runs it leaves a freed
/// 19 MiB block in each thread's malloc arena, and resident memory climbs to hundreds of MiB under
/// a burst of sign-ins; with owned buffers it stays at `concurrency` x 19 MiB however many
/// sign-ins arrive. A worker that has had no hash for [`IDLE_RELEASE`] frees its buffer, so an
/// idle server returns to its idle footprint.
#[derive(Clone)]
pub struct Hasher {
    jobs: flume::Sender<Job>,
    held: Arc<AtomicUsize>,
    dummy: Arc<String>,
}

/// How long a worker keeps its buffer after its last hash: a burst reuses it, a pause frees it.
pub const IDLE_RELEASE: Duration = Duration::from_secs(10);

/// A queued hash: runs on a worker with that worker's buffer, and answers its caller itself.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// What a worker thread owns.
struct Worker {
    memory: Vec<Block>,
    /// This worker's buffer is counted in `held`.
    counted: bool,
    held: Arc<AtomicUsize>,
}

impl Worker {
    /// After a hash: the buffer is now allocated, count it once.
    fn note_held(&mut self) {
        if !self.counted && self.memory.capacity() > 0 {
            self.counted = true;
            self.held.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn release(&mut self) {
        if self.counted {
            self.memory = Vec::new();
            self.counted = false;
            self.held.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!("hashing buffer released after an idle period");
        }
    }

    fn run(mut self, jobs: flume::Receiver<Job>, idle_release: Duration) {
        loop {
            let job = match jobs.recv_timeout(idle_release) {
                Ok(job) => job,
                Err(flume::RecvTimeoutError::Timeout) => {
                    self.release();
                    match jobs.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
                Err(flume::RecvTimeoutError::Disconnected) => return,
            };
            // A job that panics loses its answer (its caller gets an error), not the worker; the
            // buffer is scratch space, rewritten by the next hash, so it is kept.
            if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut self))).is_err() {
                tracing::error!("a password hash panicked");
            }
        }
    }
}

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

/// argon2id of `password` with a fresh random salt, as a PHC string, computed in `memory`.
pub fn hash_with(password: &[u8], memory: &mut Vec<Block>) -> anyhow::Result<String> {
    use argon2::password_hash::phc::{Output, ParamsString, Salt};
    let phc = |e: argon2::password_hash::phc::Error| anyhow::anyhow!("argon2: {e}");
    let mut salt = [0u8; SALT_LEN];
    openssl::rand::rand_bytes(&mut salt)?;
    let a = argon2();
    let mut out = [0u8; OUTPUT_LEN];
    a.hash_password_into_with_memory(password, &salt, &mut out, blocks(memory, a.params()))
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(a.params()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(phc)?),
        hash: Some(Output::new(&out).map_err(phc)?),
    }
    .to_string())
}

/// Whether `password` matches the PHC string `hash` (its own algorithm and parameters, so older
/// hashes keep working if the defaults change), computed in `memory`; compared in constant time.
pub fn verify_with(password: &[u8], hash: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(ph) = PasswordHash::new(hash) else { return false };
    let (Some(salt), Some(expected)) = (&ph.salt, &ph.hash) else { return false };
    let Ok(alg) = Algorithm::try_from(ph.algorithm.as_str()) else { return false };
    let Ok(version) = ph.version.map_or(Ok(Version::V0x13), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&ph) else { return false };
    // Refuse parameters that would make one verification allocate without bound.
    if params.m_cost() > 1 << 20 || params.t_cost() > 16 {
        return false;
    }
    let a = Argon2::new(alg, version, params);
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    a.hash_password_into_with_memory(password, salt, &mut out, blocks(memory, a.params())).is_ok()
        && openssl::memcmp::eq(&out, expected)
}

/// A buffer's capacity is at least this many 1 KiB blocks: more than glibc's largest mmap threshold
/// (32 MiB on 64-bit), so each buffer is a mapping of its own and freeing it gives its pages back
/// to the system at once. A smaller one is served from a malloc arena once glibc has raised its
/// threshold past it (it does after the first free of such a block), and may stay resident after
/// it is freed. Only the blocks argon2 uses are touched: the rest of the capacity never becomes
/// resident.
const BUFFER_MIN_BLOCKS: usize = 32 * 1024 + 1;

fn blocks<'m>(memory: &'m mut Vec<Block>, params: &Params) -> &'m mut [Block] {
    let n = params.block_count();
    if memory.len() < n {
        if memory.capacity() < n {
            *memory = Vec::with_capacity(n.max(BUFFER_MIN_BLOCKS));
        }
        memory.resize(n, Block::new());
    }
    &mut memory[..n]
}

impl Hasher {
    pub fn new(concurrency: usize) -> anyhow::Result<Self> {
        Self::with_idle_release(concurrency, IDLE_RELEASE)
    }

    /// A pool whose workers free their buffers after `idle_release` without a hash.
    pub fn with_idle_release(concurrency: usize, idle_release: Duration) -> anyhow::Result<Self> {
        // The dummy's buffer is dropped: an idle server holds no hashing memory until the first
        // sign-in; from then on at most one buffer per worker, kept for reuse while sign-ins go on.
        let dummy = hash_with(b"latchkey dummy password for unknown accounts", &mut Vec::new())?;
        let (jobs, queue) = flume::unbounded::<Job>();
        let held = Arc::new(AtomicUsize::new(0));
        for n in 0..concurrency.max(1) {
            let worker = Worker { memory: Vec::new(), counted: false, held: held.clone() };
            let queue = queue.clone();
            // The workers end when the last `Hasher` clone (the last sender) is dropped.
            std::thread::Builder::new()
                .name(format!("latchkey-hash-{n}"))
                .spawn(move || worker.run(queue, idle_release))?;
        }
        Ok(Hasher { jobs, held, dummy: Arc::new(dummy) })
    }

    /// Hashing buffers the workers hold now (each 19 MiB at the default parameters).
    pub fn buffers_held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = password.to_owned();
        self.run(move |m| hash_with(password.as_bytes(), m)).await?
    }

    /// Verify `password` against `hash`; with no hash (unknown account, or no password set) verify
    /// against a dummy so the answer takes as long, and return false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let password = password.to_owned();
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy.as_ref().clone(), false),
        };
        let ok = self.run(move |m| verify_with(password.as_bytes(), &hash, m)).await?;
        Ok(ok && real)
    }

    /// Queue `f` for the next free worker and wait for its answer. A caller that stops waiting
    /// (its request was dropped) before a worker takes the job costs no hash.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static) -> anyhow::Result<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |worker: &mut Worker| {
            if answer.is_closed() {
                return;
            }
            let out = span.in_scope(|| f(&mut worker.memory));
            worker.note_held();
            let _ = answer.send(out);
        });
        self.jobs.send(job).map_err(|_| anyhow::anyhow!("hasher closed"))?;
        answered.await.map_err(|_| anyhow::anyhow!("hash task ended without an answer"))
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

    /// Waits (up to a minute, for a loaded machine) until the pool holds `n` buffers.
    async fn until_held(h: &Hasher, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while h.buffers_held() != n {
            assert!(std::time::Instant::now() < deadline, "still {} buffers, expected {n}", h.buffers_held());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffers_are_kept_through_a_burst_and_released_when_hashing_pauses() {
        let h = Hasher::with_idle_release(2, Duration::from_millis(500)).unwrap();
        assert_eq!(h.buffers_held(), 0, "an idle pool holds no hashing memory");
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(h.buffers_held() >= 1);
        // Many at once: never more buffers than workers, and both workers busy.
        let results = futures_util::future::join_all(
            (0..8).map(|i| h.verify(if i % 2 == 0 { "correct horse battery staple" } else { "x" }, Some(&hash))),
        )
        .await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap(), i % 2 == 0, "answer {i} went to its own caller");
        }
        assert!(h.buffers_held() <= 2);
        // A pause frees every buffer; the pool works after that, and frees again.
        until_held(&h, 0).await;
        assert!(h.verify("correct horse battery staple", Some(&hash)).await.unwrap());
        assert_eq!(h.buffers_held(), 1);
        until_held(&h, 0).await;
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_does_not_stop_the_pool() {
        let h = Hasher::with_idle_release(1, Duration::from_secs(60)).unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        // Queued behind a running hash, then dropped: the worker skips it.
        let running = h.verify("correct horse battery staple", Some(&hash));
        let dropped = h.verify("correct horse battery staple", Some(&hash));
        let (first, ()) = tokio::join!(running, async move {
            let _ = tokio::time::timeout(Duration::from_millis(1), dropped).await;
        });
        assert!(first.unwrap());
        assert!(h.verify("correct horse battery staple", Some(&hash)).await.unwrap());
        assert!(!h.verify("correct horse battery stapler", Some(&hash)).await.unwrap());
    }

    #[test]
    fn buffers_reserve_more_than_the_largest_malloc_threshold_and_touch_only_what_argon2_uses() {
        let mut memory = Vec::new();
        let n = blocks(&mut memory, argon2().params()).len();
        assert_eq!(n, 19_456);
        assert_eq!(memory.len(), 19_456);
        assert!(memory.capacity() * std::mem::size_of::<Block>() > 32 << 20, "{}", memory.capacity());
    }

    #[test]
    fn own_buffers_agree_with_the_library_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = Vec::new();
        let ours = hash_with(b"correct horse battery staple", &mut memory).unwrap();
        // The library reads and accepts what we write...
        assert!(argon2().verify_password(b"correct horse battery staple", ours.as_str()).is_ok());
        assert!(argon2().verify_password(b"correct horse battery stapler", ours.as_str()).is_err());
        // ...and we accept what it writes, with a buffer that still holds the last computation.
        let theirs = argon2().hash_password(b"another passphrase here").unwrap().to_string();
        assert!(verify_with(b"another passphrase here", &theirs, &mut memory));
        assert!(!verify_with(b"another passphrase herE", &theirs, &mut memory));
        assert!(verify_with(b"correct horse battery staple", &ours, &mut memory));
        // Other parameters (an older or newer default) are read from the string itself.
        let light = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, Some(32)).unwrap())
            .hash_password(b"lighter parameters")
            .unwrap()
            .to_string();
        assert!(verify_with(b"lighter parameters", &light, &mut memory));
        // A changed output byte, an absurd memory cost, or no hash at all never verify.
        let (head, tail) = ours.rsplit_once('$').unwrap();
        let flipped = format!("{head}${}{}", if tail.starts_with('A') { 'B' } else { 'A' }, &tail[1..]);
        assert!(!verify_with(b"correct horse battery staple", &flipped, &mut memory));
        let huge = ours.replace("m=19456", "m=4000000");
        assert!(!verify_with(b"correct horse battery staple", &huge, &mut memory));
        assert!(!verify_with(b"x", "$argon2id$v=19$m=19456,t=2,p=1", &mut memory));
        assert_eq!(memory.len(), 19_456, "one buffer of the largest parameters used");
    }
}
