//! The assertion consumer service's core: turns the raw `SAMLResponse` form value into a
//! validated assertion, or a refusal with a stable code.
//!
//! Order of work: size and encoding limits, the strict pre-scan (`scan`), a libxml2 strict parse,
//! then samael/xmlsec verification against the metadata certificates only (never KeyInfo), which
//! returns the exact canonical bytes that were signed, and finally every protocol check on those
//! bytes alone, with the caller's `now`. Nothing outside what the signature covers is ever
//! returned; the unsigned Response wrapper can only cause a refusal.
//!
//! Not done here (the caller owns the state): matching `in_response_to` against the pending
//! request of this browser (or allowing IdP-initiated logins when it is `None`), and the replay
//! cache of `assertion_id` until `not_on_or_after_ms`.

use std::{fmt, io::Read, str::FromStr};

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use samael::{
    crypto::{AllowedSignatureAlgorithm as Alg, CertificateDer, CryptoError, CryptoProvider, ReduceMode, XmlSec},
    schema::{Assertion, Response, SubjectConfirmation},
};

use super::{
    scan::{Scan, clip, scan},
    xml::{CM_BEARER, STATUS_SUCCESS, libxml_well_formed, strip_bom},
};

/// Largest `SAMLResponse` form value accepted (base64 text, before decoding).
pub const MAX_SAML_RESPONSE_B64: usize = 512 * 1024;
/// Largest document a DEFLATE-compressed value may inflate to.
pub const MAX_INFLATED: usize = 256 * 1024;
/// How old an IssueInstant may be (plus the clock skew).
pub const MAX_ISSUE_AGE_MS: i64 = 5 * 60 * 1000;

/// What the response must match: the entity's SSO configuration and the caller's clock.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    pub idp_entity_id: &'a str,
    /// DER certificates from the IdP metadata; the only keys ever trusted.
    pub certs_der: &'a [Vec<u8>],
    /// Accept rsa-sha1 / sha1 signatures (an explicit per-entity switch; off by default).
    pub allow_sha1: bool,
    pub clock_skew_ms: i64,
    pub now_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedElement {
    Response,
    Assertion,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAssertion {
    pub assertion_id: String,
    pub issuer: String,
    /// From the signed Response and/or the bearer SubjectConfirmationData (they must agree when
    /// both carry one). `None`: IdP-initiated. The caller must match `Some` against a pending
    /// request bound to this browser, and accept `None` only where the entity allows it.
    pub in_response_to: Option<String>,
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    /// Attribute name -> values, in document order (values trimmed; an empty element gives "").
    pub attributes: Vec<(String, Vec<String>)>,
    /// Keep `assertion_id` in the replay cache until this instant (unix ms): after it, this
    /// function refuses the assertion anyway (it already includes the clock skew).
    pub not_on_or_after_ms: i64,
    pub session_index: Option<String>,
    pub signed_element: SignedElement,
}

/// Why a response was refused. `code()` is stable (logs, metrics, error pages); `Display` is
/// for people. Messages may quote values from the document (clipped to one short line):
/// HTML-escape them like any other text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcsError {
    TooLarge(String),
    Malformed(String),
    DtdForbidden,
    CommentInValue(String),
    SignatureWrapping(String),
    UnsupportedAlgorithm(String),
    UnsupportedCondition(String),
    MissingSignature,
    InvalidSignature(String),
    NoIdpCertificate,
    BadIdpCertificate(String),
    EncryptedAssertion,
    MissingAssertion,
    StatusNotSuccess { status: String, sub_status: Option<String>, message: Option<String> },
    WrongIssuer { expected: String, got: Option<String> },
    WrongDestination { expected: String, got: Option<String> },
    WrongRecipient { expected: String, got: Option<String> },
    NoBearerConfirmation(String),
    MissingAudience,
    WrongAudience { expected: String, got: Vec<String> },
    Expired(String),
    NotYetValid(String),
    InResponseToMismatch { response: String, subject: String },
    MissingAuthnStatement,
}

