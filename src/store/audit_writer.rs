//! Group commit of audit rows: one writer per store, fed by a channel.
//!
//! Every answered request appends one audit row, and the answer may leave only once that row is
//! committed. Committing one row per statement made the database path most of a request's CPU
//! (one pool checkout, one statement, one commit, and on SQLite a blocking-pool hop each). Here
//! requests hand their row to a single writer, which takes every row waiting in the channel (up
//! to [`MAX_BATCH`]) and writes them in **one transaction** — one commit for the batch (MySQL:
//! one multi-row `INSERT` sent as text, see [`super::audit_sql`]; SQLite: the prepared
//! single-row `INSERT` once per row).
//! There is no timer: while one batch is being written the next one gathers, so an idle gateway
//! writes batches of one with no added latency, and a loaded one writes larger batches.
//!
//! Each request awaits the result of *its* batch: `Ok` only after the batch committed. The batch
//! is atomic, so a failed batch leaves none of its rows and fails exactly its requests
//! (each answers the signed 503 of an unavailable audit log); other batches are unaffected.
//! Rows are validated before they are queued, so one malformed row cannot fail its neighbours
//! through a constraint.
//!
//! The writer runs on its own OS thread with its own connection, so it does not depend on which
//! runtime opened the store:
//! - SQLite file: a plain synchronous connection on that thread (no `spawn_blocking` hop);
//! - MySQL: a current-thread tokio runtime on that thread with one dedicated connection, opened
//!   on first use and reopened after a failure, each batch bounded by the store's deadline.
//!
//! The thread ends when the last [`Store`](super::Store) clone is dropped (the channel closes).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::models::AuditRow;
use super::schema::query_audit as qa;
use super::{DriverError, NewAudit, StoreError, Unavailable};

/// Most rows in one batch (MySQL: one text `INSERT` of ~300 bytes a row, ~150 KiB at most, far
/// below MySQL's and MariaDB's default `max_allowed_packet` of 16–64 MiB).
pub(crate) const MAX_BATCH: usize = 512;

/// Rows that may wait for the writer; a caller beyond it waits for room (back-pressure).
const QUEUE: usize = 8 * MAX_BATCH;

/// Observer of batch sizes (the `gateway_audit_batch_rows` histogram), set once by the server.
pub(crate) type BatchObserver = Arc<OnceLock<prometheus::Histogram>>;

struct Job {
    row: NewAudit,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Handle to the writer thread.
pub(crate) struct AuditWriter {
    tx: mpsc::Sender<Job>,
    observer: BatchObserver,
}

/// Where the writer writes.
pub(crate) enum WriterTarget {
    /// A SQLite file path (the connection string of [`SqliteConnection::establish`]).
    Sqlite { path: String, pragmas: &'static str },
    /// How MySQL connections are made (URL options, TLS) and the store's deadline for one
    /// connect + one batch.
    Mysql {
        connect: std::sync::Arc<super::pool::MysqlConnect>,
        deadline: Duration,
        password: Option<Arc<super::error::Password>>,
    },
}

impl AuditWriter {
    /// Starts the writer thread for `target`.
    pub(crate) fn start(target: WriterTarget) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let observer: BatchObserver = Arc::new(OnceLock::new());
        let obs = observer.clone();
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || match target {
                WriterTarget::Sqlite { path, pragmas } => run_sqlite(&path, pragmas, rx, &obs),
                WriterTarget::Mysql {
                    connect,
                    deadline,
                    password,
                } => run_mysql(&connect, deadline, password.as_ref(), rx, &obs),
            });
        spawned.map(|_| AuditWriter { tx, observer }).map_err(|e| {
            Unavailable::Task {
                what: "starting the audit writer",
                source: DriverError::new(e),
            }
            .into()
        })
    }

    /// Queues `row` and waits until the batch holding it committed (or failed).
    pub(crate) async fn append(&self, row: NewAudit) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job { row, done })
            .await
            .map_err(|_| Unavailable::Stopped("the audit writer has stopped"))?;
        wait.await.map_err(|_| {
            Unavailable::Stopped("the audit writer stopped before the row was written")
        })?
    }

    /// Sets the histogram that records each batch's row count (first call wins).
    pub(crate) fn observe(&self, h: prometheus::Histogram) {
        let _ = self.observer.set(h);
    }
}

/// Blocks for the first job, then takes whatever else is already queued, up to [`MAX_BATCH`].
fn gather_blocking(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) -> bool {
    match rx.blocking_recv() {
        Some(j) => batch.push(j),
        None => return false,
    }
    drain(rx, batch);
    true
}

