//! Storage layer: diesel schema, embedded migrations, pooled connections and the queries the
//! gateway needs, over MySQL (diesel-async's pure-Rust `mysql_async` driver) or SQLite (bundled).
//!
//! The backend is picked at run time from the URL scheme, vaultwarden style: one [`schema`], one
//! migration folder per backend with identical names (`migrations/{mysql,sqlite}/<ts>_init`),
//! query code written once and expanded per backend by the `db_run!` macro.
//!
//! Error policy: every failure is a [`StoreError`] whose text is safe to log — it never holds a
//! MySQL password, a personal value or a conflicting key's value — and callers map the variant
//! (not the text) to their own error codes: [`StoreError::Unavailable`] means "retry / not ready",
//! the others are bugs or operator mistakes.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::SqliteConnection;

mod audit_chain;
mod audit_sql;
mod audit_writer;
mod error;
mod migrate;
pub mod models;
mod pool;
mod readers;
pub mod schema;

pub use audit_chain::{checked_frontier, ChainSetup, CheckpointSignFn, Witness};
pub use audit_log::{NewPrune, StoredCheckpoint, StoredPrune};
pub use error::{
    ConfigError, Conflict, DriverError, MigrationError, StatementError, StoreError, Unavailable,
};
pub use models::{
    Account, AuditEvidence, AuditRecord, BindingSession, ChainPosition, NewAccount, NewAudit,
    RowRefusal, SignedEvidence, UpsertSummary,
};

use pool::{Pools, Target};

/// Runs `$body` with `$conn` bound to `&mut` the backend's concrete connection type, checked out
/// of the pool under the store's acquire deadline. The body is type-checked once per backend, so
/// query code is written once (the pattern of vaultwarden's `db_run!`).
macro_rules! db_run {
    ($store:expr, $conn:ident => $body:expr) => {{
        let inner = &$store.inner;
        match &inner.pools {
            super::pool::Pools::Mysql(pool, _) => {
                let mut obj = super::pool::acquire_mysql(
                    pool,
                    inner.acquire_timeout,
                    inner.password.as_ref(),
                )
                .await?;
                let $conn: &mut diesel_async::AsyncMysqlConnection = &mut *obj;
                let res: Result<_, super::StoreError> = $body;
                if res.is_err() {
                    // The link may be broken or mid-statement: never hand it out again.
                    drop(diesel_async::pooled_connection::deadpool::Object::take(obj));
                }
                res.map_err(|e| inner.scrub(e))
            }
            super::pool::Pools::Sqlite(pool) => {
                let mut obj = super::pool::acquire_sqlite(pool, inner.acquire_timeout).await?;
                let $conn: &mut super::pool::SqliteConn = &mut *obj;
                let res: Result<_, super::StoreError> = $body;
                res
            }
        }
    }};
}

mod audit_log;
mod grants;
mod retry;
mod statements;
mod upsert;

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL or MariaDB through diesel-async's pure-Rust driver.
    Mysql,
    /// Bundled SQLite (file or in-memory).
    Sqlite,
}

impl Backend {
    /// `mysql` or `sqlite`, as in logs and `gateway_build_info{backend}`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mysql => "mysql",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Tuning for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size (ignored for `sqlite::memory:`, which uses one pooled connection: shared-cache
    /// tables fail with SQLITE_LOCKED instead of waiting, so in-memory access is serialised).
    pub max_connections: usize,
    /// Deadline for checking a connection out of the pool, including creating it.
    pub acquire_timeout: Duration,
    /// Create a missing SQLite file (its directory must exist). Off by default so a typo in the
    /// path fails instead of silently starting on an empty database.
    pub create_if_missing: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(2),
            create_if_missing: false,
        }
    }
}

/// Handle to the database: cheap to clone, shares one pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pools: Pools,
    backend: Backend,
    acquire_timeout: Duration,
    /// Printable target: the MySQL URL with `***` for the password, or the SQLite path.
    display: String,
    /// Kept only to mask it in driver messages when they are displayed.
    password: Option<Arc<error::Password>>,
    /// Keeps a shared-cache in-memory database alive for the store's lifetime.
    _keepalive: Option<Arc<Mutex<SqliteConnection>>>,
    /// Group commit of audit rows (file SQLite and MySQL; `None` for in-memory SQLite, whose
    /// shared-cache tables cannot take a second writer, so its rows go through the pool).
    audit: Option<audit_writer::AuditWriter>,
    /// Inline point reads (SQLite file only; see `readers`).
    readers: Option<readers::SqliteReaders>,
}

