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
//!
//! The audit never claims an answer the caller did not get (docs/decisions.md). Every batch has a
//! random 16-byte id, stored in each of its rows and, as the last statement of its transaction,
//! as a row of `audit_batches`. When a MySQL batch times out or loses its link after it was sent,
//! its fate is unknown: the writer then inserts that same `audit_batches` key on a fresh
//! connection (the *fence*). A duplicate key proves the batch committed, and its callers get
//! their answers; a successful insert proves it never will commit, and they get the 503. If even
//! that cannot be learned in time, the callers get the 503 and the batch id is kept: once the
//! database answers again, the writer fences it, and if it had committed after all records it in
//! `audit_undelivered`, so its rows read as not delivered.
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

use diesel::{Connection, ExpressionMethods, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::audit_chain::{ChainSetup, ChainSlot, ChainState, CheckpointRow, Linked, Tail};
use super::models::AuditRow;
use super::schema::{audit_batches as ab, audit_checkpoints as ac, query_audit as qa};
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
    chain: ChainSlot,
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
        let chain: ChainSlot = Arc::new(OnceLock::new());
        let ch = chain.clone();
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || match target {
                WriterTarget::Sqlite { path, pragmas } => {
                    run_sqlite(&path, pragmas, rx, &obs, &ch);
                }
                WriterTarget::Mysql {
                    connect,
                    deadline,
                    password,
                } => run_mysql(&connect, deadline, password.as_ref(), rx, &obs, &ch),
            });
        spawned
            .map(|_| AuditWriter {
                tx,
                observer,
                chain,
            })
            .map_err(|e| {
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

    /// Chains every row of the batches written from now on (first call wins; false if the
    /// chain was already set).
    pub(crate) fn set_chain(&self, setup: ChainSetup) -> bool {
        self.chain.set(setup).is_ok()
    }

    /// The chain setup, once set.
    pub(crate) fn chain_setup(&self) -> Option<&ChainSetup> {
        self.chain.get()
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

fn run_sqlite(
    path: &str,
    pragmas: &'static str,
    mut rx: mpsc::Receiver<Job>,
    obs: &BatchObserver,
    chain: &ChainSlot,
) {
    let mut conn: Option<SqliteConnection> = None;
    let mut state: Option<ChainState> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Only the checkpoint timer: a runtime to wait on the channel with a deadline.
    let timer = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .ok();
    loop {
        let wait = chain
            .get()
            .zip(state.as_ref())
            .and_then(|(setup, st)| setup.wait(st));
        match (wait, &timer) {
            (Some(d), Some(rt)) => {
                // The timer is made inside the runtime (it needs the runtime's time driver).
                match rt.block_on(async { tokio::time::timeout(d, rx.recv()).await }) {
                    Ok(Some(j)) => batch.push(j),
                    Ok(None) => break,
                    Err(_) => {
                        // No batch for a while: sign the checkpoint that is due on its own.
                        if let Some(setup) = chain.get() {
                            if let Err(e) =
                                checkpoint_sqlite(&mut conn, path, pragmas, setup, &mut state)
                            {
                                tracing::warn!(error = %e, "audit checkpoint not written; retried with the next batch");
                                conn = None;
                            }
                        }
                        continue;
                    }
                }
                drain(&mut rx, &mut batch);
            }
            _ => {
                if !gather_blocking(&mut rx, &mut batch) {
                    break;
                }
            }
        }
        let res = write_sqlite(&mut conn, path, pragmas, &batch, chain.get(), &mut state);
        if matches!(res, Err(StoreError::Unavailable(_))) {
            conn = None;
        }
        finish(&mut batch, res, obs);
    }
}

/// Unix milliseconds of the wall clock, for the bookkeeping rows (`audit_batches`).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn sqlite_conn<'c>(
    conn: &'c mut Option<SqliteConnection>,
    path: &str,
    pragmas: &'static str,
) -> Result<&'c mut SqliteConnection, StoreError> {
    Ok(match conn {
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
    })
}

/// The instance's latest checkpoint and the rows from its size − 1 on (SQLite).
fn tail_sqlite(c: &mut SqliteConnection, instance: &str) -> Result<Tail, StoreError> {
    use diesel::{OptionalExtension, QueryDsl, RunQueryDsl};
    let checkpoint: Option<(i64, String, Vec<u8>)> = ac::table
        .filter(ac::instance_id.eq(instance))
        .order(ac::tree_size.desc())
        .select((ac::tree_size, ac::note, ac::frontier))
        .first(c)
        .optional()?;
    let from = checkpoint.as_ref().map_or(0, |cp| (cp.0 - 1).max(0));
    let rows: Vec<(Option<i64>, Option<Vec<u8>>)> = qa::table
        .filter(qa::instance_id.eq(instance))
        .filter(qa::seq.ge(from))
        .order(qa::seq.asc())
        .select((qa::seq, qa::leaf_hash))
        .load(c)?;
    Ok(Tail {
        checkpoint,
        rows: rows
            .into_iter()
            .filter_map(|(s, h)| Some((s?, h?)))
            .collect(),
    })
}

fn insert_checkpoint_sqlite(
    c: &mut SqliteConnection,
    instance: &str,
    cp: &CheckpointRow,
) -> Result<(), diesel::result::Error> {
    use diesel::RunQueryDsl;
    diesel::insert_into(ac::table)
        .values((
            ac::instance_id.eq(instance),
            ac::tree_size.eq(cp.tree_size),
            ac::time_ms.eq(cp.time_ms),
            ac::key_version.eq(cp.key_version),
            ac::note.eq(&cp.note),
            ac::frontier.eq(&cp.frontier),
        ))
        .execute(c)
        .map(|_| ())
}

/// A checkpoint on its own (the timer): written, then witnessed; the state moves only then.
fn checkpoint_sqlite(
    conn: &mut Option<SqliteConnection>,
    path: &str,
    pragmas: &'static str,
    setup: &ChainSetup,
    state: &mut Option<ChainState>,
) -> Result<(), StoreError> {
    let Some(st) = state.take() else {
        return Ok(());
    };
    if !setup.due(&st) {
        *state = Some(st);
        return Ok(());
    }
    let mut next = st;
    let Some(cp) = setup.checkpoint(&mut next, now_ms())? else {
        // Not signed (counted and logged): tried again after the backoff.
        *state = Some(next);
        return Ok(());
    };
    let c = sqlite_conn(conn, path, pragmas)?;
    insert_checkpoint_sqlite(c, &setup.instance_id, &cp)?;
    setup.witness(&cp);
    *state = Some(next);
    Ok(())
}

fn write_sqlite(
    conn: &mut Option<SqliteConnection>,
    path: &str,
    pragmas: &'static str,
    batch: &[Job],
    chain: Option<&ChainSetup>,
    state: &mut Option<ChainState>,
) -> Result<(), StoreError> {
    let c = sqlite_conn(conn, path, pragmas)?;
    // One transaction of single-row INSERTs, not one multi-row statement: a single-row INSERT
    // is the same statement for every row, so SQLite prepares it once per connection (diesel's
    // statement cache) where a multi-row INSERT of a new length is parsed and planned anew; the
    // transaction keeps the batch atomic (one commit, all rows or none). The commit's result is
    // known for certain here (no link to lose, no timeout), so the batch row is bookkeeping that
    // keeps both backends' tables alike rather than a fence.
    // The chain is resumed (when the state was lost) and linked inside the same immediate
    // transaction, so no other writer can slip a row of this instance in between.
    use diesel::RunQueryDsl;
    let batch_id: [u8; 16] = rand::random();
    let prior = state.take();
    let linked = c.immediate_transaction(|c| {
        let linked: Option<Linked> = match chain {
            Some(setup) => {
                let st = match prior {
                    Some(st) => st,
                    None => setup.resume(tail_sqlite(c, &setup.instance_id)?)?,
                };
                Some(setup.link(&st, batch.iter().map(|j| &j.row), now_ms())?)
            }
            None => None,
        };
        for (i, job) in batch.iter().enumerate() {
            let cols = linked.as_ref().and_then(|l| l.cols.get(i));
            let instance = chain.map(|s| s.instance_id.as_str());
            diesel::insert_into(qa::table)
                .values(AuditRow::new(&job.row, Some(&batch_id)).chained(instance, cols))
                .execute(c)?;
        }
        if let (Some(setup), Some(cp)) =
            (chain, linked.as_ref().and_then(|l| l.checkpoint.as_ref()))
        {
            insert_checkpoint_sqlite(c, &setup.instance_id, cp)?;
        }
        diesel::insert_into(ab::table)
            .values((
                ab::batch_id.eq(batch_id.as_slice()),
                ab::committed.eq(1i16),
                ab::recorded_at_ms.eq(now_ms()),
            ))
            .execute(c)?;
        Ok::<_, StoreError>(linked)
    })?;
    if let (Some(setup), Some(linked)) = (chain, linked) {
        if let Some(cp) = &linked.checkpoint {
            setup.witness(cp);
        }
        *state = Some(linked.next);
    }
    Ok(())
}

/// Batches whose fate could not be learned (no connection), kept to be settled later; beyond
/// this many the oldest is given up and logged as an error.
const MAX_UNSETTLED: usize = 4096;

/// How often the writer tries again to settle unknown batches while no request arrives.
const SETTLE_RETRY: Duration = Duration::from_secs(1);

/// How a batch's write ended.
enum Written {
    /// Committed: the callers get their answers.
    Committed,
    /// Failed before anything was sent (no connection): it certainly did not commit.
    NotSent(StoreError),
    /// Sent, then an error, a timeout or a lost link: it may or may not have committed.
    Unknown(StoreError),
}

/// What a fresh connection learned about a batch of unknown fate.
enum Fate {
    /// The batch's own `audit_batches` row is there: it committed.
    Committed,
    /// The fence row went in: the batch did not commit and never will.
    Fenced,
}

fn run_mysql(
    connect: &super::pool::MysqlConnect,
    deadline: Duration,
    password: Option<&Arc<super::error::Password>>,
    mut rx: mpsc::Receiver<Job>,
    obs: &BatchObserver,
    chain: &ChainSlot,
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
    let scrub = |e: StoreError| e.masking(password);
    rt.block_on(async move {
        use diesel_async::AsyncMysqlConnection;
        let mut conn: Option<AsyncMysqlConnection> = None;
        let mut unsettled: std::collections::VecDeque<[u8; 16]> = Default::default();
        let mut state: Option<ChainState> = None;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let checkpoint_wait = chain
                .get()
                .zip(state.as_ref())
                .and_then(|(setup, st)| setup.wait(st));
            let nap = match (unsettled.is_empty(), checkpoint_wait) {
                (true, None) => None,
                (true, Some(w)) => Some(w),
                (false, w) => Some(w.map_or(SETTLE_RETRY, |w| w.min(SETTLE_RETRY))),
            };
            let next = match nap {
                None => rx.recv().await,
                Some(nap) => tokio::select! {
                    j = rx.recv() => j,
                    () = tokio::time::sleep(nap) => {
                        if !unsettled.is_empty() {
                            let _ = tokio::time::timeout(
                                deadline,
                                settle_later(&mut conn, connect, &mut unsettled, password),
                            )
                            .await;
                        }
                        if let Some(setup) = chain.get() {
                            let done = tokio::time::timeout(
                                deadline,
                                checkpoint_mysql(&mut conn, connect, setup, &mut state),
                            )
                            .await;
                            if !matches!(done, Ok(Ok(()))) {
                                // Written or not, the next batch learns it from the database.
                                tracing::warn!("audit checkpoint not written in time; the chain is resumed from the database");
                                state = None;
                                conn = None;
                            }
                        }
                        continue;
                    }
                },
            };
            let Some(j) = next else { break };
            batch.push(j);
            drain(&mut rx, &mut batch);
            if !unsettled.is_empty() {
                let _ = tokio::time::timeout(
                    deadline,
                    settle_later(&mut conn, connect, &mut unsettled, password),
                )
                .await;
            }
            let batch_id: [u8; 16] = rand::random();
            let setup = chain.get();
            let prior = state.take();
            let (written, linked) = tokio::time::timeout(
                deadline,
                write_mysql(&mut conn, connect, &batch_id, &batch, setup, prior),
            )
            .await
            .unwrap_or_else(|_| {
                (
                    Written::Unknown(
                        Unavailable::Timeout {
                            what: "audit batch acknowledgement",
                            timeout: deadline,
                        }
                        .into(),
                    ),
                    None,
                )
            });
            // The chain state moves only with a batch known to have committed; otherwise the
            // next batch resumes it from the database (and the witness line of a checkpoint
            // that committed unseen is appended then).
            if let (Written::Committed, Some(setup), Some(linked)) = (&written, setup, linked) {
                if let Some(cp) = &linked.checkpoint {
                    setup.witness(cp);
                }
                state = Some(linked.next);
            }
            let res = match written {
                Written::Committed => Ok(()),
                Written::NotSent(e) => Err(e),
                Written::Unknown(e) => {
                    // The link may be broken or mid-statement: never use it again. The batch
                    // may still commit (a statement waiting on a lock, an acknowledgement lost):
                    // learn its fate on a fresh connection before anyone is answered.
                    conn = None;
                    match tokio::time::timeout(deadline, settle(connect, &batch_id)).await {
                        Ok(Ok(Fate::Committed)) => {
                            tracing::warn!(
                                rows = batch.len(),
                                error = %scrub(e),
                                "audit batch committed although its acknowledgement was lost; its requests are answered"
                            );
                            Ok(())
                        }
                        Ok(Ok(Fate::Fenced)) => Err(e),
                        Ok(Err(_)) | Err(_) => {
                            if unsettled.len() >= MAX_UNSETTLED {
                                if let Some(lost) = unsettled.pop_front() {
                                    tracing::error!(
                                        batch_id = %hex::encode(lost),
                                        "audit batch of unknown fate given up: its rows, if committed, are not marked undelivered"
                                    );
                                }
                            }
                            unsettled.push_back(batch_id);
                            Err(e)
                        }
                    }
                }
            };
            finish(&mut batch, res.map_err(scrub), obs);
        }
        for id in unsettled {
            tracing::error!(
                batch_id = %hex::encode(id),
                "audit writer stopped with a batch of unknown fate: its rows, if committed, are not marked undelivered"
            );
        }
    });
}

