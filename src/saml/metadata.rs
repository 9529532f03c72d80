//! Import of an IdP's SAML metadata: the one IdP it describes, its SSO endpoints and its signing
//! certificates. Every refusal says what the administrator can do about it.
//!
//! samael parses the document (after a strict scan: no DTD, size cap). Metadata signatures are
//! not verified: the administrator uploads the file over an authenticated channel, and the
//! certificates it carries become the trust anchors of every later login.

use std::{fmt, str::FromStr};

use openssl::{asn1::Asn1Time, x509::X509};
use samael::{
    crypto::{CertificateDer, CryptoProvider, XmlSec, decode_x509_cert},
    metadata::{EntityDescriptor, EntityDescriptorType, IdpSsoDescriptor},
};

use super::xml::{BINDING_POST, BINDING_REDIRECT, PlainXmlError, check_plain, strip_bom};

/// Largest metadata document accepted (AD FS metadata is about 70 KB).
pub const MAX_METADATA_BYTES: usize = 1024 * 1024;

const SAML2_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// HTTP-Redirect binding endpoint.
    pub sso_redirect_url: Option<String>,
    /// HTTP-POST binding endpoint.
    pub sso_post_url: Option<String>,
    /// Every usable signing certificate (rollover), DER, each loadable by xmlsec; expired ones dropped.
    pub signing_certs_der: Vec<Vec<u8>>,
    pub want_authn_requests_signed: bool,
    /// notAfter of each certificate (unix ms), same order as `signing_certs_der`.
    pub certs_not_after: Vec<i64>,
    /// NameIDFormat values the IdP announces (trimmed), for display.
    pub name_id_formats: Vec<String>,
}

/// Why metadata was refused; `Display` is the reason shown to the administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    TooLarge(usize),
    NotXml(String),
    Dtd,
    NotMetadata(String),
    NoIdp { entities: usize },
    SeveralIdps(Vec<String>),
    NoEntityId,
    PlaceholderEntityId(String),
    NoSsoEndpoint { bindings: Vec<String> },
    BadSsoUrl(String),
    NoSigningCertificate,
    BadCertificate { index: usize, reason: String },
    AllCertificatesExpired { latest_not_after_ms: i64 },
}

impl MetadataError {
    /// A stable machine-readable detail (the API answers 422 `invalid_metadata` with it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::NotXml(_) => "not_xml",
            Self::Dtd => "dtd_forbidden",
            Self::NotMetadata(_) => "not_metadata",
            Self::NoIdp { .. } => "no_idp",
            Self::SeveralIdps(_) => "several_idps",
            Self::NoEntityId => "no_entity_id",
            Self::PlaceholderEntityId(_) => "placeholder_entity_id",
            Self::NoSsoEndpoint { .. } => "no_sso_endpoint",
            Self::BadSsoUrl(_) => "bad_sso_url",
            Self::NoSigningCertificate => "no_signing_certificate",
            Self::BadCertificate { .. } => "bad_certificate",
            Self::AllCertificatesExpired { .. } => "certificates_expired",
        }
    }
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(n) => write!(
                f,
                "the metadata is {n} bytes, more than the {MAX_METADATA_BYTES} accepted: upload the metadata of \
                 your IdP application alone, not a federation aggregate"
            ),
            Self::NotXml(why) => write!(
                f,
                "this is not an XML document ({why}): download the IdP's SAML metadata XML file again and upload it unchanged"
            ),
            Self::Dtd => write!(f, "the metadata contains a DOCTYPE (DTD), which is never accepted: remove it"),
            Self::NotMetadata(why) => {
                write!(f, "this XML is not SAML 2.0 metadata (an EntityDescriptor) ({why})")
            }
            Self::NoIdp { entities } => write!(
                f,
                "the metadata describes no identity provider (no IDPSSODescriptor among {entities} entities): \
                 upload the IdP's metadata, not a service provider's"
            ),
            Self::SeveralIdps(ids) => write!(
                f,
                "the metadata describes {} identity providers ({}): upload the metadata of the one IdP to use",
                ids.len(),
                ids.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ),
            Self::NoEntityId => write!(f, "the IdP's EntityDescriptor has no entityID"),
            Self::PlaceholderEntityId(id) => write!(
                f,
                "the entityID {id} is a placeholder (Microsoft's multi-tenant `common` metadata): download the \
                 federation metadata of your enterprise application in your own tenant instead"
            ),
            Self::NoSsoEndpoint { bindings } => write!(
                f,
                "the IdP offers no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding (found: {}): \
                 enable SAML 2.0 web browser SSO at the IdP",
                if bindings.is_empty() { "none".to_string() } else { bindings.join(", ") }
            ),
            Self::BadSsoUrl(url) => {
                write!(f, "the SingleSignOnService location {url:?} is not an absolute http(s) URL")
            }
            Self::NoSigningCertificate => write!(
                f,
                "the metadata holds no signing certificate, so no response could be verified: export the \
                 metadata with the IdP's signing certificate"
            ),
            Self::BadCertificate { index, reason } => {
                write!(f, "signing certificate {index} cannot be used ({reason}): download the metadata again")
            }
            Self::AllCertificatesExpired { latest_not_after_ms } => write!(
                f,
                "every signing certificate in the metadata has expired (the latest on {}): renew the IdP's \
                 signing certificate and download its metadata again",
                chrono::DateTime::from_timestamp_millis(*latest_not_after_ms)
                    .map_or_else(|| latest_not_after_ms.to_string(), |t| t.format("%Y-%m-%d").to_string())
            ),
        }
    }
}

