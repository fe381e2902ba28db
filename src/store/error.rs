//! The storage layer's one error type, [`StoreError`]: a variant per way a caller reacts, each
//! with a typed cause. Callers branch on the variant, never on the text:
//! [`StoreError::Unavailable`] is "retry later / not ready", [`StoreError::Conflict`] is "run
//! the transaction again" (see `retry`), the others are bugs or operator mistakes.
//!
//! The text is safe to log: a driver's own error is kept as it came ([`DriverError`]) and the
//! MySQL password is masked when it is *displayed*, so nothing has to be turned into a string
//! early to be cleaned; a unique violation names the constraint, never the conflicting value.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use zeroize::Zeroizing;

/// Errors of the storage layer. Messages are safe to log (no passwords, no personal data).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Bad URL, missing SQLite file, unsupported scheme: an operator must fix the configuration.
    #[error("database configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The database cannot be reached right now (pool timeout, connection refused, lost link).
    #[error("database unavailable: {0}")]
    Unavailable(#[from] Unavailable),
    /// A write transaction lost a lock conflict and was rolled back; running it again from the
    /// start is safe.
    #[error("database lock conflict: {0}")]
    Conflict(#[from] Conflict),
    /// A statement failed (constraint, type mismatch, corrupt row).
    #[error("database statement failed: {0}")]
    Statement(#[from] StatementError),
    /// Applying the embedded migrations failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] MigrationError),
}

/// What is wrong with the database configuration.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    /// The URL has no `scheme://` (`shown`: its first characters, never a password).
    #[error(
        "database URL `{shown}…` has no scheme; use mysql://user:pass@host:port/db, \
         sqlite://path/to/file.db or sqlite::memory:"
    )]
    NoScheme {
        /// The URL's first characters, up to the first `:` or `@`.
        shown: String,
    },
    /// A scheme other than `mysql` and `sqlite`.
    #[error(
        "unsupported database URL scheme `{0}://`; expected `mysql://`, `sqlite://` or `sqlite::memory:`"
    )]
    UnsupportedScheme(String),
    /// A MySQL URL without a host (the URL with its password masked).
    #[error("MySQL URL `{0}` has no host")]
    MysqlNoHost(String),
    /// A MySQL URL without a database name.
    #[error("MySQL URL `{0}` names no database (expected mysql://user:pass@host:port/db)")]
    MysqlNoDatabase(String),
    /// The driver refused the MySQL URL.
    #[error("MySQL URL `{url}`: {source}")]
    MysqlUrl {
        /// The URL with its password masked.
        url: String,
        /// The driver's reason.
        source: DriverError,
    },
    /// The pool could not be built.
    #[error("cannot build {backend} pool: {source}")]
    PoolBuild {
        /// `MySQL` or `SQLite`.
        backend: &'static str,
        /// The pool's reason.
        source: DriverError,
    },
    /// The pool refused the connection URL.
    #[error("invalid {0} connection URL")]
    InvalidUrl(&'static str),
    /// `sqlite://` with nothing after it.
    #[error("sqlite:// URL has an empty path")]
    SqliteEmptyPath,
    /// A `file:` URI or `?` options where a plain path is expected.
    #[error("SQLite path `{0}` must be a plain file path (no `file:` URI or `?` options)")]
    SqliteNotAPlainPath(String),
    /// The SQLite path names a directory.
    #[error("SQLite path `{}` is a directory", .0.display())]
    SqliteIsADirectory(PathBuf),
    /// The directory of the SQLite file does not exist.
    #[error("directory `{}` of SQLite database `{}` does not exist", .dir.display(), .path.display())]
    SqliteNoDirectory {
        /// The missing directory.
        dir: PathBuf,
        /// The database file.
        path: PathBuf,
    },
    /// The SQLite file does not exist and may not be created.
    #[error(
        "SQLite database `{}` does not exist; check the path, or set create_if_missing to create it",
        .0.display()
    )]
    SqliteMissing(PathBuf),
    /// The SQLite path is not UTF-8 (the driver takes a string).
    #[error("SQLite path is not valid UTF-8")]
    SqlitePathNotUtf8,
    /// `database.ca_file` with a SQLite URL.
    #[error(
        "database.ca_file `{}` is set but the database is SQLite; the CA applies to MySQL only",
        .0.display()
    )]
    CaFileWithSqlite(PathBuf),
    /// `database.ca_file` with a URL that says `require_ssl=false`.
    #[error(
        "database.ca_file `{}` is set but the database URL says require_ssl=false; remove one of them",
        .0.display()
    )]
    CaFileWithoutTls(PathBuf),
    /// `database.ca_file` was refused.
    #[error("database.ca_file: {0}")]
    CaFile(Arc<crate::tls::TlsError>),
    /// A test database name outside `[A-Za-z0-9_]{1,64}` (the test kit's rule).
    #[error("test database name must be 1-64 of [A-Za-z0-9_]")]
    TestDatabaseName,
    /// A `mysql://` URL was expected.
    #[error("expected a mysql:// URL")]
    NotMysql,
}

