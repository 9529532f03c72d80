//! The entity's own service-provider identity: an RSA key pair with a self-signed certificate
//! (it signs AuthnRequests), and the SP metadata document the IdP administrator imports.

use std::fmt;

use anyhow::Context;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use openssl::{
    asn1::{Asn1Integer, Asn1Time},
    bn::BigNum,
    hash::MessageDigest,
    pkey::PKey,
    rsa::Rsa,
    x509::{X509Builder, X509NameBuilder, extension::KeyUsage},
};

use super::xml::{BINDING_POST, NAMEID_EMAIL, NAMEID_UNSPECIFIED};

/// Validity of a generated SP certificate.
pub const SP_CERT_DAYS: i64 = 3652;

/// The SP key pair. Debug never shows the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SpKeys {
    /// PKCS#8 DER. Store it encrypted with the master key.
    pub private_key_der: Vec<u8>,
    /// X.509 DER, self-signed.
    pub cert_der: Vec<u8>,
}

impl fmt::Debug for SpKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpKeys")
            .field("private_key_der", &"<redacted>")
            .field("cert_der_len", &self.cert_der.len())
            .finish()
    }
}

impl SpKeys {
    /// The private key, ready for `authn::build_authn_request`.
    pub fn private_key(&self) -> anyhow::Result<PKey<openssl::pkey::Private>> {
        PKey::private_key_from_pkcs8(&self.private_key_der).context("SP private key is not PKCS#8 DER")
    }
}

/// RSA 3072 and a self-signed SHA-256 certificate valid from `now_ms` for about ten years.
/// CPU-heavy (RSA key generation, up to a second): run it off the async executor.
pub fn generate_sp_keys(common_name: &str, now_ms: i64) -> anyhow::Result<SpKeys> {
    let rsa = Rsa::generate(3072).context("RSA key generation")?;
    let key = PKey::from_rsa(rsa)?;
    let mut name = X509NameBuilder::new()?;
    // X.509 limits a CN to 64 characters.
    let cn: String = common_name.chars().take(64).collect();
    name.append_entry_by_text("CN", if cn.is_empty() { "latchkey SAML SP" } else { &cn })?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    let not_before = now_ms.div_euclid(1000);
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = Asn1Integer::from_bn(&serial)?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::from_unix(not_before)?, Asn1Time::from_unix(not_before + SP_CERT_DAYS * 86_400)?);
    b.set_not_before(&from)?;
    b.set_not_after(&until)?;
    b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    b.sign(&key, MessageDigest::sha256())?;
    Ok(SpKeys { private_key_der: key.private_key_to_pkcs8()?, cert_der: b.build().to_der()? })
}

/// SP metadata: AuthnRequestsSigned and WantAssertionsSigned, one ACS (HTTP-POST), the signing
/// certificate, NameID formats emailAddress and unspecified. No encryption key is published, so
/// IdPs that honour metadata do not encrypt assertions (which this SP refuses).
///
/// Written as a fixed document rather than with samael's `ServiceProvider::metadata`: that one
/// always sets `validUntil` (48 hours from now unless told otherwise), and this document is
/// imported once, by hand, into IdP consoles that may honour it and stop trusting the SP two days
/// later; it also needs a whole `ServiceProvider` (with the IdP's metadata), which we do not use
/// for validation. The only variable parts are escaped (quick-xml) or base64; the SSO tests feed
/// it to a pysaml2 IdP, which signs users in with it.
pub fn sp_metadata_xml(entity_id: &str, acs_url: &str, cert_der: &[u8]) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="true" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing">
      <ds:KeyInfo>
        <ds:X509Data>
          <ds:X509Certificate>{cert}</ds:X509Certificate>
        </ds:X509Data>
      </ds:KeyInfo>
    </md:KeyDescriptor>
    <md:NameIDFormat>{email}</md:NameIDFormat>
    <md:NameIDFormat>{unspecified}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{post}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = quick_xml::escape::escape(entity_id),
        acs = quick_xml::escape::escape(acs_url),
        cert = STANDARD.encode(cert_der),
        email = NAMEID_EMAIL,
        unspecified = NAMEID_UNSPECIFIED,
        post = BINDING_POST,
    )
}