impl std::error::Error for MetadataError {}

/// Parses IdP metadata (an `EntityDescriptor`, or an `EntitiesDescriptor` that holds exactly one
/// IdP). Certificates expired at `now_ms` are dropped; if none is left the metadata is refused.
/// Calls xmlsec once per certificate (to prove it can load it): run it off the async executor.
pub fn parse_idp_metadata(xml: &str, now_ms: i64) -> Result<IdpMetadata, MetadataError> {
    if xml.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge(xml.len()));
    }
    let xml = strip_bom(xml);
    check_plain(xml).map_err(|e| match e {
        PlainXmlError::Dtd => MetadataError::Dtd,
        PlainXmlError::NotXml(why) => MetadataError::NotXml(why),
    })?;
    let doc = EntityDescriptorType::from_str(xml).map_err(|e| MetadataError::NotMetadata(short(&e.to_string())))?;
    let entities: Vec<&EntityDescriptor> = doc.iter().collect();
    let idps: Vec<&EntityDescriptor> =
        entities.iter().copied().filter(|e| e.idp_sso_descriptors.as_ref().is_some_and(|d| !d.is_empty())).collect();
    let ed = match idps.as_slice() {
        [one] => *one,
        [] => return Err(MetadataError::NoIdp { entities: entities.len() }),
        many => {
            return Err(MetadataError::SeveralIdps(
                many.iter().map(|e| e.entity_id.clone().unwrap_or_else(|| "(no entityID)".into())).collect(),
            ));
        }
    };
    let entity_id =
        ed.entity_id.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or(MetadataError::NoEntityId)?;
    if entity_id.contains("{tenantid}") {
        return Err(MetadataError::PlaceholderEntityId(entity_id.to_string()));
    }
    let descriptors = ed.idp_sso_descriptors.as_deref().unwrap_or_default();
    let idp: &IdpSsoDescriptor = descriptors
        .iter()
        .find(|d| d.protocol_support_enumeration.as_deref().is_some_and(|p| p.contains(SAML2_PROTOCOL)))
        .or(descriptors.first())
        .ok_or(MetadataError::NoIdp { entities: entities.len() })?;

    let endpoint = |binding: &str| -> Result<Option<String>, MetadataError> {
        let Some(e) = idp.single_sign_on_services.iter().find(|e| e.binding.trim() == binding) else {
            return Ok(None);
        };
        let location = e.location.trim();
        match url::Url::parse(location) {
            Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(Some(location.to_string())),
            _ => Err(MetadataError::BadSsoUrl(short(location))),
        }
    };
    let sso_redirect_url = endpoint(BINDING_REDIRECT)?;
    let sso_post_url = endpoint(BINDING_POST)?;
    if sso_redirect_url.is_none() && sso_post_url.is_none() {
        return Err(MetadataError::NoSsoEndpoint {
            bindings: idp.single_sign_on_services.iter().map(|e| short(e.binding.trim())).collect(),
        });
    }

    let (signing_certs_der, certs_not_after) = signing_certs(idp, now_ms)?;
    Ok(IdpMetadata {
        entity_id: entity_id.to_string(),
        sso_redirect_url,
        sso_post_url,
        signing_certs_der,
        want_authn_requests_signed: idp.want_authn_requests_signed.unwrap_or(false),
        certs_not_after,
        name_id_formats: idp.name_id_formats.iter().map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect(),
    })
}

