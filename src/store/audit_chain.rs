//! The group-commit writer's side of the tamper-evident log (docs/audit.md): chain fields for
//! every row of a batch, the instance's Merkle frontier, signed checkpoints, the witness file,
//! and the resume from the instance's tail rows after a start.
//!
//! The writer links a batch's rows on a copy of its [`ChainState`] and writes them, and the
//! checkpoint when one is due, in the batch's own transaction; only when the batch committed
//! does the copy become the state (and the checkpoint's line go to the witness file). A batch
//! that failed or whose fate is unknown drops the state, and the next batch resumes it from the
//! database — so a `kill -9` at any point leaves a chain that ends at the last committed batch,
//! and the unique `(instance_id, seq)` index refuses a fork should a batch of unknown fate
//! commit after all.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audit::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
use crate::audit::leaf::AuditLeaf;
use crate::audit::merkle::{hash_eq, Frontier, Hash};
use crate::audit::ChainHead;

use super::{NewAudit, StatementError, StoreError};

/// Signs a checkpoint with the bank key of the moment (the answers' signer).
pub type CheckpointSignFn =
    dyn Fn(Checkpoint) -> Result<SignedCheckpoint, CheckpointError> + Send + Sync;

/// What the writer needs to chain rows: set once, before the first audit row (see
/// [`Store::chain_audit`](super::Store::chain_audit)).
pub struct ChainSetup {
    /// This instance's chain name (already valid).
    pub instance_id: String,
    /// A checkpoint is due once this many rows are uncovered…
    pub checkpoint_rows: u64,
    /// …or once the oldest uncovered row is this old.
    pub checkpoint_every: Duration,
    /// Signs checkpoints.
    pub sign: Box<CheckpointSignFn>,
    /// The witness file.
    pub witness: Witness,
    /// `gateway_audit_checkpoint_failures_total`: one per checkpoint whose signature failed.
    pub sign_failures: std::sync::OnceLock<prometheus::IntCounter>,
}

impl std::fmt::Debug for ChainSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSetup")
            .field("instance_id", &self.instance_id)
            .field("checkpoint_rows", &self.checkpoint_rows)
            .field("checkpoint_every", &self.checkpoint_every)
            .field("witness", &self.witness.path)
            .finish_non_exhaustive()
    }
}

/// The witness file, opened for appending, and its optional copy to the host's syslog.
pub struct Witness {
    file: std::fs::File,
    path: PathBuf,
    /// Lines whose append failed, oldest first: appended, in order, before the next line.
    pending: std::sync::Mutex<Vec<String>>,
    /// `gateway_audit_witness_failures_total`: one per failed append of a checkpoint's line.
    failures: std::sync::OnceLock<prometheus::IntCounter>,
    /// `audit.witness_syslog`: every line also goes to this socket.
    syslog: Option<SyslogCopy>,
}

/// The witness lines' copy to a syslog socket (`/dev/log`: journald or rsyslog), as RFC 3164
/// messages of facility `authpriv`, severity `notice`, tag `pension-gateway[pid]`. A best-effort
/// second copy: a lost message is counted and logged, never retried (the file is the witness
/// of record); a broken connection (the daemon restarted) is reopened once per message.
struct SyslogCopy {
    socket: PathBuf,
    logger: std::sync::Mutex<Option<SyslogLogger>>,
    /// `gateway_audit_witness_syslog_failures_total`.
    failures: std::sync::OnceLock<prometheus::IntCounter>,
}

type SyslogLogger = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

