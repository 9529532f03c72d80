use std::io::Read as _;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use openssl::{hash::MessageDigest, sign::Verifier, x509::X509};

use super::*;
use crate::saml::{sp::sp_metadata_xml, test_support::*};

fn query_param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

fn inflate(b64: &str) -> String {
    let raw = STANDARD.decode(b64).unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(raw.as_slice()).read_to_string(&mut xml).unwrap();
    xml
}

fn attr(xml: &str, name: &str) -> String {
    let start = xml.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("{name} in {xml}")) + name.len() + 3;
    xml[start..start + xml[start..].find('"').unwrap()].to_string()
}

fn with_sso(redirect: Option<&str>, post: Option<&str>) -> IdpMetadata {
    IdpMetadata {
        sso_redirect_url: redirect.map(str::to_string),
        sso_post_url: post.map(str::to_string),
        ..vendor_metadata("okta")
    }
}

#[test]
fn redirect_request_carries_every_required_field() {
    let idp = vendor_metadata("okta");
    let built = build_authn_request(SP_ENTITY_ID, ACS_URL, &idp, "rs-1", None, ISSUED_MS).unwrap();
    assert!(built.id.starts_with('_') && built.id.len() == 33);
    assert!(built.id[1..].chars().all(|c| c.is_ascii_hexdigit()));
    let AuthnRequestOut::Redirect { url } = &built.out else { panic!("okta has a Redirect endpoint") };
    assert!(url.starts_with(idp.sso_redirect_url.as_deref().unwrap()));
    assert_eq!(query_param(url, "RelayState").as_deref(), Some("rs-1"));
    assert_eq!(query_param(url, "Signature"), None);
    let xml = inflate(&query_param(url, "SAMLRequest").unwrap());
    assert_eq!(attr(&xml, "ID"), built.id);
    assert_eq!(attr(&xml, "IssueInstant"), "2026-01-15T10:00:00.000Z");
    assert_eq!(attr(&xml, "Destination"), idp.sso_redirect_url.unwrap());
    assert_eq!(attr(&xml, "AssertionConsumerServiceURL"), ACS_URL);
    assert_eq!(attr(&xml, "ProtocolBinding"), "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST");
    assert_eq!(attr(&xml, "AllowCreate"), "true");
    assert!(xml.contains(&format!("<saml:Issuer>{SP_ENTITY_ID}</saml:Issuer>")));
    // Fresh 128-bit ids.
    let again = build_authn_request(SP_ENTITY_ID, ACS_URL, &vendor_metadata("okta"), "rs-1", None, ISSUED_MS).unwrap();
    assert_ne!(again.id, built.id);
}

#[test]
fn signed_redirect_verifies_and_leaves_the_idp_query_alone() {
    let keys = sp_keys();
    let key = keys.private_key().unwrap();
    let cert = X509::from_der(&keys.cert_der).unwrap();
    let idp = with_sso(Some("https://idp.example/sso?tenant=acme&x=a%20b"), None);
    let built = build_authn_request(SP_ENTITY_ID, ACS_URL, &idp, "rs-2.x_y", Some(&key), ISSUED_MS).unwrap();
    let AuthnRequestOut::Redirect { url } = built.out else { panic!() };
    assert!(url.starts_with("https://idp.example/sso?tenant=acme&x=a%20b&SAMLRequest="), "{url}");
    // Bindings §3.4.4.1: the signature covers exactly SAMLRequest=..&RelayState=..&SigAlg=.., as sent.
    let query = url.split_once('?').unwrap().1;
    let start = query.find("SAMLRequest=").unwrap();
    let (signed, signature) = query[start..].split_once("&Signature=").unwrap();
    assert!(
        signed.contains("&RelayState=rs-2.x_y&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256")
    );
    let sig = STANDARD
        .decode(url::form_urlencoded::parse(format!("s={signature}").as_bytes()).next().unwrap().1.as_bytes())
        .unwrap();
    let public = cert.public_key().unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    v.update(signed.as_bytes()).unwrap();
    assert!(v.verify(&sig).unwrap(), "Redirect signature does not verify");
    // Nothing else was signed: with the IdP's own parameters the signature no longer verifies.
    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    v.update(query.split_once("&Signature=").unwrap().0.as_bytes()).unwrap();
    assert!(!v.verify(&sig).unwrap());
}

