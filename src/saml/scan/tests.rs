//! The pre-scan rule by rule, on hand-made documents (the scan verifies nothing, so they need no
//! signature): one edit of a well-formed, signature-shaped Response per refusal.

use super::*;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// A Response whose assertion carries a Signature using every element a Signature may hold.
fn doc() -> String {
    format!(
        concat!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" "#,
            r#"xmlns:ds="http://www.w3.org/2000/09/xmldsig#" ID="_r" Destination="https://sp.example/acs" InResponseTo="_req">"#,
            r#"<saml:Issuer>https://idp.example/</saml:Issuer>"#,
            r#"<samlp:Status><samlp:StatusCode Value="{success}"/></samlp:Status>"#,
            r#"<saml:Assertion ID="_a"><saml:Issuer>https://idp.example/</saml:Issuer>"#,
            r#"<ds:Signature><ds:SignedInfo>"#,
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:CanonicalizationMethod>"#,
            r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>"#,
            r##"<ds:Reference URI="#_a"><ds:Transforms>"##,
            r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
            r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"><ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/></ds:Transform>"#,
            r#"</ds:Transforms><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>ZA==</ds:DigestValue></ds:Reference>"#,
            r#"</ds:SignedInfo><ds:SignatureValue>c2ln</ds:SignatureValue>"#,
            r#"<ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIB&#10; AA&#61;=</ds:X509Certificate>"#,
            r#"<ds:X509IssuerSerial><ds:X509IssuerName>CN=x</ds:X509IssuerName><ds:X509SerialNumber>1</ds:X509SerialNumber></ds:X509IssuerSerial>"#,
            r#"<ds:X509SubjectName>CN=x</ds:X509SubjectName><ds:X509SKI>c2tp</ds:X509SKI></ds:X509Data>"#,
            r#"<ds:KeyName>k</ds:KeyName><ds:KeyValue><ds:RSAKeyValue><ds:Modulus>bQ==</ds:Modulus><ds:Exponent>AQAB</ds:Exponent></ds:RSAKeyValue></ds:KeyValue>"#,
            r#"</ds:KeyInfo></ds:Signature>"#,
            r#"<saml:Conditions><saml:AudienceRestriction><saml:Audience>https://sp.example/</saml:Audience></saml:AudienceRestriction><saml:OneTimeUse/><saml:ProxyRestriction/></saml:Conditions>"#,
            r#"</saml:Assertion></samlp:Response>"#
        ),
        success = SUCCESS
    )
}

fn code(xml: &str) -> &'static str {
    match scan(xml, false) {
        Ok(_) => "accepted",
        Err(e) => e.code(),
    }
}

/// `doc()` with `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    let d = doc();
    assert!(d.contains(from), "the document has no {from}");
    d.replacen(from, to, 1)
}

#[test]
fn a_well_formed_signature_shape_passes_and_is_read() {
    let s = scan(&doc(), false).unwrap();
    assert!(s.assertion_signed && !s.response_signed);
    assert_eq!(s.assertion_id.as_deref(), Some("_a"));
    assert_eq!(s.destination.as_deref(), Some("https://sp.example/acs"));
    assert_eq!(s.in_response_to.as_deref(), Some("_req"));
    assert_eq!(s.issuer.as_deref(), Some("https://idp.example/"));
    assert_eq!(s.status.as_deref(), Some(SUCCESS));
    // Character references decoded, whitespace removed.
    assert_eq!(s.key_info_certs, ["MIIBAA=="]);
    // The Response may be signed instead, by a Signature naming it.
    let signed_response = edit(
        "<samlp:Status>",
        r##"<ds:Signature><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha512"/><ds:Reference URI="#_r"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#sha384"/><ds:DigestValue>ZA==</ds:DigestValue></ds:Reference></ds:SignedInfo><ds:SignatureValue>c2ln</ds:SignatureValue></ds:Signature><samlp:Status>"##,
    );
    let s = scan(&signed_response, false).unwrap();
    assert!(s.response_signed && s.assertion_signed);
}

