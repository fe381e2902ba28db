//! Import of the bank's account extract (CSV) into `pension_accounts` (docs/accounts-import.md).
//!
//! The file is **streamed**: rows are parsed one at a time, validated, digested (the raw ID
//! number is turned into HMAC-SM3 with the pepper at once and never stored or logged) and
//! written in batches through [`Store::upsert_accounts`](crate::store::Store::upsert_accounts),
//! one transaction per batch, upserting by `account_no`, so running the same extract again is
//! idempotent. Memory is bounded by the batch size plus a map of the account numbers seen (a
//! 128-bit hash each, not the number, to report repeats across batches; ~150 bytes per distinct
//! `account_no`) plus the list of rejected lines.
//!
//! Format (see `docs/accounts-import.md`): a header row naming the columns `account_no`,
//! `holder_name`, `phone`, `id_number`, `status`, `opened_at`, `closed_at` in any order (other
//! columns are ignored); UTF-8 with or without a BOM; LF or CRLF; RFC 4180 quoting; blank lines
//! skipped; whitespace around fields trimmed.
//!
//! A bad line never aborts the import and never costs a good line: it is reported with its line
//! number and a reason that holds **no personal data** (never the value). A failure of the file
//! (read error, header) or of the database aborts with an [`ImportError`]; batches already
//! committed stay, and re-running is safe.

mod row;
mod sample;
mod source;

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};

use super::AccountDirectory;
use crate::store::{NewAccount, RowRefusal, StoreError};
pub use row::COLUMNS;
use row::{columns, parse_row};
pub use sample::write_sample_csv;
use source::Source;

/// Rows per batch (one transaction each) when the caller does not choose.
pub const DEFAULT_BATCH_SIZE: usize = 1000;

/// Outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Number of the last line holding a record (the header is line 1; blank lines count).
    pub lines: u64,
    /// Data rows read (the header and blank lines excluded).
    pub rows: u64,
    /// Rows that passed validation and were sent to the database (or would be, in a dry run).
    pub valid: u64,
    /// Rows whose `account_no` was new.
    pub inserted: u64,
    /// Rows whose `account_no` already existed (counted even when nothing changed).
    pub updated: u64,
    /// Batches committed.
    pub batches: u64,
    /// Rejected rows: line number (1 = header) and a reason free of personal data, by line.
    pub rejected: Vec<(u64, String)>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// Progress of a running import, passed to the caller's callback after every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportProgress {
    /// Bytes of the file consumed so far.
    pub bytes_read: u64,
    /// Data rows read so far.
    pub rows_read: u64,
    /// Rows inserted so far.
    pub inserted: u64,
    /// Rows updated so far.
    pub updated: u64,
    /// Rows rejected so far.
    pub rejected: u64,
}

/// What is wrong with the header row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first line is empty (or the file is).
    #[error("the file is empty; the first line must be a header naming {}", COLUMNS.join(", "))]
    Empty,
    /// A required column is named twice.
    #[error("column `{0}` appears more than once")]
    Repeated(&'static str),
    /// Required columns are not named.
    #[error(
        "missing required column(s): {}; the header must name {}",
        .0.join(", "),
        COLUMNS.join(", ")
    )]
    Missing(Vec<&'static str>),
}

/// Why an import stopped. Messages hold no personal data.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file has no header row, or the header lacks a required column or repeats one.
    #[error("bad header: {0}")]
    Header(#[from] HeaderError),
    /// Reading the file failed.
    #[error("reading the file failed near line {line}: {cause}")]
    Read {
        /// Line reached when the error happened.
        line: u64,
        /// The I/O error (in the message; not also reported as the source).
        cause: io::Error,
    },
    /// The database failed; the batches before this one are committed.
    #[error("database error after {batches_committed} committed batch(es) ({rows_committed} rows up to line {committed_through_line}): {cause}; re-running the import is safe (rows are upserted by account_no)")]
    Store {
        /// Batches committed before the failure.
        batches_committed: u64,
        /// Rows inserted or updated by those batches.
        rows_committed: u64,
        /// The last line of the last committed batch (1 when none was).
        committed_through_line: u64,
        /// What the store said (in the message; not also reported as the source).
        cause: StoreError,
    },
}

