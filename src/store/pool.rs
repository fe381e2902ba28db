//! Connection URLs, pools and the one deadline every connection checkout obeys.
//!
//! deadpool's own timeouts need its `rt_tokio_1` feature, which diesel-async does not enable, so
//! the whole checkout (wait for a free slot + create + the idle check) runs under one
//! `tokio::time::timeout(acquire_timeout)` instead: a down or black-holed MySQL gives
//! [`StoreError::Unavailable`] within the deadline rather than a hang.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::result::ConnectionError;
use diesel::{Connection, SqliteConnection};
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};

use super::error::{ConfigError, DriverError, Password, Unavailable};
use super::StoreError;

/// The async SQLite connection type: diesel's sync connection run on tokio's blocking pool.
pub(crate) type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Per-connection SQLite settings. `busy_timeout` first so the WAL switch itself waits on locks.
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                              PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// The default of `database.idle_check_ms`: a pooled MySQL connection idle for this long is
/// checked with `SELECT 1` before it is handed out; one used more recently is handed out as it is
/// (a failure then drops it, see `db_run!`).
pub(crate) const MYSQL_VERIFY_IDLE_DEFAULT: Duration = Duration::from_secs(1);

/// What `Store::open` understood of its URL.
pub(crate) enum Target {
    /// `mysql://…` — kept verbatim for the driver; `redacted` is safe to print.
    Mysql {
        url: String,
        redacted: String,
        password: Option<Arc<Password>>,
    },
    /// `sqlite://path`.
    SqliteFile { path: PathBuf },
    /// `sqlite::memory:` — a fresh, uniquely named shared-cache database.
    SqliteMemory { uri: String },
}

/// Parses the store URL; the scheme picks the backend.
pub(crate) fn parse_target(url: &str) -> Result<Target, StoreError> {
    let url = url.trim();
    if url == "sqlite::memory:" || url == "sqlite://:memory:" {
        return Ok(Target::SqliteMemory {
            uri: unique_memory_uri(),
        });
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        let shown: String = url
            .chars()
            .take_while(|c| *c != ':' && *c != '@')
            .take(16)
            .collect();
        return Err(ConfigError::NoScheme { shown }.into());
    };
    match scheme.to_ascii_lowercase().as_str() {
        "mysql" => {
            let (redacted, password) = redact_mysql(scheme, rest);
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if host.is_empty() {
                return Err(ConfigError::MysqlNoHost(redacted).into());
            }
            let db = rest
                .split_once('/')
                .map(|(_, p)| p.split('?').next().unwrap_or(""));
            if db.is_none_or(str::is_empty) {
                return Err(ConfigError::MysqlNoDatabase(redacted).into());
            }
            Ok(Target::Mysql {
                url: url.to_owned(),
                redacted,
                password: password.map(|p| Arc::new(Password::new(&p))),
            })
        }
        "sqlite" => {
            if rest.is_empty() {
                return Err(ConfigError::SqliteEmptyPath.into());
            }
            if rest.starts_with("file:") || rest.contains('?') {
                return Err(ConfigError::SqliteNotAPlainPath(rest.to_owned()).into());
            }
            Ok(Target::SqliteFile {
                path: PathBuf::from(rest),
            })
        }
        other => {
            let shown: String = other.chars().take(16).collect();
            Err(ConfigError::UnsupportedScheme(shown).into())
        }
    }
}

/// `mysql://user:secret@host/db?x` → (`mysql://user:***@host/db`, Some("secret")).
/// The query string is dropped from the printable form; only the password is kept for scrubbing.
pub(crate) fn redact_mysql(scheme: &str, rest: &str) -> (String, Option<String>) {
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.split('?').next().unwrap_or("");
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
            match userinfo.split_once(':') {
                Some((user, pw)) if !pw.is_empty() => (
                    format!("{scheme}://{user}:***@{host}{path}"),
                    Some(pw.to_owned()),
                ),
                _ => (format!("{scheme}://{userinfo}@{host}{path}"), None),
            }
        }
        None => (format!("{scheme}://{authority}{path}"), None),
    }
}

fn unique_memory_uri() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "file:pension-gateway-mem-{}-{n}-{nanos}?mode=memory&cache=shared",
        std::process::id()
    )
}

