//! Compact JWS (RFC 7515) with the two algorithms latchkey signs with, EdDSA (Ed25519, RFC 8037)
//! and ES256 (P-256, RFC 7518 §3.4), over keys parsed once when the key ring loads.
//!
//! Why not `jsonwebtoken::encode`/`decode` here: that library takes keys as bytes and parses them
//! on every call (the PKCS#8 private key, and with it a scalar multiplication to derive the public
//! key, for every signature; the public point for every verification), and it deserializes the
//! claims twice. Every access token, refresh and heartbeat signs or verifies, so that was a
//! measurable share of a heartbeat's CPU (BENCHMARKS.md, issue 14). The format is small enough to
//! keep strict by hand: exactly three parts, unpadded base64url, a header naming the algorithm of
//! the key it names, no `crit` extensions, a signature of the exact length of its algorithm.
//! Tokens signed here verify with any JOSE library (the test suite checks PyJWT and
//! `jsonwebtoken`), and theirs with this.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Longest token we look at (a header, our claims and a signature are far below this).
pub const MAX_TOKEN_LEN: usize = 8192;

/// A private key that signs, parsed once.
pub enum PrivateKey {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Es256(Box<p256::ecdsa::SigningKey>),
}

/// A public key that verifies, parsed once.
#[derive(Clone)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    Es256(p256::ecdsa::VerifyingKey),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("algorithm {0} is not one latchkey signs with")]
    UnknownAlg(String),
    #[error("the private key is not PKCS#8 DER of its algorithm")]
    BadPrivateKey,
    #[error("the JWK is not a public key of its algorithm")]
    BadJwk,
}

impl PrivateKey {
    /// `alg` is the JWS name (`EdDSA`, `ES256`); `der` PKCS#8 DER.
    pub fn from_pkcs8_der(alg: &str, der: &[u8]) -> Result<Self, KeyError> {
        match alg {
            "EdDSA" => ed25519_dalek::SigningKey::from_pkcs8_der(der)
                .map(|k| PrivateKey::Ed25519(Box::new(k)))
                .map_err(|_| KeyError::BadPrivateKey),
            "ES256" => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(|k| PrivateKey::Es256(Box::new(k)))
                .map_err(|_| KeyError::BadPrivateKey),
            other => Err(KeyError::UnknownAlg(other.to_string())),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self {
            PrivateKey::Ed25519(_) => "EdDSA",
            PrivateKey::Es256(_) => "ES256",
        }
    }

    /// The raw JWS signature of `msg`: 64 bytes for both algorithms (ES256 is `r || s`, each 32
    /// bytes big-endian, as RFC 7518 §3.4 wants, not DER). Ed25519 and RFC 6979 ECDSA are both
    /// deterministic.
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use signature::Signer as _;
        match self {
            PrivateKey::Ed25519(k) => k.sign(msg).to_bytes().to_vec(),
            PrivateKey::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(msg);
                sig.to_bytes().to_vec()
            }
        }
    }
}

impl PublicKey {
    /// The public key of a JWK as latchkey publishes them: `{"kty":"OKP","crv":"Ed25519","x"}` for
    /// EdDSA, `{"kty":"EC","crv":"P-256","x","y"}` for ES256. `alg` is the key's algorithm.
    pub fn from_jwk(alg: &str, jwk: &serde_json::Value) -> Result<Self, KeyError> {
        let member = |name: &str| -> Result<Vec<u8>, KeyError> {
            let s = jwk.get(name).and_then(|v| v.as_str()).ok_or(KeyError::BadJwk)?;
            B64URL.decode(s).map_err(|_| KeyError::BadJwk)
        };
        let str_member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
        match alg {
            "EdDSA" => {
                if str_member("kty") != Some("OKP") || str_member("crv") != Some("Ed25519") {
                    return Err(KeyError::BadJwk);
                }
                let x: [u8; 32] = member("x")?.try_into().map_err(|_| KeyError::BadJwk)?;
                ed25519_dalek::VerifyingKey::from_bytes(&x).map(PublicKey::Ed25519).map_err(|_| KeyError::BadJwk)
            }
            "ES256" => {
                if str_member("kty") != Some("EC") || str_member("crv") != Some("P-256") {
                    return Err(KeyError::BadJwk);
                }
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(KeyError::BadJwk);
                }
                let mut sec1 = Vec::with_capacity(65);
                sec1.push(4);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map(PublicKey::Es256).map_err(|_| KeyError::BadJwk)
            }
            other => Err(KeyError::UnknownAlg(other.to_string())),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self {
            PublicKey::Ed25519(_) => "EdDSA",
            PublicKey::Es256(_) => "ES256",
        }
    }

