//! Public record types of the store and the row types diesel reads and writes.
//!
//! Every type that carries personal data has a hand-written `Debug` that masks it, so a stray
//! `{:?}` in a log line never leaks a name, phone, account number or full digest.

use std::fmt;

use diesel::prelude::*;

use super::schema::{binding_sessions, pension_accounts, query_audit};
use super::{StatementError, StoreError};

/// A personal pension account as the gateway reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// 资金账户 number.
    pub account_no: String,
    /// Account holder's name.
    pub holder_name: String,
    /// Reserved phone number.
    pub phone: String,
    /// HMAC-SM3 of the normalised ID number.
    pub id_digest: [u8; 32],
    /// 1 opened, 2 closed, 3 not opened, 4 opened at another bank.
    pub status: i16,
    /// Unix seconds the account was opened.
    pub opened_at: Option<i64>,
    /// Unix seconds the account was closed.
    pub closed_at: Option<i64>,
}

/// One row of the bank's account extract, as given to [`Store::upsert_accounts`](super::Store::upsert_accounts).
#[derive(Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// 资金账户 number (unique; the upsert key).
    pub account_no: String,
    /// Account holder's name (at most 64 characters).
    pub holder_name: String,
    /// Reserved phone number (at most 20 characters).
    pub phone: String,
    /// HMAC-SM3 of the normalised ID number (unique across accounts).
    pub id_digest: [u8; 32],
    /// 1 opened, 2 closed, 3 not opened, 4 opened at another bank.
    pub status: i16,
    /// Unix seconds the account was opened.
    pub opened_at: Option<i64>,
    /// Unix seconds the account was closed.
    pub closed_at: Option<i64>,
    /// Unix seconds of this import.
    pub updated_at: i64,
}

/// A session created by the bank's pages.
#[derive(Clone, PartialEq, Eq)]
pub struct BindingSession {
    /// Opaque session id (at most 128 characters).
    pub session_id: String,
    /// Digest of the user the session was created for, if known.
    pub id_digest: Option<[u8; 32]>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; live while `expires_at > now`.
    pub expires_at: i64,
}

/// An audit row to write, one per answered query.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// `Request-ID` of the query (at most 64 characters).
    pub request_id: String,
    /// Unix milliseconds the request arrived.
    pub received_at_ms: i64,
    /// `OK` or the error code returned (at most 32 characters).
    pub outcome: String,
    /// HTTP status returned.
    pub http_status: i16,
    /// Bank key version that signed the response.
    pub bank_key_version: i32,
    /// WeChat key version that verified the request.
    pub wechat_key_version: Option<i32>,
    /// Digest of the queried identity.
    pub id_digest: Option<[u8; 32]>,
    /// Pension status disclosed.
    pub pension_status: Option<i16>,
    /// The channel that answered: `wechat`, `open-platform`, `callback`, `hmac`.
    pub channel: &'static str,
    /// What WeChat signed and what the bank signed (the WeChat channel; empty elsewhere).
    pub evidence: AuditEvidence,
}

/// One signature as evidence: the nonce and timestamp it covered, the digest e = SM3(Z_A ‖ M)
/// of its signing string M under the signer's key, and the signature. With the signer's public
/// key the signature can be checked again later from these alone; with the body, e can be
/// recomputed and shown to be that body's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEvidence {
    /// The nonce as signed (1–64 letters or digits).
    pub nonce: String,
    /// The timestamp as signed (1–18 decimal digits).
    pub timestamp: String,
    /// e = SM3(Z_A ‖ M).
    pub digest: [u8; 32],
    /// The signature, r ‖ s.
    pub signature: [u8; 64],
}

/// The evidence an audit row keeps of both signatures of an exchange.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEvidence {
    /// WeChat's signature of the request (key version: `wechat_key_version`).
    pub request: Option<SignedEvidence>,
    /// The bank's signature of its answer (key version: `bank_key_version`).
    pub response: Option<SignedEvidence>,
}

/// An audit row as read back.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// `Request-ID` of the query.
    pub request_id: String,
    /// Unix milliseconds the request arrived.
    pub received_at_ms: i64,
    /// `OK` or the error code returned.
    pub outcome: String,
    /// HTTP status returned.
    pub http_status: i16,
    /// Bank key version that signed the response.
    pub bank_key_version: i32,
    /// WeChat key version that verified the request.
    pub wechat_key_version: Option<i32>,
    /// Digest of the queried identity.
    pub id_digest: Option<[u8; 32]>,
    /// Pension status disclosed.
    pub pension_status: Option<i16>,
    /// The channel that answered.
    pub channel: String,
    /// What WeChat and the bank signed, when recorded.
    pub evidence: AuditEvidence,
    /// The group-commit batch the row was committed in (rows of before the batch column: `None`).
    pub batch_id: Option<[u8; 16]>,
    /// The row committed but its caller was answered with a signed 503 instead of the outcome
    /// recorded here (the batch's fate was learned only after the answer; `audit_undelivered`).
    pub undelivered: bool,
    /// Where the row sits in the tamper-evident log (`None`: written without the chain).
    pub chain: Option<ChainPosition>,
}

