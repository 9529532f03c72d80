//! The SP-initiated login: an AuthnRequest, sent by the HTTP-Redirect binding (signed in the query
//! string, SAML bindings §3.4.4.1) or, for IdPs that publish only an HTTP-POST endpoint (OneLogin,
//! Google), by an auto-submitting form (signed with an enveloped XML signature).
//!
//! Built by hand rather than with samael's `signed_redirect` (it signs the IdP URL's own query
//! parameters too) or `post` (no HTML escaping).

use std::io::Write as _;

use anyhow::{Context, bail};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, SecondsFormat};
use openssl::{
    hash::MessageDigest,
    pkey::{PKey, Private},
    sign::Signer,
};
use samael::crypto::{CryptoProvider, XmlSec};

use super::{
    metadata::IdpMetadata,
    xml::{BINDING_POST, ENVELOPED, EXC_C14N, NAMEID_UNSPECIFIED, RSA_SHA256, SHA256},
};

/// SAML bindings §3.4.3 / §3.5.3: RelayState must not exceed 80 bytes.
pub const MAX_RELAY_STATE: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthnRequestOut {
    /// Answer `302 Location: url`. The IdP SSO URL (its own query parameters kept) plus
    /// SAMLRequest, RelayState and, when signed, SigAlg and Signature.
    Redirect { url: String },
    /// Answer with an auto-submitting form that posts SAMLRequest and RelayState to `url`.
    Post { url: String, saml_request: String, relay_state: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRequest {
    /// The AuthnRequest ID: store it as the pending request of this browser, and expect it back
    /// as `ValidatedAssertion::in_response_to`.
    pub id: String,
    pub out: AuthnRequestOut,
}

/// Builds the AuthnRequest for `idp`: Redirect binding when the IdP has one, else POST. Signs
/// when `sign` is given (pass the SP key when `idp.want_authn_requests_signed`).
///
/// Keep `relay_state` to `[A-Za-z0-9._-]` (an opaque id of a server-side row): IdPs that
/// re-encode the query before checking a Redirect signature (pysaml2) disagree on other
/// characters. At most 80 bytes.
pub fn build_authn_request(
    sp_entity_id: &str,
    acs_url: &str,
    idp: &IdpMetadata,
    relay_state: &str,
    sign: Option<&PKey<Private>>,
    now_ms: i64,
) -> anyhow::Result<BuiltRequest> {
    if relay_state.len() > MAX_RELAY_STATE {
        bail!("RelayState is {} bytes; SAML allows at most {MAX_RELAY_STATE}", relay_state.len());
    }
    let id = new_request_id()?;
    let issue_instant = DateTime::from_timestamp_millis(now_ms)
        .context("now_ms is out of range")?
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    if let Some(sso) = &idp.sso_redirect_url {
        let xml = request_xml(&id, &issue_instant, sso, acs_url, sp_entity_id, None);
        let url = redirect_url(sso, &xml, relay_state, sign)?;
        return Ok(BuiltRequest { id, out: AuthnRequestOut::Redirect { url } });
    }
    let Some(sso) = &idp.sso_post_url else { bail!("the IdP metadata has no SSO endpoint") };
    let xml = match sign {
        None => request_xml(&id, &issue_instant, sso, acs_url, sp_entity_id, None),
        Some(key) => {
            let template = request_xml(&id, &issue_instant, sso, acs_url, sp_entity_id, Some(SIGNATURE_TEMPLATE));
            let key_der = key.private_key_to_der().context("SP private key")?;
            super::libxml_ready();
            XmlSec::sign_xml(template, &key_der).map_err(|e| anyhow::anyhow!("signing the AuthnRequest: {e}"))?
        }
    };
    Ok(BuiltRequest {
        id,
        out: AuthnRequestOut::Post {
            url: sso.clone(),
            saml_request: STANDARD.encode(xml.as_bytes()),
            relay_state: relay_state.to_string(),
        },
    })
}

/// "_" + 128 random bits in hex (an NCName, as an XML ID must be).
fn new_request_id() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).context("random generator")?;
    Ok(std::iter::once("_".to_string()).chain(b.iter().map(|x| format!("{x:02x}"))).collect())
}

