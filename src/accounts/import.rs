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

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{self, Read};

use super::identity::{check_char, normalize_id_number, IdNumberError};
use super::AccountDirectory;
use crate::store::{NewAccount, StoreError};

/// The columns the header row must name (in any order).
pub const COLUMNS: [&str; 7] = [
    "account_no",
    "holder_name",
    "phone",
    "id_number",
    "status",
    "opened_at",
    "closed_at",
];

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

/// Why an import stopped. Messages hold no personal data.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file has no header row, or the header lacks a required column or repeats one.
    #[error("bad header: {0}")]
    Header(String),
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

/// Strips a UTF-8 BOM at the very start, counts the bytes read and remembers where the line
/// feeds are, so records get their true line numbers (the csv crate's own line count skips
/// blank lines).
struct Source<R> {
    inner: R,
    head: [u8; 3],
    head_pos: usize,
    head_len: usize,
    started: bool,
    /// Bytes read from `inner` (the BOM included).
    bytes: u64,
    /// Bytes handed to the parser (the BOM excluded): the parser's byte offsets.
    out_pos: u64,
    /// Offsets of `\n` handed out and not yet passed by [`Source::line_of_record`].
    newlines: VecDeque<u64>,
    /// Line feeds already passed.
    passed: u64,
    /// Offset of the last line feed passed.
    last_passed: Option<u64>,
}

impl<R: Read> Source<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            head_pos: 0,
            head_len: 0,
            started: false,
            bytes: 0,
            out_pos: 0,
            newlines: VecDeque::new(),
            passed: 0,
            last_passed: None,
        }
    }

    /// The line a record starts on, given the parser's offset `end` just past the record and
    /// the number of line feeds inside its fields.
    fn line_of_record(&mut self, end: u64, newlines_inside: u64) -> u64 {
        while self.newlines.front().is_some_and(|&o| o < end) {
            self.last_passed = self.newlines.pop_front();
            self.passed += 1;
        }
        // Line feeds before the record's first byte, whether or not the parser has already
        // consumed the record's own terminator.
        let terminator_seen = end > 0 && self.last_passed == Some(end - 1);
        let before = self.passed - u64::from(terminator_seen);
        before.saturating_sub(newlines_inside) + 1
    }

    fn hand_out(&mut self, buf: &[u8]) -> usize {
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                self.newlines.push_back(self.out_pos + i as u64);
            }
        }
        self.out_pos += buf.len() as u64;
        buf.len()
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            while self.head_len < 3 {
                match self.inner.read(&mut self.head[self.head_len..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.head_len += n;
                        self.bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if self.head[..self.head_len] == [0xEF, 0xBB, 0xBF] {
                self.head_len = 0;
            }
        }
        if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(self.hand_out(&buf[..n]));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(self.hand_out(&buf[..n]))
    }
}

/// Column positions in the file.
struct Columns {
    idx: [usize; 7],
    width: usize,
}

const ACCOUNT_NO: usize = 0;
const HOLDER_NAME: usize = 1;
const PHONE: usize = 2;
const ID_NUMBER: usize = 3;
const STATUS: usize = 4;
const OPENED_AT: usize = 5;
const CLOSED_AT: usize = 6;

fn columns(header: &csv::ByteRecord) -> Result<Columns, ImportError> {
    if header.iter().all(|f| f.trim_ascii().is_empty()) {
        return Err(ImportError::Header(format!(
            "the file is empty; the first line must be a header naming {}",
            COLUMNS.join(", ")
        )));
    }
    let mut idx = [usize::MAX; 7];
    for (pos, name) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(name);
        let name = name.trim_start_matches('\u{feff}').trim();
        if let Some(c) = COLUMNS.iter().position(|c| c.eq_ignore_ascii_case(name)) {
            if idx[c] != usize::MAX {
                return Err(ImportError::Header(format!(
                    "column `{}` appears more than once",
                    COLUMNS[c]
                )));
            }
            idx[c] = pos;
        }
    }
    let missing: Vec<&str> = COLUMNS
        .iter()
        .zip(idx)
        .filter(|(_, i)| *i == usize::MAX)
        .map(|(c, _)| *c)
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::Header(format!(
            "missing required column(s): {}; the header must name {}",
            missing.join(", "),
            COLUMNS.join(", ")
        )));
    }
    Ok(Columns {
        idx,
        width: header.len(),
    })
}

