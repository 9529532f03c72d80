//! The command line: `serve`, `migrate`, `operator-key create`, `keys rotate`, `product`. Each
//! command takes only the settings it uses: `serve` the whole [`Config`], the administrative
//! commands the database (and the master key where they touch sealed keys), `product` its own.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    app::App,
    audit,
    clock::{Clock, SystemClock},
    config::{Config, DatabaseArgs, LogFormat, StoreArgs},
    crypto::MasterKey,
    store::{self, Db},
    tokens::{
        keys::{self, KeyAlg},
        license_keys,
    },
};

#[derive(Parser)]
#[command(name = "latchkey", version, about = "Identity, SSO and license seats for desktop software")]
pub struct Cli {
    /// `text` for people, `json` for log shipping (one object a line); filter: `LATCHKEY_LOG`.
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Migrate the database, then serve HTTP (HTTPS when a certificate is configured).
    Serve(Box<Config>),
    /// Apply migrations and exit.
    Migrate(DatabaseArgs),
    /// Operator API keys.
    #[command(subcommand)]
    OperatorKey(OperatorKeyCmd),
    /// Operator users of the portal's console.
    #[command(subcommand)]
    Operator(OperatorCmd),
    /// Token-signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Run a simulated product: sign in, hold a seat, heartbeat, release on Ctrl-C; or its
    /// offline-license commands.
    Product(crate::product::ProductCmd),
    /// On-premise license server: fingerprint, entitlement import, usage and return files.
    #[command(subcommand)]
    Onprem(OnpremCmd),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
pub enum AuditCmd {
    /// Check every audit chain and signed checkpoint; exits non-zero naming the first event that
    /// was changed, removed or inserted.
    Verify {
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand)]
pub enum OnpremCmd {
    /// Print this server's fingerprint (its key pair is made on first use).
    Fingerprint {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Import an entitlement file from the vendor.
    Import {
        /// The entitlement file (`-` for stdin).
        file: PathBuf,
        /// The vendor's license key (PEM public key or JWKS document).
        #[arg(long, env = "LATCHKEY_LICENSE_PUBLIC_KEY_FILE")]
        license_public_key_file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Write a usage file (per license and day: peak seats, denials, distinct users) for the vendor.
    Usage {
        /// First day, YYYY-MM-DD (default: 30 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// Last day, YYYY-MM-DD (default: today, UTC).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Stop serving a license here and write the return file for the vendor.
    Return {
        #[arg(long)]
        license: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Subcommand)]
pub enum OperatorCmd {
    /// Make an account an operator, creating it (and queueing its password-setup mail) when needed.
    Add(Box<OperatorAdd>),
    /// The account is no longer an operator.
    Remove {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(clap::Args)]
pub struct OperatorAdd {
    #[arg(long)]
    pub email: String,
    /// The service's settings (the setup mail's links use its public URL).
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand)]
pub enum OperatorKeyCmd {
    /// Print a new operator key on stdout, once; only its hash is stored.
    Create {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Revoke an operator key: it stops working at once.
    Revoke {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

#[derive(Subcommand)]
pub enum KeysCmd {
    /// Add a new token-signing key; older keys stay in JWKS until their tokens expire.
    Rotate {
        #[arg(long, value_enum, default_value = "EdDSA")]
        alg: KeyAlg,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the license signing key's public half (PEM and JWK; `--format jwks`: every published key).
    LicensePublic {
        #[arg(long, value_enum, default_value = "pem-and-jwk")]
        format: PublicFormat,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add a new license signing key; older keys stay published while anything they signed is valid.
    LicenseRotate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PublicFormat {
    PemAndJwk,
    Pem,
    Jwk,
    Jwks,
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new("info,sqlx=warn"))
        .unwrap_or_default();
    // Colours only for a person at a terminal: a log file or the journal gets plain text (and the
    // server does not spend its time writing escape codes on every request line).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Connections an administrative command opens: it runs a few statements, one at a time.
const ADMIN_CONNECTIONS: u32 = 2;
/// An administrative command may wait for a busy database (every connection taken, say) longer
/// than a request does.
const ADMIN_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The migrated database, for a command that does not serve.
async fn open_db(args: &DatabaseArgs) -> anyhow::Result<Db> {
    args.validate()?;
    let db = Db::connect(&args.database_url, ADMIN_CONNECTIONS, ADMIN_ACQUIRE_TIMEOUT).await?;
    db.migrate().await?;
    Ok(db)
}

/// The migrated database and the master key (created on first use), for a command that does not serve.
async fn open_store(args: &StoreArgs) -> anyhow::Result<(Db, MasterKey)> {
    args.database.validate()?;
    let master = MasterKey::load_or_create(&args.master_key_file)?;
    Ok((open_db(&args.database).await?, master))
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Serve(mut config) => {
            config.log_format = cli.log_format;
            let app = App::build(*config, clock).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate(db) => {
            open_db(&db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::OperatorKey(OperatorKeyCmd::Create { name, db }) => {
            let db = open_db(&db).await?;
            let made = crate::accounts::operator_keys::create(&db, &audit::Context::system("cli"), &name, clock.now())
                .await
                .map_err(anyhow_of)?;
            println!("{}", made.key);
            eprintln!("Operator key `{}` created. It is shown only now: store it in your secrets manager.", made.name);
            Ok(())
        }
        Command::Operator(OperatorCmd::Add(add)) => {
            let OperatorAdd { email, config } = *add;
            let app = App::build(config, clock.clone()).await?;
            let added = crate::accounts::operators::add(&app.state, &email, clock.now()).await.map_err(anyhow_of)?;
            match (added.account_created, added.newly_operator) {
                (true, _) => {
                    eprintln!("{email} is an operator; its account was made and a password-setup mail is queued.")
                }
                (false, true) => eprintln!("{email} is an operator."),
                (false, false) => eprintln!("{email} was an operator already."),
            }
            eprintln!("At first sign-in the portal has them enrol an authenticator app before the console opens.");
            Ok(())
        }
        Command::Operator(OperatorCmd::Remove { email, db }) => {
            let db = open_db(&db).await?;
            let email = crate::accounts::normalize_email(&email).map_err(anyhow_of)?;
            let user = store::accounts::user_by_email(&db.pool, &email).await?;
            let removed = match user {
                Some(u) => store::mfa::remove_operator(&db.pool, &u.id).await?,
                None => false,
            };
            anyhow::ensure!(removed, "{email} is not an operator");
            eprintln!("{email} is no longer an operator.");
            Ok(())
        }
        Command::Product(args) => crate::product::main(args).await,
        Command::Onprem(cmd) => onprem(cmd, clock.now()).await,
        Command::Keys(KeysCmd::LicensePublic { format, store }) => {
            let (db, master) = open_store(&store).await?;
            license_keys::ensure_key(&db, &master, clock.now()).await?;
            let (_, jwk, pem) = license_keys::current_public(&db).await?;
            match format {
                PublicFormat::PemAndJwk => {
                    print!("{pem}");
                    println!("{jwk}");
                }
                PublicFormat::Pem => print!("{pem}"),
                PublicFormat::Jwk => println!("{jwk}"),
                PublicFormat::Jwks => println!("{}", license_keys::jwks(&db, clock.now()).await?),
            }
            Ok(())
        }
        Command::Keys(KeysCmd::LicenseRotate { store }) => {
            let (db, master) = open_store(&store).await?;
            let kid = license_keys::rotate(&db, &master, clock.now()).await?;
            println!("{kid}");
            eprintln!(
                "New license signing key {kid} signs from now on; publish the new JWKS to products and on-premise servers."
            );
            Ok(())
        }
        Command::OperatorKey(OperatorKeyCmd::Revoke { name, db }) => {
            let db = open_db(&db).await?;
            let revoked =
                crate::accounts::operator_keys::revoke_named(&db, &audit::Context::system("cli"), &name, clock.now())
                    .await
                    .map_err(anyhow_of)?;
            anyhow::ensure!(!revoked.is_empty(), "no active operator key is named `{}`", name.trim());
            eprintln!("Operator key `{}` revoked.", name.trim());
            Ok(())
        }
        Command::Audit(AuditCmd::Verify { db }) => {
            let db = open_db(&db).await?;
            let report = crate::audit::verify::verify_db(&db).await?;
            for c in &report.chains {
                println!("{}", c.line());
            }
            for l in report.stray_lines() {
                println!("{l}");
            }
            if report.chains.is_empty() && report.strays.is_empty() && report.unmarked.is_empty() {
                println!("no audit events yet");
            }
            if report.unsealed > 0 {
                println!("{} events wait to be sealed (a running server seals them within seconds)", report.unsealed);
            }
            anyhow::ensure!(report.ok(), "the audit log was tampered with (see the FAILED lines)");
            Ok(())
        }
        Command::Keys(KeysCmd::Rotate { alg, store }) => {
            let (db, master) = open_store(&store).await?;
            let kid = keys::rotate(&db, &master, alg, &audit::Context::system("cli"), clock.now()).await?;
            println!("{kid}");
            eprintln!("New signing key {kid} ({alg:?}) signs from now on; running servers pick it up within a minute.");
            Ok(())
        }
    }
}

/// Print a file on stdout, or write it to `out`.
fn emit(text: &str, out: Option<&std::path::Path>) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            std::fs::write(p, format!("{text}\n")).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("written to {}", p.display());
        }
        None => println!("{text}"),
    }
    Ok(())
}

fn day(field: &str, s: &str) -> anyhow::Result<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .with_context(|| format!("--{field} takes a date like 2026-11-27"))
}

async fn onprem(cmd: OnpremCmd, now: crate::clock::Millis) -> anyhow::Result<()> {
    use crate::onprem::server;
    let api = |e: crate::error::ApiError| anyhow::anyhow!("{}", e.detail_text());
    match cmd {
        OnpremCmd::Fingerprint { store } => {
            let (db, master) = open_store(&store).await?;
            println!("{}", server::fingerprint(&db, &master, now).await?);
            eprintln!("Give this fingerprint to your vendor; entitlements made from it work only on this server.");
            Ok(())
        }
        OnpremCmd::Import { file, license_public_key_file, store } => {
            let keys = crate::onprem::jws::PublicKeys::from_file(&license_public_key_file)?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let (db, master) = open_store(&store).await?;
            let done = server::import(&db, &master, &keys, &text, &crate::audit::Context::system("cli"), now)
                .await
                .map_err(api)?;
            let c = &done.claims;
            println!(
                "imported: license {} of {} for {}, {} seats until {}",
                c.license_id,
                c.product,
                c.entity,
                c.seats,
                crate::clock::rfc3339(c.exp * 1000)
            );
            Ok(())
        }
        OnpremCmd::Usage { from, to, out, store } => {
            let to = match to {
                Some(s) => day("to", &s)?,
                None => crate::clock::utc_day(now),
            };
            let from = match from {
                Some(s) => day("from", &s)?,
                None => to.checked_sub(time::Duration::days(29)).unwrap_or(to),
            };
            let (db, master) = open_store(&store).await?;
            emit(
                &server::usage_file(&db, &master, from, to, &crate::audit::Context::system("cli"), now).await?,
                out.as_deref(),
            )
        }
        OnpremCmd::Return { license, out, store } => {
            let (db, master) = open_store(&store).await?;
            let file = server::return_file(&db, &master, &license, &crate::audit::Context::system("cli"), now)
                .await
                .map_err(api)?;
            emit(&file, out.as_deref())
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// An API error as a command-line error (its detail).
fn anyhow_of(e: crate::error::ApiError) -> anyhow::Error {
    match e {
        crate::error::ApiError::Problem(p) => anyhow::anyhow!("{}", p.detail),
        crate::error::ApiError::OAuth(o) => anyhow::anyhow!("{}", o.description),
        crate::error::ApiError::Internal(e) => e,
    }
}