/// Where the latest occurrence of an `account_no` is.
#[derive(Clone, Copy)]
enum Seen {
    /// In the pending batch at this index, from this line.
    Pending { slot: usize, line: u64 },
    /// Committed from this line.
    Committed { line: u64 },
}

/// 128 bits of two fixed-key SipHashes: collisions among millions of rows are out of reach, and
/// the map stays small (the account numbers themselves are not kept).
fn key_hash(account_no: &str) -> u128 {
    let half = |salt: u8| {
        let mut h = DefaultHasher::new();
        salt.hash(&mut h);
        account_no.hash(&mut h);
        h.finish()
    };
    (u128::from(half(1)) << 64) | u128::from(half(2))
}

struct Importer<'a> {
    dir: &'a AccountDirectory,
    dry_run: bool,
    report: ImportReport,
    /// Pending rows; `None` where a later line superseded the row.
    pending: Vec<Option<(u64, NewAccount)>>,
    /// Pending rows that supersede a committed one: (pending slot, superseded line).
    supersedes: Vec<(usize, u64)>,
    seen: HashMap<u128, Seen>,
    rows_committed: u64,
    committed_through_line: u64,
}

impl Importer<'_> {
    fn reject(&mut self, line: u64, reason: String) {
        self.report.rejected.push((line, reason));
    }

    fn push(&mut self, line: u64, acc: NewAccount) {
        let slot = self.pending.len();
        match self.seen.entry(key_hash(&acc.account_no)) {
            Entry::Vacant(v) => {
                v.insert(Seen::Pending { slot, line });
            }
            Entry::Occupied(mut o) => {
                match *o.get() {
                    Seen::Pending {
                        slot: old,
                        line: old_line,
                    } => {
                        self.pending[old] = None;
                        self.report.valid -= 1;
                        // Whatever the earlier pending row superseded, this one does now.
                        for s in &mut self.supersedes {
                            if s.0 == old {
                                s.0 = slot;
                            }
                        }
                        self.report.rejected.push((
                            old_line,
                            format!("account_no repeated on line {line}, which replaces this line"),
                        ));
                    }
                    Seen::Committed { line: old_line } => self.supersedes.push((slot, old_line)),
                }
                o.insert(Seen::Pending { slot, line });
            }
        }
        self.pending.push(Some((line, acc)));
        self.report.valid += 1;
    }

    async fn flush(&mut self) -> Result<(), ImportError> {
        if self.pending.iter().all(Option::is_none) {
            self.pending.clear();
            self.supersedes.clear();
            return Ok(());
        }
        let slots: Vec<usize> = (0..self.pending.len())
            .filter(|&i| self.pending[i].is_some())
            .collect();
        let lines: Vec<u64> = slots
            .iter()
            .filter_map(|&i| self.pending[i].as_ref().map(|p| p.0))
            .collect();
        let rows: Vec<NewAccount> = slots
            .iter()
            .filter_map(|&i| self.pending[i].take().map(|p| p.1))
            .collect();
        let last_line = lines.last().copied().unwrap_or(0);
        let mut rejected_slots = std::collections::HashSet::new();
        if !self.dry_run {
            let summary = self
                .dir
                .store()
                .upsert_accounts(&rows)
                .await
                .map_err(|cause| ImportError::Store {
                    batches_committed: self.report.batches,
                    rows_committed: self.rows_committed,
                    committed_through_line: self.committed_through_line.max(1),
                    cause,
                })?;
            self.report.batches += 1;
            self.report.inserted += summary.inserted;
            self.report.updated += summary.updated;
            self.rows_committed += summary.inserted + summary.updated;
            for (i, refusal) in summary.rejected {
                rejected_slots.insert(slots[i]);
                let reason = match refusal {
                    RowRefusal::DigestRepeated { first } => format!(
                        "id_number repeated: line {} has the same id_number for another account_no",
                        lines[first]
                    ),
                    RowRefusal::DigestTaken => "id_number already belongs to another account_no (in the database or earlier in the file)".into(),
                    // The store's own field checks: their reasons hold no values either.
                    other => other.to_string(),
                };
                self.report.valid -= 1;
                self.report.rejected.push((lines[i], reason));
            }
        }
        // A row that replaced one from an earlier batch: report the earlier line, and count the
        // account once (the store counted it as updated on top of the earlier insert/update).
        let mut restore = HashMap::new();
        for (slot, old_line) in std::mem::take(&mut self.supersedes) {
            if rejected_slots.contains(&slot) {
                // The replacement was refused, so the committed row stands.
                restore.insert(slot, old_line);
                continue;
            }
            self.report.valid -= 1;
            let line = slots
                .iter()
                .position(|&s| s == slot)
                .map_or(0, |k| lines[k]);
            if !self.dry_run {
                self.report.updated = self.report.updated.saturating_sub(1);
            }
            self.report.rejected.push((
                old_line,
                format!("account_no repeated on line {line}, which replaces this line"),
            ));
        }
        for (k, &slot) in slots.iter().enumerate() {
            let h = key_hash(&rows[k].account_no);
            if !rejected_slots.contains(&slot) {
                self.seen.insert(h, Seen::Committed { line: lines[k] });
            } else if let Some(&old_line) = restore.get(&slot) {
                self.seen.insert(h, Seen::Committed { line: old_line });
            } else {
                self.seen.remove(&h);
            }
        }
        self.committed_through_line = last_line;
        self.pending.clear();
        Ok(())
    }

    fn progress(&self, bytes_read: u64) -> ImportProgress {
        ImportProgress {
            bytes_read,
            rows_read: self.report.rows,
            inserted: self.report.inserted,
            updated: self.report.updated,
            rejected: self.report.rejected.len() as u64,
        }
    }
}