fn drain(rx: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(j) => batch.push(j),
            Err(_) => break,
        }
    }
}

/// Answers every job of the batch with `res` and empties it.
fn finish(batch: &mut Vec<Job>, res: Result<(), StoreError>, obs: &BatchObserver) {
    if let Some(h) = obs.get() {
        h.observe(batch.len() as f64);
    }
    if let Err(e) = &res {
        tracing::warn!(rows = batch.len(), error = %e, "audit batch failed; its requests answer 503");
    }
    for job in batch.drain(..) {
        // A caller that went away (client disconnected) no longer needs the answer.
        let _ = job.done.send(res.clone());
    }
}

fn run_sqlite(path: &str, pragmas: &'static str, mut rx: mpsc::Receiver<Job>, obs: &BatchObserver) {
    let mut conn: Option<SqliteConnection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while gather_blocking(&mut rx, &mut batch) {
        let res = write_sqlite(&mut conn, path, pragmas, &batch);
        if matches!(res, Err(StoreError::Unavailable(_))) {
            conn = None;
        }
        finish(&mut batch, res, obs);
    }
}

fn write_sqlite(
    conn: &mut Option<SqliteConnection>,
    path: &str,
    pragmas: &'static str,
    batch: &[Job],
) -> Result<(), StoreError> {
    let c = match conn {
        Some(c) => c,
        None => {
            let mut c = SqliteConnection::establish(path).map_err(|e| Unavailable::Open {
                what: "audit writer cannot open SQLite",
                source: DriverError::new(e),
            })?;
            diesel::connection::SimpleConnection::batch_execute(&mut c, pragmas).map_err(|e| {
                Unavailable::Open {
                    what: "audit writer cannot set up SQLite",
                    source: DriverError::new(e),
                }
            })?;
            conn.insert(c)
        }
    };
    // One transaction of single-row INSERTs, not one multi-row statement: a single-row INSERT
    // is the same statement for every row, so SQLite prepares it once per connection (diesel's
    // statement cache) where a multi-row INSERT of a new length is parsed and planned anew; the
    // transaction keeps the batch atomic (one commit, all rows or none).
    use diesel::RunQueryDsl;
    c.immediate_transaction(|c| {
        for job in batch {
            diesel::insert_into(qa::table)
                .values(AuditRow::from(&job.row))
                .execute(c)?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .map_err(StoreError::from)
}

fn run_mysql(
    connect: &super::pool::MysqlConnect,
    deadline: Duration,
    password: Option<&Arc<super::error::Password>>,
    mut rx: mpsc::Receiver<Job>,
    obs: &BatchObserver,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let err = StoreError::from(Unavailable::Task {
                what: "the audit writer runtime",
                source: DriverError::new(e),
            });
            tracing::error!(error = %err, "audit writer cannot start");
            let mut batch = Vec::new();
            while gather_blocking(&mut rx, &mut batch) {
                finish(&mut batch, Err(err.clone()), obs);
            }
            return;
        }
    };
    rt.block_on(async move {
        use diesel_async::AsyncMysqlConnection;
        let mut conn: Option<AsyncMysqlConnection> = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(j) = rx.recv().await {
            batch.push(j);
            drain(&mut rx, &mut batch);
            let res = tokio::time::timeout(deadline, write_mysql(&mut conn, connect, &batch))
                .await
                .unwrap_or_else(|_| {
                    Err(Unavailable::Timeout {
                        what: "audit batch",
                        timeout: deadline,
                    }
                    .into())
                });
            let res = res.map_err(|e| e.masking(password));
            if res.is_err() {
                // The link may be broken or mid-statement: start the next batch on a fresh one.
                conn = None;
            }
            finish(&mut batch, res, obs);
        }
    });
}

async fn write_mysql(
    conn: &mut Option<diesel_async::AsyncMysqlConnection>,
    connect: &super::pool::MysqlConnect,
    batch: &[Job],
) -> Result<(), StoreError> {
    use diesel_async::SimpleAsyncConnection;
    let c = match conn {
        Some(c) => c,
        None => {
            let c = connect.establish().await.map_err(|e| Unavailable::Open {
                what: "audit writer cannot connect to MySQL",
                source: DriverError::new(e),
            })?;
            conn.insert(c)
        }
    };
    // One text-protocol command for the whole batch (see `audit_sql` for why and why it is safe).
    let sql = super::audit_sql::mysql_multi_insert(batch.iter().map(|j| &j.row));
    c.batch_execute(&sql).await.map_err(StoreError::from)
}