impl SyslogCopy {
    fn connect(socket: &Path) -> Result<SyslogLogger, syslog::Error> {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_AUTHPRIV,
            hostname: None,
            process: "pension-gateway".into(),
            pid: std::process::id(),
        };
        syslog::unix_custom(formatter, socket)
    }

    /// Sends `line` (without its newline); on a failure reconnects and tries once more.
    fn send(&self, line: &str) {
        let line = line.trim_end_matches('\n');
        let mut logger = match self.logger.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut sent = logger.as_mut().is_some_and(|l| l.notice(line).is_ok());
        if !sent {
            match Self::connect(&self.socket) {
                Ok(mut fresh) => {
                    sent = fresh.notice(line).is_ok();
                    *logger = Some(fresh);
                }
                Err(_) => *logger = None,
            }
        }
        if !sent {
            if let Some(c) = self.failures.get() {
                c.inc();
            }
            tracing::error!(
                socket = %self.socket.display(),
                "cannot send an audit witness line to the syslog socket (the witness file has it)"
            );
        }
    }
}

impl Witness {
    /// Opens (creating it, mode 0640) `path` for appending only.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(Witness {
            file,
            path: path.to_owned(),
            pending: std::sync::Mutex::new(Vec::new()),
            failures: std::sync::OnceLock::new(),
            syslog: None,
        })
    }

    /// Also sends every line from now on to the syslog socket at `socket` (`/dev/log`); fails
    /// when nothing listens there.
    pub fn copy_to_syslog(&mut self, socket: &Path) -> Result<(), syslog::Error> {
        let logger = SyslogCopy::connect(socket)?;
        self.syslog = Some(SyslogCopy {
            socket: socket.to_owned(),
            logger: std::sync::Mutex::new(Some(logger)),
            failures: std::sync::OnceLock::new(),
        });
        Ok(())
    }

    /// Counts each failed append of a checkpoint's line in `c` (first call wins).
    pub fn count_failures(&self, c: prometheus::IntCounter) {
        let _ = self.failures.set(c);
    }

    /// Counts each line whose syslog copy was lost in `c` (first call wins; nothing without a
    /// syslog copy).
    pub fn count_syslog_failures(&self, c: prometheus::IntCounter) {
        if let Some(copy) = &self.syslog {
            let _ = copy.failures.set(c);
        }
    }

    /// Lines kept in memory after a failed append, not yet in the file.
    pub fn pending(&self) -> usize {
        self.pending.lock().map_or(0, |p| p.len())
    }

    /// Appends `line` after the lines still pending from failed appends, keeping the file in
    /// checkpoint order. On a failure the line (and any before it) stays pending for the next
    /// call, and the error is returned with the number of lines pending.
    fn append_in_order(&self, line: &str) -> Result<(), (std::io::Error, usize)> {
        let mut pending = match self.pending.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(copy) = &self.syslog {
            copy.send(line);
        }
        pending.push(line.to_owned());
        while let Some(first) = pending.first() {
            if let Err(e) = self.append_to_file(first) {
                return Err((e, pending.len()));
            }
            pending.remove(0);
        }
        Ok(())
    }

    /// The path it was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (one `write` of the whole line on an `O_APPEND` descriptor) and waits
    /// until it is on disk; the syslog copy, if any, is sent first.
    pub fn append(&self, line: &str) -> std::io::Result<()> {
        if let Some(copy) = &self.syslog {
            copy.send(line);
        }
        self.append_to_file(line)
    }

    fn append_to_file(&self, line: &str) -> std::io::Result<()> {
        (&self.file).write_all(line.as_bytes())?;
        self.file.sync_data()
    }

    /// Whether the file holds `line` (read from its start).
    fn contains(&self, line: &str) -> std::io::Result<bool> {
        let want = line.trim_end_matches('\n');
        let f = std::io::BufReader::new(std::fs::File::open(&self.path)?);
        for l in f.lines() {
            if l? == want {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Where an instance's log stands in the writer.
#[derive(Debug, Clone)]
pub(crate) struct ChainState {
    head: ChainHead,
    frontier: Frontier,
    /// Tree size of the last checkpoint.
    covered: u64,
    /// Time of the last checkpoint (a new one never goes back in time).
    last_time_ms: i64,
    /// When the oldest uncovered row was linked.
    uncovered_since: Option<Instant>,
    /// After a checkpoint whose signature failed: no new try before this time…
    retry_at: Option<Instant>,
    /// …and the pause before the one after, should it fail too (doubling, at most
    /// [`SIGN_RETRY_MAX`]).
    retry_backoff: Duration,
}

/// The pause after the first failed checkpoint signature; it doubles with each failure in a row.
pub(crate) const SIGN_RETRY_MIN: Duration = Duration::from_secs(1);
/// The longest pause between two tries to sign a checkpoint.
pub(crate) const SIGN_RETRY_MAX: Duration = Duration::from_secs(30);

impl ChainState {
    /// Marks a failed checkpoint signature: the next try waits for the backoff.
    fn sign_failed(&mut self) -> Duration {
        let pause = if self.retry_backoff.is_zero() {
            SIGN_RETRY_MIN
        } else {
            (self.retry_backoff * 2).min(SIGN_RETRY_MAX)
        };
        self.retry_backoff = pause;
        self.retry_at = Some(Instant::now() + pause);
        pause
    }

    /// Whether a failed signature's backoff still holds the next try.
    fn backing_off(&self) -> bool {
        self.retry_at.is_some_and(|t| Instant::now() < t)
    }
}

/// The chain columns of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainCols {
    pub seq: i64,
    pub prev_hash: Hash,
    pub leaf_hash: Hash,
}

/// A checkpoint ready to be written: the row's columns and the witness line.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointRow {
    pub tree_size: i64,
    pub time_ms: i64,
    pub key_version: i32,
    pub note: String,
    pub frontier: Vec<u8>,
    pub witness_line: String,
}

/// A linked batch: the chain columns of its rows in order, the checkpoint to write with it, and
/// the state once it committed.
pub(crate) struct Linked {
    pub cols: Vec<ChainCols>,
    pub checkpoint: Option<CheckpointRow>,
    pub next: ChainState,
}

/// What the resume read from the database.
pub(crate) struct Tail {
    /// The instance's latest checkpoint: tree size, note, frontier bytes.
    pub checkpoint: Option<(i64, String, Vec<u8>)>,
    /// `(seq, leaf_hash)` of the rows from the checkpoint's size − 1 on (all rows without one),
    /// in sequence order.
    pub rows: Vec<(i64, Vec<u8>)>,
}

/// The leaf of `row` before linking (chain fields blank).
pub(crate) fn leaf_of(row: &NewAudit) -> AuditLeaf {
    AuditLeaf {
        instance_id: String::new(),
        seq: 0,
        prev_hash: [0; 32],
        request_id: row.request_id.clone(),
        channel: row.channel.to_owned(),
        outcome: row.outcome.clone(),
        http_status: u16::try_from(row.http_status).unwrap_or(0),
        received_at_ms: row.received_at_ms,
        bank_key_version: row.bank_key_version,
        wechat_key_version: row.wechat_key_version,
        id_digest: row.id_digest,
        pension_status: row.pension_status,
        request: row.evidence.request.clone(),
        response: row.evidence.response.clone(),
    }
}

fn invalid(what: &'static str) -> StoreError {
    StatementError::Invalid(what).into()
}

/// The frontier's peaks as stored: 32 bytes each, largest first.
fn frontier_bytes(f: &Frontier) -> Vec<u8> {
    f.peaks().iter().flatten().copied().collect()
}

/// Rebuilds a stored frontier of `size` and checks it against the signed `root`.
fn stored_frontier(size: u64, bytes: &[u8], root: &Hash) -> Option<Frontier> {
    if bytes.len() % 32 != 0 {
        return None;
    }
    let peaks = bytes
        .chunks_exact(32)
        .map(|c| <Hash>::try_from(c).ok())
        .collect::<Option<Vec<_>>>()?;
    let f = Frontier::from_parts(size, peaks).ok()?;
    hash_eq(&f.root(), root).then_some(f)
}

/// A frontier read back from a checkpoint row, checked against its signed root (for `audit
/// verify --since` and the resume).
pub fn checked_frontier(size: u64, bytes: &[u8], note: &str) -> Option<Frontier> {
    let cp = SignedCheckpoint::from_note(note).ok()?;
    if cp.checkpoint.size != size {
        return None;
    }
    stored_frontier(size, bytes, &cp.checkpoint.root)
}

impl ChainSetup {
    /// The state after the rows in `tail` (see [`Tail`]); appends the latest checkpoint's line
    /// to the witness file when a crash lost it between the commit and the append.
    pub(crate) fn resume(&self, tail: Tail) -> Result<ChainState, StoreError> {
        let id = &self.instance_id;
        let mut frontier = Frontier::new();
        let mut covered = 0;
        let mut last_time_ms = 0;
        let mut skip_first = false;
        if let Some((size, note, bytes)) = &tail.checkpoint {
            let size = u64::try_from(*size).map_err(|_| invalid("negative checkpoint size"))?;
            let cp = SignedCheckpoint::from_note(note)
                .map_err(|_| invalid("the instance's last audit checkpoint is not a note"))?;
            // A frontier that does not give the signed root is not used: the rows are read
            // again from the first one (the caller's query already did when there is none).
            match stored_frontier(size, bytes, &cp.checkpoint.root) {
                Some(f) => {
                    frontier = f;
                    skip_first = size > 0;
                }
                None => {
                    return Err(invalid(
                        "the last audit checkpoint's frontier does not give its signed root",
                    ))
                }
            }
            covered = size;
            last_time_ms = cp.checkpoint.time_ms;
            let line = cp
                .witness_line()
                .map_err(|_| invalid("checkpoint of an invalid instance id"))?;
            match self.witness.contains(&line) {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(
                        size,
                        "the last audit checkpoint was not in the witness file (stopped between \
                         commit and append); appending it"
                    );
                    self.witness
                        .append(&line)
                        .map_err(|e| witness_error("appending to", &e))?;
                }
                Err(e) => return Err(witness_error("reading", &e)),
            }
        }
        let mut head = ChainHead::resume(id, frontier.size(), crate::audit::chain::GENESIS_PREV)
            .map_err(|_| invalid("invalid audit.instance_id"))?;
        for (i, (seq, hash)) in tail.rows.iter().enumerate() {
            let hash =
                <Hash>::try_from(hash.as_slice()).map_err(|_| invalid("leaf_hash not 32 bytes"))?;
            let seq = u64::try_from(*seq).map_err(|_| invalid("negative seq"))?;
            if i == 0 && skip_first {
                // The row before the checkpoint's size: only its hash (the next prev_hash).
                if seq + 1 != frontier.size() {
                    return Err(invalid(
                        "the audit chain's row before its last checkpoint is missing",
                    ));
                }
                head.prev_hash = hash;
                continue;
            }
            if seq != head.next_seq {
                return Err(invalid("the audit chain's tail has a gap"));
            }
            frontier.push(hash);
            head.next_seq = seq + 1;
            head.prev_hash = hash;
        }
        if skip_first && head.prev_hash == crate::audit::chain::GENESIS_PREV {
            return Err(invalid(
                "the audit chain's row before its last checkpoint is missing",
            ));
        }
        let uncovered_since = (frontier.size() > covered).then(Instant::now);
        tracing::info!(
            instance = %id,
            rows = frontier.size(),
            checkpointed = covered,
            "audit chain resumed"
        );
        Ok(ChainState {
            head,
            frontier,
            covered,
            last_time_ms,
            uncovered_since,
            retry_at: None,
            retry_backoff: Duration::ZERO,
        })
    }

    /// Links `rows` onto a copy of `state`; adds a checkpoint when one is due (or `force` and
    /// rows are uncovered).
    pub(crate) fn link<'a>(
        &self,
        state: &ChainState,
        rows: impl IntoIterator<Item = &'a NewAudit>,
        now_ms: i64,
    ) -> Result<Linked, StoreError> {
        let mut next = state.clone();
        let mut cols = Vec::new();
        for row in rows {
            let mut leaf = leaf_of(row);
            let prev_hash = next.head.prev_hash;
            let leaf_hash = next
                .head
                .link(&mut leaf)
                .map_err(|_| invalid("audit row cannot be encoded as a leaf"))?;
            next.frontier.push(leaf_hash);
            cols.push(ChainCols {
                seq: i64::try_from(leaf.seq).map_err(|_| invalid("audit seq overflow"))?,
                prev_hash,
                leaf_hash,
            });
            next.uncovered_since.get_or_insert_with(Instant::now);
        }
        let checkpoint = if self.due(&next) {
            self.checkpoint(&mut next, now_ms)?
        } else {
            None
        };
        Ok(Linked {
            cols,
            checkpoint,
            next,
        })
    }

    /// Whether a checkpoint is due for `state` (never while a failed signature's backoff holds).
    pub(crate) fn due(&self, state: &ChainState) -> bool {
        let uncovered = state.frontier.size() - state.covered;
        uncovered > 0
            && !state.backing_off()
            && (uncovered >= self.checkpoint_rows
                || state
                    .uncovered_since
                    .is_some_and(|t| t.elapsed() >= self.checkpoint_every))
    }

    /// How long until the timer should check for a due checkpoint (`None`: nothing uncovered).
    /// Rows enough for a checkpoint are uncovered only after a failed signature: the timer then
    /// tries again at the backoff's end, batch or not.
    pub(crate) fn wait(&self, state: &ChainState) -> Option<Duration> {
        let since = state.uncovered_since?;
        let backoff = state.retry_at.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        });
        let by_rows_or_time = if state.frontier.size() - state.covered >= self.checkpoint_rows {
            Duration::ZERO
        } else {
            self.checkpoint_every.saturating_sub(since.elapsed())
        };
        Some(by_rows_or_time.max(backoff))
    }

    /// Signs the checkpoint of `state`'s whole tree and marks it covered. A signature that
    /// fails (the module down or past its deadline) gives `None`: the rows stay uncovered and
    /// are written all the same, the failure is counted (`gateway_audit_checkpoint_failures_total`)
    /// and logged, and a later batch or the timer tries again once the backoff has passed —
    /// a checkpoint covers the whole tree, so the retry covers these rows too.
    pub(crate) fn checkpoint(
        &self,
        state: &mut ChainState,
        now_ms: i64,
    ) -> Result<Option<CheckpointRow>, StoreError> {
        let time_ms = now_ms.max(state.last_time_ms);
        let cp = Checkpoint {
            instance_id: self.instance_id.clone(),
            size: state.frontier.size(),
            root: state.frontier.root(),
            time_ms,
        };
        let signed = match (self.sign)(cp) {
            Ok(signed) => signed,
            Err(e) => {
                if let Some(c) = self.sign_failures.get() {
                    c.inc();
                }
                let retry_in = state.sign_failed();
                tracing::error!(
                    error = %e,
                    uncovered = state.frontier.size() - state.covered,
                    retry_in_secs = retry_in.as_secs(),
                    "cannot sign an audit checkpoint; the rows are written uncovered and the \
                     checkpoint is tried again"
                );
                return Ok(None);
            }
        };
        let note = signed
            .to_note()
            .map_err(|_| invalid("checkpoint cannot be written as a note"))?;
        let witness_line = signed
            .witness_line()
            .map_err(|_| invalid("checkpoint cannot be written as a witness line"))?;
        state.covered = state.frontier.size();
        state.last_time_ms = time_ms;
        state.uncovered_since = None;
        state.retry_at = None;
        state.retry_backoff = Duration::ZERO;
        Ok(Some(CheckpointRow {
            tree_size: i64::try_from(state.covered).map_err(|_| invalid("tree size overflow"))?,
            time_ms,
            key_version: i32::try_from(signed.key_version)
                .map_err(|_| invalid("key version overflow"))?,
            note,
            frontier: frontier_bytes(&state.frontier),
            witness_line,
        }))
    }

    /// After the commit: the checkpoint's witness line. A failed append does not stop the
    /// writer (the rows and the checkpoint are committed; the answers go out): it is counted
    /// (`gateway_audit_witness_failures_total`), logged, and the line kept in memory and
    /// appended before the next checkpoint's, so the file stays in order once appends work
    /// again. Lines still pending at a stop are lost but the last, which the next start
    /// appends; `audit verify` names each missing one (`no witness line`).
    pub(crate) fn witness(&self, cp: &CheckpointRow) {
        if let Err((e, pending)) = self.witness.append_in_order(&cp.witness_line) {
            if let Some(c) = self.witness.failures.get() {
                c.inc();
            }
            tracing::error!(
                size = cp.tree_size,
                pending,
                error = %e,
                path = %self.witness.path.display(),
                "cannot append an audit checkpoint to the witness file; kept in memory, retried \
                 before the next checkpoint"
            );
        }
    }
}

