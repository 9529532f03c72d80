use super::*;
use crate::saml::test_support::*;

fn fixture_response(vendor: &str) -> String {
    read(&format!("{vendor}/response.b64"))
}

fn validate_fixture(vendor: &str, tweak: impl FnOnce(&mut Expected)) -> Result<ValidatedAssertion, AcsError> {
    let md = vendor_metadata(vendor);
    validate_fixture_with_certs(vendor, &md.signing_certs_der, tweak)
}

fn validate_fixture_with_certs(
    vendor: &str,
    certs: &[Vec<u8>],
    tweak: impl FnOnce(&mut Expected),
) -> Result<ValidatedAssertion, AcsError> {
    let md = vendor_metadata(vendor);
    let mut x = expected(&md.entity_id, certs);
    tweak(&mut x);
    validate_response(&fixture_response(vendor), &x)
}

#[test]
fn every_vendor_fixture_validates_at_its_fixed_time() {
    for vendor in VENDORS {
        let fx = fixture_json(vendor);
        let v = validate_fixture(vendor, |_| {}).unwrap_or_else(|e| panic!("{vendor}: {} {e}", e.code()));
        assert_eq!(v.assertion_id, fx["assertion_id"].as_str().unwrap(), "{vendor}");
        assert_eq!(v.issuer, fx["idp_entity_id"].as_str().unwrap(), "{vendor}");
        assert_eq!(v.in_response_to.as_deref(), Some(REQUEST_ID), "{vendor}");
        assert_eq!(v.name_id.as_deref(), fx["name_id"].as_str(), "{vendor}");
        assert_eq!(v.name_id_format.as_deref(), fx["name_id_format"].as_str(), "{vendor}");
        let expect_signed = match fx["signed"].as_str().unwrap() {
            "both" => SignedElement::Both,
            "response" => SignedElement::Response,
            _ => SignedElement::Assertion,
        };
        assert_eq!(v.signed_element, expect_signed, "{vendor}");
        if let Some(attr) = fx["email_attribute"].as_str() {
            let values = v.attributes.iter().find(|(n, _)| n == attr).map(|(_, vs)| vs.clone());
            assert_eq!(values, Some(vec![fx["email"].as_str().unwrap().to_string()]), "{vendor}");
        }
        assert!(v.session_index.is_some(), "{vendor}");
        println!("{vendor}: {v:?}");
    }
}

// ---- recorded attack corpus and protocol negatives (idp-fixtures/attacks, made by saml_idp.py) ----

fn manifest() -> Vec<serde_json::Value> {
    serde_json::from_str::<Vec<serde_json::Value>>(&read("attacks/manifest.json")).expect("manifest")
}

/// The form value of a recorded document.
fn attack_form_value(item: &serde_json::Value) -> String {
    use base64::engine::general_purpose::STANDARD;
    let file = item["file"].as_str().unwrap();
    let rel = format!("attacks/{file}");
    if file.ends_with(".b64") {
        read(&rel)
    } else if file.ends_with(".gz") {
        let mut xml = Vec::new();
        flate2::read::GzDecoder::new(read_bytes(&rel).as_slice()).read_to_end(&mut xml).unwrap();
        STANDARD.encode(xml)
    } else {
        STANDARD.encode(read(&rel))
    }
}

