//! Token-signing keys: generated here (Ed25519 by default, or P-256), stored sealed with the master
//! key, cached in memory, and published in JWKS for as long as a token they signed may be alive.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey},
    nid::Nid,
    pkey::PKey,
};
use serde::Serialize;
use serde_json::json;

use super::jws::{self, PrivateKey, PublicKey};
use crate::{
    clock::Millis,
    crypto::{MasterKey, b64url, random_bytes},
    store::{Db, keys as store},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyAlg {
    #[value(name = "EdDSA")]
    EdDsa,
    #[value(name = "ES256")]
    Es256,
}

impl KeyAlg {
    fn name(self) -> &'static str {
        match self {
            KeyAlg::EdDsa => "EdDSA",
            KeyAlg::Es256 => "ES256",
        }
    }
}

struct Signer {
    kid: String,
    key: PrivateKey,
}

/// Keys parsed once per load (see `jws`): signing and verifying do no key parsing.
struct Keys {
    signer: Option<Signer>,
    verifiers: HashMap<String, PublicKey>,
    jwks: String,
}

/// The in-memory view of the signing keys, reloaded from the database periodically and whenever a
/// token names a key we do not know yet (another replica or `latchkey keys rotate` added it).
pub struct KeyRing {
    db: Db,
    master: MasterKey,
    /// How long a superseded key stays published and trusted: the longest life of a token it signed.
    retention_ms: Millis,
    /// How long a key that signed an audit checkpoint stays published (not trusted for tokens).
    audit_retention_ms: Millis,
    keys: RwLock<Arc<Keys>>,
    /// Access and other tokens whose signatures were already checked (see `jws::VerifiedCache`).
    verified: jws::VerifiedCache,
    last_reload: std::sync::atomic::AtomicI64,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("token of another type")]
    WrongType,
    #[error("signed by an unknown key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
}

impl KeyRing {
    pub async fn load(
        db: Db,
        master: MasterKey,
        retention_ms: Millis,
        audit_retention_ms: Millis,
        now: Millis,
    ) -> anyhow::Result<Self> {
        let ring = KeyRing {
            db,
            master,
            retention_ms,
            audit_retention_ms,
            keys: RwLock::new(Arc::new(Keys { signer: None, verifiers: HashMap::new(), jwks: "{\"keys\":[]}".into() })),
            verified: jws::VerifiedCache::new(),
            last_reload: std::sync::atomic::AtomicI64::new(i64::MIN),
        };
        ring.reload(now).await?;
        Ok(ring)
    }

