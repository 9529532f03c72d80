//! Signed files as compact JWS (EdDSA over Ed25519, `kid` and `typ` in the header), so that any
//! JWT library reads them. One verification function serves the vendor's service, an on-premise
//! server and `latchkey product`; time is the caller's business (it knows `now`).

use std::path::Path;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use openssl::pkey::{Id, PKey};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::crypto::{b64url, b64url_decode};

/// Entitlement of an on-premise server (vendor's license key).
pub const ENTITLEMENT_TYP: &str = "entitlement+jwt";
/// Offline fixed-user license file (vendor's license key).
pub const OFFLINE_TYP: &str = "offline-license+jwt";
/// Usage report of an on-premise server (its own key).
pub const USAGE_TYP: &str = "onprem-usage+jwt";
/// Return file of an on-premise server (its own key).
pub const RETURN_TYP: &str = "onprem-return+jwt";

/// Longest file we read (a usage file covers at most a year of a few licenses).
const MAX_LEN: usize = 512 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("not a signed file (compact JWS) of the expected kind")]
    Malformed,
    #[error("a signed file of another kind")]
    WrongType,
    #[error("signed by a key that is not trusted here")]
    UnknownKey,
    #[error("the signature does not match the content (the file was changed or signed by another key)")]
    BadSignature,
}

/// Ed25519 public keys trusted for verification, each with its `kid` when it came from a JWK.
#[derive(Clone, Default)]
pub struct PublicKeys {
    keys: Vec<(Option<String>, String)>,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|(k, _)| k)).finish()
    }
}

impl PublicKeys {
    /// A PEM public key (`-----BEGIN PUBLIC KEY-----`), a JWKS document or a single JWK.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let mut keys = Vec::new();
        if text.starts_with("-----BEGIN") {
            // A file may hold several PEM blocks (old and new key).
            for block in text.split("-----BEGIN PUBLIC KEY-----").skip(1) {
                let pem = format!("-----BEGIN PUBLIC KEY-----{block}");
                let k = PKey::public_key_from_pem(pem.as_bytes()).context("reading a PEM public key")?;
                anyhow::ensure!(k.id() == Id::ED25519, "the PEM key is not an Ed25519 key");
                keys.push((None, b64url(&k.raw_public_key()?)));
            }
        } else {
            let v: Value = serde_json::from_str(text).context("neither a PEM public key nor a JWKS/JWK document")?;
            let list = match v.get("keys") {
                Some(Value::Array(a)) => a.clone(),
                _ => vec![v],
            };
            for k in list {
                if let Some(x) = okp_x(&k) {
                    keys.push((k["kid"].as_str().map(str::to_string), x));
                }
            }
        }
        anyhow::ensure!(!keys.is_empty(), "no Ed25519 public key found");
        Ok(PublicKeys { keys })
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("public key file {}", path.display()))
    }

    /// One JWK (an on-premise server's key).
    pub fn from_jwk(jwk: &Value) -> Option<Self> {
        okp_x(jwk).map(|x| PublicKeys { keys: vec![(jwk["kid"].as_str().map(str::to_string), x)] })
    }
}

/// `x` of an Ed25519 OKP JWK, when it is one (32 bytes).
fn okp_x(k: &Value) -> Option<String> {
    let ok = k["kty"] == "OKP" && k["crv"] == "Ed25519" && k.get("d").is_none();
    let x = k["x"].as_str()?;
    (ok && b64url_decode(x).is_some_and(|b| b.len() == 32)).then(|| x.to_string())
}

/// RFC 7638 thumbprint of an Ed25519 JWK: what a file names a server by.
pub fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    b64url(&openssl::sha::sha256(canonical.as_bytes()))
}

/// A new Ed25519 key: PKCS#8 DER of the private half and the public JWK (without `kid`).
pub fn generate() -> anyhow::Result<(Vec<u8>, Value)> {
    let k = PKey::generate_ed25519()?;
    let der = k.private_key_to_pkcs8()?;
    let x = b64url(&k.raw_public_key()?);
    Ok((der, json!({ "kty": "OKP", "crv": "Ed25519", "x": x })))
}

/// The PEM text of an Ed25519 public JWK's key.
pub fn pem_of(jwk: &Value) -> anyhow::Result<String> {
    let x = okp_x(jwk).context("not an Ed25519 public JWK")?;
    let raw = b64url_decode(&x).context("bad x")?;
    let k = PKey::public_key_from_raw_bytes(&raw, Id::ED25519)?;
    Ok(String::from_utf8(k.public_key_to_pem()?)?)
}