fn witness_error(what: &str, e: &std::io::Error) -> StoreError {
    tracing::error!(error = %e, "{what} the audit witness file failed");
    invalid("the audit witness file cannot be read or appended to")
}

/// Shared, set-once chain setup of a store's writer.
pub(crate) type ChainSlot = Arc<std::sync::OnceLock<ChainSetup>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::tests::demo_signer;
    use crate::audit::checkpoint::Sm2CheckpointSigner;
    use crate::store::AuditEvidence;

    fn setup(dir: &Path, rows: u64) -> ChainSetup {
        let signer: Arc<dyn crate::crypto::PreparedSigner> = Arc::from(demo_signer());
        ChainSetup {
            instance_id: "gw-t".into(),
            checkpoint_rows: rows,
            checkpoint_every: Duration::from_secs(3600),
            sign: Box::new(move |cp: Checkpoint| {
                cp.sign(&Sm2CheckpointSigner {
                    key_version: 1,
                    signer: signer.as_ref(),
                })
            }),
            witness: Witness::open(&dir.join("w.log")).unwrap(),
            sign_failures: Default::default(),
        }
    }

    fn row(i: u32) -> NewAudit {
        NewAudit {
            request_id: format!("r-{i}"),
            received_at_ms: 1,
            outcome: "OK".into(),
            http_status: 200,
            bank_key_version: 1,
            wechat_key_version: None,
            id_digest: None,
            pension_status: None,
            channel: "hmac",
            evidence: AuditEvidence::default(),
        }
    }

    #[test]
    fn resume_from_a_checkpoint_continues_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(dir.path(), 3);
        let empty = s
            .resume(Tail {
                checkpoint: None,
                rows: vec![],
            })
            .unwrap();
        let rows: Vec<NewAudit> = (0..5).map(row).collect();
        let linked = s.link(&empty, &rows, 10).unwrap();
        let cp = linked.checkpoint.clone().unwrap();
        assert_eq!(cp.tree_size, 5);
        s.witness(&cp);
        // Two more rows, uncovered.
        let more: Vec<NewAudit> = (5..7).map(row).collect();
        let linked2 = s.link(&linked.next, &more, 11).unwrap();
        assert!(linked2.checkpoint.is_none());
        let all: Vec<ChainCols> = linked.cols.iter().chain(&linked2.cols).copied().collect();
        let tail = Tail {
            checkpoint: Some((cp.tree_size, cp.note.clone(), cp.frontier.clone())),
            rows: all[4..]
                .iter()
                .map(|c| (c.seq, c.leaf_hash.to_vec()))
                .collect(),
        };
        let resumed = s.resume(tail).unwrap();
        assert_eq!(resumed.head, linked2.next.head);
        assert_eq!(resumed.frontier, linked2.next.frontier);
        // Without the checkpoint, from every row.
        let full = s
            .resume(Tail {
                checkpoint: None,
                rows: all.iter().map(|c| (c.seq, c.leaf_hash.to_vec())).collect(),
            })
            .unwrap();
        assert_eq!(full.frontier, linked2.next.frontier);
        // A forged frontier is refused.
        let mut bad = cp.frontier.clone();
        bad[0] ^= 1;
        assert!(s
            .resume(Tail {
                checkpoint: Some((5, cp.note.clone(), bad)),
                rows: vec![(4, all[4].leaf_hash.to_vec())],
            })
            .is_err());
    }

    /// A signer that fails while `down` is set (as a module past its deadline would).
    fn flaky_setup(dir: &Path, down: Arc<std::sync::atomic::AtomicBool>) -> ChainSetup {
        let mut s = setup(dir, 2);
        let inner = std::mem::replace(&mut s.sign, Box::new(|_| unreachable!()));
        s.sign = Box::new(move |cp: Checkpoint| {
            if down.load(std::sync::atomic::Ordering::SeqCst) {
                Err(CheckpointError::Module(
                    "the signing module did not answer within 300ms".into(),
                ))
            } else {
                inner(cp)
            }
        });
        s
    }

    #[test]
    fn a_failed_checkpoint_signature_leaves_the_rows_uncovered_and_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let s = flaky_setup(dir.path(), Arc::clone(&down));
        let failures = prometheus::IntCounter::new("f", "f").unwrap();
        s.sign_failures.set(failures.clone()).unwrap();
        let st = s
            .resume(Tail {
                checkpoint: None,
                rows: vec![],
            })
            .unwrap();
        // Due (2 rows), but the signer fails: the rows are linked all the same, no checkpoint.
        let a = s.link(&st, &[row(0), row(1)], 10).unwrap();
        assert_eq!(a.cols.len(), 2);
        assert!(a.checkpoint.is_none());
        assert_eq!(failures.get(), 1);
        assert_eq!(a.next.covered, 0);
        assert_eq!(a.next.retry_backoff, SIGN_RETRY_MIN);
        // During the backoff nothing is due, and the timer waits for its end.
        assert!(!s.due(&a.next));
        // (The rows are due: the timer waits for the backoff only, not `checkpoint_every`.)
        let wait = s.wait(&a.next).unwrap();
        assert!(wait <= SIGN_RETRY_MIN, "{wait:?}");
        let b = s.link(&a.next, &[row(2)], 11).unwrap();
        assert!(b.checkpoint.is_none());
        assert_eq!(failures.get(), 1, "no try during the backoff");
        // The backoff over and the signer still down: it doubles, up to its bound.
        let mut st = b.next.clone();
        for expect in [2, 4, 8, 16, 30, 30] {
            st.retry_at = Some(Instant::now());
            let c = s.link(&st, std::iter::empty(), 12).unwrap();
            assert!(c.checkpoint.is_none());
            assert_eq!(c.next.retry_backoff, Duration::from_secs(expect));
            st = c.next;
        }
        assert_eq!(failures.get(), 7);
        // The signer is back: the next due checkpoint covers every row, the backoff is reset.
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        st.retry_at = Some(Instant::now());
        let d = s.link(&st, &[row(3)], 13).unwrap();
        let cp = d.checkpoint.expect("signed once the signer answers");
        assert_eq!(cp.tree_size, 4);
        assert_eq!(d.next.covered, 4);
        assert_eq!(d.next.retry_at, None);
        assert_eq!(d.next.retry_backoff, Duration::ZERO);
        assert_eq!(s.wait(&d.next), None, "nothing uncovered");
    }

    #[test]
    fn a_failed_witness_append_is_counted_and_retried_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = setup(dir.path(), 1);
        // Appends fail (ENOSPC) until the file is swapped back.
        let good = std::mem::replace(
            &mut s.witness.file,
            std::fs::OpenOptions::new()
                .append(true)
                .open("/dev/full")
                .unwrap(),
        );
        let failures = prometheus::IntCounter::new("f", "f").unwrap();
        s.witness.count_failures(failures.clone());
        let st = s
            .resume(Tail {
                checkpoint: None,
                rows: vec![],
            })
            .unwrap();
        let a = s.link(&st, &[row(0)], 10).unwrap();
        let cp_a = a.checkpoint.clone().unwrap();
        s.witness(&cp_a);
        let b = s.link(&a.next, &[row(1)], 11).unwrap();
        let cp_b = b.checkpoint.clone().unwrap();
        s.witness(&cp_b);
        assert_eq!(failures.get(), 2);
        assert_eq!(s.witness.pending(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("w.log")).unwrap(),
            ""
        );
        // Appends work again: the pending lines go first, in checkpoint order.
        s.witness.file = good;
        let c = s.link(&b.next, &[row(2)], 12).unwrap();
        let cp_c = c.checkpoint.clone().unwrap();
        s.witness(&cp_c);
        assert_eq!(failures.get(), 2);
        assert_eq!(s.witness.pending(), 0);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("w.log")).unwrap(),
            format!(
                "{}{}{}",
                cp_a.witness_line, cp_b.witness_line, cp_c.witness_line
            )
        );
    }

    /// One datagram from `sock`, as text (a read timeout turns a missing one into a failure).
    fn datagram(sock: &std::os::unix::net::UnixDatagram) -> String {
        let mut buf = vec![0u8; 4096];
        let n = sock.recv(&mut buf).expect("a syslog datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn witness_lines_are_copied_to_the_syslog_socket() {
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("log");
        let listener = UnixDatagram::bind(&socket).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut s = setup(dir.path(), 1);
        s.witness.copy_to_syslog(&socket).unwrap();
        let lost = prometheus::IntCounter::new("l", "l").unwrap();
        s.witness.count_syslog_failures(lost.clone());
        let st = s
            .resume(Tail {
                checkpoint: None,
                rows: vec![],
            })
            .unwrap();
        let a = s.link(&st, &[row(0)], 10).unwrap();
        let cp_a = a.checkpoint.clone().unwrap();
        s.witness(&cp_a);
        // RFC 3164: <PRI> with facility authpriv (10) and severity notice (5) = 85, the tag
        // with the process id, then the witness line exactly, without its newline.
        let got = datagram(&listener);
        assert!(got.starts_with("<85>"), "{got}");
        let line = cp_a.witness_line.trim_end_matches('\n');
        assert!(
            got.ends_with(&format!("pension-gateway[{}]: {line}", std::process::id())),
            "{got}"
        );
        assert_eq!(lost.get(), 0);

        // The daemon goes away: the copy is counted as lost, the file still gets the line.
        drop(listener);
        std::fs::remove_file(&socket).unwrap();
        let b = s.link(&a.next, &[row(1)], 11).unwrap();
        let cp_b = b.checkpoint.clone().unwrap();
        s.witness(&cp_b);
        assert_eq!(lost.get(), 1);

        // It comes back (a new socket at the same path): the next line reconnects.
        let listener = UnixDatagram::bind(&socket).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let c = s.link(&b.next, &[row(2)], 12).unwrap();
        let cp_c = c.checkpoint.clone().unwrap();
        s.witness(&cp_c);
        let got = datagram(&listener);
        assert!(
            got.ends_with(cp_c.witness_line.trim_end_matches('\n')),
            "{got}"
        );
        assert_eq!(lost.get(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("w.log")).unwrap(),
            format!(
                "{}{}{}",
                cp_a.witness_line, cp_b.witness_line, cp_c.witness_line
            )
        );
    }

    #[test]
    fn a_syslog_socket_nobody_listens_on_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Witness::open(&dir.path().join("w.log")).unwrap();
        assert!(w.copy_to_syslog(&dir.path().join("no-daemon")).is_err());
    }

    #[test]
    fn a_lost_witness_line_is_appended_at_resume() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(dir.path(), 1);
        let st = s
            .resume(Tail {
                checkpoint: None,
                rows: vec![],
            })
            .unwrap();
        let linked = s.link(&st, &[row(0)], 10).unwrap();
        let cp = linked.checkpoint.unwrap();
        // Not witnessed (as if killed after the commit).
        s.resume(Tail {
            checkpoint: Some((cp.tree_size, cp.note.clone(), cp.frontier.clone())),
            rows: vec![(0, linked.cols[0].leaf_hash.to_vec())],
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join("w.log")).unwrap();
        assert_eq!(text, cp.witness_line);
    }
}
