use super::*;
use crate::saml::test_support::*;

/// Unix ms of a UTC date.
fn at(date: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&format!("{date}T00:00:00Z")).unwrap().timestamp_millis()
}

fn real(file: &str, now: &str) -> Result<IdpMetadata, MetadataError> {
    parse_idp_metadata(&read(&format!("real/{file}")), at(now))
}

#[test]
fn every_vendor_fixture_metadata_parses() {
    for vendor in VENDORS {
        let fx = fixture_json(vendor);
        let md = vendor_metadata(vendor);
        assert_eq!(md.entity_id, fx["idp_entity_id"].as_str().unwrap(), "{vendor}");
        assert_eq!(md.signing_certs_der, vec![cert_der(&format!("{vendor}/idp.crt.pem"))], "{vendor}");
        assert_eq!(md.want_authn_requests_signed, fx["want_authn_requests_signed"].as_bool().unwrap_or(false));
        let location = |binding: &str| {
            fx["sso"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["binding"] == binding)
                .map(|e| e["location"].as_str().unwrap().to_string())
        };
        assert_eq!(md.sso_redirect_url, location(crate::saml::xml::BINDING_REDIRECT), "{vendor}");
        assert_eq!(md.sso_post_url, location(crate::saml::xml::BINDING_POST), "{vendor}");
        assert_eq!(md.certs_not_after, vec![at("2120-01-01")], "{vendor}");
    }
    // OneLogin publishes HTTP-POST only: the SP must post its request.
    assert_eq!(vendor_metadata("onelogin").sso_redirect_url, None);
}

#[test]
fn real_azure_metadata_parses_and_drops_expired_certificates() {
    // 2017 tenant metadata: BOM, metadata signature, RoleDescriptors, 3 certificates.
    let md = real("aad-tenant-federationmetadata-2017.xml", "2017-06-01").unwrap();
    assert_eq!(md.entity_id, "https://sts.windows.net/8b966979-910b-487c-a604-69229b1ac75c/");
    assert_eq!(md.signing_certs_der.len(), 3);
    assert!(md.sso_redirect_url.as_deref().unwrap().starts_with("https://login.microsoftonline.com/"));
    assert!(md.sso_post_url.is_some());
    assert!(!md.want_authn_requests_signed);
    // One expired on 2018-11-16: dropped, the other two kept.
    let md = real("aad-tenant-federationmetadata-2017.xml", "2018-12-01").unwrap();
    assert_eq!(md.signing_certs_der.len(), 2);
    assert_eq!(md.certs_not_after.len(), 2);
    assert!(md.certs_not_after.iter().all(|t| *t > at("2018-12-01")));
    // All expired.
    let e = real("aad-tenant-federationmetadata-2017.xml", "2020-01-01").unwrap_err();
    assert_eq!(e.code(), "certificates_expired");
    assert!(e.to_string().contains("2019-02-14"), "{e}");

    // Per-app metadata with a rollover pair; the older one expires 2025-09-28.
    assert_eq!(real("entra-app-federationmetadata.xml", "2025-01-01").unwrap().signing_certs_der.len(), 2);
    assert_eq!(real("entra-app-federationmetadata.xml", "2026-01-15").unwrap().signing_certs_der.len(), 1);

    // The multi-tenant `common` document: its entityID is a placeholder no response will carry.
    let e = real("entra-common-federationmetadata-2026.xml", "2026-03-01").unwrap_err();
    assert_eq!(e.code(), "placeholder_entity_id");
    assert!(e.to_string().contains("{tenantid}"));
}

