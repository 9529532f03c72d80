//! SAML response validation throughput, against python3-saml on the same document in the same run.
//!
//! ```text
//! CARGO_BUILD_JOBS=1 cargo bench --bench saml            # N = 2000
//! CARGO_BUILD_JOBS=1 cargo bench --bench saml -- 5000    # another N
//! ```
//!
//! The document is the recorded Okta fixture (Response and Assertion both signed, RSA-SHA256,
//! one certificate), validated with `validate_response` at a fixed `now` inside its window: N
//! times on one thread, then N times split over two threads. python3-saml (PyPI `python3-saml`,
//! module `onelogin.saml2`) validates the same base64 form value N times in one process, then in
//! two processes at once, with its clock pinned to the same instant
//! (`benches/python3_saml_validate.py`). Only the validation loops are timed (no start-up).

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

/// N validations spread over `threads` threads; returns the wall time.
fn rust_run(f: &Fixture, n: usize, threads: usize) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let share = n / threads + usize::from(t < n % threads);
            s.spawn(move || validate_n(f, share));
        }
    });
    start.elapsed()
}

/// N validations by python3-saml spread over `procs` processes started together; returns the
/// slowest process's own loop time (start-up excluded), or why it could not run.
fn python_run(f: &Fixture, n: usize, procs: usize) -> Result<Duration, String> {
    use base64::Engine as _;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
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
    let mut slowest = Duration::ZERO;
    for child in spawned {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_string());
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        let secs = report["seconds"].as_f64().ok_or("no seconds in the report")?;
        slowest = slowest.max(Duration::from_secs_f64(secs));
    }
    Ok(slowest)
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    let f = load();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "SAML response validation: idp-fixtures/{VENDOR} (Response + Assertion signed, RSA-SHA256, 1 IdP certificate)"
    );
    println!("N = {n} validations per run, {cores} cores, fixed now = fixture IssueInstant + 60 s");

    // Warm-up: xmlsec initialisation and caches, not timed.
    validate_n(&f, 50);
    let r1 = rate(n, rust_run(&f, n, 1));
    let r2 = rate(n, rust_run(&f, n, 2));
    println!("latchkey validate_response, 1 thread : {r1:>8.0}/s ({:.0} µs each)", 1e6 / r1);
    println!("latchkey validate_response, 2 threads: {r2:>8.0}/s");

    match (python_run(&f, n, 1), python_run(&f, n, 2)) {
        (Ok(p1), Ok(p2)) => {
            let (p1, p2) = (rate(n, p1), rate(n, p2));
            println!("python3-saml is_valid, 1 process     : {p1:>8.0}/s ({:.0} µs each)", 1e6 / p1);
            println!("python3-saml is_valid, 2 processes   : {p2:>8.0}/s");
            println!("ratio, 1 thread vs 1 process         : {:>8.1}x", r1 / p1);
            println!("ratio, 2 threads vs 2 processes      : {:>8.1}x", r2 / p2);
            let met = r1 / p1 >= 5.0 && r2 / p2 >= 5.0 && r2 >= 1000.0;
            println!("target (>= 5x python3-saml, >= 1000/s): {}", if met { "met" } else { "NOT met" });
        }
        (Err(e), _) | (_, Err(e)) => println!("python3-saml: not measured ({e})"),
    }
}