async fn connection<'c>(
    conn: &'c mut Option<diesel_async::AsyncMysqlConnection>,
    connect: &super::pool::MysqlConnect,
) -> Result<&'c mut diesel_async::AsyncMysqlConnection, StoreError> {
    match conn {
        Some(c) => Ok(c),
        None => {
            let c = connect.establish().await.map_err(|e| Unavailable::Open {
                what: "audit writer cannot connect to MySQL",
                source: DriverError::new(e),
            })?;
            Ok(conn.insert(c))
        }
    }
}

/// The instance's latest checkpoint and the rows from its size − 1 on (MySQL).
async fn tail_mysql(
    c: &mut diesel_async::AsyncMysqlConnection,
    instance: &str,
) -> Result<Tail, StoreError> {
    use diesel::{OptionalExtension, QueryDsl};
    use diesel_async::RunQueryDsl;
    let checkpoint: Option<(i64, String, Vec<u8>)> = ac::table
        .filter(ac::instance_id.eq(instance))
        .order(ac::tree_size.desc())
        .select((ac::tree_size, ac::note, ac::frontier))
        .first(c)
        .await
        .optional()?;
    let from = checkpoint.as_ref().map_or(0, |cp| (cp.0 - 1).max(0));
    let rows: Vec<(Option<i64>, Option<Vec<u8>>)> = qa::table
        .filter(qa::instance_id.eq(instance))
        .filter(qa::seq.ge(from))
        .order(qa::seq.asc())
        .select((qa::seq, qa::leaf_hash))
        .load(c)
        .await?;
    Ok(Tail {
        checkpoint,
        rows: rows
            .into_iter()
            .filter_map(|(s, h)| Some((s?, h?)))
            .collect(),
    })
}

