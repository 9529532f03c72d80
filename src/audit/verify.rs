//! `latchkey audit verify`: every chain in the database walked from its start (or the checkpoint
//! that retention kept) to its head, every checkpoint's signature checked against the public
//! signing keys and matched to the chain. Reads the chains a page at a time.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::chain::{CHECKPOINT_TYP, ChainVerifier, Checkpoint, CheckpointClaims, Finding, Summary};
use crate::store::{
    self, Db,
    audit::{ChainHead, CheckpointRow},
};

const PAGE: i64 = 5000;

pub struct ChainReport {
    pub chain: String,
    pub entity: Option<String>,
    pub result: Result<Summary, Finding>,
}

impl ChainReport {
    /// One line for people: the chain, then `ok` and what was checked, or what is wrong.
    pub fn line(&self) -> String {
        let name = match &self.entity {
            Some(slug) => format!("entity {slug}"),
            None => "operator".to_string(),
        };
        match &self.result {
            Ok(s) => format!(
                "ok      {name}: {} events, seq {}..{}, head {}, signed up to seq {}",
                s.events,
                s.from_seq + 1,
                s.head_seq,
                &s.head_hash.get(..16).unwrap_or("-"),
                s.checkpointed_seq
            ),
            Err(f) => format!("FAILED  {name}: {f}"),
        }
    }
}

pub struct Report {
    pub chains: Vec<ChainReport>,
    /// Events waiting for the sealer (in `audit_pending`: in no chain yet, listed by no read).
    pub unsealed: i64,
    /// Rows of `audit_events` in no chain (no `seq` or no `seal_order`): the sealer writes none,
    /// so each was inserted or altered by hand. The first few ids.
    pub strays: Vec<String>,
    /// Events that happened later than the seal mark over them says (the marks or the rows were
    /// altered by hand: a page filtered by time could miss them). The first few ids.
    pub unmarked: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.chains.iter().all(|c| c.result.is_ok()) && self.strays.is_empty() && self.unmarked.is_empty()
    }

    /// One line per stray or unmarked row, like a chain's FAILED line.
    pub fn stray_lines(&self) -> Vec<String> {
        let strays = self
            .strays
            .iter()
            .map(|id| format!("FAILED  event {id} is in no chain (no seq or seal order): inserted or altered by hand"));
        let unmarked = self.unmarked.iter().map(|id| {
            format!("FAILED  event {id} is later than its seal mark says (audit_seal_marks or the row altered by hand)")
        });
        strays.chain(unmarked).collect()
    }
}

/// How many stray rows a report names.
const STRAYS_SHOWN: i64 = 10;

type Keys = HashMap<String, (Algorithm, DecodingKey)>;

fn load_keys(rows: Vec<(String, String, String)>) -> Keys {
    let mut keys = HashMap::new();
    for (kid, alg, jwk) in rows {
        let alg = match alg.as_str() {
            "EdDSA" => Algorithm::EdDSA,
            "ES256" => Algorithm::ES256,
            _ => continue,
        };
        let Ok(jwk) = serde_json::from_str::<jsonwebtoken::jwk::Jwk>(&jwk) else { continue };
        if let Ok(k) = DecodingKey::from_jwk(&jwk) {
            keys.insert(kid, (alg, k));
        }
    }
    keys
}

/// The checkpoint's signature, type and claims, against the row that stores it.
pub fn check_checkpoint(keys: &Keys, c: &CheckpointRow) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(&c.signature).map_err(|_| "its signature is not a JWS".to_string())?;
    if header.typ.as_deref() != Some(CHECKPOINT_TYP) {
        return Err(format!("its signature is not of type {CHECKPOINT_TYP}"));
    }
    let kid = header.kid.ok_or("its signature names no key")?;
    let (alg, key) = keys.get(&kid).ok_or_else(|| format!("signed by unknown key {kid}"))?;
    if header.alg != *alg {
        return Err("its signature algorithm does not match its key".into());
    }
    let mut v = jsonwebtoken::Validation::new(*alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<CheckpointClaims>(&c.signature, key, &v)
        .map_err(|_| "its signature does not verify".to_string())?
        .claims;
    if claims.seq != c.seq || claims.hash != c.hash || claims.entity != c.entity {
        return Err("the stored seq, hash or entity differ from what was signed".into());
    }
    Ok(())
}

pub async fn verify_db(db: &Db) -> anyhow::Result<Report> {
    let keys = load_keys(store::audit::public_keys(&db.pool).await?);
    let heads: HashMap<String, ChainHead> =
        store::audit::chain_heads(&db.pool).await?.into_iter().map(|h| (h.chain.clone(), h)).collect();
    let mut chains: Vec<String> = heads.keys().cloned().collect();
    for c in store::audit::chains_with_events(&db.pool).await? {
        if !heads.contains_key(&c) {
            chains.push(c);
        }
    }
    chains.sort();
    let mut out = Vec::new();
    for chain in chains {
        let head = heads.get(&chain);
        let cps = store::audit::checkpoints(&db.pool, &chain).await?;
        let mut entity = head.and_then(|h| h.entity.clone()).or_else(|| cps.first().and_then(|c| c.entity.clone()));
        let result = async {
            let mut checked = Vec::with_capacity(cps.len());
            for c in &cps {
                check_checkpoint(&keys, c).map_err(|why| Finding::Checkpoint { seq: c.seq, why })?;
                checked.push(Checkpoint { seq: c.seq, hash: c.hash.clone() });
            }
            let mut v = ChainVerifier::new(&checked);
            let mut after = 0;
            loop {
                let rows = store::audit::chain_events(&db.pool, &chain, after, PAGE)
                    .await
                    .map_err(|e| Finding::Checkpoint { seq: after, why: format!("reading the chain: {e}") })?;
                for r in &rows {
                    if entity.is_none() {
                        entity = r.entity.clone();
                    }
                    v.push(r)?;
                    after = r.seq.unwrap_or(after);
                }
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
            match head {
                Some(h) => v.finish(Some((h.seq, &h.hash))),
                None => Err(Finding::Inserted {
                    id: "(first event)".into(),
                    seq: 1,
                    why: "the chain has events but the sealer never recorded it".into(),
                }),
            }
        }
        .await;
        out.push(ChainReport { chain, entity, result });
    }
    Ok(Report {
        chains: out,
        unsealed: store::audit::count_unsealed(&db.pool).await?,
        strays: store::audit::strays(&db.pool, STRAYS_SHOWN).await?,
        unmarked: store::audit::unmarked(&db.pool, STRAYS_SHOWN).await?,
    })
}