impl AcsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
            Self::DtdForbidden => "dtd_forbidden",
            Self::CommentInValue(_) => "comment_in_value",
            Self::SignatureWrapping(_) => "signature_wrapping",
            Self::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            Self::UnsupportedCondition(_) => "unsupported_condition",
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::NoIdpCertificate => "no_idp_certificate",
            Self::BadIdpCertificate(_) => "bad_idp_certificate",
            Self::EncryptedAssertion => "encrypted_assertion",
            Self::MissingAssertion => "missing_assertion",
            Self::StatusNotSuccess { .. } => "status_not_success",
            Self::WrongIssuer { .. } => "wrong_issuer",
            Self::WrongDestination { .. } => "wrong_destination",
            Self::WrongRecipient { .. } => "wrong_recipient",
            Self::NoBearerConfirmation(_) => "no_bearer_confirmation",
            Self::MissingAudience => "missing_audience",
            Self::WrongAudience { .. } => "wrong_audience",
            Self::Expired(_) => "expired",
            Self::NotYetValid(_) => "not_yet_valid",
            Self::InResponseToMismatch { .. } => "in_response_to_mismatch",
            Self::MissingAuthnStatement => "missing_authn_statement",
        }
    }
}

impl fmt::Display for AcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |o: &Option<String>| o.as_deref().map_or_else(|| "none".to_string(), clip);
        match self {
            Self::TooLarge(s) => write!(f, "the SAML response is too large: {s}"),
            Self::Malformed(s) => write!(f, "the SAML response is not a well-formed SAML 2.0 Response: {s}"),
            Self::DtdForbidden => write!(f, "the SAML response contains a DOCTYPE (DTD), which is never accepted"),
            Self::CommentInValue(e) => write!(
                f,
                "a comment splits the text of <{e}>; such values are refused because SPs disagree on where they end"
            ),
            Self::SignatureWrapping(s) => {
                write!(f, "the SAML response has the shape of a signature-wrapping attack: {s}")
            }
            Self::UnsupportedAlgorithm(s) => write!(
                f,
                "the SAML response uses an algorithm that is not accepted ({s}); configure the IdP \
                 to sign with RSA-SHA256 (or ECDSA-SHA256) and exclusive canonicalization"
            ),
            Self::UnsupportedCondition(c) => {
                write!(f, "the assertion carries a condition this service does not understand: {}", clip(c))
            }
            Self::MissingSignature => {
                write!(f, "the SAML response is not signed; configure the IdP to sign the assertion or the response")
            }
            Self::InvalidSignature(s) => write!(f, "the signature is not valid: {s}"),
            Self::NoIdpCertificate => {
                write!(f, "no IdP signing certificate is configured: upload the IdP metadata again")
            }
            Self::BadIdpCertificate(s) => {
                write!(
                    f,
                    "an IdP certificate in the SSO configuration is unusable ({s}): upload the IdP metadata again"
                )
            }
            Self::EncryptedAssertion => {
                write!(f, "encrypted assertions are not supported: turn encryption off at the IdP")
            }
            Self::MissingAssertion => write!(f, "the SAML response holds no assertion"),
            Self::StatusNotSuccess { status, sub_status, message } => {
                write!(f, "the IdP refused the sign-in: status {}", clip(status))?;
                if let Some(s) = sub_status {
                    write!(f, " / {}", clip(s))?;
                }
                if let Some(m) = message.as_deref().filter(|m| !m.is_empty()) {
                    write!(f, " ({})", clip(m))?;
                }
                Ok(())
            }
            Self::WrongIssuer { expected, got } => write!(
                f,
                "the response comes from issuer {}, but this entity's IdP is {expected}: check the IdP metadata",
                opt(got)
            ),
            Self::WrongDestination { expected, got } => write!(
                f,
                "the response is addressed to {}, not to this service's ACS URL {expected}: check the \
                 ACS (reply) URL configured at the IdP",
                opt(got)
            ),
            Self::WrongRecipient { expected, got } => write!(
                f,
                "the assertion's Recipient is {}, not this service's ACS URL {expected}: check the ACS \
                 (reply) URL configured at the IdP",
                opt(got)
            ),
            Self::NoBearerConfirmation(s) => write!(f, "the assertion has no usable bearer SubjectConfirmation: {s}"),
            Self::MissingAudience => write!(
                f,
                "the assertion has no AudienceRestriction; configure the IdP to send this service's entity ID as audience"
            ),
            Self::WrongAudience { expected, got } => write!(
                f,
                "the assertion is meant for audience {}, not for this service ({expected}): check the SP \
                 entity ID (identifier) configured at the IdP",
                clip(&got.join(", "))
            ),
            Self::Expired(s) => write!(f, "the SAML response has expired: {s}"),
            Self::NotYetValid(s) => {
                write!(f, "the SAML response is not valid yet: {s}; check the clocks of the IdP and of this service")
            }
            Self::InResponseToMismatch { response, subject } => {
                write!(f, "the Response answers request {} but its assertion answers {}", clip(response), clip(subject))
            }
            Self::MissingAuthnStatement => {
                write!(f, "the assertion holds no AuthnStatement: it does not sign anyone in")
            }
        }
    }
}

