//! The product's side of offline fixed-user licenses: the activation request, running on a license
//! file with no server at all, and the deactivation code that gives the seat back.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::{
    clock::{Clock, SystemClock},
    crypto::b64url,
    onprem::{
        OfflineClaims,
        jws::{self, PublicKeys},
    },
};

#[derive(Subcommand, Debug)]
pub enum OfflineCmd {
    /// Print an activation request for this computer (give it to your administrator).
    OfflineRequest {
        #[arg(long)]
        product: String,
        #[arg(long)]
        email: String,
        #[command(flatten)]
        computer: Computer,
    },
    /// Run on an offline license file, with no server: verify it and the computer, then run.
    Run(RunArgs),
    /// Stop using the offline license file: print the deactivation code that frees its seat, and
    /// delete the file.
    OfflineReturn {
        #[arg(long)]
        license_file: PathBuf,
        #[command(flatten)]
        computer: Computer,
        /// Leave the file in place (for scripted tests).
        #[arg(long, default_value_t = false)]
        keep_file: bool,
    },
}

/// What makes up this computer's fingerprint.
#[derive(Args, Debug, Clone)]
pub struct Computer {
    /// The computer's name (default: this host's name).
    #[arg(long)]
    pub machine: Option<String>,
    /// The file holding the machine id (systemd's).
    #[arg(long, default_value = "/etc/machine-id", hide = true)]
    pub machine_id_file: PathBuf,
}

impl Computer {
    /// SHA-256 of the machine id and the computer's name, base64url: recognises this computer and
    /// says nothing else about it.
    pub fn fingerprint(&self) -> String {
        let name = self
            .machine
            .clone()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
            .unwrap_or_default();
        let id = std::fs::read_to_string(&self.machine_id_file).map(|s| s.trim().to_string()).unwrap_or_default();
        let mut msg = b"latchkey-computer/v1\0".to_vec();
        msg.extend_from_slice(id.as_bytes());
        msg.push(0);
        msg.extend_from_slice(name.as_bytes());
        b64url(&openssl::sha::sha256(&msg))
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The offline license file the administrator gave you.
    #[arg(long)]
    pub license_file: PathBuf,
    /// The vendor's license key: a PEM public key or the JWKS document.
    #[arg(long)]
    pub license_public_key: PathBuf,
    /// This product's SKU.
    #[arg(long)]
    pub product: String,
    #[command(flatten)]
    pub computer: Computer,
    /// Verify and exit (0 when the product may run).
    #[arg(long, default_value_t = false)]
    pub check: bool,
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[{}] {}", crate::clock::rfc3339(SystemClock.now()), msg.as_ref());
}

/// Why a license file does not let this product run here.
pub fn check_file(
    text: &str,
    keys: &PublicKeys,
    product: &str,
    fingerprint: &str,
    now_ms: i64,
) -> anyhow::Result<OfflineClaims> {
    let claims: OfflineClaims =
        jws::verify(text, jws::OFFLINE_TYP, keys).map_err(|e| anyhow::anyhow!("license file refused: {e}"))?;
    if claims.product != product {
        bail!("license file refused: it is for `{}`, not `{product}`", claims.product);
    }
    if claims.fingerprint != fingerprint {
        bail!("license file refused: it was issued for another computer");
    }
    if claims.exp.saturating_mul(1000) <= now_ms {
        bail!("license file refused: it expired at {}", crate::clock::rfc3339(claims.exp.saturating_mul(1000)));
    }
    Ok(claims)
}

pub async fn run(cmd: OfflineCmd) -> anyhow::Result<()> {
    match cmd {
        OfflineCmd::OfflineRequest { product, email, computer } => {
            let req = json!({ "fingerprint": computer.fingerprint(), "user": email.trim(), "product": product });
            println!("{}", jws::encode_b64_json(&req));
            eprintln!("Give this activation request to your license administrator; they answer with a license file.");
            Ok(())
        }
        OfflineCmd::Run(args) => {
            let keys = PublicKeys::from_file(&args.license_public_key)?;
            let text = std::fs::read_to_string(&args.license_file)
                .with_context(|| format!("reading {}", args.license_file.display()))?;
            let fp = args.computer.fingerprint();
            let claims = check_file(&text, &keys, &args.product, &fp, SystemClock.now())?;
            say(format!(
                "licensed offline: {} for {} on this computer until {}",
                claims.product,
                claims.sub,
                crate::clock::rfc3339(claims.exp * 1000)
            ));
            if args.check {
                return Ok(());
            }
            let ctrl_c = crate::cli::shutdown_signal();
            tokio::pin!(ctrl_c);
            loop {
                tokio::select! {
                    _ = &mut ctrl_c => break,
                    _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                if claims.exp.saturating_mul(1000) <= SystemClock.now() {
                    bail!("the offline license expired; the product must stop");
                }
            }
            say("bye");
            Ok(())
        }
        OfflineCmd::OfflineReturn { license_file, computer, keep_file } => {
            let text = std::fs::read_to_string(&license_file)
                .with_context(|| format!("reading {}", license_file.display()))?;
            // The claims are read, not verified: the vendor checks the code against its records.
            let payload = text.trim().split('.').nth(1).context("not a license file")?;
            let raw = crate::crypto::b64url_decode(payload).context("not a license file")?;
            let claims: OfflineClaims = serde_json::from_slice(&raw).context("not a license file")?;
            let code =
                crate::onprem::offline::deactivation_code(&claims.jti, &claims.license_id, &computer.fingerprint());
            if !keep_file {
                std::fs::remove_file(&license_file).with_context(|| format!("removing {}", license_file.display()))?;
            }
            println!("{code}");
            eprintln!("Give this deactivation code to your license administrator to free the seat.");
            Ok(())
        }
    }
}
