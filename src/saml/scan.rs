//! The strict pre-scan of a SAML Response, run on the raw (untrusted) document before libxml2 or
//! xmlsec see it. samael parses in recover mode and lets xmlsec run any transform (XSLT
//! included) before a signature value is checked, so everything that must never reach them is
//! refused here: DTDs and entities, unknown transforms and algorithms, and every shape of
//! signature wrapping (a Signature that does not sign its own parent by ID, a second assertion,
//! duplicate IDs, ds:Object).
//!
//! What the scan reads from the unsigned Response wrapper (Destination, Issuer, Status) is used
//! only to refuse, never to accept.

use std::collections::HashSet;

use quick_xml::{
    NsReader, XmlVersion,
    events::{BytesStart, Event},
    name::ResolveResult,
};

use super::{acs::AcsError, xml::*};

const KNOWN_NS: [&[u8]; 4] = [NS_PROTOCOL, NS_ASSERTION, NS_DSIG, NS_EXC_C14N];

/// What the scan learnt about the document.
#[derive(Debug, Default)]
pub struct Scan {
    pub response_signed: bool,
    pub assertion_signed: bool,
    pub assertion_id: Option<String>,
    /// Unsigned wrapper values, for refusals only.
    pub destination: Option<String>,
    pub in_response_to: Option<String>,
    pub issuer: Option<String>,
    pub status: Option<String>,
    pub sub_status: Option<String>,
    pub status_message: Option<String>,
    /// Certificates found in the signatures' KeyInfo (base64 text, whitespace removed). Never
    /// trusted: only used to try the matching metadata certificate first.
    pub key_info_certs: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Root,
    RootIssuer,
    Status,
    StatusCode,
    SubStatusCode,
    StatusMessage,
    Assertion,
    Conditions,
    Signature,
    InSignature,
    X509Certificate,
    Other,
}

struct Frame {
    kind: Kind,
    /// Local name (for the element rules inside a Signature).
    local: Vec<u8>,
    id: Option<String>,
    has_text: bool,
    has_comment: bool,
    signatures: u8,
}

/// Per-signature counters, reset at each ds:Signature.
#[derive(Default)]
struct SigState {
    parent_id: String,
    signed_info: u8,
    references: u8,
    transforms: u8,
    c14n: u8,
    sig_method: u8,
}