    /// Whether `sig` is this key's signature of `msg`. Ed25519 is checked strictly (no small-order
    /// points, canonical `s`), so a signature has exactly one valid encoding.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => {
                ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify_strict(msg, &s).is_ok())
            }
            PublicKey::Es256(k) => {
                use signature::Verifier as _;
                p256::ecdsa::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
            }
        }
    }
}

#[derive(Serialize)]
struct OutHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

/// Sign `claims` as a compact JWS with header `{alg, typ, kid}`.
pub fn encode<T: Serialize>(key: &PrivateKey, kid: &str, typ: &str, claims: &T) -> serde_json::Result<String> {
    let header = serde_json::to_vec(&OutHeader { alg: key.alg(), typ, kid })?;
    let payload = serde_json::to_vec(claims)?;
    let mut out = String::with_capacity((header.len() + payload.len() + 64) * 4 / 3 + 8);
    B64URL.encode_string(&header, &mut out);
    out.push('.');
    B64URL.encode_string(&payload, &mut out);
    let sig = key.sign(out.as_bytes());
    out.push('.');
    B64URL.encode_string(&sig, &mut out);
    Ok(out)
}

/// The protected header members we read. Unknown members are ignored, as RFC 7515 §4 allows,
/// except `crit`: it lists extensions a verifier must understand, and we understand none.
#[derive(Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// A token split and its header read, signature not yet checked.
pub struct Unverified<'a> {
    pub header: Header,
    signing_input: &'a str,
    payload_b64: &'a str,
    sig_b64: &'a str,
    signature: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("the signature does not verify with the named key")]
    BadSignature,
}

/// Split a compact JWS and read its header. Strict: three parts, unpadded base64url (no trailing
/// bits), a JSON object header with a string `alg` and no `crit`.
pub fn parse(token: &str) -> Result<Unverified<'_>, DecodeError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(DecodeError::Malformed);
    }
    let (signing_input, sig_b64) = token.rsplit_once('.').ok_or(DecodeError::Malformed)?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(DecodeError::Malformed)?;
    if payload_b64.contains('.') {
        return Err(DecodeError::Malformed);
    }
    let header_json = B64URL.decode(header_b64).map_err(|_| DecodeError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| DecodeError::Malformed)?;
    if header.crit.is_some() {
        return Err(DecodeError::Malformed);
    }
    let signature = B64URL.decode(sig_b64).map_err(|_| DecodeError::Malformed)?;
    Ok(Unverified { header, signing_input, payload_b64, sig_b64, signature })
}

impl Unverified<'_> {
    /// Check the signature with `key` (whose algorithm the header must name) and return the
    /// claims.
    pub fn verify<T: DeserializeOwned>(self, key: &PublicKey) -> Result<T, DecodeError> {
        if self.header.alg != key.alg() || !key.verify(self.signing_input.as_bytes(), &self.signature) {
            return Err(DecodeError::BadSignature);
        }
        self.claims()
    }

    /// The payload as `T`; only after its signature was checked.
    fn claims<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        let payload = B64URL.decode(self.payload_b64).map_err(|_| DecodeError::Malformed)?;
        serde_json::from_slice(&payload).map_err(|_| DecodeError::Malformed)
    }
}

/// Tokens whose signatures this process has already checked, so that a product presenting the
/// same access token on every heartbeat pays for one signature verification, not one per request
/// (it was about a third of a heartbeat's server CPU). An entry is the SHA-256 of the whole token
/// (header, claims and signature: a different token can only hit by a SHA-256 collision) and the
/// `kid` that verified it; a hit still requires that key to be in the ring and of the header's
/// algorithm, and still parses the claims, so a key dropped from the ring stops its tokens at
/// once. Only a successful verification is remembered. Bounded: two generations of
/// `GENERATION` entries; when the young one fills, the old one is dropped (a token in use keeps
/// being promoted into the young one).
pub struct VerifiedCache {
    generations: std::sync::Mutex<[std::collections::HashMap<[u8; 32], std::sync::Arc<str>>; 2]>,
}