/// What this SP answers to each document of the corpus: `None` = accepted.
fn expected_code(name: &str, signed: &str) -> Option<&'static str> {
    Some(match name {
        n if n.starts_with("xsw") => "signature_wrapping",
        "strip_signature" | "unsigned" => "missing_signature",
        "attacker_key_with_keyinfo" | "modify_after_sign" | "attacker_key" => "invalid_signature",
        "comment_in_nameid" => "comment_in_value",
        "dtd" | "entity_expansion" | "xxe" => "dtd_forbidden",
        "sha1" | "xslt_transform" | "rsa_sha1" => "unsupported_algorithm",
        "oversized" | "deflate_bomb" => "too_large",
        "status_responder" => "status_not_success",
        "no_audience" | "no_conditions" => "missing_audience",
        "other_audience" => "wrong_audience",
        "other_destination" => "wrong_destination",
        // Destination is required only when it is covered by a signature.
        "no_destination" if signed == "assertion" => return None,
        "no_destination" => "wrong_destination",
        "other_recipient" => "wrong_recipient",
        "holder_of_key" | "no_subject_not_on_or_after" => "no_bearer_confirmation",
        "other_issuer" | "other_response_issuer" => "wrong_issuer",
        "rollover_idp2" => "invalid_signature", // only idp.crt is trusted here
        "audience_list_with_ours" | "idp_initiated" | "rsa_sha512" => return None,
        other => panic!("no expectation for {other}"),
    })
}

fn corpus_certs() -> Vec<Vec<u8>> {
    vec![cert_der("keys/idp.crt.pem")]
}