pub fn scan(xml: &str, allow_sha1: bool) -> Result<Scan, AcsError> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().check_end_names = true;
    r.config_mut().check_comments = true;
    let mut out = Scan::default();
    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut ids: HashSet<String> = HashSet::new();
    let (mut roots, mut assertions, mut signatures) = (0usize, 0usize, 0usize);
    let mut sig = SigState::default();
    let mut text = String::new();

    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| malformed(format!("not well-formed XML: {e}")))?;
        if matches!(ns, ResolveResult::Unknown(_)) {
            return Err(malformed("an element uses an undeclared namespace prefix"));
        }
        // Classified before the reader is borrowed again for the attributes.
        let ns: Option<&'static [u8]> = match ns {
            ResolveResult::Bound(b) => KNOWN_NS.iter().copied().find(|k| *k == b.as_ref()),
            _ => None,
        };
        let ns_is = |n: &[u8]| ns == Some(n);
        match ev {
            Event::DocType(_) => return Err(AcsError::DtdForbidden),
            Event::PI(_) => return Err(malformed("processing instructions are not accepted")),
            Event::Decl(ref d) => check_decl(d).map_err(malformed)?,
            Event::GeneralRef(ref g) => {
                check_general_ref(g).map_err(malformed)?;
                if let Some(f) = stack.last_mut() {
                    f.has_text = true;
                }
                if capturing(&stack) {
                    match g.resolve_char_ref() {
                        Ok(Some(c)) => text.push(c),
                        _ => text.push_str(predefined(g.as_ref())),
                    }
                }
            }
            Event::Text(ref t) => {
                let blank = t.iter().all(u8::is_ascii_whitespace);
                match stack.last_mut() {
                    None if !blank => return Err(malformed("text outside the root element")),
                    Some(f) if !blank => f.has_text = true,
                    _ => {}
                }
                if capturing(&stack) {
                    text.push_str(&t.decode().map_err(|e| malformed(e.to_string()))?);
                }
            }
            Event::CData(ref t) => {
                if let Some(f) = stack.last_mut() {
                    f.has_text = true;
                }
                if capturing(&stack) {
                    text.push_str(&t.decode().map_err(|e| malformed(e.to_string()))?);
                }
            }
            Event::Comment(_) => {
                if let Some(f) = stack.last_mut() {
                    f.has_comment = true;
                }
            }
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if stack.is_empty() {
                    roots += 1;
                    if roots > 1 {
                        return Err(malformed("more than one root element"));
                    }
                    if !(ns_is(NS_PROTOCOL) && e.local_name().as_ref() == b"Response") {
                        return Err(malformed("the document is not a SAML 2.0 Response"));
                    }
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("elements are nested too deeply"));
                }
                let attrs = Attrs::read(&r, e)?;
                if let Some(id) = &attrs.id
                    && !ids.insert(id.clone())
                {
                    return Err(wrapping(format!("the ID {} appears twice", clip(id))));
                }
                let local = e.local_name().as_ref().to_vec();
                let parent = stack.last().map(|f| f.kind);
                let in_sig = matches!(parent, Some(Kind::Signature | Kind::InSignature | Kind::X509Certificate));
                let kind = if in_sig {
                    check_signature_child(
                        ns_is(NS_DSIG),
                        ns_is(NS_EXC_C14N),
                        &stack,
                        &local,
                        &attrs,
                        &mut sig,
                        allow_sha1,
                    )?
                } else if ns_is(NS_DSIG) && local == b"Signature" {
                    signatures += 1;
                    let Some(p) = stack.last_mut() else { return Err(malformed("a Signature cannot be the root")) };
                    p.signatures += 1;
                    if p.signatures > 1 {
                        return Err(wrapping("an element carries two Signatures"));
                    }
                    match p.kind {
                        Kind::Root => out.response_signed = true,
                        Kind::Assertion => out.assertion_signed = true,
                        _ => return Err(wrapping("a Signature signs neither the Response nor the Assertion")),
                    }
                    let Some(parent_id) = p.id.clone() else {
                        return Err(wrapping("a Signature's parent element has no ID"));
                    };
                    sig = SigState { parent_id, ..SigState::default() };
                    Kind::Signature
                } else if local == b"EncryptedAssertion" {
                    return Err(AcsError::EncryptedAssertion);
                } else if local == b"Assertion" {
                    // Any namespace: a look-alike is as suspicious as the real thing.
                    assertions += 1;
                    if assertions > 1 {
                        return Err(wrapping("the Response holds more than one Assertion"));
                    }
                    if parent != Some(Kind::Root) || !ns_is(NS_ASSERTION) {
                        return Err(wrapping("the Assertion is not a direct child of the Response"));
                    }
                    out.assertion_id = attrs.id.clone();
                    Kind::Assertion
                } else {
                    match (parent, ns_is(NS_ASSERTION), ns_is(NS_PROTOCOL), local.as_slice()) {
                        (None, ..) => {
                            out.destination = attrs.destination.clone();
                            out.in_response_to = attrs.in_response_to.clone();
                            Kind::Root
                        }
                        (Some(Kind::Root), true, _, b"Issuer") => Kind::RootIssuer,
                        (Some(Kind::Root), _, true, b"Status") => Kind::Status,
                        (Some(Kind::Status), _, true, b"StatusCode") => {
                            out.status = attrs.value.clone();
                            Kind::StatusCode
                        }
                        (Some(Kind::StatusCode), _, true, b"StatusCode") => {
                            out.sub_status = attrs.value.clone();
                            Kind::SubStatusCode
                        }
                        (Some(Kind::Status), _, true, b"StatusMessage") => Kind::StatusMessage,
                        (Some(Kind::Assertion), true, _, b"Conditions") => Kind::Conditions,
                        (Some(Kind::Conditions), ..) => {
                            if !matches!(local.as_slice(), b"AudienceRestriction" | b"OneTimeUse" | b"ProxyRestriction")
                            {
                                return Err(AcsError::UnsupportedCondition(String::from_utf8_lossy(&local).into()));
                            }
                            Kind::Other
                        }
                        _ => Kind::Other,
                    }
                };
                if matches!(kind, Kind::RootIssuer | Kind::StatusMessage | Kind::X509Certificate) {
                    text.clear();
                }
                let frame = Frame { kind, local, id: attrs.id, has_text: false, has_comment: false, signatures: 0 };
                if empty {
                    close(frame, &mut out, &sig, &text)?;
                } else {
                    stack.push(frame);
                }
            }
            Event::End(_) => {
                let Some(frame) = stack.pop() else { return Err(malformed("unbalanced end tag")) };
                close(frame, &mut out, &sig, &text)?;
            }
            Event::Eof => break,
        }
    }
    if roots == 0 {
        return Err(malformed("no root element"));
    }
    if let Some(status) = &out.status
        && status != STATUS_SUCCESS
    {
        return Err(AcsError::StatusNotSuccess {
            status: status.clone(),
            sub_status: out.sub_status.clone(),
            message: out.status_message.clone(),
        });
    }
    if assertions == 0 {
        return Err(AcsError::MissingAssertion);
    }
    if signatures == 0 {
        return Err(AcsError::MissingSignature);
    }
    Ok(out)
}

