//! The command line: `serve`, `migrate`, `operator-key create`, `keys rotate`, `product`. Each
//! command takes only the settings it uses: `serve` the whole [`Config`], the administrative
//! commands the database (and the master key where they touch sealed keys), `product` its own.

use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::{
    app::App,
    clock::{Clock, SystemClock},
    config::{Config, DatabaseArgs, LogFormat, StoreArgs},
    crypto::{MasterKey, random_secret, secret_hash},
    store::{self, Db},
    tokens::keys::{self, KeyAlg},
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
    /// Token-signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Run a simulated product: sign in, hold a seat, heartbeat, release on Ctrl-C.
    Product(crate::product::ProductArgs),
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
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new("info,sqlx=warn"))
        .unwrap_or_default();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Connections an administrative command opens: it runs a few statements, one at a time.
const ADMIN_CONNECTIONS: u32 = 2;
/// An administrative command may wait for a busy database longer than a request does.
const ADMIN_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
            let name = name.trim();
            anyhow::ensure!(!name.is_empty() && name.len() <= 100, "--name takes 1 to 100 characters");
            let db = open_db(&db).await?;
            let key = random_secret(crate::auth::OPERATOR_KEY_PREFIX);
            store::keys::insert_operator_key(&db.pool, &store::new_id(), name, &secret_hash(&key), clock.now()).await?;
            println!("{key}");
            eprintln!("Operator key `{name}` created. It is shown only now: store it in your secrets manager.");
            Ok(())
        }
        Command::Product(args) => crate::product::run(args).await,
        Command::Keys(KeysCmd::Rotate { alg, store }) => {
            let (db, master) = open_store(&store).await?;
            let kid = keys::rotate(&db, &master, alg, clock.now()).await?;
            println!("{kid}");
            eprintln!("New signing key {kid} ({alg:?}) signs from now on; running servers pick it up within a minute.");
            Ok(())
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
