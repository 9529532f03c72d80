//! Every setting of the service: a flag and a `LATCHKEY_*` variable each, validated once at start.
//! Secrets (the SMTP URL may carry a password) are redacted in `Debug`.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;

/// A duration written as `<n>s`, `<n>m`, `<n>h` or `<n>d` (a bare number means seconds).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    pub fn ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
    pub fn secs(self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX)
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => s.split_at(i),
            None => (s, "s"),
        };
        let n: u64 = digits.parse().map_err(|_| format!("`{s}` is not a duration: write e.g. 90s, 15m, 72h or 30d"))?;
        let mult = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("`{s}` has an unknown unit `{unit}`: use s, m, h or d")),
        };
        let secs =
            n.checked_mul(mult).filter(|v| *v <= 10 * 365 * 86_400).ok_or_else(|| format!("`{s}` is too long"))?;
        Ok(Span(Duration::from_secs(secs)))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./latchkey-data/latchkey.db?mode=rwc";
pub const DEFAULT_MASTER_KEY_FILE: &str = "./latchkey-data/master.key";

/// The server's settings: the flags of `latchkey serve` (each command takes only what it uses:
/// the administrative commands take [`DatabaseArgs`] or [`StoreArgs`], `latchkey product` its own).
#[derive(Clone, Args)]
pub struct Config {
    /// `sqlite://...` or `postgres://...`
    #[arg(long, env = "LATCHKEY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Most connections the pool opens to the database.
    #[arg(long, env = "LATCHKEY_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// How long a request waits for a database connection (all busy, or the database out of
    /// reach) before it is answered 503 with Retry-After.
    #[arg(long, env = "LATCHKEY_DATABASE_ACQUIRE_TIMEOUT", default_value = "1s")]
    pub database_acquire_timeout: Span,

    /// Listen address (`:0` picks a free port; the bound address is logged).
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Base of every link in mails, SAML metadata and token `iss`. Default: `http(s)://<listen>`.
    #[arg(long, env = "LATCHKEY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// `smtp://host:port`, `smtps://...`, `smtp://...?tls=required`. Unset: mails become `.eml` files.
    #[arg(long, env = "LATCHKEY_SMTP_URL")]
    pub smtp_url: Option<String>,

    #[arg(long, env = "LATCHKEY_MAIL_DIR", default_value = "./latchkey-data/outbox")]
    pub mail_dir: PathBuf,

    /// How soon a mail that could not be sent is tried again; the wait doubles with each
    /// failure, up to an hour.
    #[arg(long, env = "LATCHKEY_MAIL_RETRY", default_value = "30s")]
    pub mail_retry: Span,

    #[arg(long, env = "LATCHKEY_MAIL_FROM", default_value = "latchkey <no-reply@localhost>")]
    pub mail_from: String,

    /// Key that encrypts private keys and queued mail at rest (created 0600 on first start).
    #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE", default_value = DEFAULT_MASTER_KEY_FILE)]
    pub master_key_file: PathBuf,

    #[arg(long, env = "LATCHKEY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    #[arg(long, env = "LATCHKEY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    #[arg(long, env = "LATCHKEY_ACCESS_TOKEN_TTL", default_value = "15m")]
    pub access_token_ttl: Span,

    #[arg(long, env = "LATCHKEY_REFRESH_TOKEN_TTL", default_value = "30d")]
    pub refresh_token_ttl: Span,

    #[arg(long, env = "LATCHKEY_SETUP_LINK_TTL", default_value = "72h")]
    pub setup_link_ttl: Span,

    #[arg(long, env = "LATCHKEY_LEASE_TTL", default_value = "5m")]
    pub lease_ttl: Span,

    #[arg(long, env = "LATCHKEY_HEARTBEAT_INTERVAL", default_value = "60s")]
    pub heartbeat_interval: Span,

    #[arg(long, env = "LATCHKEY_OFFLINE_GRACE", default_value = "24h")]
    pub offline_grace: Span,