fn close(frame: Frame, out: &mut Scan, sig: &SigState, text: &str) -> Result<(), AcsError> {
    if frame.has_comment && frame.has_text {
        // `<NameID>alice@corp.example<!---->.evil.example</NameID>`: a verifier and a parser that
        // disagree on where the text ends make an SP see a different user than the IdP signed.
        return Err(AcsError::CommentInValue(String::from_utf8_lossy(&frame.local).into()));
    }
    match frame.kind {
        Kind::RootIssuer => out.issuer = Some(text.trim().to_string()),
        Kind::StatusMessage => out.status_message = Some(text.trim().to_string()),
        Kind::X509Certificate => {
            out.key_info_certs.push(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        }
        Kind::Signature if (sig.signed_info != 1 || sig.references != 1 || sig.c14n != 1 || sig.sig_method != 1) => {
            return Err(wrapping(
                "a Signature must have exactly one SignedInfo with one Reference, one \
                     CanonicalizationMethod and one SignatureMethod",
            ));
        }
        _ => {}
    }
    Ok(())
}

fn capturing(stack: &[Frame]) -> bool {
    matches!(stack.last().map(|f| f.kind), Some(Kind::RootIssuer | Kind::StatusMessage | Kind::X509Certificate))
}

fn predefined(name: &[u8]) -> &'static str {
    match name {
        b"amp" => "&",
        b"lt" => "<",
        b"gt" => ">",
        b"quot" => "\"",
        b"apos" => "'",
        _ => "",
    }
}

/// The attributes the scan cares about, read once per element (quick-xml also refuses duplicate
/// attribute names while iterating).
#[derive(Default)]
struct Attrs {
    id: Option<String>,
    algorithm: Option<String>,
    uri: Option<String>,
    value: Option<String>,
    destination: Option<String>,
    in_response_to: Option<String>,
}

impl Attrs {
    fn read(r: &NsReader<&[u8]>, e: &BytesStart) -> Result<Self, AcsError> {
        let mut a = Attrs::default();
        for attr in e.attributes() {
            let attr = attr.map_err(|e| malformed(format!("bad attribute: {e}")))?;
            let key = attr.key.as_ref();
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                continue;
            }
            let (ans, _) = r.resolver().resolve_attribute(attr.key);
            if matches!(ans, ResolveResult::Unknown(_)) {
                return Err(malformed("an attribute uses an undeclared namespace prefix"));
            }
            if key == b"xml:id" {
                // libxml2 registers xml:id as an ID of its own: a second way to name an element.
                return Err(wrapping("xml:id attributes are not accepted"));
            }
            let slot = match key {
                b"ID" => &mut a.id,
                b"Algorithm" => &mut a.algorithm,
                b"URI" => &mut a.uri,
                b"Value" => &mut a.value,
                b"Destination" => &mut a.destination,
                b"InResponseTo" => &mut a.in_response_to,
                _ => continue,
            };
            let v = attr.normalized_value(XmlVersion::Implicit1_0).map_err(|e| malformed(e.to_string()))?;
            *slot = Some(v.into_owned());
        }
        Ok(a)
    }
}