#[test]
fn real_okta_onelogin_google_adfs_shibboleth_metadata_parse() {
    let okta = real("okta-app-metadata.xml", "2020-01-01").unwrap();
    assert_eq!(okta.entity_id, "http://www.okta.com/exkppsa1qwuFV4D7z0h7");
    assert_eq!(okta.signing_certs_der.len(), 1); // space-split base64 decodes
    assert!(okta.sso_redirect_url.is_some() && okta.sso_post_url.is_some());
    assert!(okta.name_id_formats.iter().all(|f| f.trim() == f), "{:?}", okta.name_id_formats);

    let onelogin = real("onelogin-metadata-503983.xml", "2015-01-01").unwrap();
    assert_eq!(onelogin.sso_redirect_url, None);
    assert_eq!(onelogin.sso_post_url.as_deref(), Some("https://app.onelogin.com/trust/saml2/http-post/sso/503983"));
    let onelogin = real("onelogin-metadata-645460.xml", "2018-01-01").unwrap();
    assert!(onelogin.sso_redirect_url.is_some());

    let google = real("google-workspace-idp-metadata.xml", "2018-01-01").unwrap();
    assert_eq!(google.entity_id, "https://accounts.google.com/o/saml2?idpid=C02dfl1r1");
    assert_eq!(google.sso_redirect_url, None);
    assert!(google.sso_post_url.is_some());

    // AD FS: only the signing certificate, never the encryption one.
    let adfs = real("adfs-federationmetadata.xml", "2017-06-01").unwrap();
    assert_eq!(adfs.entity_id, "http://idp.adfs.example.com/adfs/services/trust");
    assert_eq!(adfs.signing_certs_der.len(), 1);
    assert_eq!(
        adfs.certs_not_after,
        vec![X509::from_der(&adfs.signing_certs_der[0]).map(|c| asn1_to_unix_ms(c.not_after()).unwrap()).unwrap()]
    );

    // Shibboleth: KeyDescriptor without `use`.
    let shib = real("shibboleth-testshib-idp-metadata.xml", "2010-01-01").unwrap();
    assert_eq!(shib.entity_id, "https://idp.testshib.org/idp/shibboleth");
    assert_eq!(shib.signing_certs_der.len(), 1);
    assert!(shib.sso_redirect_url.is_some());
}

