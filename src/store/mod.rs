//! All SQL lives under `store/`, one file per aggregate. One set of statements serves SQLite and
//! PostgreSQL through sqlx's `Any` driver (`$1` placeholders, BIGINT unix-millisecond times, text
//! UUIDs, 0/1 flags). Migrations are per dialect, same numbers, embedded in the binary.

pub mod accounts;
pub mod audit;
pub mod entities;
pub mod heartbeats;
pub mod keys;
pub mod leases;
pub mod licenses;
pub mod mfa;
pub mod onprem;
pub mod outbox;
pub mod scim;
pub mod sessions;
pub mod slots;
pub mod sso;
pub mod throttle;
pub mod tokens;

use std::time::Duration;

use anyhow::Context;
use sqlx::{Any, AnyPool, Transaction, any::AnyPoolOptions, migrate::Migrator};

pub type Tx = Transaction<'static, Any>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
}

/// Migrations are embedded at build time, one directory per dialect with the same numbers.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long the service waits for its database at start.
const STARTUP_WAIT: Duration = Duration::from_secs(30);

impl Db {
    /// Open the pool. `acquire_timeout` bounds how long a caller waits for a connection, whether
    /// all are busy or none can be opened (the database restarting): past it the caller gets
    /// `PoolTimedOut`, which the API answers 503 with Retry-After.
    pub async fn connect(url: &str, max_connections: u32, acquire_timeout: Duration) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)");
        };
        let mut opts = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(600)));
        if backend == Backend::Sqlite {
            if let Some(dir) = sqlite_path(url).and_then(|p| p.parent().map(|d| d.to_path_buf()))
                && !dir.as_os_str().is_empty()
            {
                crate::crypto::create_private_dir(&dir)?;
            }
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the single writer; busy_timeout makes writers queue
                    // instead of failing; foreign keys are off by default in SQLite.
                    sqlx::raw_sql(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                         PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                    )
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            });
        }
        if backend == Backend::Postgres {
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // No JIT compilation: it starts once a query's estimated cost passes
                    // jit_above_cost and then costs 100 to 400 ms by itself, far more than these
                    // short queries take (the portal's users page of a 10,000-user entity took
                    // 450 ms, 380 of them compiling). A server without JIT (before PostgreSQL 11)
                    // refuses the setting: nothing to turn off there.
                    if let Err(e) = sqlx::raw_sql("SET jit = off").execute(&mut *conn).await {
                        tracing::debug!(error = %e, "SET jit = off");
                    }
                    Ok(())
                })
            });
        }
        let pool =
            opts.connect_lazy(url).with_context(|| format!("database URL {}", crate::config::redact_url(url)))?;
        // At start the database may still be starting too (or busy): wait for it longer than a
        // request would, then fail with the reason.
        let deadline = std::time::Instant::now() + STARTUP_WAIT;
        loop {
            match pool.acquire().await {
                Ok(_) => break,
                Err(e) if is_transient(&e) && std::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "waiting for the database");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("connecting to {}", crate::config::redact_url(url)));
                }
            }
        }
        if backend == Backend::Sqlite
            && let Some(path) = sqlite_path(url)
        {
            restrict_permissions(&path);
        }
        Ok(Db { pool, backend })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await.context("applying migrations")?;
        Ok(())
    }

    /// Keep the query planner's statistics current after the tables change in size (the portal's
    /// pages of a license with 10,000 assignees walk the email index and stop after a page only
    /// when the planner knows the sizes; without statistics it sorts every assignee). PostgreSQL's
    /// autovacuum analyses on its own. SQLite analyses only when asked: `PRAGMA optimize` runs
    /// ANALYZE on the tables whose size changed much since the last time (`0x10002`: every table,
    /// not only those this connection used), reading at most `analysis_limit` rows of each index.
    pub async fn optimize(&self) -> sqlx::Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::raw_sql("PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002;").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// A transaction that will write. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`),
    /// so two writers queue on busy_timeout instead of failing to upgrade a read lock.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }
}

/// The database holds hashes and emails: readable by its owner only (and its WAL files with it).
fn restrict_permissions(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(m) = std::fs::metadata(&p)
                && m.permissions().mode() & 0o077 != 0
            {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
}

fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" { None } else { Some(path.into()) }
}

/// Errors that say nothing about the request, only that the database could not serve it now:
/// every connection busy or none can be opened (the pool's wait ran out), a connection that
/// broke (reset, refused, closed mid-query), a server shutting down or starting up, too many
/// connections, a deadlock or serialization failure, SQLite busy or locked past its timeout.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // The PostgreSQL driver reports a connection that closed mid-message as a protocol error.
        sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(d) => {
            let code = d.code().unwrap_or_default();
            if d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
                // SQLSTATE classes: connection exception, insufficient resources, operator
                // intervention (shutdown, crash, starting up, query cancelled); serialization
                // failure and deadlock.
                ["08", "53", "57"].iter().any(|class| code.starts_with(class)) || code == "40001" || code == "40P01"
            } else {
                // SQLite result codes, the primary code in the low byte: BUSY, LOCKED.
                code.parse::<i64>().is_ok_and(|n| matches!(n & 0xff, 5 | 6))
            }
        }
        _ => false,
    }
}

/// True when the error is a unique-constraint violation (mapped to a client error at the call site).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Where a page of a list ordered by a unique key starts (keyset paging: a deep page costs what the
/// first does, no rows are counted off to reach it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyset {
    /// The first rows.
    First,
    /// The rows after this key.
    After(String),
    /// The rows before this key (read backwards, then turned around).
    Before(String),
    /// The last rows (read backwards, then turned around).
    Last,
}

impl Keyset {
    /// Read from the end: the rows come newest-key first and must be reversed.
    pub fn backwards(&self) -> bool {
        matches!(self, Keyset::Before(_) | Keyset::Last)
    }

    /// The key this page starts after or ends before, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Keyset::After(k) | Keyset::Before(k) => Some(k),
            Keyset::First | Keyset::Last => None,
        }
    }

    /// `AND <key> > $n` (or `<`), empty without a key; and the ORDER BY direction.
    pub fn sql(&self, key: &str, n: usize) -> (String, &'static str) {
        match self {
            Keyset::First => (String::new(), "ASC"),
            Keyset::Last => (String::new(), "DESC"),
            Keyset::After(_) => (format!(" AND {key} > ${n}"), "ASC"),
            Keyset::Before(_) => (format!(" AND {key} < ${n}"), "DESC"),
        }
    }
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(
            sqlite_path("sqlite://./latchkey-data/latchkey.db?mode=rwc"),
            Some("./latchkey-data/latchkey.db".into())
        );
        assert_eq!(sqlite_path("sqlite:/tmp/x.db"), Some("/tmp/x.db".into()));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
