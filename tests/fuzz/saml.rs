//! The SAML response path and IdP metadata import.

use std::io::Write;

use base64::Engine;
use latchkey::saml::{
    acs::{Expected, validate_response},
    metadata::parse_idp_metadata,
};

use crate::{budget, check, files, mutate, regressions, repo, rng};

const VENDORS: [&str; 5] = ["azure-ad", "okta", "onelogin", "pingfederate", "generic"];
/// The recorded fixtures' time: one minute after their IssueInstant.
const NOW_MS: i64 = 1_768_471_260_000;
const SP_ENTITY_ID: &str = "https://sso.latchkey.test/saml/acme/metadata";
const ACS_URL: &str = "https://sso.latchkey.test/saml/acme/acs";

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(repo(rel)).unwrap()
}

/// Every response document the repository holds: the vendors' fixtures (valid at `NOW_MS`),
/// the real ones, and the attack corpus (XML files only).
fn response_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = VENDORS.iter().map(|v| read(&format!("idp-fixtures/{v}/response.xml"))).collect();
    for dir in ["idp-fixtures/real", "idp-fixtures/attacks"] {
        for p in files(&repo(dir)) {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".xml") && !name.contains("metadata") && !name.contains("entitiesdescriptor") {
                seeds.push(std::fs::read(&p).unwrap());
            }
        }
    }
    seeds
}

fn metadata_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = VENDORS.iter().map(|v| read(&format!("idp-fixtures/{v}/metadata.xml"))).collect();
    for p in files(&repo("idp-fixtures/real")) {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.contains("metadata") || name.contains("entitiesdescriptor") {
            seeds.push(std::fs::read(&p).unwrap());
        }
    }
    seeds
}

/// How a mutated document reaches the ACS: as the POST binding sends it, deflated (the
/// Redirect style some IdPs use), or as raw bytes in the form field.
fn encode(rng: &mut crate::Rng, xml: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    match rng.below(8) {
        0 => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(xml).unwrap();
            b64.encode(e.finish().unwrap())
        }
        1 => String::from_utf8_lossy(xml).into_owned(),
        _ => b64.encode(xml),
    }
}

#[test]
fn saml_responses_never_panic_or_hang() {
    // Trust each vendor's fixture certificate: intact documents reach xmlsec and the checks after it.
    let certs: Vec<(String, Vec<Vec<u8>>)> = VENDORS
        .iter()
        .map(|v| {
            let md = parse_idp_metadata(
                &String::from_utf8(read(&format!("idp-fixtures/{v}/metadata.xml"))).unwrap(),
                NOW_MS,
            )
            .unwrap();
            (md.entity_id, md.signing_certs_der)
        })
        .collect();
    let run = |form_value: &str, which: usize| {
        let (idp, certs) = &certs[which % certs.len()];
        let x = Expected {
            sp_entity_id: SP_ENTITY_ID,
            acs_url: ACS_URL,
            idp_entity_id: idp,
            certs_der: certs,
            allow_sha1: which.is_multiple_of(7),
            clock_skew_ms: 120_000,
            now_ms: NOW_MS,
        };
        let _ = validate_response(form_value, &x);
    };
    for input in regressions("saml_response") {
        check("saml_response", &input, |i| {
            run(&String::from_utf8_lossy(i), 0);
            Ok(())
        });
    }
    let seeds = response_seeds();
    let mut rng = rng("saml_response");
    let started = std::time::Instant::now();
    let mut n = 0usize;
    while started.elapsed() < budget() {
        let seed = rng.pick(&seeds);
        let other = rng.pick(&seeds);
        let xml = mutate::xml(&mut rng, seed, other);
        let form = encode(&mut rng, &xml);
        let which = rng.below(64);
        check("saml_response", form.as_bytes(), |i| {
            run(std::str::from_utf8(i).unwrap(), which);
            Ok(())
        });
        n += 1;
    }
    eprintln!("fuzz saml_response: {n} inputs from {} seeds", seeds.len());
    assert!(n > 50, "too few inputs in the budget: {n}");
}

#[test]
fn idp_metadata_never_panics_or_hangs() {
    for input in regressions("idp_metadata") {
        check("idp_metadata", &input, |i| {
            let _ = parse_idp_metadata(&String::from_utf8_lossy(i), NOW_MS);
            Ok(())
        });
    }
    let seeds = metadata_seeds();
    let mut rng = rng("idp_metadata");
    let started = std::time::Instant::now();
    let mut n = 0usize;
    while started.elapsed() < budget() {
        let seed = rng.pick(&seeds);
        let other = rng.pick(&seeds);
        let xml = mutate::xml(&mut rng, seed, other);
        check("idp_metadata", &xml, |i| {
            let _ = parse_idp_metadata(&String::from_utf8_lossy(i), NOW_MS);
            Ok(())
        });
        n += 1;
    }
    eprintln!("fuzz idp_metadata: {n} inputs from {} seeds", seeds.len());
    assert!(n > 50, "too few inputs in the budget: {n}");
}