/// The only elements a ds:Signature may hold, each under its own parent.
fn check_signature_child(
    is_ds: bool,
    is_ec: bool,
    stack: &[Frame],
    local: &[u8],
    attrs: &Attrs,
    sig: &mut SigState,
    allow_sha1: bool,
) -> Result<Kind, AcsError> {
    let parent = stack.last().map(|f| f.local.as_slice()).unwrap_or_default();
    let alg = attrs.algorithm.as_deref().unwrap_or("");
    let unsupported = |what: &str| AcsError::UnsupportedAlgorithm(format!("{what} {}", clip(alg)));
    if is_ec && local == b"InclusiveNamespaces" && matches!(parent, b"Transform" | b"CanonicalizationMethod") {
        return Ok(Kind::InSignature);
    }
    if !is_ds {
        return Err(wrapping(format!("unexpected element <{}> inside a Signature", String::from_utf8_lossy(local))));
    }
    match (parent, local) {
        (b"Signature", b"SignedInfo") => sig.signed_info += 1,
        (b"Signature", b"SignatureValue" | b"KeyInfo") => {}
        (b"SignedInfo", b"CanonicalizationMethod") => {
            sig.c14n += 1;
            if alg != EXC_C14N {
                return Err(unsupported("canonicalization"));
            }
        }
        (b"SignedInfo", b"SignatureMethod") => {
            sig.sig_method += 1;
            let ok = matches!(alg, RSA_SHA256 | RSA_SHA384 | RSA_SHA512 | ECDSA_SHA256 | ECDSA_SHA384 | ECDSA_SHA512)
                || (allow_sha1 && alg == RSA_SHA1);
            if !ok {
                return Err(unsupported("signature algorithm"));
            }
        }
        (b"SignedInfo", b"Reference") => {
            sig.references += 1;
            let want = format!("#{}", sig.parent_id);
            if attrs.uri.as_deref() != Some(want.as_str()) {
                return Err(wrapping(format!(
                    "a Signature's Reference ({}) does not name the element that carries it ({})",
                    clip(attrs.uri.as_deref().unwrap_or("none")),
                    clip(&want)
                )));
            }
        }
        (b"Reference", b"Transforms" | b"DigestValue") => {}
        (b"Reference", b"DigestMethod") => {
            let ok = matches!(alg, SHA256 | SHA384 | SHA512) || (allow_sha1 && alg == SHA1);
            if !ok {
                return Err(unsupported("digest algorithm"));
            }
        }
        (b"Transforms", b"Transform") => {
            sig.transforms += 1;
            if sig.transforms > 2 {
                return Err(unsupported("a third transform"));
            }
            if alg != ENVELOPED && alg != EXC_C14N {
                return Err(unsupported("transform"));
            }
        }
        (b"KeyInfo", b"X509Data" | b"KeyName" | b"KeyValue") => {}
        (b"X509Data", b"X509Certificate") => return Ok(Kind::X509Certificate),
        (b"X509Data", b"X509IssuerSerial" | b"X509SubjectName" | b"X509SKI") => {}
        (b"X509IssuerSerial", b"X509IssuerName" | b"X509SerialNumber") => {}
        (b"KeyValue", b"RSAKeyValue") => {}
        (b"RSAKeyValue", b"Modulus" | b"Exponent") => {}
        _ => {
            return Err(wrapping(format!(
                "unexpected element <{}> inside <{}> of a Signature",
                String::from_utf8_lossy(local),
                String::from_utf8_lossy(parent)
            )));
        }
    }
    Ok(Kind::InSignature)
}

fn malformed(s: impl Into<String>) -> AcsError {
    AcsError::Malformed(s.into())
}

fn wrapping(s: impl Into<String>) -> AcsError {
    AcsError::SignatureWrapping(s.into())
}

/// Document text quoted in an error message: bounded, one line.
pub fn clip(s: &str) -> String {
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one_line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests;
