//! The pension gateway's test kit: isolate each test in a fresh MySQL database on the same
//! server, run SQL as an administrator, install the fault triggers the group-commit tests need,
//! and read the bundled SQLite's build options. Used by the gateway's integration tests (a
//! dev-dependency); not part of the gateway's library.

use std::path::Path;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use pension_gateway::store::{Backend, Store, StoreError};

const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// Why a helper failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A database name outside `[A-Za-z0-9_]{1,64}`.
    #[error("test database name must be 1-64 of [A-Za-z0-9_]")]
    DatabaseName,
    /// Not a `mysql://` URL.
    #[error("expected a mysql:// URL")]
    NotMysql,
    /// The driver refused the URL.
    #[error("MySQL URL: {0}")]
    Url(#[from] mysql_async::UrlError),
    /// The server did not answer in time.
    #[error("MySQL test server did not answer within {} s", CONNECT_DEADLINE.as_secs())]
    Timeout,
    /// The server or the link failed.
    #[error("MySQL test server: {0}")]
    Mysql(#[from] mysql_async::Error),
    /// The CA file could not be read.
    #[error("CA file: {0}")]
    CaFile(#[from] std::io::Error),
    /// The store refused the statement.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SQLite could not be opened.
    #[error("SQLite: {0}")]
    SqliteOpen(#[from] diesel::ConnectionError),
    /// A SQLite statement failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] diesel::result::Error),
}

fn check_name(db: &str) -> Result<(), Error> {
    if db.is_empty() || db.len() > 64 || !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::DatabaseName);
    }
    Ok(())
}

/// `mysql://u:p@h:1/old?x` with `new_db` → `mysql://u:p@h:1/new_db?x`.
fn with_db(url: &str, new_db: &str) -> Result<String, Error> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Error::NotMysql);
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let query = tail
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{scheme}://{authority}/{new_db}{query}"))
}

/// The driver options of `url`, trusting the PEM CA in `ca_file` (as `database.ca_file` does:
/// TLS on, and only that CA unless the URL says `built_in_roots=true`).
fn options(url: &str, ca_file: Option<&Path>) -> Result<mysql_async::Opts, Error> {
    let opts = mysql_async::Opts::from_url(url)?;
    let Some(ca) = ca_file else {
        return Ok(opts);
    };
    let pem = std::fs::read(ca)?;
    let mut ssl = opts
        .ssl_opts()
        .cloned()
        .unwrap_or_default()
        .with_root_certs(vec![pem.into()]);
    if !url.contains("built_in_roots=true") {
        ssl = ssl.with_disable_built_in_roots(true);
    }
    pension_gateway::tls::ensure_default_provider();
    Ok(mysql_async::OptsBuilder::from_opts(opts)
        .ssl_opts(Some(ssl))
        .into())
}

async fn admin_exec(
    server_url_with_db: &str,
    ca_file: Option<&Path>,
    sql: String,
) -> Result<(), Error> {
    if !server_url_with_db.starts_with("mysql://") {
        return Err(Error::NotMysql);
    }
    let opts = options(server_url_with_db, ca_file)?;
    let mut conn = tokio::time::timeout(CONNECT_DEADLINE, mysql_async::Conn::new(opts))
        .await
        .map_err(|_| Error::Timeout)??;
    let res = conn.query_drop(sql).await;
    let _ = conn.disconnect().await;
    Ok(res?)
}

/// Creates database `new_db` (utf8mb4_bin) on the server of `server_url_with_db` and returns
/// the URL of the new database (same credentials and options).
pub async fn create_mysql_database(
    server_url_with_db: &str,
    new_db: &str,
) -> Result<String, Error> {
    create_mysql_database_with_ca(server_url_with_db, None, new_db).await
}

/// [`create_mysql_database`] over TLS verified with `ca_file`.
pub async fn create_mysql_database_with_ca(
    server_url_with_db: &str,
    ca_file: Option<&Path>,
    new_db: &str,
) -> Result<String, Error> {
    check_name(new_db)?;
    admin_exec(
        server_url_with_db,
        ca_file,
        format!("CREATE DATABASE `{new_db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
    )
    .await?;
    with_db(server_url_with_db, new_db)
}

/// Drops database `db` (if it exists) on the server of `server_url_with_db`.
pub async fn drop_mysql_database(server_url_with_db: &str, db: &str) -> Result<(), Error> {
    drop_mysql_database_with_ca(server_url_with_db, None, db).await
}

/// [`drop_mysql_database`] over TLS verified with `ca_file`.
pub async fn drop_mysql_database_with_ca(
    server_url_with_db: &str,
    ca_file: Option<&Path>,
    db: &str,
) -> Result<(), Error> {
    check_name(db)?;
    admin_exec(
        server_url_with_db,
        ca_file,
        format!("DROP DATABASE IF EXISTS `{db}`"),
    )
    .await
}

/// Runs `sql` (one or more statements, no results) on a pooled connection of `store`; tests use
/// it to install fault triggers (an in-memory SQLite database is reachable only that way).
pub async fn execute_sql(store: &Store, sql: &str) -> Result<(), Error> {
    Ok(store.execute_sql_for_tests(sql).await?)
}

/// SQL that makes every insert of an audit row whose `request_id` starts with `poison` fail
/// (a trigger), on `store`'s backend: the fault the group-commit tests inject.
pub fn poison_audit_trigger_sql(store: &Store) -> &'static str {
    match store.backend() {
        Backend::Sqlite => {
            "CREATE TRIGGER poison_audit BEFORE INSERT ON query_audit \
             WHEN NEW.request_id LIKE 'poison%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned audit row'); END;"
        }
        Backend::Mysql => {
            "CREATE TRIGGER poison_audit BEFORE INSERT ON query_audit FOR EACH ROW \
             BEGIN IF NEW.request_id LIKE 'poison%' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned audit row'; END IF; END"
        }
    }
}

/// Runs `sql` (one or more statements) on a fresh connection to `url`, e.g. to create a test
/// account with given grants, or to show that an account lacks a privilege.
pub async fn mysql_exec(url: &str, ca_file: Option<&Path>, sql: &str) -> Result<(), Error> {
    admin_exec(url, ca_file, sql.to_owned()).await
}

/// `url` with database `db` in place of the one it names (query string kept).
pub fn mysql_url_with_db(url: &str, db: &str) -> Result<String, Error> {
    check_name(db)?;
    with_db(url, db)
}

/// The compile-time options of the bundled SQLite (`PRAGMA compile_options`), e.g.
/// `THREADSAFE=2`: tests check that the build settings of `.cargo/config.toml` took effect.
pub fn sqlite_compile_options() -> Result<Vec<String>, Error> {
    use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
    #[derive(QueryableByName)]
    struct Opt {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }
    let mut conn = SqliteConnection::establish(":memory:")?;
    let rows: Vec<Opt> = diesel::sql_query("PRAGMA compile_options").load(&mut conn)?;
    Ok(rows.into_iter().map(|o| o.compile_options).collect())
}