/// Imports the CSV extract read from `reader` into the accounts of `dir`, `batch_size` rows per
/// transaction (0 means [`DEFAULT_BATCH_SIZE`]), stamping rows with `updated_at = now`.
///
/// With `dry_run` every row is parsed and validated (and duplicates within the file found) but
/// the database is not touched. `progress` is called after every batch and once at the end.
///
/// Rows are upserted by `account_no`: when an `account_no` appears on several lines the last
/// one wins and the earlier ones are reported as rejected. Rejected rows never stop the import.
/// Reading is blocking I/O on the calling task; this is meant for a command-line tool.
pub async fn import_csv<R: Read>(
    reader: R,
    dir: &AccountDirectory,
    batch_size: usize,
    now: i64,
    dry_run: bool,
    progress: &mut dyn FnMut(ImportProgress),
) -> Result<ImportReport, ImportError> {
    let batch_size = if batch_size == 0 {
        DEFAULT_BATCH_SIZE
    } else {
        batch_size
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(Source::new(reader));
    let header = rdr.byte_headers().map_err(|e| read_error(e, 1))?.clone();
    let cols = columns(&header)?;
    let inside = header.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    let end = rdr.position().byte();
    let header_line = rdr.get_mut().line_of_record(end, inside);
    let mut imp = Importer {
        dir,
        dry_run,
        report: ImportReport {
            lines: header_line,
            dry_run,
            ..ImportReport::default()
        },
        pending: Vec::with_capacity(batch_size),
        supersedes: Vec::new(),
        seen: HashMap::new(),
        rows_committed: 0,
        committed_through_line: 0,
    };
    let mut rec = csv::ByteRecord::new();
    loop {
        let more = rdr
            .read_byte_record(&mut rec)
            .map_err(|e| read_error(e, imp.report.lines))?;
        if !more {
            break;
        }
        let inside = rec.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
        let end = rdr.position().byte();
        let line = rdr.get_mut().line_of_record(end, inside);
        imp.report.lines = line;
        if rec.iter().all(|f| f.trim_ascii().is_empty()) {
            continue; // a blank (or whitespace-only) line
        }
        imp.report.rows += 1;
        match parse_row(&rec, &cols, &|id| dir.digest(id), now) {
            Ok(acc) => imp.push(line, acc),
            Err(reason) => imp.reject(line, reason.to_string()),
        }
        if imp.pending.len() >= batch_size {
            imp.flush().await?;
            progress(imp.progress(rdr.get_ref().bytes));
        }
    }
    imp.flush().await?;
    progress(imp.progress(rdr.get_ref().bytes));
    let mut report = imp.report;
    report.rejected.sort_by_key(|r| r.0);
    Ok(report)
}

fn read_error(e: csv::Error, line: u64) -> ImportError {
    let line = e.position().map_or(line, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(cause) => ImportError::Read { line, cause },
        other => ImportError::Read {
            line,
            cause: io::Error::new(io::ErrorKind::InvalidData, format!("{other:?}")),
        },
    }
}