impl std::error::Error for AcsError {}

const STRONG_ALGORITHMS: &[Alg] =
    &[Alg::RsaSha256, Alg::RsaSha384, Alg::RsaSha512, Alg::EcdsaSha256, Alg::EcdsaSha384, Alg::EcdsaSha512];

/// Validates the raw `SAMLResponse` form value. Blocking (xmlsec, about 1 ms): run it in
/// `spawn_blocking`. See the module header for what the caller still has to check.
pub fn validate_response(saml_response: &str, expected: &Expected) -> Result<ValidatedAssertion, AcsError> {
    let xml = decode(saml_response)?;
    let scanned = scan(&xml, expected.allow_sha1)?;
    if !libxml_well_formed(&xml) {
        return Err(AcsError::Malformed("libxml2 finds the document not well-formed".into()));
    }
    let certs = trusted_certs(expected.certs_der, &scanned)?;
    // RSA and ECDSA with SHA-256 or stronger. Allowing SHA-1 lifts samael's list (it has no
    // rsa-sha1 entry); the scan above still admits only the algorithms named there.
    let algs: Option<&[Alg]> = if expected.allow_sha1 { None } else { Some(STRONG_ALGORITHMS) };
    // Every ds:Signature must verify. PreDigest returns the exact bytes that were digested (the
    // canonical form of the signed element, its own Signature removed; with two signatures, the
    // Response's): what is parsed next is literally what the IdP signed. It also skips samael's
    // mapping of that content back onto the tree, about a third of the cost of the other modes.
    let signed = XmlSec::reduce_xml_to_signed_with_allowed_algorithms(&xml, &certs, ReduceMode::PreDigest, algs)
        .map_err(signature_error)?;
    check_signed(&signed, &scanned, expected)
}

/// Base64 (whitespace tolerated) to UTF-8 XML; a raw-DEFLATE value (Redirect-binding style) is
/// inflated with a cap.
pub(crate) fn decode(saml_response: &str) -> Result<String, AcsError> {
    if saml_response.len() > MAX_SAML_RESPONSE_B64 {
        return Err(AcsError::TooLarge(format!(
            "{} bytes of base64, the limit is {MAX_SAML_RESPONSE_B64}",
            saml_response.len()
        )));
    }
    let compact: Vec<u8> = saml_response.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(&compact).map_err(|e| AcsError::Malformed(format!("SAMLResponse is not base64: {e}")))?;
    let looks_like_xml = |b: &[u8]| {
        let b = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
        b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'<')
    };
    let bytes = if looks_like_xml(&bytes) {
        bytes
    } else {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(bytes.as_slice())
            .take(MAX_INFLATED as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| AcsError::Malformed("the decoded SAMLResponse is neither XML nor DEFLATE data".into()))?;
        if out.len() > MAX_INFLATED {
            return Err(AcsError::TooLarge(format!("it inflates to more than {MAX_INFLATED} bytes")));
        }
        if !looks_like_xml(&out) {
            return Err(AcsError::Malformed("the decoded SAMLResponse is not XML".into()));
        }
        out
    };
    let xml = String::from_utf8(bytes).map_err(|_| AcsError::Malformed("the document is not UTF-8".into()))?;
    Ok(strip_bom(&xml).to_string())
}