/// Why the database cannot be reached right now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// No connection could be checked out within the acquire deadline.
    #[error("no {backend} connection available within {} ms", .timeout.as_millis())]
    Deadline {
        /// `MySQL` or `SQLite`.
        backend: &'static str,
        /// The deadline.
        timeout: std::time::Duration,
    },
    /// An operation of the store's own workers did not finish within its deadline.
    #[error("{what} not done within {} ms", .timeout.as_millis())]
    Timeout {
        /// The operation.
        what: &'static str,
        /// The deadline.
        timeout: std::time::Duration,
    },
    /// A new connection could not be made.
    #[error("cannot connect to {backend}: {source}")]
    Connect {
        /// `MySQL` or `SQLite`.
        backend: &'static str,
        /// The driver's reason.
        source: DriverError,
    },
    /// A pooled connection failed its check before being handed out.
    #[error("{backend} connection failed its health check: {source}")]
    HealthCheck {
        /// `MySQL` or `SQLite`.
        backend: &'static str,
        /// The driver's reason.
        source: DriverError,
    },
    /// The pool has been closed.
    #[error("{0} pool is closed")]
    PoolClosed(&'static str),
    /// Any other pool failure.
    #[error("{backend} pool error: {source}")]
    Pool {
        /// `MySQL` or `SQLite`.
        backend: &'static str,
        /// The pool's reason.
        source: DriverError,
    },
    /// The server closed the link mid-statement.
    #[error("connection lost: {0}")]
    ConnectionLost(DriverError),
    /// A connection was left in a broken transaction state.
    #[error("connection left in a broken transaction state")]
    BrokenTransaction,
    /// A connection of one of the store's own workers (the audit writer, the SQLite readers)
    /// could not be opened or set up.
    #[error("{what}: {source}")]
    Open {
        /// What was being opened.
        what: &'static str,
        /// The driver's reason.
        source: DriverError,
    },
    /// A worker of the store has stopped (the audit writer).
    #[error("{0}")]
    Stopped(&'static str),
    /// A blocking task of the store failed to run.
    #[error("{what} failed: {source}")]
    Task {
        /// The task.
        what: &'static str,
        /// The runtime's reason.
        source: DriverError,
    },
}

/// A lost lock conflict: the database rolled the transaction back, and running it again from
/// the start is safe (the writes are idempotent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// MySQL / MariaDB error 1213 (`ER_LOCK_DEADLOCK`): chosen as a deadlock victim.
    #[error("deadlock (MySQL error 1213); transaction rolled back")]
    Deadlock,
    /// MySQL / MariaDB error 1205 (`ER_LOCK_WAIT_TIMEOUT`): a row lock was not granted in time.
    #[error("lock wait timeout (MySQL error 1205); transaction rolled back")]
    LockWaitTimeout,
    /// SQLite's `SQLITE_BUSY` once its busy timeout has run out.
    #[error("SQLite database is locked (busy timeout exceeded)")]
    Busy,
    /// The import's read-back found rows another writer changed in the meantime.
    #[error("account rows changed concurrently during import; transaction rolled back")]
    ChangedConcurrently,
}

impl Conflict {
    /// The conflict a MySQL / MariaDB server error code stands for.
    pub fn from_mysql_code(code: u16) -> Option<Conflict> {
        match code {
            1213 => Some(Conflict::Deadlock),
            1205 => Some(Conflict::LockWaitTimeout),
            _ => None,
        }
    }

    /// The conflict a server's error text stands for. diesel-async 0.9 keeps only the text of
    /// a MySQL server error (its `ErrorHelper` drops `ServerError::code`), so the code is
    /// recovered from the server's fixed message for 1213 and 1205 — the messages are pinned
    /// to English per session (`lc_messages`, see `pool`) — and from SQLite's text for
    /// `SQLITE_BUSY`. Anchored at the start: a message that merely quotes such text (a value,
    /// a trigger's own message) is not a conflict.
    pub(crate) fn from_server_message(message: &str) -> Option<Conflict> {
        const BY_TEXT: [(&str, Conflict); 3] = [
            ("Deadlock found when trying to get lock", Conflict::Deadlock),
            ("Lock wait timeout exceeded", Conflict::LockWaitTimeout),
            ("database is locked", Conflict::Busy),
        ];
        BY_TEXT
            .iter()
            .find(|(text, _)| message.starts_with(text))
            .map(|(_, c)| *c)
    }
}

