//! SAML response validation throughput, against python3-saml on the same document in the same run.
//!
//! ```text
//! CARGO_BUILD_JOBS=1 cargo bench --bench saml              # N = 2000, 3 rounds
//! CARGO_BUILD_JOBS=1 cargo bench --bench saml -- 5000 5    # N = 5000, 5 rounds
//! ```
//!
//! The document is the recorded Okta fixture (Response and Assertion both signed, RSA-SHA256,
//! one certificate), validated with `validate_response` at a fixed `now` inside its window: N
//! times on one thread, then N times split over two threads. python3-saml (PyPI `python3-saml`,
//! module `onelogin.saml2`) validates the same base64 form value N times in one process, then in
//! two processes at once, with its clock pinned to the same instant
//! (`benches/python3_saml_validate.py`). Only the validation loops are timed (no start-up).
//! The four runs are repeated in interleaved rounds; each line reports the best round's wall
//! rate (the least disturbed, on a machine shared with other work) and the median CPU time per
//! validation (from /proc for this process, `time.process_time()` for Python).

// A benchmark whose fixture does not load has nothing to measure: it stops right there.
#![allow(clippy::expect_used)]

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use latchkey::saml::{
    acs::{Expected, validate_response},
    metadata::parse_idp_metadata,
};

const VENDOR: &str = "okta";
const SKEW_MS: i64 = 120_000;

struct Fixture {
    saml_response: String,
    idp_entity_id: String,
    certs: Vec<Vec<u8>>,
    sp_entity_id: String,
    acs_url: String,
    request_id: String,
    now_ms: i64,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> Fixture {
    let dir = root().join("idp-fixtures").join(VENDOR);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let fx: serde_json::Value = serde_json::from_str(&read("fixture.json")).expect("fixture.json");
    let now_ms = fx["issue_instant_unix"].as_i64().expect("issue_instant_unix") * 1000 + 60_000;
    let md = parse_idp_metadata(&read("metadata.xml"), now_ms).expect("metadata");
    let s = |k: &str| fx[k].as_str().unwrap_or_else(|| panic!("fixture.json: {k}")).to_string();
    Fixture {
        saml_response: read("response.b64").trim().to_string(),
        idp_entity_id: md.entity_id,
        certs: md.signing_certs_der,
        sp_entity_id: s("sp_entity_id"),
        acs_url: s("acs_url"),
        request_id: s("in_response_to"),
        now_ms,
    }
}

fn validate_n(f: &Fixture, n: usize) {
    let x = Expected {
        sp_entity_id: &f.sp_entity_id,
        acs_url: &f.acs_url,
        idp_entity_id: &f.idp_entity_id,
        certs_der: &f.certs,
        allow_sha1: false,
        clock_skew_ms: SKEW_MS,
        now_ms: f.now_ms,
    };
    for _ in 0..n {
        let v = validate_response(&f.saml_response, &x).expect("the fixture validates");
        assert_eq!(v.in_response_to.as_deref(), Some(f.request_id.as_str()));
    }
}

/// Wall time and CPU time (all threads) of one run.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Duration,
}

/// CPU time of this process so far, from /proc (clock ticks; ~10 ms resolution, fine over seconds).
fn process_cpu() -> Duration {
    let ticks_per_s: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Duration::from_secs_f64((tick(11) + tick(12)) / ticks_per_s)
}

/// N validations spread over `threads` threads.
fn rust_run(f: &Fixture, n: usize, threads: usize) -> Timing {
    let (start, cpu_start) = (Instant::now(), process_cpu());
    std::thread::scope(|s| {
        for t in 0..threads {
            let share = n / threads + usize::from(t < n % threads);
            s.spawn(move || validate_n(f, share));
        }
    });
    Timing { wall: start.elapsed(), cpu: process_cpu().saturating_sub(cpu_start) }
}