    #[arg(long, env = "LATCHKEY_CLOCK_SKEW", default_value = "2m")]
    pub clock_skew: Span,

    /// How often IdP metadata URLs are fetched again.
    #[arg(long, env = "LATCHKEY_METADATA_REFRESH", default_value = "24h")]
    pub metadata_refresh: Span,

    /// Allow `http://` metadata URLs and hosts on loopback or link-local addresses (tests only).
    #[arg(long, env = "LATCHKEY_INSECURE_METADATA_URLS", default_value_t = false)]
    pub insecure_metadata_urls: bool,

    /// Password hashes computed at once (each holds 19 MiB); default: one per core.
    #[arg(long, env = "LATCHKEY_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,

    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(long, env = "LATCHKEY_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// On an on-premise license server: the vendor's license signing key (a PEM public key or
    /// the vendor's JWKS document). Setting it makes this server an on-premise server.
    #[arg(long, env = "LATCHKEY_LICENSE_PUBLIC_KEY_FILE")]
    pub license_public_key_file: Option<PathBuf>,

    /// On an on-premise server: who may take a seat. `accounts` (users signed in) or `everyone`
    /// (any caller on the network, no token; the machine name is the identity).
    #[arg(long, env = "LATCHKEY_ONPREM_ACCESS", value_enum, default_value = "accounts")]
    pub onprem_access: OnpremAccess,

    /// How long audit events are kept; older ones are pruned up to a signed checkpoint.
    #[arg(long, env = "LATCHKEY_AUDIT_RETENTION", default_value = "400d")]
    pub audit_retention: Span,

    /// Benchmarks only (set in code, never by flag or variable): record no audit events, to
    /// measure what recording costs.
    #[arg(skip)]
    pub audit_off_for_benchmarks: bool,

    /// Set from the global `--log-format` (every command logs, not only `serve`).
    #[arg(skip)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OnpremAccess {
    #[default]
    Accounts,
    Everyone,
}

/// The database alone: what `migrate` and `operator-key` open.
#[derive(Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://...` or `postgres://...`
    #[arg(long, env = "LATCHKEY_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// The database and the master key: what commands that read or write sealed keys open.
#[derive(Clone, Args)]
pub struct StoreArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Key that encrypts private keys and queued mail at rest (created 0600 on first use).
    #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE", default_value = DEFAULT_MASTER_KEY_FILE)]
    pub master_key_file: PathBuf,
}

impl DatabaseArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        validate_database_url(&self.database_url)
    }
}

fn validate_database_url(url: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        url.starts_with("sqlite:") || url.starts_with("postgres"),
        "LATCHKEY_DATABASE_URL must be sqlite://... or postgres://..."
    );
    Ok(())
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("mail_dir", &self.mail_dir)
            .field("master_key_file", &self.master_key_file)
            .field("tls", &self.tls_cert.is_some())
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("setup_link_ttl", &self.setup_link_ttl)
            .field("lease_ttl", &self.lease_ttl)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("offline_grace", &self.offline_grace)
            .field("clock_skew", &self.clock_skew)
            .field("license_public_key_file", &self.license_public_key_file)
            .field("onprem_access", &self.onprem_access)
            .field("metadata_refresh", &self.metadata_refresh)
            .field("insecure_metadata_urls", &self.insecure_metadata_urls)
            .finish_non_exhaustive()
    }
}

/// `scheme://user:secret@host/...` -> `scheme://user:***@host/...`
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".to_string(),
    }
}