/// Why a statement failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StatementError {
    /// A unique constraint refused the row. MySQL's own message quotes the conflicting value
    /// (a session id, an account number), so only the constraint is kept.
    #[error("unique constraint {} violated", .constraint.as_deref().map_or("(duplicate key)".to_owned(), |c| format!("`{c}`")))]
    Duplicate {
        /// The constraint, when the driver names it.
        constraint: Option<String>,
    },
    /// A value breaks a rule of the data model (a length, a stored value out of range).
    #[error("{0}")]
    Invalid(&'static str),
    /// The driver's error.
    #[error(transparent)]
    Driver(DriverError),
}

/// Why the embedded migrations could not be applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MigrationError {
    /// diesel_migrations' harness failed.
    #[error("{0}")]
    Run(DriverError),
    /// The migration task could not run.
    #[error("migration task failed: {0}")]
    Task(DriverError),
    /// `GET_LOCK` failed.
    #[error("cannot take migration lock: {0}")]
    Lock(DriverError),
    /// Another instance held the migration lock too long.
    #[error("another instance held the migration lock `{name}` for over {secs} s")]
    LockBusy {
        /// The lock's name.
        name: &'static str,
        /// How long this instance waited, seconds.
        secs: i32,
    },
}

/// A database password, kept to mask it (raw and percent-decoded) wherever a driver's message
/// is displayed. Zeroized on drop; `Debug` prints nothing of it.
pub struct Password {
    raw: Zeroizing<String>,
    decoded: Zeroizing<String>,
}

impl Password {
    /// The password as written in the URL (percent-encoded or not).
    pub(crate) fn new(raw: &str) -> Password {
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        Password {
            raw: Zeroizing::new(raw.to_owned()),
            decoded: Zeroizing::new(decoded),
        }
    }

    /// `text` with every occurrence of the password (as written and decoded) replaced by `***`.
    pub(crate) fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in [self.raw.as_str(), self.decoded.as_str()] {
            if !secret.is_empty() {
                out = out.replace(secret, "***");
            }
        }
        out
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A driver's, pool's or runtime's error, kept as it came (see [`DriverError::downcast_ref`])
/// and displayed with the database password masked.
///
/// It deliberately has no [`std::error::Error::source`]: a report that walks the chain would
/// print the driver's unmasked text.
#[derive(Clone)]
pub struct DriverError {
    inner: Arc<dyn std::error::Error + Send + Sync>,
    password: Option<Arc<Password>>,
}

impl DriverError {
    /// Wraps `e`.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> DriverError {
        DriverError {
            inner: Arc::new(e),
            password: None,
        }
    }

    /// Wraps an already boxed error (diesel_migrations' errors come boxed).
    pub fn boxed(e: Box<dyn std::error::Error + Send + Sync>) -> DriverError {
        DriverError {
            inner: Arc::from(e),
            password: None,
        }
    }

    /// The driver's error, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.inner.downcast_ref::<T>()
    }

    fn masking(mut self, password: &Arc<Password>) -> DriverError {
        self.password = Some(Arc::clone(password));
        self
    }
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.inner.to_string();
        match &self.password {
            Some(p) => f.write_str(&p.mask(&text)),
            None => f.write_str(&text),
        }
    }
}

impl fmt::Debug for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DriverError")
            .field(&self.to_string())
            .finish()
    }
}

impl std::error::Error for DriverError {}