impl Inner {
    /// `e` with this store's MySQL password masked wherever a driver's text is displayed.
    fn scrub(&self, e: StoreError) -> StoreError {
        e.masking(self.password.as_ref())
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("target", &self.inner.display)
            .field("acquire_timeout", &self.inner.acquire_timeout)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a pool for `url`; the URL scheme picks the backend: `mysql://user:pass@host:port/db`,
    /// `sqlite://relative/or/absolute/path.db` (`sqlite:///abs/path.db` for an absolute path), or
    /// `sqlite::memory:`.
    ///
    /// A SQLite file that does not exist is refused unless `create_if_missing` (a typo never
    /// silently creates an empty database); its parent directory must exist. An unknown scheme is
    /// a [`StoreError::Config`] naming the scheme. One connection is checked out before returning,
    /// so an unreachable MySQL fails here with [`StoreError::Unavailable`] within
    /// `acquire_timeout`. The MySQL password never appears in an error or log line.
    pub async fn open(url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        Self::open_with_ca(url, None, opts).await
    }

    /// [`Store::open`], verifying a MySQL server's TLS certificate against the PEM CA in
    /// `ca_file` (the `database.ca_file` setting). TLS itself is configured in the URL with the
    /// driver's parameters (`require_ssl=true`, `verify_ca`, `verify_identity`, `built_in_roots`);
    /// a CA file turns it on and then only that CA is trusted unless the URL says
    /// `built_in_roots=true`. The file is read once with the key ring's public-file rules
    /// (no symbolic link, owner, not group- or world-writable). A server whose certificate does
    /// not chain to the CA is refused here, with an error naming `database.ca_file`. A CA file
    /// with a SQLite URL is a [`StoreError::Config`].
    pub async fn open_with_ca(
        url: &str,
        ca_file: Option<&std::path::Path>,
        opts: StoreOptions,
    ) -> Result<Store, StoreError> {
        let target = pool::parse_target(url)?;
        if let (Some(path), Target::SqliteFile { .. } | Target::SqliteMemory { .. }) =
            (ca_file, &target)
        {
            return Err(ConfigError::CaFileWithSqlite(path.to_owned()).into());
        }
        let inner = match target {
            Target::Mysql {
                url,
                redacted,
                password,
            } => {
                let connect = Arc::new(pool::MysqlConnect::new(
                    &url,
                    &redacted,
                    password.as_ref(),
                    ca_file,
                )?);
                let pools = pool::mysql_pool(connect.clone(), opts.max_connections)?;
                let audit = audit_writer::AuditWriter::start(audit_writer::WriterTarget::Mysql {
                    connect,
                    deadline: opts.acquire_timeout,
                    password: password.clone(),
                })?;
                Inner {
                    pools,
                    backend: Backend::Mysql,
                    acquire_timeout: opts.acquire_timeout,
                    display: redacted,
                    password,
                    _keepalive: None,
                    audit: Some(audit),
                    readers: None,
                }
            }
            Target::SqliteFile { path } => {
                pool::check_sqlite_path(&path, opts.create_if_missing)?;
                let Some(conn_str) = path.to_str() else {
                    return Err(ConfigError::SqlitePathNotUtf8.into());
                };
                let audit = audit_writer::AuditWriter::start(audit_writer::WriterTarget::Sqlite {
                    path: conn_str.to_owned(),
                    pragmas: pool::SQLITE_PRAGMAS,
                })?;
                Inner {
                    pools: Pools::Sqlite(pool::sqlite_pool(conn_str, opts.max_connections)?),
                    backend: Backend::Sqlite,
                    acquire_timeout: opts.acquire_timeout,
                    display: format!("sqlite://{conn_str}"),
                    password: None,
                    _keepalive: None,
                    audit: Some(audit),
                    readers: Some(readers::SqliteReaders::new(
                        conn_str.to_owned(),
                        pool::SQLITE_PRAGMAS,
                    )),
                }
            }
            Target::SqliteMemory { uri } => {
                let keepalive = pool::memory_keepalive(&uri).await?;
                Inner {
                    // Shared-cache tables use table-level locks that fail with SQLITE_LOCKED at
                    // once (busy_timeout does not apply), so in-memory access is serialised.
                    pools: Pools::Sqlite(pool::sqlite_pool(&uri, 1)?),
                    backend: Backend::Sqlite,
                    acquire_timeout: opts.acquire_timeout,
                    display: "sqlite::memory:".to_owned(),
                    password: None,
                    _keepalive: Some(keepalive),
                    audit: None,
                    readers: None,
                }
            }
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.ping().await?;
        tracing::info!(backend = store.inner.backend.name(), database = %store.inner.display, "database pool ready");
        Ok(store)
    }

    /// Records the row count of every audit batch the group-commit writer writes in `h`
    /// (the `gateway_audit_batch_rows` histogram). The first call wins; in-memory SQLite, which
    /// writes row by row, records nothing.
    pub fn observe_audit_batches(&self, h: prometheus::Histogram) {
        if let Some(w) = &self.inner.audit {
            w.observe(h);
        }
    }

    /// Counts failed appends to the audit witness file in `c`
    /// (`gateway_audit_witness_failures_total`); nothing when the rows are not chained (call it
    /// after [`Store::chain_audit`]). The first call wins.
    pub fn count_witness_failures(&self, c: prometheus::IntCounter) {
        if let Some(setup) = self.inner.audit.as_ref().and_then(|w| w.chain_setup()) {
            setup.witness.count_failures(c);
        }
    }

    /// Counts lost syslog copies of witness lines in `c`
    /// (`gateway_audit_witness_syslog_failures_total`); nothing without a chain or a copy.
    pub fn count_witness_syslog_failures(&self, c: prometheus::IntCounter) {
        if let Some(setup) = self.inner.audit.as_ref().and_then(|w| w.chain_setup()) {
            setup.witness.count_syslog_failures(c);
        }
    }

    /// Counts checkpoints whose signature failed in `c`
    /// (`gateway_audit_checkpoint_failures_total`); nothing without a chain. The first call wins.
    pub fn count_checkpoint_failures(&self, c: prometheus::IntCounter) {
        if let Some(setup) = self.inner.audit.as_ref().and_then(|w| w.chain_setup()) {
            let _ = setup.sign_failures.set(c);
        }
    }

    /// Chains every audit row written from now on into `setup`'s instance log (docs/audit.md).
    /// Call it once, before the first audit row. Returns false when this store has no
    /// group-commit writer (in-memory SQLite, `database.group_commit = false`): its rows stay
    /// unchained.
    pub fn chain_audit(&self, setup: ChainSetup) -> bool {
        match &self.inner.audit {
            Some(w) => w.set_chain(setup),
            None => false,
        }
    }

    /// MySQL: check a pooled connection with `SELECT 1` before handing it out when it has been
    /// idle for at least `idle` (`database.idle_check_ms`; default 1 s). `Duration::ZERO` checks
    /// at every checkout, as deadpool does by default. A connection whose statement failed is
    /// dropped whatever this says. No effect on SQLite.
    pub fn set_idle_check(&self, idle: Duration) {
        if let Pools::Mysql(_, idle_check_ms) = &self.inner.pools {
            idle_check_ms.store(
                u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// This store with every statement through the pool, as before group commit: audit rows one
    /// statement each, SQLite lookups on the blocking pool. The baseline the measurements in
    /// `docs/performance.md` compare against; takes effect only on a store not yet cloned.
    pub fn without_group_commit(mut self) -> Store {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.audit = None;
            inner.readers = None;
        }
        self
    }

    /// The backend chosen from the URL.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The embedded migrations of this backend not yet applied, oldest first, found with one
    /// `SELECT` and no DDL (for `database.migrate_on_start = false`).
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        migrate::pending(self)
            .await
            .map_err(|e| self.inner.scrub(e))
    }

    /// Applies the embedded migrations of this backend (`migrations/mysql` or
    /// `migrations/sqlite`) that are not yet applied; returns the versions applied, oldest first
    /// (empty when the schema is current). On MySQL a named lock (`GET_LOCK`) keeps several
    /// gateway instances from migrating at once.
    pub async fn run_migrations(&self) -> Result<Vec<String>, StoreError> {
        migrate::run(self).await.map_err(|e| self.inner.scrub(e))
    }

    /// `SELECT 1` through the pool; the whole check is bounded by `acquire_timeout`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let t = self.inner.acquire_timeout;
        let what = match self.inner.backend {
            Backend::Mysql => "MySQL",
            Backend::Sqlite => "SQLite",
        };
        match tokio::time::timeout(t, self.ping_inner()).await {
            Ok(r) => r,
            Err(_) => Err(pool::deadline(what, t)),
        }
    }
}

/// Checks a database URL the way [`Store::open`] reads it, without connecting: the backend
/// (`mysql` or `sqlite`) and the URL with any password replaced, for `serve --check-config`.
pub fn check_url(url: &str) -> Result<(&'static str, String), StoreError> {
    Ok(match pool::parse_target(url)? {
        Target::Mysql { redacted, .. } => ("mysql", redacted),
        Target::SqliteFile { path } => ("sqlite", format!("sqlite://{}", path.display())),
        Target::SqliteMemory { .. } => ("sqlite", "sqlite::memory:".into()),
    })
}
