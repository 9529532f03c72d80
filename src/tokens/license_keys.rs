//! The license signing key: a long-lived Ed25519 key that signs what must verify offline for
//! months (on-premise entitlements, offline license files). Stored sealed with the master key like
//! the token keys; rotatable: a new key signs from then on, and a superseded key stays published
//! while anything it signed is valid. Read from the database at each use: signing is rare.

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    clock::Millis,
    crypto::{MasterKey, b64url, random_bytes},
    onprem::jws,
    store::{Db, keys as store},
};

fn aad(kid: &str) -> String {
    format!("license_keys:{kid}")
}

/// Make a new key the one that signs.
pub async fn rotate(db: &Db, master: &MasterKey, now: Millis) -> anyhow::Result<String> {
    let (der, mut jwk) = jws::generate()?;
    let kid = format!("lic-{}-{}", crate::clock::utc_day(now), b64url(&random_bytes::<6>()));
    jwk["kid"] = json!(kid);
    jwk["use"] = json!("sig");
    jwk["alg"] = json!("EdDSA");
    let row = store::LicenseKeyRow {
        kid: kid.clone(),
        sealed_private: master.encrypt(&der, aad(&kid).as_bytes())?,
        public_jwk: jwk.to_string(),
        created_at: now,
        superseded_at: None,
        signed_until: None,
    };
    let mut tx = db.begin_write().await?;
    store::insert_license_key(&mut *tx, &row).await?;
    store::supersede_license_keys(&mut *tx, &kid, now).await?;
    tx.commit().await?;
    Ok(kid)
}

/// On first start there is no license key yet: make one.
pub async fn ensure_key(db: &Db, master: &MasterKey, now: Millis) -> anyhow::Result<()> {
    if store::current_license_key(&db.pool).await?.is_none() {
        let kid = rotate(db, master, now).await?;
        tracing::info!(%kid, "created the license signing key");
    }
    Ok(())
}

/// The published keys as a JWKS document.
pub async fn jwks(db: &Db, now: Millis) -> anyhow::Result<Value> {
    let rows = store::published_license_keys(&db.pool, now).await?;
    let keys: Vec<Value> = rows.iter().filter_map(|r| serde_json::from_str(&r.public_jwk).ok()).collect();
    Ok(json!({ "keys": keys }))
}

/// The current key's public half: (kid, JWK, PEM).
pub async fn current_public(db: &Db) -> anyhow::Result<(String, Value, String)> {
    let row = store::current_license_key(&db.pool).await?.ok_or_else(|| anyhow::anyhow!("no license key yet"))?;
    let jwk: Value = serde_json::from_str(&row.public_jwk)?;
    let pem = jws::pem_of(&jwk)?;
    Ok((row.kid, jwk, pem))
}

/// Sign `claims` (valid until `exp`, unix ms) as a file of type `typ` with the current key, and
/// keep that key published at least until `exp`.
pub async fn sign<T: Serialize>(
    db: &Db,
    master: &MasterKey,
    typ: &str,
    claims: &T,
    exp: Millis,
) -> anyhow::Result<String> {
    let row = store::current_license_key(&db.pool).await?.ok_or_else(|| anyhow::anyhow!("no license key yet"))?;
    store::extend_license_key_use(&db.pool, &row.kid, exp).await?;
    let der = master.decrypt(&row.sealed_private, aad(&row.kid).as_bytes())?;
    jws::sign(&der, &row.kid, typ, claims)
}