impl StoreError {
    /// This error, displayed with `password` masked wherever a driver's text appears.
    pub(crate) fn masking(self, password: Option<&Arc<Password>>) -> StoreError {
        let Some(pw) = password else {
            return self;
        };
        let m = |d: DriverError| d.masking(pw);
        match self {
            StoreError::Config(ConfigError::MysqlUrl { url, source }) => ConfigError::MysqlUrl {
                url,
                source: m(source),
            }
            .into(),
            StoreError::Unavailable(u) => StoreError::Unavailable(match u {
                Unavailable::Connect { backend, source } => Unavailable::Connect {
                    backend,
                    source: m(source),
                },
                Unavailable::HealthCheck { backend, source } => Unavailable::HealthCheck {
                    backend,
                    source: m(source),
                },
                Unavailable::Pool { backend, source } => Unavailable::Pool {
                    backend,
                    source: m(source),
                },
                Unavailable::ConnectionLost(source) => Unavailable::ConnectionLost(m(source)),
                Unavailable::Open { what, source } => Unavailable::Open {
                    what,
                    source: m(source),
                },
                Unavailable::Task { what, source } => Unavailable::Task {
                    what,
                    source: m(source),
                },
                other => other,
            }),
            StoreError::Statement(StatementError::Driver(d)) => StatementError::Driver(m(d)).into(),
            StoreError::Migration(e) => StoreError::Migration(match e {
                MigrationError::Run(d) => MigrationError::Run(m(d)),
                MigrationError::Task(d) => MigrationError::Task(m(d)),
                MigrationError::Lock(d) => MigrationError::Lock(m(d)),
                other => other,
            }),
            other => other,
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match &e {
            E::DatabaseError(K::UniqueViolation, info) => {
                return StatementError::Duplicate {
                    constraint: info.constraint_name().map(str::to_owned),
                }
                .into();
            }
            E::DatabaseError(K::ClosedConnection, _) => {
                return Unavailable::ConnectionLost(DriverError::new(e)).into();
            }
            E::BrokenTransactionManager => return Unavailable::BrokenTransaction.into(),
            E::DatabaseError(K::Unknown, info) => {
                if let Some(c) = Conflict::from_server_message(info.message()) {
                    return c.into();
                }
            }
            _ => {}
        }
        StatementError::Driver(DriverError::new(e)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind as K, Error as E};

    fn db(kind: K, msg: &str) -> E {
        E::DatabaseError(kind, Box::new(msg.to_owned()))
    }

    #[test]
    fn lock_conflicts_are_typed_from_the_server_error() {
        for (msg, want) in [
            (
                "Deadlock found when trying to get lock; try restarting transaction",
                Conflict::Deadlock,
            ),
            (
                "Lock wait timeout exceeded; try restarting transaction",
                Conflict::LockWaitTimeout,
            ),
            ("database is locked", Conflict::Busy),
        ] {
            assert!(
                matches!(StoreError::from(db(K::Unknown, msg)), StoreError::Conflict(c) if c == want),
                "{msg}"
            );
        }
        assert_eq!(Conflict::from_mysql_code(1213), Some(Conflict::Deadlock));
        assert_eq!(
            Conflict::from_mysql_code(1205),
            Some(Conflict::LockWaitTimeout)
        );
        assert_eq!(Conflict::from_mysql_code(1062), None);
    }

    /// A statement error that only quotes such text (a check constraint, a trigger's message
    /// carrying a value) is a query error, not a conflict to run again.
    #[test]
    fn quoted_conflict_text_is_not_a_conflict() {
        for e in [
            db(
                K::CheckViolation,
                "CONSTRAINT `c` failed: 'Deadlock found; try restarting transaction'",
            ),
            db(K::Unknown, "poisoned audit row: try restarting transaction"),
        ] {
            assert!(
                matches!(
                    StoreError::from(e),
                    StoreError::Statement(StatementError::Driver(_))
                ),
                "quoted text"
            );
        }
    }

    #[test]
    fn unique_violations_name_the_constraint_only() {
        let e = StoreError::from(db(
            K::UniqueViolation,
            "Duplicate entry 'sess-abcDEF' for key 'PRIMARY'",
        ));
        assert!(matches!(
            e,
            StoreError::Statement(StatementError::Duplicate { .. })
        ));
        assert!(!e.to_string().contains("sess-abcDEF"), "{e}");
    }

    #[test]
    fn the_password_is_masked_when_displayed_and_debugged() {
        let pw = Arc::new(Password::new("S3cret%40pw"));
        let e = StoreError::from(Unavailable::Connect {
            backend: "MySQL",
            source: DriverError::new(std::io::Error::other(
                "access denied for root:S3cret%40pw (password S3cret@pw)",
            )),
        })
        .masking(Some(&pw));
        let (shown, debugged) = (e.to_string(), format!("{e:?}"));
        for text in [&shown, &debugged] {
            assert!(!text.contains("S3cret"), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        // The typed cause is still there for a caller that needs it.
        let StoreError::Unavailable(Unavailable::Connect { source, .. }) = e else {
            panic!("variant changed");
        };
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(format!("{pw:?}"), "Password(***)");
    }
}
