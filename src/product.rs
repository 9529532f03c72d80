//! `latchkey product`: a simulated desktop product. It signs in, checks out a seat, heartbeats on
//! the interval the server gives, reports idle time (seconds since you last pressed Enter), keeps
//! running on its signed lease token while the server cannot be reached, and releases the seat on
//! Ctrl-C. It is how a person tries latchkey without a real product.

use std::{
    io::BufRead,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use serde::Deserialize;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};

/// `latchkey product`: online (no subcommand) or the offline-license commands.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ProductCmd {
    #[command(subcommand)]
    pub command: Option<offline::OfflineCmd>,
    #[command(flatten)]
    pub online: ProductArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ProductArgs {
    /// Base URL of the latchkey server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The product's SKU (its OAuth client id).
    #[arg(long, required = true)]
    pub product: Option<String>,
    /// The user's email.
    #[arg(long, required = true)]
    pub email: Option<String>,
    /// The computer's name (default: this host's name).
    #[arg(long)]
    pub machine: Option<String>,
    /// Environment variable holding the password (default: read one line from stdin).
    #[arg(long, default_value = "LATCHKEY_PASSWORD")]
    pub password_env: String,
    /// Report this idle time instead of the time since the last Enter (for scripted runs).
    #[arg(long)]
    pub idle_seconds: Option<i64>,
    /// When no seat is free, wait for one instead of exiting.
    #[arg(long, default_value_t = false)]
    pub wait: bool,
}

#[derive(Deserialize, Clone)]
struct Tokens {
    access_token: String,
    refresh_token: String,
    expires_in: i64,
}

#[derive(Deserialize, Clone)]
struct Lease {
    lease_id: String,
    lease_token: String,
    heartbeat_interval_s: u64,
}

#[derive(Deserialize)]
struct LeaseClaims {
    exp: i64,
    machine: Option<String>,
}

struct Session {
    http: reqwest::Client,
    base: String,
    issuer: String,
    product: String,
    tokens: Tokens,
    token_expires_at: i64,
    jwks: Option<JwkSet>,
}

fn now_s() -> i64 {
    SystemClock.now() / 1000
}

fn say(msg: impl AsRef<str>) {
    eprintln!("[{}] {}", crate::clock::rfc3339(SystemClock.now()), msg.as_ref());
}

impl Session {
    async fn token_call(
        http: &reqwest::Client,
        base: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Result<Tokens, Value>> {
        let r = http.post(format!("{base}/oauth/token")).form(form).send().await?;
        let ok = r.status().is_success();
        let v: Value = r.json().await.context("token endpoint answered non-JSON")?;
        Ok(if ok { Ok(serde_json::from_value(v)?) } else { Err(v) })
    }

    async fn refresh_if_due(&mut self) -> anyhow::Result<()> {
        if now_s() < self.token_expires_at - 60 {
            return Ok(());
        }
        let rt = self.tokens.refresh_token.clone();
        match Self::token_call(
            &self.http,
            &self.base,
            &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", &self.product)],
        )
        .await?
        {
            Ok(t) => {
                self.token_expires_at = now_s() + t.expires_in;
                self.tokens = t;
                Ok(())
            }
            Err(e) => bail!("refresh refused: {e}"),
        }
    }

    async fn fetch_jwks(&mut self) {
        if let Ok(r) = self.http.get(format!("{}/.well-known/jwks.json", self.base)).send().await
            && let Ok(set) = r.json::<JwkSet>().await
        {
            self.jwks = Some(set);
        }
    }

    /// Check a lease token offline, with the keys fetched earlier: valid signature, not expired.
    fn verify_lease(&self, token: &str) -> anyhow::Result<LeaseClaims> {
        let jwks = self.jwks.as_ref().context("no cached JWKS")?;
        let header = jsonwebtoken::decode_header(token)?;
        anyhow::ensure!(header.typ.as_deref() == Some(crate::licenses::seats::LEASE_TYP), "not a lease token");
        let kid = header.kid.context("lease token without kid")?;
        let jwk = jwks.find(&kid).context("lease token signed by an unknown key")?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&self.product]);
        v.set_issuer(&[&self.issuer]);
        let data = jsonwebtoken::decode::<LeaseClaims>(token, &DecodingKey::from_jwk(jwk)?, &v)?;
        Ok(data.claims)
    }
}

pub mod offline;

pub async fn main(cmd: ProductCmd) -> anyhow::Result<()> {
    match cmd.command {
        Some(c) => offline::run(c).await,
        None => run(cmd.online).await,
    }
}