/// Refuses a missing SQLite file unless `create_if_missing` (vaultwarden: a typo never silently
/// creates an empty database); the parent directory must always exist.
pub(crate) fn check_sqlite_path(path: &Path, create_if_missing: bool) -> Result<(), StoreError> {
    if path.is_dir() {
        return Err(ConfigError::SqliteIsADirectory(path.to_owned()).into());
    }
    if path.exists() {
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(ConfigError::SqliteNoDirectory {
            dir: parent.to_owned(),
            path: path.to_owned(),
        }
        .into());
    }
    if !create_if_missing {
        return Err(ConfigError::SqliteMissing(path.to_owned()).into());
    }
    Ok(())
}

/// The two pools; the enum is what [`db_run!`](super::db_run) matches on.
#[derive(Clone)]
pub(crate) enum Pools {
    /// The pool and its idle-check threshold in milliseconds (`Store::set_idle_check`), read by
    /// the pool's pre-recycle hook at every checkout.
    Mysql(Pool<AsyncMysqlConnection>, Arc<AtomicU64>),
    Sqlite(Pool<SqliteConn>),
}

/// How every MySQL connection is made: the driver options parsed once from the URL, with the
/// CA of `database.ca_file` (if any) applied on top.
///
/// TLS follows the driver's URL parameters: `require_ssl=true` turns it on, `verify_ca=false`
/// and `verify_identity=false` weaken verification (a warning is logged at start), and
/// `built_in_roots` chooses whether the built-in web PKI roots are trusted. A CA file turns TLS
/// on by itself, and then the server is verified against that CA only (unless the URL says
/// `built_in_roots=true`); a URL that says `require_ssl=false` beside a CA file is refused as
/// contradictory.
pub(crate) struct MysqlConnect {
    opts: mysql_async::Opts,
    /// Where the trusted roots come from, for the error when the handshake is refused.
    roots: Option<String>,
}