async fn write_mysql(
    conn: &mut Option<diesel_async::AsyncMysqlConnection>,
    connect: &super::pool::MysqlConnect,
    batch_id: &[u8; 16],
    batch: &[Job],
    chain: Option<&ChainSetup>,
    prior: Option<ChainState>,
) -> (Written, Option<Linked>) {
    use diesel_async::SimpleAsyncConnection;
    let c = match connection(conn, connect).await {
        Ok(c) => c,
        Err(e) => return (Written::NotSent(e), None),
    };
    // The chain: resumed from the database when the state was lost. Nothing is sent yet, so a
    // failure here certainly did not commit; a concurrent writer of the same instance id would
    // meet the unique (instance_id, seq) index rather than fork the chain.
    let linked = match chain {
        Some(setup) => {
            let st = match prior {
                Some(st) => st,
                None => match tail_mysql(c, &setup.instance_id).await {
                    Ok(tail) => match setup.resume(tail) {
                        Ok(st) => st,
                        Err(e) => return (Written::NotSent(e), None),
                    },
                    Err(e) => return (Written::NotSent(e), None),
                },
            };
            match setup.link(&st, batch.iter().map(|j| &j.row), now_ms()) {
                Ok(l) => Some(l),
                Err(e) => return (Written::NotSent(e), None),
            }
        }
        None => None,
    };
    let instance = chain.map(|s| s.instance_id.as_str());
    let rows = batch.iter().enumerate().map(|(i, j)| {
        let cols = linked.as_ref().and_then(|l| l.cols.get(i));
        (&j.row, instance.zip(cols))
    });
    let checkpoint = instance.zip(linked.as_ref().and_then(|l| l.checkpoint.as_ref()));
    // One text-protocol command for the whole batch (see `audit_sql` for why and why it is safe).
    let sql = super::audit_sql::mysql_batch(batch_id, now_ms(), rows, checkpoint);
    match c.batch_execute(&sql).await {
        Ok(()) => (Written::Committed, linked),
        Err(e) => (Written::Unknown(StoreError::from(e)), None),
    }
}