impl Config {
    /// Defaults as if no flag or variable were given; tests and benches start from this.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            c: Config,
        }
        use clap::Parser;
        // Parsing an empty command line cannot fail: every field has a default.
        match Wrap::try_parse_from(["latchkey"]) {
            Ok(w) => w.c,
            Err(e) => panic!("config defaults do not parse: {e}"),
        }
    }

    /// Resolve `host:port`, accepting `:0` for "any free port on localhost".
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        let raw = if self.listen.starts_with(':') { format!("127.0.0.1{}", self.listen) } else { self.listen.clone() };
        raw.parse().map_err(|_| anyhow::anyhow!("LATCHKEY_LISTEN `{}` is not host:port", self.listen))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if let Some(p) = &self.public_url {
            let u = url::Url::parse(p).map_err(|e| anyhow::anyhow!("LATCHKEY_PUBLIC_URL `{p}`: {e}"))?;
            anyhow::ensure!(
                matches!(u.scheme(), "http" | "https") && u.host().is_some(),
                "LATCHKEY_PUBLIC_URL must be an http(s) URL with a host"
            );
            anyhow::ensure!(u.query().is_none() && u.fragment().is_none(), "LATCHKEY_PUBLIC_URL takes no query");
        }
        if let Some(s) = &self.smtp_url {
            let u = url::Url::parse(s).map_err(|_| anyhow::anyhow!("LATCHKEY_SMTP_URL is not a URL"))?;
            anyhow::ensure!(
                matches!(u.scheme(), "smtp" | "smtps"),
                "LATCHKEY_SMTP_URL must start with smtp:// or smtps://"
            );
        }
        validate_database_url(&self.database_url)?;
        anyhow::ensure!(
            self.onprem_access == OnpremAccess::Accounts || self.license_public_key_file.is_some(),
            "LATCHKEY_ONPREM_ACCESS=everyone is for on-premise servers (set LATCHKEY_LICENSE_PUBLIC_KEY_FILE)"
        );
        anyhow::ensure!(self.access_token_ttl.0 >= Duration::from_secs(30), "access token TTL below 30s");
        anyhow::ensure!(self.refresh_token_ttl.0 > self.access_token_ttl.0, "refresh TTL must exceed access TTL");
        anyhow::ensure!(
            self.lease_ttl.0 > self.heartbeat_interval.0,
            "LATCHKEY_LEASE_TTL must exceed the heartbeat interval"
        );
        anyhow::ensure!(self.offline_grace.0 <= Duration::from_secs(7 * 86_400), "offline grace above 7 days");
        anyhow::ensure!(
            (Duration::from_secs(60)..=Duration::from_secs(30 * 86_400)).contains(&self.metadata_refresh.0),
            "LATCHKEY_METADATA_REFRESH must be between 1m and 30d"
        );
        anyhow::ensure!(self.database_max_connections >= 1, "database pool needs at least one connection");
        anyhow::ensure!(
            !self.database_acquire_timeout.0.is_zero(),
            "LATCHKEY_DATABASE_ACQUIRE_TIMEOUT must be at least 1s"
        );
        self.mail_from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow::anyhow!("LATCHKEY_MAIL_FROM `{}`: {e}", self.mail_from))?;
        Ok(())
    }

    /// The public base URL without a trailing slash.
    pub fn public_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(p) => p.trim_end_matches('/').to_string(),
            None => {
                let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
                format!("{scheme}://{bound}")
            }
        }
    }

    pub fn hash_permits(&self) -> usize {
        self.hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("15m".parse::<Span>().map(|s| s.secs()), Ok(900));
        assert_eq!("72h".parse::<Span>().map(|s| s.secs()), Ok(259_200));
        assert_eq!("30d".parse::<Span>().map(|s| s.secs()), Ok(2_592_000));
        assert_eq!("45".parse::<Span>().map(|s| s.secs()), Ok(45));
        assert!("15w".parse::<Span>().is_err());
        assert!("m".parse::<Span>().is_err());
        assert!("99999999999999d".parse::<Span>().is_err());
    }

    #[test]
    fn defaults_are_valid_and_redacted() {
        let mut c = Config::defaults();
        assert!(c.validate().is_ok());
        c.smtp_url = Some("smtp://user:hunter2hunter2@mail.example:25".into());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }
}