#[test]
fn a_signature_has_exactly_one_of_each_part() {
    let twice = |element: &str| {
        let d = doc();
        let start = d.find(&format!("<{element}")).unwrap();
        let end = d[start..].find("/>").map(|i| start + i + 2).unwrap();
        let one = d[start..end].to_string();
        d.replacen(&one, &format!("{one}{one}"), 1)
    };
    let without = |element: &str| {
        let d = doc();
        let start = d.find(&format!("<{element}")).unwrap();
        let close = format!("</{element}>");
        let end = match d[start..].find(&close) {
            Some(i) if !d[start..start + i].contains("/>") || element == "ds:CanonicalizationMethod" => {
                start + i + close.len()
            }
            _ => start + d[start..].find("/>").unwrap() + 2,
        };
        format!("{}{}", &d[..start], &d[end..])
    };
    assert_eq!(code(&twice("ds:SignatureMethod")), "signature_wrapping");
    assert_eq!(code(&without("ds:SignatureMethod")), "signature_wrapping");
    assert_eq!(code(&without("ds:CanonicalizationMethod")), "signature_wrapping");
    assert_eq!(
        code(&edit(
            "<ds:SignatureMethod",
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod"#
        )),
        "signature_wrapping"
    );
    let reference = {
        let d = doc();
        let start = d.find("<ds:Reference").unwrap();
        let end = d.find("</ds:Reference>").unwrap() + "</ds:Reference>".len();
        d[start..end].to_string()
    };
    let bare = r##"<ds:Reference URI="#_a"><ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue>ZA==</ds:DigestValue></ds:Reference>"##;
    assert_eq!(code(&edit(&reference, &format!("{reference}{bare}"))), "signature_wrapping");
    assert_eq!(code(&edit(&reference, "")), "signature_wrapping");
    let signed_info = {
        let d = doc();
        let start = d.find("<ds:SignedInfo>").unwrap();
        let end = d.find("</ds:SignedInfo>").unwrap() + "</ds:SignedInfo>".len();
        d[start..end].to_string()
    };
    assert_eq!(code(&edit(&signed_info, "")), "signature_wrapping");
    assert_eq!(code(&edit(&signed_info, &format!("{signed_info}<ds:SignedInfo/>"))), "signature_wrapping");
}