    pub async fn reload(&self, now: Millis) -> anyhow::Result<()> {
        let cutoff = now - self.retention_ms;
        let rows = store::live_signing_keys(&self.db.pool, cutoff, now - self.audit_retention_ms).await?;
        let mut verifiers = HashMap::new();
        let mut jwks = Vec::new();
        let mut signer = None;
        // Newest first: the first row signs.
        for row in rows {
            if !matches!(row.alg.as_str(), "EdDSA" | "ES256") {
                tracing::warn!(kid = %row.kid, alg = %row.alg, "skipping signing key of unknown algorithm");
                continue;
            }
            let jwk: serde_json::Value = serde_json::from_str(&row.public_jwk)?;
            // A key kept only for its audit checkpoints is published, not trusted for tokens.
            if row.superseded_at.is_none_or(|s| s > cutoff) {
                verifiers.insert(row.kid.clone(), PublicKey::from_jwk(&row.alg, &jwk)?);
            }
            if signer.is_none() {
                let der = self.master.decrypt(&row.sealed_private, aad(&row.kid).as_bytes())?;
                signer = Some(Signer { kid: row.kid.clone(), key: PrivateKey::from_pkcs8_der(&row.alg, &der)? });
            }
            jwks.push(jwk);
        }
        let jwks = serde_json::to_string(&json!({ "keys": jwks }))?;
        let fresh = Arc::new(Keys { signer, verifiers, jwks });
        match self.keys.write() {
            Ok(mut k) => *k = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        self.last_reload.store(now, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Keys> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn jwks_json(&self) -> String {
        self.snapshot().jwks.clone()
    }

    pub fn current_kid(&self) -> Option<String> {
        self.snapshot().signer.as_ref().map(|s| s.kid.clone())
    }

    /// Sign `claims` as a JWT of type `typ` with the current key.
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> anyhow::Result<String> {
        let keys = self.snapshot();
        let signer = keys.signer.as_ref().ok_or_else(|| anyhow::anyhow!("no signing key loaded"))?;
        Ok(jws::encode(&signer.key, &signer.kid, typ, claims)?)
    }

    /// Check a JWT's type and signature and return its claims. Time and issuer are the caller's
    /// business (it knows `now`).
    pub async fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ: &str,
        now: Millis,
    ) -> Result<T, VerifyError> {
        let parsed = jws::parse(token).map_err(|_| VerifyError::Malformed)?;
        let header = &parsed.header;
        if !header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)) {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.clone().ok_or(VerifyError::UnknownKey)?;
        let mut keys = self.snapshot();
        if !keys.verifiers.contains_key(&kid) {
            // A key another process added since our last load; reload at most every 5 seconds so a
            // flood of made-up kids cannot turn into a flood of queries.
            let last = self.last_reload.load(std::sync::atomic::Ordering::Relaxed);
            if now.saturating_sub(last) > 5_000 && self.reload(now).await.is_ok() {
                keys = self.snapshot();
            }
        }
        let key = keys.verifiers.get(&kid).ok_or(VerifyError::UnknownKey)?;
        parsed.verify_cached::<T>(&kid, key, &self.verified).map_err(|e| match e {
            jws::DecodeError::BadSignature => VerifyError::BadSignature,
            jws::DecodeError::Malformed => VerifyError::Malformed,
        })
    }
}

fn aad(kid: &str) -> String {
    format!("signing_keys:{kid}")
}

/// Create a key and make it the one that signs. Older keys stay published until their tokens expire.
pub async fn rotate(
    db: &Db,
    master: &MasterKey,
    alg: KeyAlg,
    ctx: &crate::audit::Context,
    now: Millis,
) -> anyhow::Result<String> {
    let (der, jwk_parts) = generate(alg)?;
    let kid = format!("{}-{}", crate::clock::utc_day(now), &b64url(&random_bytes::<6>()));
    let mut jwk = jwk_parts;
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(alg.name());
    let row = store::SigningKeyRow {
        kid: kid.clone(),
        alg: alg.name().into(),
        sealed_private: master.encrypt(&der, aad(&kid).as_bytes())?,
        public_jwk: jwk.to_string(),
        created_at: now,
        superseded_at: None,
    };
    let mut tx = db.begin_write().await?;
    store::insert_signing_key(&mut *tx, &row).await?;
    store::supersede_signing_keys(&mut *tx, &kid, now).await?;
    crate::audit::Event::new("key.rotated")
        .target(crate::audit::Target::new("signing_key", &kid, Some(alg.name())))
        .record(&mut tx, ctx, now)
        .await?;
    tx.commit().await?;
    Ok(kid)
}

/// On first start there is no key yet: make one.
pub async fn ensure_key(db: &Db, master: &MasterKey, now: Millis) -> anyhow::Result<()> {
    let existing = store::live_signing_keys(&db.pool, i64::MIN, i64::MIN).await?;
    if existing.is_empty() {
        let kid = rotate(db, master, KeyAlg::EdDsa, &crate::audit::Context::system("startup"), now).await?;
        tracing::info!(%kid, "created the first token-signing key");
    }
    Ok(())
}

/// PKCS#8 DER of a new private key, and the public half as JWK members.
fn generate(alg: KeyAlg) -> anyhow::Result<(Vec<u8>, serde_json::Value)> {
    match alg {
        KeyAlg::EdDsa => {
            let k = PKey::generate_ed25519()?;
            let der = k.private_key_to_pkcs8()?;
            let x = k.raw_public_key()?;
            Ok((der, json!({ "kty": "OKP", "crv": "Ed25519", "x": b64url(&x) })))
        }
        KeyAlg::Es256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let ec = EcKey::generate(&group)?;
            let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
            let mut ctx = BigNumContext::new()?;
            ec.public_key().affine_coordinates(&group, &mut x, &mut y, &mut ctx)?;
            let der = PKey::from_ec_key(ec)?.private_key_to_pkcs8()?;
            Ok((
                der,
                json!({ "kty": "EC", "crv": "P-256", "x": b64url(&x.to_vec_padded(32)?), "y": b64url(&y.to_vec_padded(32)?) }),
            ))
        }
    }
}