pub async fn run(args: ProductArgs) -> anyhow::Result<()> {
    let product = args.product.clone().context("--product is required")?;
    let email = args.email.clone().context("--email is required")?;
    let base = args.server.trim_end_matches('/').to_string();
    let machine = args
        .machine
        .clone()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_string()))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown-computer".into());
    let password = match std::env::var(&args.password_env) {
        Ok(p) => p,
        Err(_) => {
            eprint!("Password for {}: ", email);
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build()?;
    let meta: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}"))?
        .json()
        .await?;
    let issuer = meta["issuer"].as_str().context("server metadata without issuer")?.to_string();
    let tokens = match Session::token_call(
        &http,
        &base,
        &[("grant_type", "password"), ("username", &email), ("password", &password), ("client_id", &product)],
    )
    .await?
    {
        Ok(t) => t,
        Err(e) if e["error"] == "sso_required" => {
            bail!(
                "{} signs in with its company account: open {} (or use a product that supports SSO)",
                email,
                e["login_url"]
            )
        }
        Err(e) => bail!("sign-in refused: {}", e["error_description"].as_str().unwrap_or("unknown error")),
    };
    say(format!("signed in as {}", email));
    let mut s = Session {
        http,
        base,
        issuer,
        product: product.clone(),
        token_expires_at: now_s() + tokens.expires_in,
        tokens,
        jwks: None,
    };
    s.fetch_jwks().await;

    // Idle time: seconds since the last line on stdin (press Enter to be "active").
    let last_input = Arc::new(AtomicI64::new(now_s()));
    {
        let last_input = last_input.clone();
        std::thread::spawn(move || {
            for _ in std::io::stdin().lock().lines() {
                last_input.store(now_s(), Ordering::Relaxed);
            }
        });
    }

    let mut lease = checkout(&mut s, &machine, args.wait).await?;
    let claims = s.verify_lease(&lease.lease_token)?;
    anyhow::ensure!(claims.machine.as_deref() == Some(machine.as_str()), "the lease token names another computer");
    say(format!(
        "seat {} checked out on {machine}; offline grace until {}",
        lease.lease_id,
        crate::clock::rfc3339(claims.exp * 1000)
    ));
    let ctrl_c = crate::cli::shutdown_signal();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tokio::time::sleep(Duration::from_secs(lease.heartbeat_interval_s.max(1))) => {}
        }
        let idle = args.idle_seconds.unwrap_or_else(|| now_s() - last_input.load(Ordering::Relaxed));
        match heartbeat(&mut s, &lease, &machine, idle).await {
            Ok(Beat::Renewed(l)) => {
                lease = l;
                say(format!("heartbeat ok (idle {idle} s)"));
            }
            Ok(Beat::Lapsed) => {
                say("the lease lapsed; checking out again");
                lease = checkout(&mut s, &machine, args.wait).await?;
            }
            Ok(Beat::Lost(why)) => bail!("the seat was taken away: {why}"),
            Err(e) => {
                // The server is away: run on the last lease token while it is valid.
                match s.verify_lease(&lease.lease_token) {
                    Ok(c) => say(format!(
                        "server unreachable ({e:#}); running offline until {}",
                        crate::clock::rfc3339(c.exp * 1000)
                    )),
                    Err(_) => bail!("offline grace is over; the product must stop"),
                }
            }
        }
    }
    s.refresh_if_due().await.ok();
    let r = s
        .http
        .delete(format!("{}/api/v1/seats/{}", s.base, lease.lease_id))
        .bearer_auth(&s.tokens.access_token)
        .send()
        .await;
    match r {
        Ok(r) if r.status().is_success() => say("seat released; bye"),
        _ => say("could not release the seat; it frees itself when its lease lapses"),
    }
    Ok(())
}

async fn checkout(s: &mut Session, machine: &str, wait: bool) -> anyhow::Result<Lease> {
    loop {
        s.refresh_if_due().await?;
        let r = s
            .http
            .post(format!("{}/api/v1/seats", s.base))
            .bearer_auth(&s.tokens.access_token)
            .json(&serde_json::json!({ "product": s.product, "machine": machine }))
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if status.is_success() {
            return Ok(serde_json::from_value(v)?);
        }
        let detail = v["detail"].as_str().unwrap_or("refused").to_string();
        if wait && matches!(v["code"].as_str(), Some("no_seat_available" | "seat_in_use")) {
            say(format!("{detail}; waiting"));
            tokio::time::sleep(Duration::from_secs(30)).await;
            continue;
        }
        bail!("no seat: {detail}");
    }
}

enum Beat {
    Renewed(Lease),
    Lapsed,
    Lost(String),
}

async fn heartbeat(s: &mut Session, lease: &Lease, machine: &str, idle: i64) -> anyhow::Result<Beat> {
    s.refresh_if_due().await?;
    let r = s
        .http
        .post(format!("{}/api/v1/seats/{}/heartbeat", s.base, lease.lease_id))
        .bearer_auth(&s.tokens.access_token)
        .json(&serde_json::json!({ "idle_seconds": idle.max(0), "machine": machine }))
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await?;
    if status.is_success() {
        let token = v["lease_token"].as_str().unwrap_or_default().to_string();
        if s.verify_lease(&token).is_err() {
            // Signed with a key we have not seen yet (the server rotated): refresh the cache.
            s.fetch_jwks().await;
        }
        return Ok(Beat::Renewed(Lease { lease_token: token, ..lease.clone() }));
    }
    match v["code"].as_str() {
        Some("lease_expired") => Ok(Beat::Lapsed),
        _ if status.is_server_error() => bail!("server error {status}"),
        _ => Ok(Beat::Lost(v["detail"].as_str().unwrap_or("refused").to_string())),
    }
}