/// The metadata certificates, the one the document's KeyInfo names tried first: same result,
/// fewer failed RSA checks and fewer xmlsec error lines during a rollover. They are not parsed
/// here (OpenSSL 3 decoding costs as much as the RSA check): `parse_idp_metadata` proved each
/// loadable, and one that xmlsec cannot load fails the verification (`bad_idp_certificate`).
fn trusted_certs(certs_der: &[Vec<u8>], scanned: &Scan) -> Result<Vec<CertificateDer>, AcsError> {
    if certs_der.is_empty() {
        return Err(AcsError::NoIdpCertificate);
    }
    let hinted: Vec<Vec<u8>> = scanned
        .key_info_certs
        .iter()
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .collect();
    let mut ordered: Vec<&Vec<u8>> = certs_der.iter().collect();
    ordered.sort_by_key(|der| !hinted.contains(der));
    Ok(ordered.into_iter().map(|der| CertificateDer::from(der.clone())).collect())
}

fn signature_error(e: CryptoError) -> AcsError {
    match e {
        CryptoError::InvalidSignature => AcsError::InvalidSignature(
            "it does not verify with the IdP certificates from the metadata (or the document was changed after signing)"
                .into(),
        ),
        other => {
            let mut detail = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                source = s.source();
            }
            // samael's key-loading error type is private: its message is all there is.
            if detail.contains("Failed to load key") {
                return AcsError::BadIdpCertificate("xmlsec cannot load one of the certificates".into());
            }
            AcsError::InvalidSignature(format!("xmlsec refused it ({detail})"))
        }
    }
}