#[test]
fn recorded_attack_corpus_is_refused_with_the_expected_code() {
    let certs = corpus_certs();
    let items = manifest();
    assert!(items.len() > 100, "the corpus is incomplete: {}", items.len());
    let mut failures = Vec::new();
    for item in &items {
        let vendor = item["vendor"].as_str().unwrap();
        let name = item["name"].as_str().unwrap();
        let signed = item["signed"].as_str().unwrap_or("none");
        let fx = fixture_json(vendor);
        let x = expected(fx["idp_entity_id"].as_str().unwrap(), &certs);
        let started = std::time::Instant::now();
        let got = validate_response(&attack_form_value(item), &x);
        let elapsed = started.elapsed();
        let want = expected_code(name, signed);
        println!(
            "{vendor}/{name}: {:?} in {elapsed:?}",
            got.as_ref().map(|v| v.name_id.clone()).map_err(|e| e.to_string())
        );
        match (&got, want) {
            (Ok(v), None) => {
                if name == "idp_initiated" {
                    assert_eq!(v.in_response_to, None, "{vendor}/{name}");
                }
            }
            (Err(e), Some(code)) if e.code() == code => {}
            _ => failures.push(format!("{vendor}/{name}: want {want:?}, got {:?}", got.as_ref().map(|v| &v.name_id))),
        }
        if let (Ok(v), Some(evil)) = (&got, item["forbidden_identity"].as_str()) {
            assert_ne!(v.name_id.as_deref(), Some(evil), "{vendor}/{name} authenticated the forbidden identity");
        }
        // Refusals before xmlsec are cheap: the XSLT document must never reach it.
        if name == "xslt_transform" || name == "deflate_bomb" || name == "oversized" {
            assert!(elapsed < std::time::Duration::from_millis(100), "{vendor}/{name} took {elapsed:?}");
        }
    }
    assert!(failures.is_empty(), "{} unexpected results:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_refusal_message_is_one_readable_line() {
    let certs = corpus_certs();
    for item in manifest() {
        let fx = fixture_json(item["vendor"].as_str().unwrap());
        if let Err(e) =
            validate_response(&attack_form_value(&item), &expected(fx["idp_entity_id"].as_str().unwrap(), &certs))
        {
            let text = e.to_string();
            assert!(!text.contains('\n') && text.len() < 600, "{}: {text}", item["file"]);
        }
    }
}

#[test]
fn rollover_accepts_either_certificate_in_any_order() {
    let (idp, idp2) = (cert_der("keys/idp.crt.pem"), cert_der("keys/idp2.crt.pem"));
    for vendor in ["okta", "azure-ad", "pingfederate"] {
        let fx = fixture_json(vendor);
        let item = manifest().into_iter().find(|i| i["vendor"] == vendor && i["name"] == "rollover_idp2").unwrap();
        for certs in [vec![idp.clone(), idp2.clone()], vec![idp2.clone(), idp.clone()], vec![idp2.clone()]] {
            let v =
                validate_response(&attack_form_value(&item), &expected(fx["idp_entity_id"].as_str().unwrap(), &certs));
            assert!(v.is_ok(), "{vendor}: {v:?}");
        }
    }
}

#[test]
fn sha1_is_accepted_only_when_the_entity_allows_it() {
    let certs = corpus_certs();
    for item in manifest().iter().filter(|i| i["name"] == "rsa_sha1" || i["name"] == "sha1") {
        let fx = fixture_json(item["vendor"].as_str().unwrap());
        let mut x = expected(fx["idp_entity_id"].as_str().unwrap(), &certs);
        assert_eq!(validate_response(&attack_form_value(item), &x).unwrap_err().code(), "unsupported_algorithm");
        x.allow_sha1 = true;
        assert!(validate_response(&attack_form_value(item), &x).is_ok(), "{}", item["file"]);
    }
}

#[test]
fn time_window_boundaries_match_not_on_or_after_ms() {
    for vendor in VENDORS {
        let ok = validate_fixture(vendor, |_| {}).unwrap();
        let last = ok.not_on_or_after_ms - 1;
        assert!(validate_fixture(vendor, |x| x.now_ms = last).is_ok(), "{vendor} at the last accepted ms");
        let e = validate_fixture(vendor, |x| x.now_ms = ok.not_on_or_after_ms).unwrap_err();
        assert_eq!(e.code(), "expired", "{vendor}: {e}");
        let e = validate_fixture(vendor, |x| x.now_ms = ISSUED_MS + 3_600_000).unwrap_err();
        assert_eq!(e.code(), "expired", "{vendor}: {e}");
        let e = validate_fixture(vendor, |x| x.now_ms = ISSUED_MS - 600_000).unwrap_err();
        assert_eq!(e.code(), "not_yet_valid", "{vendor}: {e}");
        // Within the skew of the IssueInstant is fine.
        assert!(validate_fixture(vendor, |x| x.now_ms = ISSUED_MS - SKEW_MS).is_ok(), "{vendor}");
    }
}

#[test]
fn configuration_mismatches_are_refused_with_their_code() {
    for vendor in VENDORS {
        let code = |tweak: &dyn Fn(&mut Expected)| validate_fixture(vendor, tweak).unwrap_err().code();
        assert_eq!(code(&|x| x.sp_entity_id = "https://sso.latchkey.test/saml/other/metadata"), "wrong_audience");
        assert_eq!(code(&|x| x.acs_url = "https://sso.latchkey.test/saml/other/acs"), "wrong_destination");
        assert_eq!(code(&|x| x.idp_entity_id = "https://other-idp.example/"), "wrong_issuer");
        let with_certs = |certs: &[Vec<u8>]| validate_fixture_with_certs(vendor, certs, |_| {}).unwrap_err().code();
        assert_eq!(with_certs(&[]), "no_idp_certificate");
        assert_eq!(with_certs(&[b"not a certificate".to_vec()]), "bad_idp_certificate");
        // Another tenant's IdP (same shape, other key) never verifies.
        let other = vendor_metadata(if vendor == "okta" { "generic" } else { "okta" }).signing_certs_der;
        assert_eq!(with_certs(&other), "invalid_signature", "{vendor}");
    }
}

#[test]
fn form_value_encodings_are_tolerated_within_limits() {
    use base64::engine::general_purpose::STANDARD;
    let md = vendor_metadata("okta");
    let x = expected(&md.entity_id, &md.signing_certs_der);
    let b64 = fixture_response("okta").trim().to_string();
    // Line-wrapped base64, as some IdPs post it.
    let wrapped: String =
        b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
    assert!(validate_response(&wrapped, &x).is_ok());
    // Raw DEFLATE (Redirect-binding style).
    let xml = read("okta/response.xml");
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, xml.as_bytes()).unwrap();
    assert!(validate_response(&STANDARD.encode(z.finish().unwrap()), &x).is_ok());
    // Limits and garbage.
    assert_eq!(validate_response(&"A".repeat(MAX_SAML_RESPONSE_B64 + 1), &x).unwrap_err().code(), "too_large");
    assert_eq!(validate_response("%%%not base64%%%", &x).unwrap_err().code(), "malformed");
    assert_eq!(validate_response(&STANDARD.encode("hello"), &x).unwrap_err().code(), "malformed");
    assert_eq!(validate_response("", &x).unwrap_err().code(), "malformed");
}