#[test]
fn an_entities_descriptor_is_unwrapped_only_when_it_holds_exactly_one_idp() {
    let e = real("rctsaai-edugain-entitiesdescriptor.xml", "2017-01-01").unwrap_err();
    assert_eq!(e.code(), "several_idps");
    assert!(e.to_string().contains("https://idp.fccn.pt/idp/shibboleth"), "{e}");

    let okta = read("okta/metadata.xml");
    let body = okta.trim_start().strip_prefix(r#"<?xml version="1.0" encoding="UTF-8"?>"#).unwrap_or(&okta);
    let wrapped = format!(
        r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" Name="agg">{body}</md:EntitiesDescriptor>"#
    );
    let md = parse_idp_metadata(&wrapped, NOW_MS).unwrap();
    assert_eq!(md.entity_id, fixture_json("okta")["idp_entity_id"].as_str().unwrap());

    // An aggregate of service providers only.
    let sp = crate::saml::sp::sp_metadata_xml(
        "https://sp.example/md",
        "https://sp.example/acs",
        &cert_der("keys/idp.crt.pem"),
    );
    let sp_body = sp.split_once("?>").unwrap().1;
    let only_sps = format!(
        r#"<md:EntitiesDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata">{sp_body}</md:EntitiesDescriptor>"#
    );
    assert_eq!(parse_idp_metadata(&only_sps, NOW_MS).unwrap_err().code(), "no_idp");
    assert_eq!(parse_idp_metadata(&sp, NOW_MS).unwrap_err().code(), "no_idp");
}

/// The Okta fixture metadata with `from` replaced by `to` (the first occurrence).
fn okta_with(from: &str, to: &str) -> Result<IdpMetadata, MetadataError> {
    let md = read("okta/metadata.xml");
    assert!(md.contains(from), "fixture lacks {from}");
    parse_idp_metadata(&md.replacen(from, to, 1), NOW_MS)
}

fn okta_cert_text() -> String {
    let md = read("okta/metadata.xml");
    let start = md.find("<ds:X509Certificate>").unwrap() + "<ds:X509Certificate>".len();
    md[start..start + md[start..].find('<').unwrap()].to_string()
}

#[test]
fn each_refusal_has_its_own_reason() {
    let code = |r: Result<IdpMetadata, MetadataError>| r.unwrap_err().code();
    assert_eq!(code(parse_idp_metadata("this is not xml", NOW_MS)), "not_xml");
    assert_eq!(code(parse_idp_metadata("<a><b></a>", NOW_MS)), "not_xml");
    assert_eq!(code(parse_idp_metadata("", NOW_MS)), "not_xml");
    assert_eq!(code(parse_idp_metadata("<html><body>Sign in</body></html>", NOW_MS)), "not_metadata");
    let md = read("okta/metadata.xml");
    let with_dtd = md.replacen("<md:EntityDescriptor", "<!DOCTYPE x [<!ENTITY a \"b\">]><md:EntityDescriptor", 1);
    assert_eq!(code(parse_idp_metadata(&with_dtd, NOW_MS)), "dtd_forbidden");
    let huge = md.replacen(
        "</md:EntityDescriptor>",
        &format!("<!--{}--></md:EntityDescriptor>", "x".repeat(MAX_METADATA_BYTES)),
        1,
    );
    assert_eq!(code(parse_idp_metadata(&huge, NOW_MS)), "too_large");

    // No SSO endpoint in a browser binding.
    let soap_only = md
        .replace("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", "urn:oasis:names:tc:SAML:2.0:bindings:SOAP")
        .replace("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", "urn:oasis:names:tc:SAML:2.0:bindings:SOAP");
    let e = parse_idp_metadata(&soap_only, NOW_MS).unwrap_err();
    assert_eq!(e.code(), "no_sso_endpoint");
    assert!(e.to_string().contains("SOAP"), "{e}");
    // A location that is no http(s) URL would end up in a form action or a Location header.
    let js = md.replace(
        "https://latchkey-test.okta.example/app/latchkey_test_1/exk1latchkeyTest0h7/sso/saml",
        "javascript:alert(1)",
    );
    assert_eq!(code(parse_idp_metadata(&js, NOW_MS)), "bad_sso_url");

    // Certificates: none, encryption-only, broken base64, not a certificate, expired.
    assert_eq!(code(okta_with(r#"use="signing""#, r#"use="encryption""#)), "no_signing_certificate");
    let start = md.find("<md:KeyDescriptor").unwrap();
    let end = md.find("</md:KeyDescriptor>").unwrap() + "</md:KeyDescriptor>".len();
    let no_key = format!("{}{}", &md[..start], &md[end..]);
    assert_eq!(code(parse_idp_metadata(&no_key, NOW_MS)), "no_signing_certificate");
    let cert = okta_cert_text();
    assert_eq!(code(okta_with(&cert, "%%%%")), "bad_certificate");
    assert_eq!(code(okta_with(&cert, "aGVsbG8gd29ybGQ=")), "bad_certificate");
    let e = okta_with(&cert, &pem_body("keys/idp-expired.crt.pem")).unwrap_err();
    assert_eq!(e.code(), "certificates_expired");
    assert!(e.to_string().contains("2016-01-01"), "{e}");

    // An unnamed IdP.
    let no_id = md.replacen(r#"entityID="http://www.okta.com/exk1latchkeyTest0h7""#, "", 1);
    assert_eq!(code(parse_idp_metadata(&no_id, NOW_MS)), "no_entity_id");
    for e in [MetadataError::NoSigningCertificate, MetadataError::Dtd, MetadataError::TooLarge(2 << 20)] {
        assert!(!e.to_string().is_empty());
    }
}

fn pem_body(rel: &str) -> String {
    read(rel).lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn expired_certificates_are_dropped_when_a_valid_one_remains() {
    let md = read("okta/metadata.xml");
    let start = md.find("<md:KeyDescriptor").unwrap();
    let end = md.find("</md:KeyDescriptor>").unwrap() + "</md:KeyDescriptor>".len();
    let key = &md[start..end];
    let expired = key.replace(&okta_cert_text(), &pem_body("keys/idp-expired.crt.pem"));
    let rollover = key.replace(&okta_cert_text(), &pem_body("keys/idp2.crt.pem"));
    let doc = format!("{}{expired}{key}{rollover}{}", &md[..start], &md[end..]);
    let parsed = parse_idp_metadata(&doc, NOW_MS).unwrap();
    assert_eq!(parsed.signing_certs_der, vec![cert_der("okta/idp.crt.pem"), cert_der("keys/idp2.crt.pem")]);
    assert_eq!(parsed.certs_not_after, vec![at("2120-01-01"); 2]);
    // The same certificate twice is kept once.
    let twice = format!("{}{key}{key}{}", &md[..start], &md[end..]);
    assert_eq!(parse_idp_metadata(&twice, NOW_MS).unwrap().signing_certs_der.len(), 1);
}

#[test]
fn keys_xmlsec_cannot_use_are_refused() {
    // Ed25519: X.509 parses, but XML-DSig here signs with RSA or EC only.
    let key = openssl::pkey::PKey::generate_ed25519().unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "ed").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix(4_102_444_800).unwrap()).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::null()).unwrap();
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(b.build().to_der().unwrap());
    let e = okta_with(&okta_cert_text(), &text).unwrap_err();
    assert_eq!(e.code(), "bad_certificate");
    assert!(xmlsec_can_load(&cert_der("keys/idp.crt.pem")));
    assert!(!xmlsec_can_load(b"junk"));
}