/// A checkpoint on its own (the timer), one `INSERT`; the state moves only once it is written.
async fn checkpoint_mysql(
    conn: &mut Option<diesel_async::AsyncMysqlConnection>,
    connect: &super::pool::MysqlConnect,
    setup: &ChainSetup,
    state: &mut Option<ChainState>,
) -> Result<(), StoreError> {
    use diesel_async::SimpleAsyncConnection;
    let Some(st) = state.as_ref() else {
        return Ok(());
    };
    if !setup.due(st) {
        return Ok(());
    }
    let mut next = st.clone();
    let Some(cp) = setup.checkpoint(&mut next, now_ms())? else {
        // Not signed (counted and logged): tried again after the backoff.
        *state = Some(next);
        return Ok(());
    };
    let c = connection(conn, connect).await?;
    c.batch_execute(&super::audit_sql::checkpoint(&setup.instance_id, &cp))
        .await?;
    setup.witness(&cp);
    *state = Some(next);
    Ok(())
}

/// Learns the fate of batch `batch_id` on a fresh connection by inserting its fence row.
async fn settle(
    connect: &super::pool::MysqlConnect,
    batch_id: &[u8; 16],
) -> Result<Fate, StoreError> {
    let mut fresh = None;
    let c = connection(&mut fresh, connect).await?;
    fence(c, batch_id).await
}