/// Filled in by xmlsec: RSA-SHA256 over the exclusive-c14n request, SHA-256 digest. No KeyInfo:
/// IdPs verify with the certificate from our SP metadata.
const SIGNATURE_TEMPLATE: &str = concat!(
    r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo>"#,
    r#"<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>"#,
    r#"<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>"#,
    r##"<ds:Reference URI="#@ID@"><ds:Transforms>"##,
    r#"<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>"#,
    r#"<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></ds:Transforms>"#,
    r#"<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><ds:DigestValue/>"#,
    r#"</ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>"#
);

fn request_xml(
    id: &str,
    issue_instant: &str,
    destination: &str,
    acs_url: &str,
    sp_entity_id: &str,
    signature: Option<&str>,
) -> String {
    debug_assert!(SIGNATURE_TEMPLATE.contains(EXC_C14N) && SIGNATURE_TEMPLATE.contains(ENVELOPED));
    debug_assert!(SIGNATURE_TEMPLATE.contains(RSA_SHA256) && SIGNATURE_TEMPLATE.contains(SHA256));
    format!(
        concat!(
            r#"<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" "#,
            r#"xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{id}" Version="2.0" "#,
            r#"IssueInstant="{ii}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" "#,
            r#"ProtocolBinding="{binding}"><saml:Issuer>{issuer}</saml:Issuer>{sig}"#,
            r#"<samlp:NameIDPolicy Format="{format}" AllowCreate="true"/></samlp:AuthnRequest>"#
        ),
        id = id,
        ii = issue_instant,
        dest = quick_xml::escape::escape(destination),
        acs = quick_xml::escape::escape(acs_url),
        binding = BINDING_POST,
        issuer = quick_xml::escape::escape(sp_entity_id),
        sig = signature.map(|s| s.replace("@ID@", id)).unwrap_or_default(),
        format = NAMEID_UNSPECIFIED,
    )
}

/// Percent-encoding of a query value: unreserved characters (RFC 3986) as is, space as `+`,
/// everything else `%XX`. This is what Python's `quote_plus` produces, so IdPs that rebuild the
/// signed string from decoded values (pysaml2) get the same bytes.
fn enc(v: &str) -> String {
    let mut out = String::with_capacity(v.len() * 3 / 2);
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// HTTP-Redirect binding: raw DEFLATE, base64, and the signature over exactly
/// `SAMLRequest=..&RelayState=..&SigAlg=..` as sent (the IdP URL's own parameters are kept in
/// front and not signed).
fn redirect_url(sso: &str, xml: &str, relay_state: &str, sign: Option<&PKey<Private>>) -> anyhow::Result<String> {
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(xml.as_bytes())?;
    let mut query = format!("SAMLRequest={}", enc(&STANDARD.encode(z.finish()?)));
    if !relay_state.is_empty() {
        query.push_str("&RelayState=");
        query.push_str(&enc(relay_state));
    }
    if let Some(key) = sign {
        query.push_str("&SigAlg=");
        query.push_str(&enc(RSA_SHA256));
        let mut signer = Signer::new(MessageDigest::sha256(), key)?;
        signer.update(query.as_bytes())?;
        query.push_str("&Signature=");
        query.push_str(&enc(&STANDARD.encode(signer.sign_to_vec()?)));
    }
    let base = sso.split('#').next().unwrap_or(sso);
    let sep = match base.split_once('?') {
        Some((_, existing)) if !existing.is_empty() && !existing.ends_with('&') => "&",
        Some(_) => "",
        None => "?",
    };
    Ok(format!("{base}{sep}{query}"))
}

#[cfg(test)]
mod tests;