impl VerifiedCache {
    pub const GENERATION: usize = 8192;

    pub fn new() -> Self {
        VerifiedCache { generations: std::sync::Mutex::new(Default::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [std::collections::HashMap<[u8; 32], std::sync::Arc<str>>; 2]> {
        self.generations.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `digest` was verified by the key `kid`; promotes it to the young generation.
    fn knows(&self, digest: &[u8; 32], kid: &str) -> bool {
        let mut g = self.lock();
        if g[0].get(digest).is_some_and(|k| &**k == kid) {
            return true;
        }
        match g[1].remove(digest) {
            Some(k) if &*k == kid => {
                Self::insert(&mut g, *digest, k);
                true
            }
            _ => false,
        }
    }

    fn remember(&self, digest: [u8; 32], kid: &str) {
        Self::insert(&mut self.lock(), digest, kid.into());
    }

    fn insert(
        g: &mut [std::collections::HashMap<[u8; 32], std::sync::Arc<str>>; 2],
        digest: [u8; 32],
        kid: std::sync::Arc<str>,
    ) {
        if g[0].len() >= Self::GENERATION {
            g[1] = std::mem::take(&mut g[0]);
        }
        g[0].insert(digest, kid);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let g = self.lock();
        g[0].len() + g[1].len()
    }
}

impl Default for VerifiedCache {
    fn default() -> Self {
        Self::new()
    }
}

impl Unverified<'_> {
    /// `verify`, skipping the signature check when `cache` saw this exact token verified by the
    /// key `kid` (which `key` must be, the ring's key of that id).
    pub fn verify_cached<T: DeserializeOwned>(
        self,
        kid: &str,
        key: &PublicKey,
        cache: &VerifiedCache,
    ) -> Result<T, DecodeError> {
        if self.header.alg != key.alg() {
            return Err(DecodeError::BadSignature);
        }
        let digest = self.digest();
        if cache.knows(&digest, kid) {
            return self.claims();
        }
        if !key.verify(self.signing_input.as_bytes(), &self.signature) {
            return Err(DecodeError::BadSignature);
        }
        cache.remember(digest, kid);
        self.claims()
    }

    /// SHA-256 of the whole token as it was presented.
    fn digest(&self) -> [u8; 32] {
        let mut h = openssl::sha::Sha256::new();
        h.update(self.signing_input.as_bytes());
        h.update(b".");
        h.update(self.sig_b64.as_bytes());
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use openssl::pkey::PKey;
    use serde_json::json;

    use super::*;

    fn ed_pair() -> (PrivateKey, PublicKey, Vec<u8>, serde_json::Value) {
        let k = PKey::generate_ed25519().unwrap();
        let der = k.private_key_to_pkcs8().unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64URL.encode(k.raw_public_key().unwrap())});
        (PrivateKey::from_pkcs8_der("EdDSA", &der).unwrap(), PublicKey::from_jwk("EdDSA", &jwk).unwrap(), der, jwk)
    }

    fn es_pair() -> (PrivateKey, PublicKey, Vec<u8>, serde_json::Value) {
        use openssl::{
            bn::{BigNum, BigNumContext},
            ec::{EcGroup, EcKey},
            nid::Nid,
        };
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let ec = EcKey::generate(&group).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        ec.public_key().affine_coordinates(&group, &mut x, &mut y, &mut BigNumContext::new().unwrap()).unwrap();
        let der = PKey::from_ec_key(ec).unwrap().private_key_to_pkcs8().unwrap();
        let jwk = json!({"kty": "EC", "crv": "P-256",
            "x": B64URL.encode(x.to_vec_padded(32).unwrap()), "y": B64URL.encode(y.to_vec_padded(32).unwrap())});
        (PrivateKey::from_pkcs8_der("ES256", &der).unwrap(), PublicKey::from_jwk("ES256", &jwk).unwrap(), der, jwk)
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        n: i64,
    }

    fn claims() -> Claims {
        Claims { sub: "u-1".into(), n: 42 }
    }

    #[test]
    fn round_trips_and_interoperates_with_jsonwebtoken_both_ways() {
        for (alg, (private, public, der, jwk)) in
            [(jsonwebtoken::Algorithm::EdDSA, ed_pair()), (jsonwebtoken::Algorithm::ES256, es_pair())]
        {
            let token = encode(&private, "k1", "at+jwt", &claims()).unwrap();
            let parsed = parse(&token).unwrap();
            assert_eq!(parsed.header.alg, private.alg());
            assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
            assert_eq!(parsed.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(parsed.verify::<Claims>(&public).unwrap(), claims());

            // Ours verifies with another implementation...
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
            let dk = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut v = jsonwebtoken::Validation::new(alg);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            assert_eq!(jsonwebtoken::decode::<Claims>(&token, &dk, &v).unwrap().claims, claims());
            // ...and theirs with ours.
            let ek = match alg {
                jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_der(&der),
                _ => jsonwebtoken::EncodingKey::from_ec_der(&der),
            };
            let theirs = jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims(), &ek).unwrap();
            assert_eq!(parse(&theirs).unwrap().verify::<Claims>(&public).unwrap(), claims());
        }
    }

    #[test]
    fn es256_signatures_are_64_bytes_r_then_s() {
        let (private, _, der, _) = es_pair();
        let token = encode(&private, "k", "t", &claims()).unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = B64URL.decode(sig).unwrap();
        assert_eq!(sig.len(), 64);
        // OpenSSL, given the same r and s as DER, agrees.
        let ecdsa = openssl::ecdsa::EcdsaSig::from_private_components(
            openssl::bn::BigNum::from_slice(&sig[..32]).unwrap(),
            openssl::bn::BigNum::from_slice(&sig[32..]).unwrap(),
        )
        .unwrap();
        let key = PKey::private_key_from_pkcs8(&der).unwrap();
        let digest = openssl::sha::sha256(input.as_bytes());
        assert!(ecdsa.verify(&digest, &key.ec_key().unwrap()).unwrap());
    }

    #[test]
    fn tampering_of_any_part_is_refused() {
        for (private, public, _, _) in [ed_pair(), es_pair()] {
            let token = encode(&private, "k", "at+jwt", &claims()).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let other_claims = B64URL.encode(br#"{"sub":"admin","n":42}"#);
            let other_header = B64URL.encode(br#"{"alg":"EdDSA","typ":"at+jwt","kid":"other"}"#);
            let mut flipped = B64URL.decode(parts[2]).unwrap();
            flipped[10] ^= 1;
            let cases = [
                format!("{}.{}.{}", parts[0], other_claims, parts[2]),
                format!("{}.{}.{}", other_header, parts[1], parts[2]),
                format!("{}.{}.{}", parts[0], parts[1], B64URL.encode(&flipped)),
                format!("{}.{}.", parts[0], parts[1]),
                format!("{}.{}.{}", parts[0], parts[1], B64URL.encode(&flipped[..63])),
            ];
            for case in cases {
                assert!(parse(&case).and_then(|p| p.verify::<Claims>(&public)).is_err(), "{case}");
            }
            // A valid signature by the other key type of the ring, with the header's alg changed,
            // is refused: the header must name the key's own algorithm.
            let swapped = format!(
                "{}.{}.{}",
                B64URL.encode(
                    format!(
                        r#"{{"alg":"{}","typ":"at+jwt","kid":"k"}}"#,
                        if private.alg() == "EdDSA" { "ES256" } else { "EdDSA" }
                    )
                    .as_bytes()
                ),
                parts[1],
                parts[2]
            );
            assert!(matches!(parse(&swapped).unwrap().verify::<Claims>(&public), Err(DecodeError::BadSignature)));
        }
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_key_is_used() {
        let (private, public, _, _) = ed_pair();
        let token = encode(&private, "k", "at+jwt", &claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let bad = [
            String::new(),
            "a.b".into(),
            format!("{token}.x"),
            format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
            format!("{}+.{}.{}", parts[0], parts[1], parts[2]),
            format!("{}.{}.{}", B64URL.encode(b"[1,2]"), parts[1], parts[2]),
            format!("{}.{}.{}", B64URL.encode(br#"{"typ":"at+jwt"}"#), parts[1], parts[2]),
            format!("{}.{}.{}", B64URL.encode(br#"{"alg":"EdDSA","crit":["exp"],"exp":1}"#), parts[1], parts[2]),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        for t in bad {
            assert_eq!(parse(&t).err(), Some(DecodeError::Malformed), "{t}");
        }
        // `alg: none` parses but verifies with no key.
        let none = format!("{}.{}.", B64URL.encode(br#"{"alg":"none","typ":"at+jwt"}"#), parts[1]);
        assert_eq!(parse(&none).unwrap().verify::<Claims>(&public).err(), Some(DecodeError::BadSignature));
        // A signed payload that is not the claims' shape is malformed, not accepted.
        let odd = encode(&private, "k", "at+jwt", &json!({"sub": 1})).unwrap();
        assert_eq!(parse(&odd).unwrap().verify::<Claims>(&public).err(), Some(DecodeError::Malformed));
    }

    #[test]
    fn keys_of_the_wrong_shape_are_refused() {
        let (_, _, der, jwk) = ed_pair();
        assert!(PrivateKey::from_pkcs8_der("ES256", &der).is_err());
        assert!(PrivateKey::from_pkcs8_der("HS256", &der).is_err());
        assert!(PublicKey::from_jwk("ES256", &jwk).is_err());
        let mut short = jwk.clone();
        short["x"] = json!(B64URL.encode([1u8; 31]));
        assert!(PublicKey::from_jwk("EdDSA", &short).is_err());
        let (_, _, _, es) = es_pair();
        let mut off_curve = es.clone();
        off_curve["y"] = json!(B64URL.encode([7u8; 32]));
        assert!(PublicKey::from_jwk("ES256", &off_curve).is_err());
    }

    #[test]
    fn the_cache_skips_only_the_signature_of_a_token_it_saw_verified_by_that_key() {
        let (private, public, _, _) = ed_pair();
        let (_, other_public, _, _) = ed_pair();
        let cache = VerifiedCache::new();
        let token = encode(&private, "k1", "at+jwt", &claims()).unwrap();
        // Verified once, remembered; the second time it is a hit with the same claims.
        assert_eq!(parse(&token).unwrap().verify_cached::<Claims>("k1", &public, &cache).unwrap(), claims());
        assert_eq!(cache.len(), 1);
        assert_eq!(parse(&token).unwrap().verify_cached::<Claims>("k1", &public, &cache).unwrap(), claims());
        assert_eq!(cache.len(), 1);
        // The same token presented as another key's (a kid replaced in the ring) is checked afresh,
        // and refused since that key did not sign it; nothing is remembered for a failure.
        assert_eq!(
            parse(&token).unwrap().verify_cached::<Claims>("k2", &other_public, &cache).err(),
            Some(DecodeError::BadSignature)
        );
        assert_eq!(cache.len(), 1);
        // Tampering with any part of a remembered token is a miss, and fails the signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], B64URL.encode(br#"{"sub":"admin","n":42}"#), parts[2]);
        assert_eq!(
            parse(&forged).unwrap().verify_cached::<Claims>("k1", &public, &cache).err(),
            Some(DecodeError::BadSignature)
        );
        // A header that names another algorithm than the key's is refused even when cached.
        let (es_private, es_public, _, _) = es_pair();
        let es_token = encode(&es_private, "k3", "at+jwt", &claims()).unwrap();
        assert!(parse(&es_token).unwrap().verify_cached::<Claims>("k3", &es_public, &cache).is_ok());
        assert_eq!(
            parse(&es_token).unwrap().verify_cached::<Claims>("k3", &public, &cache).err(),
            Some(DecodeError::BadSignature)
        );
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_tokens_in_use() {
        let (private, public, _, _) = ed_pair();
        let cache = VerifiedCache::new();
        let in_use = encode(&private, "k", "t", &Claims { sub: "in-use".into(), n: -1 }).unwrap();
        parse(&in_use).unwrap().verify_cached::<Claims>("k", &public, &cache).unwrap();
        for n in 0..(VerifiedCache::GENERATION as i64 * 3) {
            let t = encode(&private, "k", "t", &Claims { sub: "x".into(), n }).unwrap();
            parse(&t).unwrap().verify_cached::<Claims>("k", &public, &cache).unwrap();
            if n % 1000 == 0 {
                // Presented now and then, as a product's token is on each heartbeat.
                let digest = parse(&in_use).unwrap().digest();
                assert!(cache.knows(&digest, "k"), "evicted at {n}");
            }
        }
        assert!(cache.len() <= 2 * VerifiedCache::GENERATION);
    }
}
