//!
//! Wrapper for XmlSec Key and Certificate management Context
//!
use crate::crypto::xmlsec::wrapper::bindings;

use super::backend;
use super::error::XmlSecError;
use super::error::XmlSecResult;
use super::xmlsec_internal;

use std::ptr::null;
use std::ptr::null_mut;

/// x509 key format.
#[allow(dead_code)]
#[allow(missing_docs)]
#[repr(u32)]
pub enum XmlSecKeyFormat {
    Unknown = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatUnknown,
    Binary = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatBinary,
    Pem = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPem,
    Der = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatDer,
    Pkcs8Pem = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPkcs8Pem,
    Pkcs8Der = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPkcs8Der,
    Pkcs12 = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatPkcs12,
    CertPem = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatCertPem,
    CertDer = bindings::xmlSecKeyDataFormat_xmlSecKeyDataFormatCertDer,
}

/// Key with which we sign/verify signatures or encrypt data. Used by [`XmlSecSignatureContext`][sigctx].
///
/// [sigctx]: struct.XmlSecSignatureContext.html
#[derive(Debug)]
pub struct XmlSecKey(*mut bindings::xmlSecKey);

impl XmlSecKey {
    /// Load key from buffer in memory, specifying format and optionally the password required to decrypt/unlock.
    pub fn from_memory(buffer: &[u8], format: XmlSecKeyFormat) -> XmlSecResult<Self> {
        xmlsec_internal::guarantee_xmlsec_init()?;

        // Load key from buffer
        let key = unsafe {
            backend::xmlSecCryptoAppKeyLoadMemory(
                buffer.as_ptr(),
                buffer.len().try_into().expect("Key buffer length overflow"),
                format as u32,
                null(),
                null_mut(),
                null_mut(),
            )
        };

        if key.is_null() {
            return Err(XmlSecError::KeyLoadError);
        }

        Ok(Self(key))
    }

    /// Create from raw pointer to an underlying wrapper key structure. Henceforth its lifetime will be managed by this
    /// object.
    pub unsafe fn from_ptr(ptr: *mut bindings::xmlSecKey) -> Self {
        Self(ptr)
    }

    /// Leak the internal resource. This is needed by [`XmlSecSignatureContext`][sigctx], since wrapper takes over the
    /// lifetime management of the underlying resource when setting it as the active key for signature signing or
    /// verification.
    ///
    /// [sigctx]: struct.XmlSecSignatureContext.html
    pub unsafe fn leak(key: Self) -> *mut bindings::xmlSecKey {
        let ptr = key.0;

        std::mem::forget(key);

        ptr
    }
}

/// Public keys of the certificates signatures were verified with, by the certificate's DER.
///
/// Loading a key from a certificate through xmlsec (`xmlSecCryptoAppKeyLoadMemory`) goes through
/// OpenSSL 3's decoder look-up, which costs more than the signature check itself; a service
/// verifies many documents signed with the same few certificates. What is kept is only OpenSSL's
/// `EVP_PKEY`, which is reference-counted and safe to use from several threads at once: every
/// verification wraps one more reference to it in an `xmlSecKey` of its own, created and destroyed
/// on the calling thread exactly like the key `from_memory` gives. Nothing of libxml2 or xmlsec is
/// kept between calls or dropped by another thread. Process-wide, bounded (the oldest entry
/// leaves first; dropping it only releases the cache's own reference).
const VERIFICATION_KEYS_MAX: usize = 32;

static VERIFICATION_KEYS: std::sync::Mutex<Vec<(Vec<u8>, openssl::pkey::PKey<openssl::pkey::Public>)>> =
    std::sync::Mutex::new(Vec::new());

extern "C" {
    // xmlsec/openssl/evp.h: wraps an EVP_PKEY in xmlsec key data, taking over that reference
    // (on success only). Exported by libxmlsec1-openssl, which this crate links.
    fn xmlSecOpenSSLEvpKeyAdopt(pkey: *mut openssl_sys::EVP_PKEY) -> bindings::xmlSecKeyDataPtr;
}

fn certificate_public_key(cert_der: &[u8]) -> XmlSecResult<openssl::pkey::PKey<openssl::pkey::Public>> {
    let mut keys = VERIFICATION_KEYS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, key)) = keys.iter().find(|(der, _)| der.as_slice() == cert_der) {
        return Ok(key.clone());
    }
    let key = openssl::x509::X509::from_der(cert_der)
        .and_then(|cert| cert.public_key())
        .map_err(|_| XmlSecError::KeyLoadError)?;
    if keys.len() >= VERIFICATION_KEYS_MAX {
        keys.remove(0);
    }
    keys.push((cert_der.to_vec(), key.clone()));
    Ok(key)
}

impl XmlSecKey {
    /// The public key of a DER certificate, to verify signatures with: the same key value as
    /// `from_memory(cert_der, CertDer)` gives, without the certificate's X.509 data (a key set on
    /// the signature context is used as it is; the document's KeyInfo is not consulted either
    /// way). The certificate is parsed once per process (see [`VERIFICATION_KEYS_MAX`]).
    pub fn verification_key_of_cert_der(cert_der: &[u8]) -> XmlSecResult<Self> {
        use foreign_types::ForeignType;
        xmlsec_internal::guarantee_xmlsec_init()?;
        let public = certificate_public_key(cert_der)?;
        unsafe {
            let pkey = public.as_ptr();
            // The reference xmlsec takes over; `public` keeps its own until it drops.
            if openssl_sys::EVP_PKEY_up_ref(pkey) != 1 {
                return Err(XmlSecError::KeyLoadError);
            }
            let data = xmlSecOpenSSLEvpKeyAdopt(pkey);
            if data.is_null() {
                openssl_sys::EVP_PKEY_free(pkey);
                return Err(XmlSecError::KeyLoadError);
            }
            let key = bindings::xmlSecKeyCreate();
            if key.is_null() {
                bindings::xmlSecKeyDataDestroy(data);
                return Err(XmlSecError::KeyLoadError);
            }
            if bindings::xmlSecKeySetValue(key, data) < 0 {
                bindings::xmlSecKeyDataDestroy(data);
                bindings::xmlSecKeyDestroy(key);
                return Err(XmlSecError::KeyLoadError);
            }
            Ok(Self(key))
        }
    }
}

impl PartialEq for XmlSecKey {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 // compare pointer addresses
    }
}

impl Eq for XmlSecKey {}

impl Clone for XmlSecKey {
    fn clone(&self) -> Self {
        let new = unsafe { bindings::xmlSecKeyDuplicate(self.0) };

        Self(new)
    }
}

impl Drop for XmlSecKey {
    fn drop(&mut self) {
        unsafe { bindings::xmlSecKeyDestroy(self.0) };
    }
}
