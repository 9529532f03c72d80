//! Small cryptographic building blocks: random secrets, their stored hashes, constant-time
//! comparison, and the master key that encrypts private keys and queued mail at rest (AES-256-GCM).

use std::{fmt, io::Write, path::Path};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use openssl::{
    hash::MessageDigest,
    pkey::PKey,
    sign::Signer,
    symm::{Cipher, decrypt_aead, encrypt_aead},
};

/// A fresh 256-bit secret, base64url, with a recognisable prefix (`lk_op_`, `lk_rt_`...).
pub fn random_secret(prefix: &str) -> String {
    format!("{prefix}{}", B64URL.encode(random_bytes::<32>()))
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The OS RNG failing is not something a request can recover from.
    if let Err(e) = openssl::rand::rand_bytes(&mut b) {
        panic!("system random generator failed: {e}");
    }
    b
}

/// What we store in place of a secret: SHA-256, base64url. Secrets are 256-bit random values, so a
/// plain (unsalted) hash is enough: there is nothing to brute-force.
pub fn secret_hash(secret: &str) -> String {
    B64URL.encode(openssl::sha::sha256(secret.as_bytes()))
}

pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

pub fn b64url(bytes: &[u8]) -> String {
    B64URL.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    B64URL.decode(s.trim_end_matches('=')).ok()
}

/// The key that protects secrets at rest. Never printed.
#[derive(Clone)]
pub struct MasterKey {
    enc: [u8; 32],
    mac: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

impl MasterKey {
    pub fn from_bytes(raw: [u8; 32]) -> Self {
        // Separate keys for encryption and for keyed hashing, derived from the one file.
        let enc = hmac_sha256(&raw, b"latchkey/encryption/v1");
        let mac = hmac_sha256(&raw, b"latchkey/keyed-hash/v1");
        MasterKey { enc, mac }
    }

    /// Read the key file, or create it (0600, in a 0700 directory) on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let raw = b64url_decode(text.trim())
                    .filter(|b| b.len() == 32)
                    .with_context(|| format!("master key file {} is not 32 base64url bytes", path.display()))?;
                let mut k = [0u8; 32];
                k.copy_from_slice(&raw);
                warn_if_readable_by_others(path);
                Ok(Self::from_bytes(k))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir)?;
                }
                let raw = random_bytes::<32>();
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                match opts.open(path) {
                    Ok(mut f) => {
                        f.write_all(b64url(&raw).as_bytes())?;
                        f.write_all(b"\n")?;
                        f.sync_all()?;
                        tracing::info!(path = %path.display(), "created a new master key");
                        Ok(Self::from_bytes(raw))
                    }
                    // Another process created it between our read and our create: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
                    Err(e) => Err(e).with_context(|| format!("creating master key file {}", path.display())),
                }
            }
            Err(e) => Err(e).with_context(|| format!("reading master key file {}", path.display())),
        }
    }

    /// AES-256-GCM; output is base64url(nonce || ciphertext || tag). `aad` binds the ciphertext to its
    /// purpose and row (a key encrypted for one row cannot be pasted into another).
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<String> {
        let nonce = random_bytes::<NONCE_LEN>();
        let mut tag = [0u8; TAG_LEN];
        let ct = encrypt_aead(Cipher::aes_256_gcm(), &self.enc, Some(&nonce), aad, plaintext, &mut tag)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(b64url(&out))
    }

    pub fn decrypt(&self, sealed: &str, aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let raw = b64url_decode(sealed).context("sealed value is not base64url")?;
        anyhow::ensure!(raw.len() >= NONCE_LEN + TAG_LEN, "sealed value too short");
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        decrypt_aead(Cipher::aes_256_gcm(), &self.enc, Some(nonce), aad, ct, tag)
            .context("cannot decrypt: wrong master key or tampered data")
    }

    /// A keyed hash (HMAC-SHA256, base64url) for values we must recognise but not keep, such as the
    /// machine of a fixed-license seat.
    pub fn keyed_hash(&self, parts: &[&[u8]]) -> String {
        let mut msg = Vec::new();
        for p in parts {
            msg.extend_from_slice(&(p.len() as u64).to_be_bytes());
            msg.extend_from_slice(p);
        }
        b64url(&hmac_sha256(&self.mac, &msg))
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let res = (|| -> Result<(), openssl::error::ErrorStack> {
        let pkey = PKey::hmac(key)?;
        let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
        signer.update(msg)?;
        let mac = signer.sign_to_vec()?;
        out.copy_from_slice(&mac);
        Ok(())
    })();
    if let Err(e) = res {
        panic!("HMAC-SHA256 failed: {e}");
    }
    out
}

pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).with_context(|| format!("creating {}", dir.display()))
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "master key file is readable by group or others; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_purpose() {
        let k = MasterKey::from_bytes([7; 32]);
        let sealed = k.encrypt(b"private key", b"signing_keys:k1").unwrap();
        assert_eq!(k.decrypt(&sealed, b"signing_keys:k1").unwrap(), b"private key");
        assert!(k.decrypt(&sealed, b"signing_keys:k2").is_err());
        assert!(MasterKey::from_bytes([8; 32]).decrypt(&sealed, b"signing_keys:k1").is_err());
        let mut tampered = b64url_decode(&sealed).unwrap();
        tampered[14] ^= 1;
        assert!(k.decrypt(&b64url(&tampered), b"signing_keys:k1").is_err());
    }

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("lk-mk-{}", uuid::Uuid::new_v4()));
        let path = dir.join("sub/master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.keyed_hash(&[b"x"]), b.keyed_hash(&[b"x"]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keyed_hash_separates_parts() {
        let k = MasterKey::from_bytes([1; 32]);
        assert_ne!(k.keyed_hash(&[b"ab", b"c"]), k.keyed_hash(&[b"a", b"bc"]));
    }
}
