//! Helpers for integration tests: isolate each test in a fresh MySQL database on the same server.
//! Not part of the gateway's API.

use std::path::Path;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;

use super::pool;
use super::StoreError;

const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

fn check_name(db: &str) -> Result<(), StoreError> {
    if db.is_empty() || db.len() > 64 || !db.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(StoreError::Config(
            "test database name must be 1-64 of [A-Za-z0-9_]".into(),
        ));
    }
    Ok(())
}

/// `mysql://u:p@h:1/old?x` with `new_db` → `mysql://u:p@h:1/new_db?x`.
fn with_db(url: &str, new_db: &str) -> Result<String, StoreError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(StoreError::Config("expected a mysql:// URL".into()));
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

async fn admin_exec(
    server_url_with_db: &str,
    ca_file: Option<&Path>,
    sql: String,
) -> Result<(), StoreError> {
    let (redacted, pw) = pool::redact_mysql(
        "mysql",
        server_url_with_db.split_once("://").map_or("", |(_, r)| r),
    );
    let scrub = |m: String| pool::scrub(m, pw.as_deref());
    let connect = pool::MysqlConnect::new(server_url_with_db, &redacted, pw.as_deref(), ca_file)?;
    let mut conn = tokio::time::timeout(CONNECT_DEADLINE, connect.establish())
        .await
        .map_err(|_| {
            StoreError::Unavailable("MySQL test server did not answer within 10 s".into())
        })?
        .map_err(|e| {
            StoreError::Unavailable(scrub(format!("cannot connect to MySQL test server: {e}")))
        })?;
    conn.batch_execute(&sql)
        .await
        .map_err(|e| StoreError::Query(scrub(e.to_string())))
}

/// Creates database `new_db` (utf8mb4_bin) on the server of `server_url_with_db` and returns
/// the URL of the new database (same credentials and options).
pub async fn create_mysql_database(
    server_url_with_db: &str,
    new_db: &str,
) -> Result<String, StoreError> {
    create_mysql_database_with_ca(server_url_with_db, None, new_db).await
}

/// [`create_mysql_database`] over TLS verified with `ca_file`.
pub async fn create_mysql_database_with_ca(
    server_url_with_db: &str,
    ca_file: Option<&Path>,
    new_db: &str,
) -> Result<String, StoreError> {
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
pub async fn drop_mysql_database(server_url_with_db: &str, db: &str) -> Result<(), StoreError> {
    drop_mysql_database_with_ca(server_url_with_db, None, db).await
}

/// [`drop_mysql_database`] over TLS verified with `ca_file`.
pub async fn drop_mysql_database_with_ca(
    server_url_with_db: &str,
    ca_file: Option<&Path>,
    db: &str,
) -> Result<(), StoreError> {
    check_name(db)?;
    admin_exec(
        server_url_with_db,
        ca_file,
        format!("DROP DATABASE IF EXISTS `{db}`"),
    )
    .await
}

/// Runs `sql` (one or more statements, no results) on a pooled connection of `store`; tests use
/// it to install fault triggers.
pub async fn execute_sql(store: &super::Store, sql: &str) -> Result<(), StoreError> {
    db_run!(store, conn => {
        conn.batch_execute(sql).await.map_err(StoreError::from)
    })
}

/// SQL that makes every insert of an audit row whose `request_id` starts with `poison` fail
/// (a trigger), on `store`'s backend: the fault the group-commit tests inject.
pub fn poison_audit_trigger_sql(store: &super::Store) -> &'static str {
    match store.backend() {
        super::Backend::Sqlite => {
            "CREATE TRIGGER poison_audit BEFORE INSERT ON query_audit \
             WHEN NEW.request_id LIKE 'poison%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned audit row'); END;"
        }
        super::Backend::Mysql => {
            "CREATE TRIGGER poison_audit BEFORE INSERT ON query_audit FOR EACH ROW \
             BEGIN IF NEW.request_id LIKE 'poison%' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned audit row'; END IF; END"
        }
    }
}

/// Runs `sql` (one or more statements) on a fresh connection to `url`, e.g. to create a test
/// account with given grants, or to show that an account lacks a privilege.
pub async fn mysql_exec(url: &str, ca_file: Option<&Path>, sql: &str) -> Result<(), StoreError> {
    admin_exec(url, ca_file, sql.to_owned()).await
}

/// `url` with database `db` in place of the one it names (query string kept).
pub fn mysql_url_with_db(url: &str, db: &str) -> Result<String, StoreError> {
    check_name(db)?;
    with_db(url, db)
}

/// The compile-time options of the bundled SQLite (`PRAGMA compile_options`), e.g.
/// `THREADSAFE=2`: tests check that the build settings of `.cargo/config.toml` took effect.
pub fn sqlite_compile_options() -> Result<Vec<String>, StoreError> {
    use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
    #[derive(QueryableByName)]
    struct Opt {
        #[diesel(sql_type = diesel::sql_types::Text)]
        compile_options: String,
    }
    let mut conn = SqliteConnection::establish(":memory:")
        .map_err(|e| StoreError::Unavailable(format!("cannot open in-memory SQLite: {e}")))?;
    let rows: Vec<Opt> = diesel::sql_query("PRAGMA compile_options").load(&mut conn)?;
    Ok(rows.into_iter().map(|o| o.compile_options).collect())
}