/// N validations by python3-saml spread over `procs` processes started together: the slowest
/// process's own loop time (start-up excluded) and the CPU time of all loops, or why it could not run.
fn python_run(f: &Fixture, n: usize, procs: usize) -> Result<Timing, String> {
    use base64::Engine as _;
    // As the tests: `LATCHKEY_TEST_PYTHON` or `PYTHON`, else the repository's `.venv/`, else python3.
    let venv = root().join(".venv/bin/python");
    let python = std::env::var("LATCHKEY_TEST_PYTHON")
        .or_else(|_| std::env::var("PYTHON"))
        .unwrap_or_else(|_| if venv.exists() { venv.display().to_string() } else { "python3".into() });
    let script = root().join("benches").join("python3_saml_validate.py");
    let spawned: Vec<_> = (0..procs)
        .map(|p| {
            let params = serde_json::json!({
                "saml_response": f.saml_response,
                "idp_entity_id": f.idp_entity_id,
                "idp_cert_b64": base64::engine::general_purpose::STANDARD.encode(&f.certs[0]),
                "sp_entity_id": f.sp_entity_id,
                "acs_url": f.acs_url,
                "request_id": f.request_id,
                "now": f.now_ms / 1000,
                "n": n / procs + usize::from(p < n % procs),
            });
            Command::new(&python)
                .arg(&script)
                .arg(params.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("{python}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let (mut slowest, mut cpu) = (Duration::ZERO, Duration::ZERO);
    for child in spawned {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_string());
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let secs = report["seconds"].as_f64().ok_or("no seconds in the report")?;
        slowest = slowest.max(Duration::from_secs_f64(secs));
        cpu += Duration::from_secs_f64(report["cpu_seconds"].as_f64().ok_or("no cpu_seconds in the report")?);
    }
    Ok(Timing { wall: slowest, cpu })
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The best round (highest wall rate) and the median CPU time per validation of a configuration.
/// The machine may be shared: the best round is the one least disturbed by other work, and both
/// sides get the same treatment, interleaved round by round.
fn summary(label: &str, n: usize, runs: &[Timing]) -> (String, f64) {
    let best = runs.iter().map(|t| rate(n, t.wall)).fold(0.0, f64::max);
    let mut cpu: Vec<f64> = runs.iter().map(|t| t.cpu.as_secs_f64() * 1e6 / n as f64).collect();
    cpu.sort_by(f64::total_cmp);
    let median_cpu = cpu.get(cpu.len() / 2).copied().unwrap_or(f64::NAN);
    let rounds: Vec<String> = runs.iter().map(|t| format!("{:.0}", rate(n, t.wall))).collect();
    (
        format!(
            "{label:<36}: best {best:>6.0}/s wall (rounds: {}), median {median_cpu:>5.0} µs CPU per validation",
            rounds.join(" ")
        ),
        best,
    )
}

fn main() {
    let mut args = std::env::args().skip(1).filter_map(|a| a.parse::<usize>().ok());
    let n = args.next().unwrap_or(2000);
    let rounds = args.next().unwrap_or(3).max(1);
    let f = load();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let loadavg = || {
        let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    };
    println!(
        "SAML response validation: idp-fixtures/{VENDOR} (Response + Assertion signed, RSA-SHA256, 1 IdP certificate)"
    );
    println!(
        "N = {n} validations per run, {rounds} interleaved rounds, {cores} cores, fixed now = IssueInstant + 60 s, \
         load average at start {}",
        loadavg()
    );

    // Warm-up: xmlsec initialisation and caches, not timed.
    validate_n(&f, 50);
    let (mut r1, mut r2, mut p1, mut p2) = (vec![], vec![], vec![], vec![]);
    let mut python_error = None;
    for _ in 0..rounds {
        r1.push(rust_run(&f, n, 1));
        r2.push(rust_run(&f, n, 2));
        if python_error.is_none() {
            match (python_run(&f, n, 1), python_run(&f, n, 2)) {
                (Ok(a), Ok(b)) => {
                    p1.push(a);
                    p2.push(b);
                }
                (Err(e), _) | (_, Err(e)) => python_error = Some(e),
            }
        }
    }
    let (l1, b1) = summary("latchkey validate_response, 1 thread", n, &r1);
    let (l2, b2) = summary("latchkey validate_response, 2 threads", n, &r2);
    println!("{l1}\n{l2}");
    if let Some(e) = python_error {
        println!("python3-saml: not measured ({e})");
        return;
    }
    let (l3, c1) = summary("python3-saml is_valid, 1 process", n, &p1);
    let (l4, c2) = summary("python3-saml is_valid, 2 processes", n, &p2);
    println!("{l3}\n{l4}");
    let median_cpu = |runs: &[Timing]| {
        let mut v: Vec<f64> = runs.iter().map(|t| t.cpu.as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "ratio latchkey / python3-saml: {:.1}x (1 thread vs 1 process), {:.1}x (2 threads vs 2 processes), \
         {:.1}x (2 threads vs 1 process), {:.1}x (CPU per validation)",
        b1 / c1,
        b2 / c2,
        b2 / c1,
        median_cpu(&p1) / median_cpu(&r1)
    );
    println!("load average at end {}", loadavg());
}