/// An audit row's chain columns (docs/audit.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPosition {
    /// The instance whose chain holds the row.
    pub instance_id: String,
    /// The row's place in that chain (its Merkle leaf index).
    pub seq: u64,
    /// Chain hash of the instance's previous row.
    pub prev_hash: [u8; 32],
    /// The row's chain hash as stored.
    pub leaf_hash: [u8; 32],
}

/// Result of [`Store::upsert_accounts`](super::Store::upsert_accounts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertSummary {
    /// Rows whose `account_no` was new.
    pub inserted: u64,
    /// Rows whose `account_no` already existed (counted even when nothing changed).
    pub updated: u64,
    /// Rows not applied: index in the input slice and why.
    pub rejected: Vec<(usize, RowRefusal)>,
}

/// Why [`Store::upsert_accounts`](super::Store::upsert_accounts) did not apply a row. The
/// messages name fields and row indices, never a value (no personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowRefusal {
    /// `account_no` empty or longer than 32 characters.
    #[error("account_no must be 1 to 32 characters")]
    AccountNo,
    /// `holder_name` empty or longer than 64 characters.
    #[error("holder_name must be 1 to 64 characters")]
    HolderName,
    /// `phone` longer than 20 characters.
    #[error("phone longer than 20 characters")]
    Phone,
    /// `status` outside 1–4 (a small number, not personal data).
    #[error("status {0} is not one of 1, 2, 3, 4")]
    Status(i16),
    /// The same `account_no` comes again later in the batch; the later row (this index) wins.
    #[error("duplicate account_no in batch; superseded by row {by}")]
    Superseded {
        /// Index of the winning row.
        by: usize,
    },
    /// The row's `id_digest` belongs to another `account_no` in the database.
    #[error("id_digest already belongs to another account_no")]
    DigestTaken,
    /// An earlier row of the batch (this index) has the same `id_digest` for another account.
    #[error("id_digest repeated in batch (first at row {first})")]
    DigestRepeated {
        /// Index of the earlier row.
        first: usize,
    },
}

// ---------------------------------------------------------------------------------------------
// Masking helpers

/// First character then `*`: `张三丰` → `张*`.
pub(crate) fn mask_name(s: &str) -> String {
    match s.chars().next() {
        Some(c) => format!("{c}*"),
        None => String::new(),
    }
}

/// `***` then the last four characters; shorter values are fully hidden.
pub(crate) fn mask_tail4(s: &str) -> String {
    let n = s.chars().count();
    if n <= 4 {
        return "***".to_owned();
    }
    let tail: String = s.chars().skip(n - 4).collect();
    format!("***{tail}")
}

/// Hex of the first four bytes then `…`.
pub(crate) fn mask_digest(d: &[u8; 32]) -> String {
    let mut s = String::with_capacity(9);
    for b in &d[..4] {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('…');
    s
}

fn mask_opt_digest(d: &Option<[u8; 32]>) -> String {
    d.as_ref().map_or_else(|| "None".to_owned(), mask_digest)
}

/// Session ids are bearer-like: show only a short prefix.
fn mask_session(s: &str) -> String {
    let head: String = s.chars().take(4).collect();
    format!("{head}…")
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("account_no", &mask_tail4(&self.account_no))
            .field("holder_name", &mask_name(&self.holder_name))
            .field("phone", &mask_tail4(&self.phone))
            .field("id_digest", &mask_digest(&self.id_digest))
            .field("status", &self.status)
            .field("opened_at", &self.opened_at)
            .field("closed_at", &self.closed_at)
            .finish()
    }
}

impl fmt::Debug for NewAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAccount")
            .field("account_no", &mask_tail4(&self.account_no))
            .field("holder_name", &mask_name(&self.holder_name))
            .field("phone", &mask_tail4(&self.phone))
            .field("id_digest", &mask_digest(&self.id_digest))
            .field("status", &self.status)
            .field("opened_at", &self.opened_at)
            .field("closed_at", &self.closed_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl fmt::Debug for BindingSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindingSession")
            .field("session_id", &mask_session(&self.session_id))
            .field("id_digest", &mask_opt_digest(&self.id_digest))
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for NewAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewAudit")
            .field("request_id", &self.request_id)
            .field("received_at_ms", &self.received_at_ms)
            .field("outcome", &self.outcome)
            .field("http_status", &self.http_status)
            .field("bank_key_version", &self.bank_key_version)
            .field("wechat_key_version", &self.wechat_key_version)
            .field("id_digest", &mask_opt_digest(&self.id_digest))
            .field("pension_status", &self.pension_status)
            .field("channel", &self.channel)
            .field("evidence", &self.evidence)
            .finish()
    }
}