/// Why a row was rejected: the reason in the report. It names columns, never a value from the
/// row (a status outside 1–4 is a small number, not personal data).
#[derive(Debug, thiserror::Error)]
enum RowRejected {
    #[error("{fields} fields but the header has {header}")]
    FieldCount { fields: usize, header: usize },
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("missing value for {0}")]
    Missing(&'static str),
    #[error("{0} must be unix seconds (a non-negative integer) or empty")]
    NotUnixSeconds(&'static str),
    #[error("account_no must be 1 to 32 visible ASCII characters")]
    AccountNo,
    #[error("holder_name is longer than 64 characters")]
    HolderNameLength,
    #[error("holder_name contains control characters")]
    HolderNameControl,
    #[error("phone must be digits with an optional leading +, at most 20 characters")]
    Phone,
    #[error("{}", match .0 {
        IdNumberError::Format => "id_number must be 17 digits followed by a digit or X",
        IdNumberError::BirthDate => "id_number has an invalid birth date",
        IdNumberError::CheckDigit => "id_number check digit does not match",
    })]
    IdNumber(IdNumberError),
    #[error("status {0} is not one of 1, 2, 3, 4")]
    StatusRange(i16),
    #[error("status must be 1, 2, 3 or 4")]
    Status,
    #[error("closed_at is only allowed with status 2 (closed)")]
    ClosedNotClosed,
    #[error("closed_at is before opened_at")]
    ClosedBeforeOpened,
}

fn field<'a>(rec: &'a csv::ByteRecord, cols: &Columns, c: usize) -> Result<&'a str, RowRejected> {
    let raw = rec.get(cols.idx[c]).unwrap_or(b"").trim_ascii();
    std::str::from_utf8(raw).map_err(|_| RowRejected::NotUtf8(COLUMNS[c]))
}

fn required<'a>(
    rec: &'a csv::ByteRecord,
    cols: &Columns,
    c: usize,
) -> Result<&'a str, RowRejected> {
    let v = field(rec, cols, c)?;
    if v.is_empty() {
        return Err(RowRejected::Missing(COLUMNS[c]));
    }
    Ok(v)
}

fn unix_seconds(
    rec: &csv::ByteRecord,
    cols: &Columns,
    c: usize,
) -> Result<Option<i64>, RowRejected> {
    let v = field(rec, cols, c)?;
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<i64>() {
        Ok(t) if t >= 0 => Ok(Some(t)),
        _ => Err(RowRejected::NotUnixSeconds(COLUMNS[c])),
    }
}