/// Edits a signed fixture without re-signing: the scan must refuse before xmlsec, or xmlsec after.
fn tampered(vendor: &str, edit: impl Fn(&str) -> String) -> Result<ValidatedAssertion, AcsError> {
    use base64::engine::general_purpose::STANDARD;
    let md = vendor_metadata(vendor);
    let xml = edit(&read(&format!("{vendor}/response.xml")));
    validate_response(&STANDARD.encode(xml), &expected(&md.entity_id, &md.signing_certs_der))
}

#[test]
fn malformed_and_smuggled_structures_are_refused_before_xmlsec() {
    let code = |vendor: &str, edit: &dyn Fn(&str) -> String| tampered(vendor, edit).unwrap_err().code();
    // libxml2's recover mode would verify these (trailing garbage, missing end tag).
    assert_eq!(code("okta", &|x| format!("{x}<trailing")), "malformed");
    assert_eq!(code("okta", &|x| x.replacen("</saml2p:Response>", "", 1)), "malformed");
    assert_eq!(code("okta", &|x| x.replacen("<saml2p:Status>", "<?pi x?><saml2p:Status>", 1)), "malformed");
    assert_eq!(code("okta", &|x| x.replacen("UTF-8", "ISO-8859-1", 1)), "malformed");
    // A bare Assertion is not a Response.
    assert_eq!(
        code("azure-ad", &|x| {
            let start = x.find("<Assertion").unwrap();
            let end = x.rfind("</samlp:Response>").unwrap();
            x[start..end].to_string()
        }),
        "malformed"
    );
    // An ID smuggled through xml:id.
    assert_eq!(
        code("okta", &|x| x.replacen("<saml2p:Status>", r#"<saml2p:Status xml:id="x1">"#, 1)),
        "signature_wrapping"
    );
    // An unknown condition must not be ignored.
    assert_eq!(
        code("okta", &|x| x.replacen(
            "<saml2:AudienceRestriction>",
            "<saml2:Condition/><saml2:AudienceRestriction>",
            1
        )),
        "unsupported_condition"
    );
    // An encrypted assertion gets its own, actionable refusal.
    assert_eq!(
        code("okta", &|x| x.replacen(
            "</saml2p:Status>",
            "</saml2p:Status><saml2:EncryptedAssertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\"/>",
            1
        )),
        "encrypted_assertion"
    );
    // Too deep.
    assert_eq!(
        code("okta", &|x| x.replacen(
            "<saml2p:Status>",
            &format!("{}<saml2p:Status>", "<x>".repeat(60) + &"</x>".repeat(60)),
            1
        )),
        "malformed"
    );
    // Tampering inside the signed content is a bad signature.
    assert_eq!(
        code("pingfederate", &|x| x.replacen("alice@acme.example", "admin@acme.example", 1)),
        "invalid_signature"
    );
}

#[test]
fn results_cross_thread_boundaries() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<ValidatedAssertion>();
    send_sync::<AcsError>();
    send_sync::<crate::saml::metadata::IdpMetadata>();
    send_sync::<crate::saml::metadata::MetadataError>();
    send_sync::<crate::saml::authn::BuiltRequest>();
}

#[test]
fn concurrent_validation_from_several_threads_agrees() {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..20 {
                    let vendor = VENDORS[(t + i) % VENDORS.len()];
                    assert!(validate_fixture(vendor, |_| {}).is_ok(), "{vendor}");
                    let bad = validate_fixture(vendor, |x| x.sp_entity_id = "https://x.example/");
                    assert_eq!(bad.unwrap_err().code(), "wrong_audience");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
