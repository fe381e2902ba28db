//! Embedded migrations, one folder per backend with identical version names.
//!
//! diesel's migration harness is synchronous, so it runs on tokio's blocking pool: SQLite on the
//! wrapped sync connection directly, MySQL through `AsyncConnectionWrapper` (which blocks on the
//! async driver from that blocking thread). This works on both the multi-thread and the
//! current-thread runtime, unlike `AsyncMigrationHarness` (`block_in_place`).

use diesel::connection::SimpleConnection;
use diesel::migration::MigrationVersion;
use diesel::RunQueryDsl;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::AsyncMysqlConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::pool::{self, Pools};
use super::{DriverError, MigrationError, Store, StoreError};

/// `migrations/mysql`, embedded at compile time.
pub(crate) const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/mysql");
/// `migrations/sqlite`, embedded at compile time.
pub(crate) const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Name of the MySQL advisory lock held while migrating.
const LOCK_NAME: &str = "pension_gateway.migrations";
/// Seconds to wait for another instance's migration to finish.
const LOCK_WAIT_SECS: i32 = 120;

fn versions(v: Vec<MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|m| m.to_string()).collect()
}

pub(super) async fn run(store: &Store) -> Result<Vec<String>, StoreError> {
    let inner = &store.inner;
    let applied = match &inner.pools {
        Pools::Sqlite(p) => {
            let mut conn = pool::acquire_sqlite(p, inner.acquire_timeout).await?;
            conn.spawn_blocking(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(versions)
                    .map_err(diesel::result::Error::QueryBuilderError)
            })
            .await
            .map_err(|e| MigrationError::Run(DriverError::new(e)))?
        }
        Pools::Mysql(p, _) => {
            let obj =
                pool::acquire_mysql(p, inner.acquire_timeout, inner.password.as_ref()).await?;
            // Taken out of the pool: the wrapper owns it and it is closed afterwards.
            let conn: AsyncMysqlConnection = Object::take(obj);
            tokio::task::spawn_blocking(move || migrate_mysql(conn))
                .await
                .map_err(|e| MigrationError::Task(DriverError::new(e)))??
        }
    };
    if applied.is_empty() {
        tracing::info!("database schema is current");
    } else {
        tracing::info!(versions = %applied.join(" "), "database migrations applied");
    }
    Ok(applied)
}

/// The embedded migrations of this backend not yet recorded as applied, oldest first. Reads
/// `__diesel_schema_migrations` with one `SELECT` and issues no DDL (a missing bookkeeping table
/// means every migration is pending), so a runtime account without `CREATE` can ask.
pub(super) async fn pending(store: &Store) -> Result<Vec<String>, StoreError> {
    use diesel::migration::MigrationSource;
    let inner = &store.inner;
    let applied: Vec<String> = match &inner.pools {
        Pools::Sqlite(p) => {
            let mut conn = pool::acquire_sqlite(p, inner.acquire_timeout).await?;
            conn.spawn_blocking(|c| {
                Ok(
                    diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
                        .load::<AppliedVersion>(c)
                        .unwrap_or_default(),
                )
            })
            .await
            .map_err(|e| StoreError::from(MigrationError::Task(DriverError::new(e))))?
            .into_iter()
            .map(|r| r.version)
            .collect()
        }
        Pools::Mysql(p, _) => {
            let obj =
                pool::acquire_mysql(p, inner.acquire_timeout, inner.password.as_ref()).await?;
            let conn: AsyncMysqlConnection = Object::take(obj);
            tokio::task::spawn_blocking(move || {
                let mut w: AsyncConnectionWrapper<AsyncMysqlConnection> =
                    AsyncConnectionWrapper::from(conn);
                diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
                    .load::<AppliedVersion>(&mut w)
                    .unwrap_or_default()
            })
            .await
            .map_err(|e| StoreError::from(MigrationError::Task(DriverError::new(e))))?
            .into_iter()
            .map(|r| r.version)
            .collect()
        }
    };
    let all: Vec<String> = match &inner.pools {
        Pools::Sqlite(_) => {
            MigrationSource::<diesel::sqlite::Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .map_err(|e| StoreError::from(MigrationError::Run(DriverError::boxed(e))))?
                .iter()
                .map(|m| m.name().version().to_string())
                .collect()
        }
        Pools::Mysql(..) => MigrationSource::<diesel::mysql::Mysql>::migrations(&MYSQL_MIGRATIONS)
            .map_err(|e| StoreError::from(MigrationError::Run(DriverError::boxed(e))))?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect(),
    };
    let mut pending: Vec<String> = all.into_iter().filter(|v| !applied.contains(v)).collect();
    pending.sort();
    Ok(pending)
}

/// A row of diesel's bookkeeping table.
#[derive(diesel::QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Whether every embedded migration is already recorded as applied. Needs only `SELECT` on
/// `__diesel_schema_migrations`, so a least-privilege runtime account can start on a current
/// schema (the harness itself begins with `CREATE TABLE IF NOT EXISTS`, which needs `CREATE`).
fn mysql_schema_is_current(w: &mut AsyncConnectionWrapper<AsyncMysqlConnection>) -> bool {
    use diesel::migration::MigrationSource;
    let Ok(applied) = diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
        .load::<AppliedVersion>(w)
    else {
        return false;
    };
    let applied: std::collections::HashSet<String> =
        applied.into_iter().map(|r| r.version).collect();
    match MigrationSource::<diesel::mysql::Mysql>::migrations(&MYSQL_MIGRATIONS) {
        Ok(all) => all
            .iter()
            .all(|m| applied.contains(&m.name().version().to_string())),
        Err(_) => false,
    }
}

fn migrate_mysql(conn: AsyncMysqlConnection) -> Result<Vec<String>, StoreError> {
    let mut w: AsyncConnectionWrapper<AsyncMysqlConnection> = AsyncConnectionWrapper::from(conn);
    if mysql_schema_is_current(&mut w) {
        return Ok(Vec::new());
    }
    let got: Option<i32> = diesel::select(diesel::dsl::sql::<
        diesel::sql_types::Nullable<diesel::sql_types::Integer>,
    >(&format!(
        "GET_LOCK('{LOCK_NAME}', {LOCK_WAIT_SECS})"
    )))
    .get_result(&mut w)
    .map_err(|e| MigrationError::Lock(DriverError::new(e)))?;
    if got != Some(1) {
        return Err(MigrationError::LockBusy {
            name: LOCK_NAME,
            secs: LOCK_WAIT_SECS,
        }
        .into());
    }
    let res = w
        .run_pending_migrations(MYSQL_MIGRATIONS)
        .map(versions)
        .map_err(|e| MigrationError::Run(DriverError::boxed(e)).into());
    // The lock also goes away with the connection; release explicitly anyway.
    let _ = w.batch_execute(&format!("DO RELEASE_LOCK('{LOCK_NAME}')"));
    res
}
