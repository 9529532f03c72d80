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