/// Sign `claims` as a compact JWS of type `typ` with a PKCS#8 Ed25519 key.
pub fn sign<T: Serialize>(der: &[u8], kid: &str, typ: &str, claims: &T) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_string());
    header.typ = Some(typ.to_string());
    Ok(jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der))?)
}

/// Check a signed file's form, type and signature against `keys` and return its claims. A key
/// with a `kid` is tried only for files naming that `kid`; a PEM key (no `kid`) for any.
pub fn verify<T: DeserializeOwned>(token: &str, typ: &str, keys: &PublicKeys) -> Result<T, FileError> {
    let token = token.trim();
    if token.len() > MAX_LEN || token.split('.').count() != 3 {
        return Err(FileError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| FileError::Malformed)?;
    if header.alg != Algorithm::EdDSA {
        return Err(FileError::BadSignature);
    }
    if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
        return Err(FileError::WrongType);
    }
    let candidates: Vec<&String> = keys
        .keys
        .iter()
        .filter(|(kid, _)| kid.is_none() || kid.as_deref() == header.kid.as_deref())
        .map(|(_, x)| x)
        .collect();
    if candidates.is_empty() {
        return Err(FileError::UnknownKey);
    }
    let mut v = Validation::new(Algorithm::EdDSA);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let mut result = Err(FileError::BadSignature);
    for x in candidates {
        let Ok(key) = DecodingKey::from_ed_components(x) else { continue };
        match jsonwebtoken::decode::<T>(token, &key, &v) {
            Ok(d) => return Ok(d.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {}
            Err(_) => result = Err(FileError::Malformed),
        }
    }
    result
}

/// Base64url JSON: the form of fingerprints, activation requests and deactivation codes.
pub fn encode_b64_json(v: &Value) -> String {
    b64url(v.to_string().as_bytes())
}

pub fn decode_b64_json(s: &str) -> Option<Value> {
    let s = s.trim();
    if s.len() > 16 * 1024 {
        return None;
    }
    let raw = b64url_decode(s)?;
    serde_json::from_slice::<Value>(&raw).ok().filter(Value::is_object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_file_verifies_only_with_its_key_type_and_content() {
        let (der, jwk) = generate().unwrap();
        let mut jwk_kid = jwk.clone();
        jwk_kid["kid"] = json!("k1");
        let keys = PublicKeys::parse(&json!({ "keys": [jwk_kid] }).to_string()).unwrap();
        let pem_keys = PublicKeys::parse(&pem_of(&jwk).unwrap()).unwrap();
        let t = sign(&der, "k1", ENTITLEMENT_TYP, &json!({ "seats": 5 })).unwrap();
        let c: Value = verify(&t, ENTITLEMENT_TYP, &keys).unwrap();
        assert_eq!(c["seats"], 5);
        assert!(verify::<Value>(&t, ENTITLEMENT_TYP, &pem_keys).is_ok());
        assert_eq!(verify::<Value>(&t, OFFLINE_TYP, &keys).unwrap_err(), FileError::WrongType);
        // Another kid than the JWKS names.
        let t2 = sign(&der, "k2", ENTITLEMENT_TYP, &json!({ "seats": 5 })).unwrap();
        assert_eq!(verify::<Value>(&t2, ENTITLEMENT_TYP, &keys).unwrap_err(), FileError::UnknownKey);
        // A changed payload.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64url(br#"{"seats":500}"#), parts[2]);
        assert_eq!(verify::<Value>(&forged, ENTITLEMENT_TYP, &keys).unwrap_err(), FileError::BadSignature);
        // Another key with the same kid.
        let (der2, _) = generate().unwrap();
        let other = sign(&der2, "k1", ENTITLEMENT_TYP, &json!({ "seats": 5 })).unwrap();
        assert_eq!(verify::<Value>(&other, ENTITLEMENT_TYP, &keys).unwrap_err(), FileError::BadSignature);
        assert_eq!(verify::<Value>("a.b", ENTITLEMENT_TYP, &keys).unwrap_err(), FileError::Malformed);
    }

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn public_keys_are_read_from_pem_jwks_and_jwk() {
        let (_, jwk) = generate().unwrap();
        assert!(PublicKeys::parse(&pem_of(&jwk).unwrap()).is_ok());
        assert!(PublicKeys::parse(&jwk.to_string()).is_ok());
        assert!(PublicKeys::parse(r#"{"keys":[{"kty":"RSA","n":"x","e":"AQAB"}]}"#).is_err());
        assert!(PublicKeys::parse("hello").is_err());
    }
}