/// The value of URL query parameter `key` as a boolean, if the URL sets it.
fn url_flag(url: &str, key: &str) -> Option<bool> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .rfind(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

impl MysqlConnect {
    /// Parses `url` (already checked by [`parse_target`]) and reads `ca_file` once with the
    /// public-file rules of the key ring.
    pub(crate) fn new(
        url: &str,
        redacted: &str,
        password: Option<&Arc<Password>>,
        ca_file: Option<&Path>,
    ) -> Result<Self, StoreError> {
        let opts = mysql_async::Opts::from_url(url).map_err(|e| {
            StoreError::from(ConfigError::MysqlUrl {
                url: redacted.to_owned(),
                source: DriverError::new(e),
            })
            .masking(password)
        })?;
        let mut builder = mysql_async::OptsBuilder::from_opts(opts.clone())
            // diesel-async caches statements itself and relies on found-rows semantics; the
            // session setup statements run in `AsyncMysqlConnection::try_from`.
            .stmt_cache_size(0)
            .client_found_rows(true)
            // Server messages in English whatever the server's default: diesel-async keeps only
            // the text of a server error, and the lock conflicts to retry (1213, 1205) are
            // recognised by it (`Conflict::from_server_message`).
            .init(vec!["SET SESSION lc_messages = 'en_US'"]);
        let mut ssl = opts.ssl_opts().cloned();
        let mut roots = ssl
            .as_ref()
            .filter(|s| !s.disable_built_in_roots())
            .map(|_| {
                "the built-in web PKI roots (set database.ca_file to trust a private CA)".to_owned()
            });
        if let Some(path) = ca_file {
            if url_flag(url, "require_ssl") == Some(false) {
                return Err(ConfigError::CaFileWithoutTls(path.to_owned()).into());
            }
            let pem = crate::tls::read_ca_file(path, crate::tls::unix_now())
                .map_err(|e| ConfigError::CaFile(Arc::new(e)))?
                .pem;
            let mut with_ca = ssl
                .take()
                .unwrap_or_default()
                .with_root_certs(vec![pem.into()]);
            if url_flag(url, "built_in_roots") != Some(true) {
                with_ca = with_ca.with_disable_built_in_roots(true);
            }
            ssl = Some(with_ca);
            roots = Some(format!("the CA in database.ca_file `{}`", path.display()));
        }
        if let Some(s) = &ssl {
            if s.accept_invalid_certs() {
                tracing::warn!(
                    database = redacted,
                    "database URL sets verify_ca=false: the MySQL server's certificate is NOT verified"
                );
            } else if s.skip_domain_validation() {
                tracing::warn!(
                    database = redacted,
                    "database URL sets verify_identity=false: the MySQL server's certificate is not checked against the host name"
                );
            }
        } else if !is_loopback(opts.ip_or_hostname()) {
            tracing::warn!(
                database = redacted,
                "MySQL connection is not encrypted; add require_ssl=true to the URL (and database.ca_file)"
            );
        }
        builder = builder.ssl_opts(ssl);
        Ok(MysqlConnect {
            opts: builder.into(),
            roots,
        })
    }

    /// Whether connections use TLS.
    pub(crate) fn tls(&self) -> bool {
        self.opts.ssl_opts().is_some()
    }

    /// Opens one connection and runs diesel-async's session setup on it.
    pub(crate) async fn establish(&self) -> diesel::ConnectionResult<AsyncMysqlConnection> {
        if self.tls() {
            crate::tls::ensure_default_provider();
        }
        let conn = mysql_async::Conn::new(self.opts.clone())
            .await
            .map_err(|e| ConnectionError::BadConnection(self.explain(&e)))?;
        AsyncMysqlConnection::try_from(conn).await
    }

    /// The driver's message, plus what to check when the TLS handshake was refused.
    fn explain(&self, e: &mysql_async::Error) -> String {
        let msg = e.to_string();
        let lower = msg.to_ascii_lowercase();
        let tls_failure = matches!(e, mysql_async::Error::Io(_))
            && (lower.contains("certificate") || lower.contains("tls"));
        match (&self.roots, tls_failure) {
            (Some(roots), true) => format!(
                "TLS handshake refused ({msg}): the server's certificate must chain to {roots} \
                 and name the host of the database URL"
            ),
            (None, true) => format!("TLS handshake refused ({msg})"),
            _ => msg,
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn mysql_pool(connect: Arc<MysqlConnect>, max: usize) -> Result<Pools, StoreError> {
    let idle_check_ms = Arc::new(AtomicU64::new(MYSQL_VERIFY_IDLE_DEFAULT.as_millis() as u64));
    let threshold = Arc::clone(&idle_check_ms);
    let mut cfg = ManagerConfig::<AsyncMysqlConnection>::default();
    // No `SELECT 1` round trip on every checkout (it was a third of the statements the server
    // ran per request): a connection is verified only when it has been idle for
    // `idle_check_ms` (the pre-recycle hook below), and one whose statement failed is
    // dropped instead of returned (`db_run!`), so a link broken by a server restart or a network
    // cut is not handed out again.
    cfg.recycling_method = RecyclingMethod::Fast;
    cfg.custom_setup = Box::new(move |_url| {
        let connect = Arc::clone(&connect);
        Box::pin(async move { connect.establish().await })
    });
    // The URL given to the manager is unused: `custom_setup` connects with the parsed options.
    let mgr = AsyncDieselConnectionManager::new_with_config("mysql://", cfg);
    Pool::builder(mgr)
        .max_size(max.max(1))
        .pre_recycle(Hook::async_fn(
            move |conn: &mut AsyncMysqlConnection, metrics| {
                let idle = Duration::from_millis(threshold.load(Ordering::Relaxed));
                Box::pin(async move {
                    if metrics.last_used() < idle {
                        return Ok(());
                    }
                    // Text protocol, one round trip; a failure discards the connection and the pool
                    // moves on to the next one (or opens a new one).
                    conn.batch_execute("SELECT 1").await.map_err(|e| {
                        HookError::message(format!("idle MySQL connection failed its check: {e}"))
                    })
                })
            },
        ))
        .build()
        .map_err(|e| {
            ConfigError::PoolBuild {
                backend: "MySQL",
                source: DriverError::new(e),
            }
            .into()
        })
        .map(|pool| Pools::Mysql(pool, idle_check_ms))
}

type SetupFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = diesel::ConnectionResult<SqliteConn>> + Send + 'a>,
>;

/// Opens one pooled SQLite connection and applies the per-connection pragmas.
fn establish_sqlite(url: &str) -> SetupFuture<'_> {
    Box::pin(async move {
        let mut conn = SqliteConn::establish(url).await?;
        conn.batch_execute(SQLITE_PRAGMAS)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
        Ok(conn)
    })
}

pub(crate) fn sqlite_pool(conn_str: &str, max: usize) -> Result<Pool<SqliteConn>, StoreError> {
    let mut cfg = ManagerConfig::<SqliteConn>::default();
    // A SQLite connection is a file handle, not a link that can drop: no `SELECT 1` (and its
    // blocking-pool hop) on every checkout; a connection left in a broken transaction state is
    // still discarded (`is_broken`).
    cfg.recycling_method = RecyclingMethod::Fast;
    cfg.custom_setup = Box::new(establish_sqlite);
    let mgr = AsyncDieselConnectionManager::new_with_config(conn_str, cfg);
    Pool::builder(mgr)
        .max_size(max.max(1))
        .build()
        .map_err(|e| {
            ConfigError::PoolBuild {
                backend: "SQLite",
                source: DriverError::new(e),
            }
            .into()
        })
}

/// Opens the connection that keeps a shared-cache in-memory database alive: SQLite frees such a
/// database when its last connection closes, and pooled connections come and go.
pub(crate) async fn memory_keepalive(
    uri: &str,
) -> Result<Arc<Mutex<SqliteConnection>>, StoreError> {
    let uri = uri.to_owned();
    let conn = tokio::task::spawn_blocking(move || SqliteConnection::establish(&uri))
        .await
        .map_err(|e| Unavailable::Task {
            what: "the SQLite open task",
            source: DriverError::new(e),
        })?
        .map_err(|e| Unavailable::Open {
            what: "cannot open in-memory SQLite database",
            source: DriverError::new(e),
        })?;
    Ok(Arc::new(Mutex::new(conn)))
}

fn map_pool_error(
    e: PoolError,
    what: &'static str,
    password: Option<&Arc<Password>>,
) -> StoreError {
    use diesel_async::pooled_connection::deadpool::PoolError as P;
    use diesel_async::pooled_connection::PoolError as Backend;
    let err: StoreError = match e {
        P::Backend(Backend::ConnectionError(ConnectionError::InvalidConnectionUrl(_))) => {
            return ConfigError::InvalidUrl(what).into();
        }
        P::Backend(Backend::ConnectionError(c)) => Unavailable::Connect {
            backend: what,
            source: DriverError::new(c),
        }
        .into(),
        P::Backend(Backend::QueryError(q)) => Unavailable::HealthCheck {
            backend: what,
            source: DriverError::new(q),
        }
        .into(),
        P::Closed => Unavailable::PoolClosed(what).into(),
        other => Unavailable::Pool {
            backend: what,
            source: DriverError::new(other),
        }
        .into(),
    };
    let err = err.masking(password);
    tracing::warn!(backend = what, error = %err, "database connection unavailable");
    err
}

/// Checks a connection out of the pool within `timeout` (wait + create + recycle together).
pub(crate) async fn acquire_mysql(
    pool: &Pool<AsyncMysqlConnection>,
    timeout: Duration,
    password: Option<&Arc<Password>>,
) -> Result<Object<AsyncMysqlConnection>, StoreError> {
    match tokio::time::timeout(timeout, pool.get()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(map_pool_error(e, "MySQL", password)),
        Err(_) => Err(deadline("MySQL", timeout)),
    }
}

/// Checks a connection out of the pool within `timeout` (wait + create + recycle together).
pub(crate) async fn acquire_sqlite(
    pool: &Pool<SqliteConn>,
    timeout: Duration,
) -> Result<Object<SqliteConn>, StoreError> {
    match tokio::time::timeout(timeout, pool.get()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(map_pool_error(e, "SQLite", None)),
        Err(_) => Err(deadline("SQLite", timeout)),
    }
}

pub(crate) fn deadline(what: &'static str, timeout: Duration) -> StoreError {
    let err = Unavailable::Deadline {
        backend: what,
        timeout,
    };
    tracing::warn!(backend = what, error = %err, "database connection unavailable");
    err.into()
}