/// Validates one record.
fn parse_row(
    rec: &csv::ByteRecord,
    cols: &Columns,
    dir: &AccountDirectory,
    now: i64,
) -> Result<NewAccount, RowRejected> {
    if rec.len() > cols.width {
        return Err(RowRejected::FieldCount {
            fields: rec.len(),
            header: cols.width,
        });
    }
    let account_no = required(rec, cols, ACCOUNT_NO)?;
    if account_no.len() > 32 || !account_no.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RowRejected::AccountNo);
    }
    let holder_name = required(rec, cols, HOLDER_NAME)?;
    if holder_name.chars().count() > 64 {
        return Err(RowRejected::HolderNameLength);
    }
    if holder_name.chars().any(char::is_control) {
        return Err(RowRejected::HolderNameControl);
    }
    let phone = field(rec, cols, PHONE)?;
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if phone.len() > 20
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.is_empty() && !phone.is_empty())
    {
        return Err(RowRejected::Phone);
    }
    let id_raw = required(rec, cols, ID_NUMBER)?;
    let id = normalize_id_number(id_raw).map_err(RowRejected::IdNumber)?;
    let status_raw = required(rec, cols, STATUS)?;
    let status = match status_raw.parse::<i16>() {
        Ok(s @ 1..=4) => s,
        Ok(s) => return Err(RowRejected::StatusRange(s)),
        Err(_) => return Err(RowRejected::Status),
    };
    let opened_at = unix_seconds(rec, cols, OPENED_AT)?;
    let closed_at = unix_seconds(rec, cols, CLOSED_AT)?;
    if closed_at.is_some() && status != 2 {
        return Err(RowRejected::ClosedNotClosed);
    }
    if let (Some(o), Some(c)) = (opened_at, closed_at) {
        if c < o {
            return Err(RowRejected::ClosedBeforeOpened);
        }
    }
    let id_digest = dir.digest(&id);
    Ok(NewAccount {
        account_no: account_no.to_owned(),
        holder_name: holder_name.to_owned(),
        phone: phone.to_owned(),
        id_digest,
        status,
        opened_at,
        closed_at,
        updated_at: now,
    })
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
            for (i, reason) in summary.rejected {
                rejected_slots.insert(slots[i]);
                let reason = if reason.starts_with("id_digest repeated in batch") {
                    let first = rows[..i]
                        .iter()
                        .position(|r| r.id_digest == rows[i].id_digest)
                        .map(|j| lines[j]);
                    match first {
                        Some(l) => format!("id_number repeated: line {l} has the same id_number for another account_no"),
                        None => "id_number repeated within the batch".into(),
                    }
                } else if reason.starts_with("id_digest already belongs") {
                    "id_number already belongs to another account_no (in the database or earlier in the file)".into()
                } else {
                    // The store's own field checks: their reasons hold no values either.
                    reason
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
        match parse_row(&rec, &cols, dir, now) {
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

/// Writes a CSV extract of `rows` fictional, valid accounts (valid ID check digits, unique
/// account numbers and ID numbers) for load tests; the same `seed` gives the same file.
pub fn write_sample_csv<W: io::Write>(out: W, rows: u64, seed: u64) -> io::Result<()> {
    use io::Write as _;
    const SURNAMES: [&str; 12] = [
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
    ];
    const GIVEN: [&str; 12] = [
        "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳",
    ];
    const REGIONS: [&str; 4] = ["110105", "310115", "440300", "510107"];
    let mut w = io::BufWriter::with_capacity(1 << 16, out);
    writeln!(
        w,
        "account_no,holder_name,phone,id_number,status,opened_at,closed_at"
    )?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("valid date");
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // i → (region, birth day, sequence): unique for 4 × 20 000 × 1 000 rows.
        let seq = i % 1000;
        let day = (i / 1000) % 20_000;
        let region = REGIONS[((i / 20_000_000) % 4) as usize];
        let birth = epoch + chrono::Days::new(day);
        let first17 = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
        let check = check_char(first17.as_bytes()).map_or('0', char::from);
        let name = format!(
            "{}{}{}",
            SURNAMES[(x % 12) as usize],
            GIVEN[((x >> 8) % 12) as usize],
            if x & 0x10000 != 0 {
                GIVEN[((x >> 20) % 12) as usize]
            } else {
                ""
            }
        );
        let status = match x % 20 {
            0 => 2,
            1 => 3,
            2 => 4,
            _ => 1,
        };
        let opened = 1_600_000_000 + (x >> 32) % 100_000_000;
        let closed = if status == 2 {
            (opened + 86_400 * 30).to_string()
        } else {
            String::new()
        };
        writeln!(
            w,
            "62170099{i:011},{name},139{:08},{first17}{check},{status},{opened},{closed}",
            i % 100_000_000
        )?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_is_stripped_once_and_counted() {
        let mut s = Source::new(&b"\xEF\xBB\xBFab"[..]);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab");
        assert_eq!(s.bytes, 5);
        let mut s = Source::new(&b"a"[..]);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a");
    }

    #[test]
    fn sample_ids_are_valid() {
        let mut buf = Vec::new();
        write_sample_csv(&mut buf, 50, 7).unwrap();
        let text = String::from_utf8(buf).unwrap();
        for line in text.lines().skip(1) {
            let id = line.split(',').nth(3).unwrap();
            normalize_id_number(id).unwrap();
        }
    }
}