/// Local name of the root element of the signed content.
fn root_local_name(xml: &str) -> Option<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                return Some(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

fn ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn show(t_ms: i64) -> String {
    DateTime::from_timestamp_millis(t_ms)
        .map_or_else(|| t_ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// Every protocol check, on the signed content only.
fn check_signed(signed: &str, scanned: &Scan, x: &Expected) -> Result<ValidatedAssertion, AcsError> {
    let (now, skew) = (x.now_ms, x.clock_skew_ms);
    let root = root_local_name(signed);
    let parse_err = |e: &dyn fmt::Display| AcsError::Malformed(format!("the signed content does not parse: {e}"));
    // Upper bounds on the instant this assertion stops being accepted (for the replay cache).
    let mut bounds: Vec<i64> = Vec::with_capacity(4);
    let mut response_irt: Option<String> = None;

    let assertion = match root.as_deref() {
        Some("Response") if scanned.response_signed => {
            let r = Response::from_str(signed).map_err(|e| parse_err(&e))?;
            if r.version != "2.0" {
                return Err(AcsError::Malformed(format!("Response Version {}", clip(&r.version))));
            }
            let status = r.status.as_ref().and_then(|s| s.status_code.value.clone());
            if status.as_deref() != Some(STATUS_SUCCESS) {
                return Err(AcsError::StatusNotSuccess {
                    status: status.unwrap_or_else(|| "none".into()),
                    sub_status: None,
                    message: r.status.as_ref().and_then(|s| s.status_message.as_ref()).and_then(|m| m.value.clone()),
                });
            }
            // Signed Response: Destination is covered by the signature, so it is required.
            if r.destination.as_deref() != Some(x.acs_url) {
                return Err(AcsError::WrongDestination { expected: x.acs_url.into(), got: r.destination.clone() });
            }
            if let Some(issuer) = r.issuer.as_ref()
                && issuer.value.as_deref().map(str::trim) != Some(x.idp_entity_id)
            {
                return Err(AcsError::WrongIssuer { expected: x.idp_entity_id.into(), got: issuer.value.clone() });
            }
            check_issue_instant("Response", ms(&r.issue_instant), x, &mut bounds)?;
            response_irt = r.in_response_to.clone();
            if r.encrypted_assertion.is_some() {
                return Err(AcsError::EncryptedAssertion);
            }
            r.assertion.ok_or(AcsError::MissingAssertion)?
        }
        Some("Assertion") if !scanned.response_signed && scanned.assertion_signed => {
            // Only the assertion is signed: the wrapper may still refuse, never accept.
            if let Some(d) = &scanned.destination
                && d != x.acs_url
            {
                return Err(AcsError::WrongDestination { expected: x.acs_url.into(), got: Some(d.clone()) });
            }
            if let Some(i) = &scanned.issuer
                && i != x.idp_entity_id
            {
                return Err(AcsError::WrongIssuer { expected: x.idp_entity_id.into(), got: Some(i.clone()) });
            }
            Assertion::from_str(signed).map_err(|e| parse_err(&e))?
        }
        other => {
            return Err(AcsError::SignatureWrapping(format!(
                "the signed content ({}) is not what the document's signatures announce",
                other.unwrap_or("nothing")
            )));
        }
    };

    let a = assertion;
    if a.id.is_empty() || Some(&a.id) != scanned.assertion_id.as_ref() {
        return Err(AcsError::SignatureWrapping("the signed assertion is not the document's assertion".into()));
    }
    if a.version != "2.0" {
        return Err(AcsError::Malformed(format!("Assertion Version {}", clip(&a.version))));
    }
    let issuer = a.issuer.value.as_deref().map(str::trim).unwrap_or_default().to_string();
    if issuer != x.idp_entity_id {
        return Err(AcsError::WrongIssuer { expected: x.idp_entity_id.into(), got: Some(issuer) });
    }
    check_issue_instant("Assertion", ms(&a.issue_instant), x, &mut bounds)?;

    // Conditions: the time window, and an AudienceRestriction naming us (required: samael only
    // checks it when present).
    let cond = a.conditions.as_ref().ok_or(AcsError::MissingAudience)?;
    if let Some(nb) = cond.not_before.as_ref().map(ms)
        && nb > now + skew
    {
        return Err(AcsError::NotYetValid(format!("Conditions NotBefore is {}", show(nb))));
    }
    if let Some(noa) = cond.not_on_or_after.as_ref().map(ms) {
        if noa <= now - skew {
            return Err(AcsError::Expired(format!("Conditions NotOnOrAfter was {}", show(noa))));
        }
        bounds.push(noa);
    }
    let restrictions = cond.audience_restrictions.as_deref().unwrap_or_default();
    if restrictions.is_empty() {
        return Err(AcsError::MissingAudience);
    }
    // Every restriction must name us (AND across restrictions, OR inside one).
    if let Some(bad) = restrictions.iter().find(|ar| !ar.audience.iter().any(|v| v.trim() == x.sp_entity_id)) {
        return Err(AcsError::WrongAudience { expected: x.sp_entity_id.into(), got: bad.audience.clone() });
    }

    let subject =
        a.subject.as_ref().ok_or_else(|| AcsError::NoBearerConfirmation("the assertion has no Subject".into()))?;
    let (scd_irt, scd_noa) = bearer_confirmation(subject.subject_confirmations.as_deref().unwrap_or_default(), x)?;
    bounds.push(scd_noa);

    let wrapper_irt = if scanned.response_signed { response_irt.clone() } else { scanned.in_response_to.clone() };
    if let (Some(resp), Some(subj)) = (&wrapper_irt, &scd_irt)
        && resp != subj
    {
        return Err(AcsError::InResponseToMismatch { response: resp.clone(), subject: subj.clone() });
    }
    // An unsigned wrapper's InResponseTo is never reported: it could turn an IdP-initiated
    // assertion into an answer to someone else's request.
    let in_response_to = scd_irt.or(response_irt);

    let authn = a.authn_statements.as_deref().unwrap_or_default();
    let first_authn = authn.first().ok_or(AcsError::MissingAuthnStatement)?;
    if let Some(end) = first_authn.session_not_on_or_after.as_ref().map(ms)
        && end <= now - skew
    {
        return Err(AcsError::Expired(format!("the IdP session ended at {}", show(end))));
    }

    let name_id = subject.name_id.as_ref();
    let attributes = a
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| &s.attributes)
        .filter_map(|at| {
            let name = at.name.as_deref()?.trim().to_string();
            let values = at.values.iter().map(|v| v.value.as_deref().unwrap_or_default().trim().to_string()).collect();
            Some((name, values))
        })
        .collect();

    let signed_element = match (scanned.response_signed, scanned.assertion_signed) {
        (true, true) => SignedElement::Both,
        (true, false) => SignedElement::Response,
        _ => SignedElement::Assertion,
    };
    let last_accepted = bounds.iter().copied().min().unwrap_or(scd_noa);
    Ok(ValidatedAssertion {
        assertion_id: a.id.clone(),
        issuer: x.idp_entity_id.to_string(),
        in_response_to,
        name_id: name_id.map(|n| n.value.trim().to_string()).filter(|v| !v.is_empty()),
        name_id_format: name_id.and_then(|n| n.format.as_deref()).map(|f| f.trim().to_string()),
        attributes,
        not_on_or_after_ms: last_accepted.saturating_add(skew),
        session_index: first_authn.session_index.clone(),
        signed_element,
    })
}

fn check_issue_instant(what: &str, at: i64, x: &Expected, bounds: &mut Vec<i64>) -> Result<(), AcsError> {
    if at > x.now_ms + x.clock_skew_ms {
        return Err(AcsError::NotYetValid(format!("the {what} was issued at {}, in the future", show(at))));
    }
    let limit = at.saturating_add(MAX_ISSUE_AGE_MS);
    if limit < x.now_ms - x.clock_skew_ms {
        return Err(AcsError::Expired(format!(
            "the {what} was issued at {}, more than {} minutes ago",
            show(at),
            MAX_ISSUE_AGE_MS / 60_000
        )));
    }
    bounds.push(limit.saturating_add(1));
    Ok(())
}

/// The first bearer confirmation that holds: Recipient = our ACS, NotOnOrAfter (required) in the
/// future, NotBefore (if any) reached. Returns its InResponseTo and NotOnOrAfter.
fn bearer_confirmation(all: &[SubjectConfirmation], x: &Expected) -> Result<(Option<String>, i64), AcsError> {
    let (now, skew) = (x.now_ms, x.clock_skew_ms);
    let mut first_error = None;
    let bearers = all.iter().filter(|c| c.method.as_deref().map(str::trim) == Some(CM_BEARER));
    for c in bearers {
        let result = (|| {
            let d = c
                .subject_confirmation_data
                .as_ref()
                .ok_or_else(|| AcsError::NoBearerConfirmation("SubjectConfirmationData is missing".into()))?;
            if d.recipient.as_deref().map(str::trim) != Some(x.acs_url) {
                return Err(AcsError::WrongRecipient { expected: x.acs_url.into(), got: d.recipient.clone() });
            }
            let noa =
                d.not_on_or_after.as_ref().map(ms).ok_or_else(|| {
                    AcsError::NoBearerConfirmation("SubjectConfirmationData has no NotOnOrAfter".into())
                })?;
            if noa <= now - skew {
                return Err(AcsError::Expired(format!("SubjectConfirmationData NotOnOrAfter was {}", show(noa))));
            }
            if let Some(nb) = d.not_before.as_ref().map(ms)
                && nb > now + skew
            {
                return Err(AcsError::NotYetValid(format!("SubjectConfirmationData NotBefore is {}", show(nb))));
            }
            Ok((d.in_response_to.clone(), noa))
        })();
        match result {
            Ok(ok) => return Ok(ok),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error
        .unwrap_or_else(|| AcsError::NoBearerConfirmation("the assertion has no bearer SubjectConfirmation".into())))
}

#[cfg(test)]
mod tests;
