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

/// Verification keys already loaded on this thread, by the DER of the certificate they came from.
///
/// Loading a key from a certificate goes through OpenSSL 3's decoder look-up, which costs more than
/// the signature check itself; a service validates many documents signed with the same few
/// certificates. The cached key holds only the certificate's public key (no X.509 data), so
/// [`XmlSecKey::duplicate`] of it takes one more reference to the same `EVP_PKEY` and copies nothing.
/// Per thread because an `XmlSecKey` is not `Send`; bounded, the oldest entry leaves first.
const VERIFICATION_KEYS_MAX: usize = 32;

thread_local! {
    static VERIFICATION_KEYS: std::cell::RefCell<Vec<(Vec<u8>, XmlSecKey)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl XmlSecKey {
    /// The public key of a DER certificate, to verify signatures with: the same key as
    /// `from_memory(cert_der, CertDer)` gives, without the certificate itself, loaded once per
    /// certificate and thread (see [`VERIFICATION_KEYS_MAX`]).
    pub fn verification_key_of_cert_der(cert_der: &[u8]) -> XmlSecResult<Self> {
        if let Some(hit) = VERIFICATION_KEYS
            .with(|keys| keys.borrow().iter().find(|(der, _)| der == cert_der).map(|(_, key)| key.duplicate()))
        {
            return hit;
        }
        let spki = openssl::x509::X509::from_der(cert_der)
            .and_then(|cert| cert.public_key())
            .and_then(|key| key.public_key_to_der())
            .map_err(|_| XmlSecError::KeyLoadError)?;
        let key = Self::from_memory(&spki, XmlSecKeyFormat::Der)?;
        let copy = key.duplicate()?;
        VERIFICATION_KEYS.with(|keys| {
            let mut keys = keys.borrow_mut();
            if keys.len() >= VERIFICATION_KEYS_MAX {
                keys.remove(0);
            }
            keys.push((cert_der.to_vec(), key));
        });
        Ok(copy)
    }

    /// A copy (`xmlSecKeyDuplicate`): key values are shared by reference, X.509 data is copied.
    pub fn duplicate(&self) -> XmlSecResult<Self> {
        let new = unsafe { bindings::xmlSecKeyDuplicate(self.0) };
        if new.is_null() {
            return Err(XmlSecError::KeyLoadError);
        }
        Ok(Self(new))
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