#[test]
fn a_signature_must_sign_its_own_parent_by_id() {
    assert_eq!(code(&edit(r##"URI="#_a""##, r##"URI="#_r""##)), "signature_wrapping");
    assert_eq!(code(&edit(r##"URI="#_a""##, r#"URI="""#)), "signature_wrapping");
    assert_eq!(code(&edit(r##" URI="#_a""##, "")), "signature_wrapping");
    assert_eq!(code(&edit(r#"<saml:Assertion ID="_a">"#, "<saml:Assertion>")), "signature_wrapping");
    // Only the Response and its Assertion may carry one, once.
    let sig = {
        let d = doc();
        let start = d.find("<ds:Signature>").unwrap();
        let end = d.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        d[start..end].to_string()
    };
    assert_eq!(code(&edit(&sig, &format!("{sig}{sig}"))), "signature_wrapping");
    let in_status =
        edit(&sig, "").replacen("</samlp:Status>", &format!("{}</samlp:Status>", sig.replace("#_a", "#_s")), 1);
    let in_status = in_status.replacen("<samlp:Status>", r#"<samlp:Status ID="_s">"#, 1);
    assert_eq!(code(&in_status), "signature_wrapping");
    // Without any signature: refused as unsigned.
    assert_eq!(code(&edit(&sig, "")), "missing_signature");
}

#[test]
fn a_signature_holds_only_the_known_elements_under_their_own_parents() {
    for (from, to) in [
        ("<ds:KeyName>k</ds:KeyName>", "<ds:Object>x</ds:Object>"),
        ("<ds:KeyName>k</ds:KeyName>", "<ds:X509Certificate>AA==</ds:X509Certificate>"),
        ("<ds:KeyName>k</ds:KeyName>", "<ds:RetrievalMethod/>"),
        ("<ds:KeyName>k</ds:KeyName>", "<saml:Assertion ID=\"_evil\"/>"),
        ("<ds:SignatureValue>", "<ds:Object/><ds:SignatureValue>"),
        ("<ds:DigestValue>", "<ds:Transform/><ds:DigestValue>"),
        ("<ds:Modulus>", "<ds:X509Data/><ds:Modulus>"),
        ("<ds:X509SerialNumber>", "<ds:X509SKI>c2tp</ds:X509SKI><ds:X509SerialNumber>"),
        // InclusiveNamespaces belongs under a transform or the canonicalization method only.
        (
            "<ds:SignatureMethod",
            r#"<ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod"#,
        ),
    ] {
        assert_eq!(code(&edit(from, to)), "signature_wrapping", "{to} in place of {from}");
    }
}

#[test]
fn only_the_expected_algorithms_and_at_most_two_transforms() {
    let (rsa_sha256, sha256) =
        ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256");
    let sha1 = edit(rsa_sha256, RSA_SHA1).replacen(sha256, SHA1, 1);
    assert_eq!(code(&sha1), "unsupported_algorithm");
    assert!(scan(&sha1, true).is_ok(), "SHA-1 where the entity allows it");
    assert_eq!(code(&edit(rsa_sha256, RSA_SHA1)), "unsupported_algorithm");
    assert!(scan(&edit(rsa_sha256, RSA_SHA1), true).is_ok());
    assert_eq!(code(&edit(sha256, SHA1)), "unsupported_algorithm");
    assert!(scan(&edit(sha256, SHA1), true).is_ok());
    assert_eq!(code(&edit("xmldsig-more#rsa-sha256", "xmldsig-more#ecdsa-md5")), "unsupported_algorithm");
    assert_eq!(code(&edit("xmlenc#sha256", "xmldsig-more#md5")), "unsupported_algorithm");
    for alg in ["xmldsig-more#rsa-sha384", "xmldsig-more#rsa-sha512"] {
        assert_eq!(code(&edit("xmldsig-more#rsa-sha256", alg)), "accepted", "{alg}");
    }
    for alg in ["xmldsig-more#sha384", "xmlenc#sha512"] {
        assert_eq!(code(&edit("xmlenc#sha256", alg)), "accepted", "{alg}");
    }
    let c14n_inclusive = r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315">"#;
    assert_eq!(
        code(&edit(
            r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#">"#,
            c14n_inclusive
        )),
        "unsupported_algorithm"
    );
    let enveloped = r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#;
    assert_eq!(code(&edit(enveloped, &format!("{enveloped}{enveloped}"))), "unsupported_algorithm");
    let xslt = r#"<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"/>"#;
    assert_eq!(code(&edit(enveloped, xslt)), "unsupported_algorithm");
}

#[test]
fn captured_text_decodes_references_and_refuses_comments() {
    let issuer = "<saml:Issuer>https://idp.example/</saml:Issuer>";
    let s =
        scan(&edit(issuer, "<saml:Issuer>a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;</saml:Issuer>"), false).unwrap();
    assert_eq!(s.issuer.as_deref(), Some("a&b<c>d\"e'fAB"));
    let s = scan(&edit(issuer, "<saml:Issuer><![CDATA[x<y]]></saml:Issuer>"), false).unwrap();
    assert_eq!(s.issuer.as_deref(), Some("x<y"));
    assert_eq!(code(&edit(issuer, "<saml:Issuer>https://idp<!---->.example/</saml:Issuer>")), "comment_in_value");
    assert_eq!(code(&edit(issuer, "<saml:Issuer>&bogus;</saml:Issuer>")), "malformed");
    // A refusal from the IdP is read through the same decoding.
    let refused = edit(
        &format!(r#"<samlp:StatusCode Value="{SUCCESS}"/>"#),
        r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"/></samlp:StatusCode><samlp:StatusMessage>no &quot;alice&quot; &amp; co</samlp:StatusMessage>"#,
    );
    match scan(&refused, false) {
        Err(AcsError::StatusNotSuccess { status, sub_status, message }) => {
            assert!(status.ends_with(":Responder"));
            assert!(sub_status.is_some_and(|s| s.ends_with(":AuthnFailed")));
            assert_eq!(message.as_deref(), Some("no \"alice\" & co"));
        }
        other => panic!("{other:?}"),
    }
}