#[test]
fn post_only_idps_get_a_form_signed_with_an_enveloped_signature() {
    let keys = sp_keys();
    let idp = vendor_metadata("onelogin");
    assert!(idp.sso_redirect_url.is_none());
    let unsigned = build_authn_request(SP_ENTITY_ID, ACS_URL, &idp, "rs-3", None, ISSUED_MS).unwrap();
    let AuthnRequestOut::Post { url, saml_request, relay_state } = &unsigned.out else { panic!() };
    assert_eq!(Some(url), idp.sso_post_url.as_ref());
    assert_eq!(relay_state, "rs-3");
    let xml = String::from_utf8(STANDARD.decode(saml_request).unwrap()).unwrap();
    assert_eq!(attr(&xml, "ID"), unsigned.id);
    assert!(!xml.contains("Signature"));

    let key = keys.private_key().unwrap();
    let signed = build_authn_request(SP_ENTITY_ID, ACS_URL, &idp, "rs-3", Some(&key), ISSUED_MS).unwrap();
    let AuthnRequestOut::Post { saml_request, .. } = &signed.out else { panic!() };
    let xml = String::from_utf8(STANDARD.decode(saml_request).unwrap()).unwrap();
    assert!(xml.contains("xmlenc#sha256") && xml.contains("rsa-sha256") && !xml.contains("#sha1"), "{xml}");
    assert!(xml.contains(&format!(r##"URI="#{}""##, signed.id)));
    use samael::crypto::{CertificateDer, CryptoProvider, XmlSec};
    XmlSec::verify_signed_xml(&xml, &CertificateDer::from(keys.cert_der.clone()), Some("ID"))
        .expect("enveloped signature");
    let tampered = xml.replace(ACS_URL, "https://evil.example/acs");
    assert!(XmlSec::verify_signed_xml(&tampered, &CertificateDer::from(keys.cert_der.clone()), Some("ID")).is_err());
}

#[test]
fn hostile_values_are_escaped_and_relay_state_is_bounded() {
    let idp = with_sso(None, Some(r#"https://idp.example/sso?a=1&b="><script>alert(1)</script>"#));
    let built = build_authn_request(r#"https://sp.example/?a=1&b="x""#, ACS_URL, &idp, "", None, ISSUED_MS).unwrap();
    let AuthnRequestOut::Post { saml_request, .. } = &built.out else { panic!() };
    let xml = String::from_utf8(STANDARD.decode(saml_request).unwrap()).unwrap();
    assert!(xml.contains("<saml:Issuer>https://sp.example/?a=1&amp;b=&quot;x&quot;</saml:Issuer>"), "{xml}");
    assert!(crate::saml::xml::check_plain(&xml).is_ok());
    let long = "x".repeat(MAX_RELAY_STATE + 1);
    assert!(build_authn_request(SP_ENTITY_ID, ACS_URL, &vendor_metadata("okta"), &long, None, ISSUED_MS).is_err());
    let none = with_sso(None, None);
    assert!(build_authn_request(SP_ENTITY_ID, ACS_URL, &none, "", None, ISSUED_MS).is_err());
}

#[test]
fn relay_state_is_percent_encoded_like_python_quote_plus() {
    assert_eq!(enc("a b+c/~é"), "a+b%2Bc%2F~%C3%A9");
    assert_eq!(enc("rs-1._X"), "rs-1._X");
}

#[test]
fn sp_keys_are_rsa_3072_self_signed_sha256_for_ten_years() {
    let keys = sp_keys();
    let cert = X509::from_der(&keys.cert_der).unwrap();
    let key = keys.private_key().unwrap();
    assert_eq!(key.bits(), 3072);
    assert!(cert.public_key().unwrap().public_eq(&key));
    assert!(cert.verify(&key).unwrap(), "self-signed");
    assert_eq!(cert.signature_algorithm().object().nid(), openssl::nid::Nid::SHA256WITHRSAENCRYPTION);
    let cn = cert.subject_name().entries_by_nid(openssl::nid::Nid::COMMONNAME).next().unwrap();
    assert_eq!(String::from_utf8(cn.data().as_slice().to_vec()).unwrap(), "sso.latchkey.test acme");
    let from = openssl::asn1::Asn1Time::from_unix(ISSUED_MS / 1000).unwrap();
    assert_eq!(from.diff(cert.not_before()).unwrap().days, 0);
    let days = from.diff(cert.not_after()).unwrap().days;
    assert!((3650..=3653).contains(&days), "{days}");
    assert!(!format!("{keys:?}").contains(&format!("{:?}", &keys.private_key_der[..8])));
}

#[test]
fn sp_metadata_round_trips_through_a_metadata_parser() {
    use samael::metadata::EntityDescriptor;
    let keys = sp_keys();
    let entity = "https://sso.latchkey.test/saml/a&b/metadata";
    let xml = sp_metadata_xml(entity, ACS_URL, &keys.cert_der);
    assert!(crate::saml::xml::check_plain(&xml).is_ok());
    let ed: EntityDescriptor = xml.parse().unwrap();
    assert_eq!(ed.entity_id.as_deref(), Some(entity));
    let sp = &ed.sp_sso_descriptors.as_ref().unwrap()[0];
    assert_eq!(sp.authn_requests_signed, Some(true));
    assert_eq!(sp.want_assertions_signed, Some(true));
    let acs = &sp.assertion_consumer_services[0];
    assert_eq!((acs.binding.as_str(), acs.location.as_str()), (crate::saml::xml::BINDING_POST, ACS_URL));
    let kd = &sp.key_descriptors.as_ref().unwrap()[0];
    assert_eq!(kd.key_use.as_deref(), Some("signing"));
    let text = &kd.key_info.x509_data.as_ref().unwrap().certificates[0];
    assert_eq!(samael::crypto::decode_x509_cert(text).unwrap().der_data(), keys.cert_der.as_slice());
    assert_eq!(
        sp.name_id_formats,
        Some(vec![crate::saml::xml::NAMEID_EMAIL.to_string(), crate::saml::xml::NAMEID_UNSPECIFIED.to_string()])
    );
    // Our own metadata is not an IdP's.
    assert_eq!(crate::saml::metadata::parse_idp_metadata(&xml, NOW_MS).unwrap_err().code(), "no_idp");
}