impl fmt::Debug for AuditRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditRecord")
            .field("request_id", &self.request_id)
            .field("received_at_ms", &self.received_at_ms)
            .field("outcome", &self.outcome)
            .field("http_status", &self.http_status)
            .field("bank_key_version", &self.bank_key_version)
            .field("wechat_key_version", &self.wechat_key_version)
            .field("id_digest", &mask_opt_digest(&self.id_digest))
            .field("pension_status", &self.pension_status)
            .field("channel", &self.channel)
            .field("evidence", &self.evidence)
            .field("batch_id", &self.batch_id)
            .field("undelivered", &self.undelivered)
            .field("chain", &self.chain)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Row types (crate-private): digests travel as byte slices / vectors, converted at the edge.

fn to_digest(v: Vec<u8>) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(v.as_slice())
        .map_err(|_| super::StatementError::Invalid("stored id_digest is not 32 bytes").into())
}

fn to_opt_digest(v: Option<Vec<u8>>) -> Result<Option<[u8; 32]>, StoreError> {
    v.map(to_digest).transpose()
}

#[derive(Insertable)]
#[diesel(table_name = pension_accounts)]
pub(crate) struct AccountRow<'a> {
    pub account_no: &'a str,
    pub holder_name: &'a str,
    pub phone: &'a str,
    pub id_digest: &'a [u8],
    pub status: i16,
    pub opened_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub updated_at: i64,
}

impl<'a> From<&'a NewAccount> for AccountRow<'a> {
    fn from(a: &'a NewAccount) -> Self {
        AccountRow {
            account_no: &a.account_no,
            holder_name: &a.holder_name,
            phone: &a.phone,
            id_digest: &a.id_digest,
            status: a.status,
            opened_at: a.opened_at,
            closed_at: a.closed_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = binding_sessions)]
pub(crate) struct SessionRow<'a> {
    pub session_id: &'a str,
    pub id_digest: Option<&'a [u8]>,
    pub created_at: i64,
    pub expires_at: i64,
}

impl<'a> From<&'a BindingSession> for SessionRow<'a> {
    fn from(s: &'a BindingSession) -> Self {
        SessionRow {
            session_id: &s.session_id,
            id_digest: s.id_digest.as_ref().map(|d| d.as_slice()),
            created_at: s.created_at,
            expires_at: s.expires_at,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = query_audit)]
// NULL, not DEFAULT, for `None`: one INSERT text whatever the row holds (MySQL takes a batch as
// one multi-row INSERT; SQLite prepares the single-row INSERT once).
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct AuditRow<'a> {
    pub request_id: &'a str,
    pub received_at_ms: i64,
    pub outcome: &'a str,
    pub http_status: i16,
    pub bank_key_version: i32,
    pub wechat_key_version: Option<i32>,
    pub id_digest: Option<&'a [u8]>,
    pub pension_status: Option<i16>,
    pub channel: &'a str,
    pub batch_id: Option<&'a [u8]>,
    pub req_nonce: Option<&'a str>,
    pub req_timestamp: Option<&'a str>,
    pub req_digest: Option<&'a [u8]>,
    pub req_signature: Option<&'a [u8]>,
    pub resp_nonce: Option<&'a str>,
    pub resp_timestamp: Option<&'a str>,
    pub resp_digest: Option<&'a [u8]>,
    pub resp_signature: Option<&'a [u8]>,
    pub instance_id: Option<&'a str>,
    pub seq: Option<i64>,
    pub prev_hash: Option<&'a [u8]>,
    pub leaf_hash: Option<&'a [u8]>,
}

impl<'a> AuditRow<'a> {
    /// This row with its chain columns (`None`: written without the chain).
    pub(crate) fn chained(
        self,
        instance: Option<&'a str>,
        cols: Option<&'a super::audit_chain::ChainCols>,
    ) -> Self {
        match (instance, cols) {
            (Some(i), Some(c)) => AuditRow {
                instance_id: Some(i),
                seq: Some(c.seq),
                prev_hash: Some(c.prev_hash.as_slice()),
                leaf_hash: Some(c.leaf_hash.as_slice()),
                ..self
            },
            _ => self,
        }
    }