/// KeyDescriptors with `use="signing"`; when there are none, those without `use` (Shibboleth
/// and eduGAIN style). `use="encryption"` never.
fn signing_certs(idp: &IdpSsoDescriptor, now_ms: i64) -> Result<(Vec<Vec<u8>>, Vec<i64>), MetadataError> {
    let texts = |pred: &dyn Fn(Option<&str>) -> bool| -> Vec<String> {
        idp.key_descriptors
            .iter()
            .filter(|k| pred(k.key_use.as_deref().map(str::trim)))
            .flat_map(|k| k.key_info.x509_data.iter().flat_map(|d| d.certificates.iter().cloned()))
            .collect()
    };
    let mut found = texts(&|u| u == Some("signing"));
    if found.is_empty() {
        found = texts(&|u| u.is_none());
    }
    if found.is_empty() {
        return Err(MetadataError::NoSigningCertificate);
    }
    let mut usable: Vec<(Vec<u8>, i64)> = Vec::new();
    for (i, text) in found.iter().enumerate() {
        let index = i + 1;
        let bad = |reason: &str| MetadataError::BadCertificate { index, reason: reason.to_string() };
        let der = decode_x509_cert(text).map_err(|_| bad("its base64 text does not decode"))?.der_data().to_vec();
        let cert = X509::from_der(&der).map_err(|_| bad("it is not an X.509 certificate"))?;
        let key = cert.public_key().map_err(|_| bad("its public key is not readable"))?;
        if !matches!(key.id(), openssl::pkey::Id::RSA | openssl::pkey::Id::EC) {
            return Err(bad("its key is neither RSA nor EC"));
        }
        if !xmlsec_can_load(&der) {
            return Err(bad("xmlsec cannot load it"));
        }
        let not_after = asn1_to_unix_ms(cert.not_after()).ok_or_else(|| bad("its expiry date is unreadable"))?;
        if !usable.iter().any(|(d, _)| *d == der) {
            usable.push((der, not_after));
        }
    }
    let latest = usable.iter().map(|(_, t)| *t).max().unwrap_or(i64::MIN);
    usable.retain(|(_, not_after)| *not_after > now_ms);
    if usable.is_empty() {
        return Err(MetadataError::AllCertificatesExpired { latest_not_after_ms: latest });
    }
    Ok(usable.into_iter().unzip())
}

/// samael gives no direct way to load a key, so verify a signature-less document with the
/// certificate alone: a certificate xmlsec cannot load fails at the key stage, any other comes
/// back with "no signature found".
pub(crate) fn xmlsec_can_load(der: &[u8]) -> bool {
    super::libxml_ready();
    load_probe(der)
}

/// [`xmlsec_can_load`] without the start-up guard (the guard itself uses it).
pub(super) fn load_probe(der: &[u8]) -> bool {
    match XmlSec::verify_signed_xml("<a/>", &CertificateDer::from(der.to_vec()), None) {
        Ok(()) => true,
        Err(e) => !chain(&e).contains("Failed to load key"),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn asn1_to_unix_ms(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(t).ok()?;
    Some((i64::from(d.days) * 86_400 + i64::from(d.secs)) * 1000)
}

fn short(s: &str) -> String {
    super::scan::clip(s)
}

#[cfg(test)]
mod tests;
