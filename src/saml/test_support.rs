//! Fixture loading for the SAML unit tests (everything under `idp-fixtures/`, nothing outside
//! the repository).

use std::path::PathBuf;

use super::{acs::Expected, metadata::IdpMetadata};

pub const VENDORS: [&str; 5] = ["azure-ad", "okta", "onelogin", "pingfederate", "generic"];

/// 2026-01-15T10:00:00Z, the IssueInstant of every recorded fixture.
pub const ISSUED_MS: i64 = 1_768_471_200_000;
/// One minute later: inside every fixture's validity window.
pub const NOW_MS: i64 = ISSUED_MS + 60_000;
pub const SKEW_MS: i64 = 120_000;
pub const SP_ENTITY_ID: &str = "https://sso.latchkey.test/saml/acme/metadata";
pub const ACS_URL: &str = "https://sso.latchkey.test/saml/acme/acs";
pub const REQUEST_ID: &str = "_lk0f1e2d3c4b5a69788796a5b4c3d2e1f0";

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("idp-fixtures")
}

pub fn read(rel: &str) -> String {
    let p = fixtures_dir().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn read_bytes(rel: &str) -> Vec<u8> {
    let p = fixtures_dir().join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture_json(vendor: &str) -> serde_json::Value {
    serde_json::from_str(&read(&format!("{vendor}/fixture.json"))).expect("fixture.json")
}

/// DER of a PEM certificate file under idp-fixtures/.
pub fn cert_der(rel: &str) -> Vec<u8> {
    openssl::x509::X509::from_pem(read(rel).as_bytes()).expect("PEM certificate").to_der().expect("DER")
}

pub fn vendor_metadata(vendor: &str) -> IdpMetadata {
    super::metadata::parse_idp_metadata(&read(&format!("{vendor}/metadata.xml")), NOW_MS).expect("fixture metadata")
}

/// What the fixture responses were made for, at `NOW_MS`.
pub fn expected<'a>(idp_entity_id: &'a str, certs: &'a [Vec<u8>]) -> Expected<'a> {
    Expected {
        sp_entity_id: SP_ENTITY_ID,
        acs_url: ACS_URL,
        idp_entity_id,
        certs_der: certs,
        allow_sha1: false,
        clock_skew_ms: SKEW_MS,
        now_ms: NOW_MS,
    }
}

/// One SP key pair per test process (RSA 3072 generation takes a while).
pub fn sp_keys() -> &'static super::sp::SpKeys {
    static KEYS: std::sync::OnceLock<super::sp::SpKeys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| super::sp::generate_sp_keys("sso.latchkey.test acme", ISSUED_MS).expect("SP keys"))
}

/// The Python to run the test IdP with (`LATCHKEY_TEST_PYTHON` or `PYTHON` when set, else the
/// repository's `.venv/` that `./x test` builds, else `python3`), when it and its packages are
/// installed. Tests that need it skip (with a note) otherwise, unless
/// `LATCHKEY_REQUIRE_PYTHON_TESTS=1` makes the absence a failure.
pub fn python() -> Option<String> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let py = std::env::var("LATCHKEY_TEST_PYTHON")
        .or_else(|_| std::env::var("PYTHON"))
        .unwrap_or_else(|_| if venv.exists() { venv.display().to_string() } else { "python3".into() });
    let ok = std::process::Command::new(&py)
        .args(["-c", "import saml2, lxml, cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("LATCHKEY_REQUIRE_PYTHON_TESTS").is_err(),
        "python3 with pysaml2 is required (LATCHKEY_REQUIRE_PYTHON_TESTS is set)"
    );
    eprintln!("skipped: python3 with pysaml2 is not available");
    None
}

/// Runs `tests/support/saml_idp.py <command> --json -` with `params` on stdin.
pub fn saml_idp(py: &str, command: &str, params: &serde_json::Value) -> serde_json::Value {
    use std::io::Write;
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/saml_idp.py");
    let mut child = std::process::Command::new(py)
        .arg(tool)
        .args([command, "--json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn saml_idp.py");
    child.stdin.take().expect("stdin").write_all(params.to_string().as_bytes()).expect("write params");
    let out = child.wait_with_output().expect("saml_idp.py");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("saml_idp.py {command}: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(out.status.success(), "saml_idp.py {command} failed: {v}\n{}", String::from_utf8_lossy(&out.stderr));
    v
}