    /// The row of `a`, committed in batch `batch_id` (`None`: written outside a batch).
    pub(crate) fn new(a: &'a NewAudit, batch_id: Option<&'a [u8; 16]>) -> Self {
        let (rq, rs) = (a.evidence.request.as_ref(), a.evidence.response.as_ref());
        AuditRow {
            batch_id: batch_id.map(|b| b.as_slice()),
            req_nonce: rq.map(|e| e.nonce.as_str()),
            req_timestamp: rq.map(|e| e.timestamp.as_str()),
            req_digest: rq.map(|e| e.digest.as_slice()),
            req_signature: rq.map(|e| e.signature.as_slice()),
            resp_nonce: rs.map(|e| e.nonce.as_str()),
            resp_timestamp: rs.map(|e| e.timestamp.as_str()),
            resp_digest: rs.map(|e| e.digest.as_slice()),
            resp_signature: rs.map(|e| e.signature.as_slice()),
            ..AuditRow::from(a)
        }
    }
}

impl<'a> From<&'a NewAudit> for AuditRow<'a> {
    fn from(a: &'a NewAudit) -> Self {
        AuditRow {
            request_id: &a.request_id,
            received_at_ms: a.received_at_ms,
            outcome: &a.outcome,
            http_status: a.http_status,
            bank_key_version: a.bank_key_version,
            wechat_key_version: a.wechat_key_version,
            id_digest: a.id_digest.as_ref().map(|d| d.as_slice()),
            pension_status: a.pension_status,
            channel: a.channel,
            batch_id: None,
            req_nonce: None,
            req_timestamp: None,
            req_digest: None,
            req_signature: None,
            resp_nonce: None,
            resp_timestamp: None,
            resp_digest: None,
            resp_signature: None,
            instance_id: None,
            seq: None,
            prev_hash: None,
            leaf_hash: None,
        }
    }
}

/// Columns selected for [`AuditRecord`], in this order.
pub(crate) type AuditTuple = (
    String,
    i64,
    String,
    i16,
    i32,
    Option<i32>,
    Option<Vec<u8>>,
    Option<i16>,
    String,
    Option<Vec<u8>>,
    EvidenceTuple,
    EvidenceTuple,
    ChainTuple,
);

/// instance_id, seq, prev_hash, leaf_hash, as selected.
pub(crate) type ChainTuple = (
    Option<String>,
    Option<i64>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

fn chain_from_tuple(t: ChainTuple) -> Result<Option<ChainPosition>, StoreError> {
    match t {
        (Some(instance_id), Some(seq), Some(p), Some(l)) => Ok(Some(ChainPosition {
            instance_id,
            seq: u64::try_from(seq)
                .map_err(|_| StoreError::Statement(StatementError::Invalid("stored seq is negative")))?,
            prev_hash: fixed(p, "stored prev_hash is not 32 bytes")?,
            leaf_hash: fixed(l, "stored leaf_hash is not 32 bytes")?,
        })),
        (None, None, None, None) => Ok(None),
        _ => Err(StoreError::Statement(StatementError::Invalid(
            "stored chain columns are incomplete (some of instance_id, seq, prev_hash, leaf_hash NULL)",
        ))),
    }
}

/// nonce, timestamp, digest, signature of one side, as selected.
pub(crate) type EvidenceTuple = (
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

fn fixed<const N: usize>(v: Vec<u8>, column: &'static str) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(v.as_slice())
        .map_err(|_| StoreError::Statement(StatementError::Invalid(column)))
}

fn evidence_from_tuple(t: EvidenceTuple) -> Result<Option<SignedEvidence>, StoreError> {
    match t {
        (Some(nonce), Some(timestamp), Some(d), Some(s)) => Ok(Some(SignedEvidence {
            nonce,
            timestamp,
            digest: fixed(d, "stored evidence digest has the wrong length")?,
            signature: fixed(s, "stored evidence signature has the wrong length")?,
        })),
        (None, None, None, None) => Ok(None),
        _ => Err(StoreError::Statement(StatementError::Invalid(
            "stored evidence is incomplete (some of nonce, timestamp, digest, signature NULL)",
        ))),
    }
}

/// The record of `t`; `undelivered` is looked up separately (`audit_undelivered`).
pub(crate) fn audit_from_tuple(t: AuditTuple) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        request_id: t.0,
        received_at_ms: t.1,
        outcome: t.2,
        http_status: t.3,
        bank_key_version: t.4,
        wechat_key_version: t.5,
        id_digest: to_opt_digest(t.6)?,
        pension_status: t.7,
        channel: t.8,
        batch_id: t.9.map(|b| fixed(b, "batch_id")).transpose()?,
        evidence: AuditEvidence {
            request: evidence_from_tuple(t.10)?,
            response: evidence_from_tuple(t.11)?,
        },
        undelivered: false,
        chain: chain_from_tuple(t.12)?,
    })
}