async fn fence(
    c: &mut diesel_async::AsyncMysqlConnection,
    batch_id: &[u8; 16],
) -> Result<Fate, StoreError> {
    use diesel::result::{DatabaseErrorKind, Error as E};
    use diesel_async::SimpleAsyncConnection;
    match c
        .batch_execute(&super::audit_sql::fence(batch_id, now_ms()))
        .await
    {
        Ok(()) => Ok(Fate::Fenced),
        Err(E::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(Fate::Committed),
        Err(e) => Err(StoreError::from(e)),
    }
}

/// Settles the batches whose callers were already answered with a signed 503: a fenced batch
/// left no rows (the audit agrees with the callers); a committed one is recorded in
/// `audit_undelivered`, so its rows read as not delivered. Stops at the first failure (the
/// rest are tried again later).
async fn settle_later(
    conn: &mut Option<diesel_async::AsyncMysqlConnection>,
    connect: &super::pool::MysqlConnect,
    unsettled: &mut std::collections::VecDeque<[u8; 16]>,
    password: Option<&Arc<super::error::Password>>,
) {
    use diesel::result::{DatabaseErrorKind, Error as E};
    use diesel_async::SimpleAsyncConnection;
    while let Some(id) = unsettled.front().copied() {
        let c = match connection(conn, connect).await {
            Ok(c) => c,
            Err(_) => return,
        };
        let settled = match fence(c, &id).await {
            Ok(Fate::Fenced) => Ok(()),
            Ok(Fate::Committed) => {
                match c
                    .batch_execute(&super::audit_sql::undelivered(&id, now_ms()))
                    .await
                {
                    Ok(()) | Err(E::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                        tracing::warn!(
                            batch_id = %hex::encode(id),
                            "audit batch had committed after its requests were answered 503; its rows are marked undelivered"
                        );
                        Ok(())
                    }
                    Err(e) => Err(StoreError::from(e)),
                }
            }
            Err(e) => Err(e),
        };
        match settled {
            Ok(()) => {
                unsettled.pop_front();
            }
            Err(e) => {
                let error = e.masking(password).to_string();
                tracing::warn!(%error, "cannot settle an audit batch of unknown fate yet");
                *conn = None;
                return;
            }
        }
    }
}
