//! `audit verify` and the log half of `audit prove`, over a store and a witness file: reads
//! each instance's rows (in pages), checkpoints and witness lines, and runs the verifier of
//! [`super::verify`]; builds a row's leaf, inclusion proof and covering checkpoint.

use serde::Serialize;

use super::checkpoint::{CheckpointVerifier, SignedCheckpoint};
use super::leaf::AuditLeaf;
use super::merkle::{self, Hash};
use super::verify::{Damage, LogVerifier, Start, StoredRow};
use super::ChainHead;
use crate::store::{checked_frontier, AuditRecord, Store, StoreError};

/// Rows read per query.
const PAGE: i64 = 10_000;

/// The first damage `audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    /// The verifier named damage in an instance's log.
    #[error("instance {instance}: {damage}")]
    Damaged {
        /// The instance.
        instance: String,
        /// What and where.
        damage: Damage,
    },
    /// A checkpoint row whose note does not parse, or whose columns disagree with its note.
    #[error(
        "instance {instance}: checkpoint row at size {size} is malformed (note or columns altered)"
    )]
    MalformedCheckpoint {
        /// The instance.
        instance: String,
        /// The row's `tree_size` column.
        size: i64,
    },
    /// A line of the witness file is not a witness line.
    #[error("witness file line {line}: not a witness line (edited)")]
    MalformedWitness {
        /// 1-based line number.
        line: usize,
    },
    /// The checkpoint `--since` starts from has a frontier that does not give its signed root.
    #[error("instance {instance}: the frontier stored with checkpoint {size} does not match its signed root")]
    BadFrontier {
        /// The instance.
        instance: String,
        /// The checkpoint's size.
        size: u64,
    },
    /// Rows without chain columns written after the first chained row: inserted around the
    /// chain (or written with the chain off).
    #[error("{count} audit row(s) written after the chain began carry no chain columns (inserted outside the writer, or audit.chain was off)")]
    Unchained {
        /// How many.
        count: i64,
    },
}

/// What an intact run checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Per instance: rows and checkpoint roots checked.
    pub instances: Vec<InstanceSummary>,
    /// Rows without chain columns from before the chain began (not protected).
    pub unchained_before: i64,
}

/// One instance's part of an intact run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceSummary {
    /// The instance.
    pub instance: String,
    /// Rows checked.
    pub rows: u64,
    /// Checkpoint roots checked.
    pub checkpoints: usize,
    /// Sequence number the run started at (`--since`: the checkpoint's size).
    pub from_seq: u64,
}

/// The stored row of a chained audit record (`None` for a row without chain columns).
pub fn stored_row(r: &AuditRecord) -> Option<StoredRow> {
    let c = r.chain.as_ref()?;
    Some(StoredRow {
        leaf: AuditLeaf {
            instance_id: c.instance_id.clone(),
            seq: c.seq,
            prev_hash: c.prev_hash,
            request_id: r.request_id.clone(),
            channel: r.channel.clone(),
            outcome: r.outcome.clone(),
            // A status no writer could store fails the leaf encoding: reported as edited.
            http_status: u16::try_from(r.http_status).unwrap_or(0),
            received_at_ms: r.received_at_ms,
            bank_key_version: r.bank_key_version,
            wechat_key_version: r.wechat_key_version,
            id_digest: r.id_digest,
            pension_status: r.pension_status,
            request: r.evidence.request.clone(),
            response: r.evidence.response.clone(),
        },
        chain_hash: c.leaf_hash,
    })
}

/// Parses a witness file's text: every line must be a witness line (an empty last line is
/// the final newline).
pub fn parse_witness(text: &str) -> Result<Vec<SignedCheckpoint>, Finding> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            SignedCheckpoint::from_witness_line(l)
                .map_err(|_| Finding::MalformedWitness { line: i + 1 })
        })
        .collect()
}

/// Verifies every instance's log in `store` against `witness` (the witness file's parsed
/// lines). `since_ms`: start each instance at its last checkpoint made at or before that time
/// (Unix ms), checking only what follows. `progress(instance, rows so far)` after each page.
/// `Ok(Err(_))` is damage; `Err(_)` is a database error (nothing was decided).
pub async fn verify_store(
    store: &Store,
    witness: &[SignedCheckpoint],
    verifier: &(dyn CheckpointVerifier + Sync),
    since_ms: Option<i64>,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Result<Summary, Finding>, StoreError> {
    let (total, after) = store.audit_unchained().await?;
    if after > 0 {
        return Ok(Err(Finding::Unchained { count: after }));
    }
    let mut instances = store.audit_instances().await?;
    instances.extend(witness.iter().map(|w| w.checkpoint.instance_id.clone()));
    instances.sort();
    instances.dedup();
    let mut summary = Summary {
        instances: Vec::new(),
        unchained_before: total,
    };
    for instance in instances {
        match verify_instance(store, &instance, witness, verifier, since_ms, progress).await? {
            Ok(s) => summary.instances.push(s),
            Err(f) => return Ok(Err(f)),
        }
    }
    Ok(Ok(summary))
}

async fn verify_instance(
    store: &Store,
    instance: &str,
    witness: &[SignedCheckpoint],
    verifier: &(dyn CheckpointVerifier + Sync),
    since_ms: Option<i64>,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Result<InstanceSummary, Finding>, StoreError> {
    let damaged = |damage| Finding::Damaged {
        instance: instance.to_owned(),
        damage,
    };
    let Ok(head) = ChainHead::genesis(instance) else {
        // Rows under an id the writer could never have used.
        return Ok(Err(damaged(Damage::ForeignRow { seq: 0 })));
    };
    let rows = store.audit_checkpoints(instance).await?;
    let mut checkpoints = Vec::with_capacity(rows.len());
    for row in &rows {
        match SignedCheckpoint::from_note(&row.note) {
            Ok(cp)
                if i64::try_from(cp.checkpoint.size).ok() == Some(row.tree_size)
                    && cp.checkpoint.instance_id == instance =>
            {
                checkpoints.push(cp);
            }
            _ => {
                return Ok(Err(Finding::MalformedCheckpoint {
                    instance: instance.to_owned(),
                    size: row.tree_size,
                }))
            }
        }
    }
    let mut lines: Vec<SignedCheckpoint> = witness
        .iter()
        .filter(|w| w.checkpoint.instance_id == instance)
        .cloned()
        .collect();
    // Where to start: genesis, or (`--since`) the last checkpoint at or before the time that
    // the witness also holds, with its stored frontier checked against its signed root.
    let mut start = Start::genesis(head);
    if let Some(since) = since_ms {
        let base = rows.iter().zip(&checkpoints).rev().find(|(_, cp)| {
            cp.checkpoint.size > 0 && cp.checkpoint.time_ms <= since && lines.contains(cp)
        });
        if let Some((row, cp)) = base {
            let size = cp.checkpoint.size;
            let Some(frontier) = checked_frontier(size, &row.frontier, &row.note) else {
                return Ok(Err(Finding::BadFrontier {
                    instance: instance.to_owned(),
                    size,
                }));
            };
            // The chain hash of the row before: read, not re-derived (it is covered by the
            // signed root the frontier was checked against, up to a second preimage of SM3).
            let prev = store.audit_chain_page(instance, size - 1, 1).await?;
            let prev_hash = match prev.first().and_then(|r| r.chain.as_ref()) {
                Some(c) if c.seq == size - 1 => c.leaf_hash,
                _ => {
                    return Ok(Err(damaged(Damage::Gap {
                        expected: size - 1,
                        found: size,
                    })))
                }
            };
            start = Start {
                head: ChainHead::resume(instance, size, prev_hash)
                    .map_err(|_| crate::store::StatementError::Invalid("instance id"))?,
                frontier,
            };
            checkpoints.retain(|c| c.checkpoint.size >= size);
            lines.retain(|c| c.checkpoint.size >= size);
        }
    }
    let from_seq = start.head.next_seq;
    let mut v = match LogVerifier::new(start, &checkpoints, &lines, verifier) {
        Ok(v) => v,
        Err(d) => return Ok(Err(damaged(d))),
    };
    let mut next = from_seq;
    loop {
        let page = store.audit_chain_page(instance, next, PAGE).await?;
        let Some(last) = page.last().and_then(|r| r.chain.as_ref()) else {
            break;
        };
        next = last.seq + 1;
        for r in &page {
            let Some(row) = stored_row(r) else { continue };
            if let Err(d) = v.push(&row) {
                return Ok(Err(damaged(d)));
            }
        }
        progress(instance, v.rows());
        if i64::try_from(page.len()).unwrap_or(i64::MAX) < PAGE {
            break;
        }
    }
    match v.finish() {
        Ok(intact) => Ok(Ok(InstanceSummary {
            instance: instance.to_owned(),
            rows: intact.rows,
            checkpoints: intact.checkpoints,
            from_seq,
        })),
        Err(d) => Ok(Err(damaged(d))),
    }
}

/// The log half of a row's proof: the leaf, its inclusion in the covering checkpoint's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogProof {
    /// The instance whose log holds the row.
    pub instance_id: String,
    /// The row's sequence number = leaf index.
    pub seq: u64,
    /// The canonical leaf encoding, hex.
    pub leaf: String,
    /// SM3(0x00 ‖ leaf), hex, recomputed from the row.
    pub leaf_hash: String,
    /// The first checkpoint covering the row (its signed note), if one was made yet.
    pub checkpoint: Option<String>,
    /// The audit path from the leaf to that checkpoint's root (RFC 6962 / RFC 9162), hex.
    pub inclusion: Vec<String>,
    /// `verified`: the leaf hash equals the stored chain hash, the checkpoint's signature
    /// verifies and the path leads to its root; `pending`: no checkpoint covers the row yet;
    /// `does_not_verify`: any of those checks failed; `unchained`: the row has no chain columns.
    pub verdict: &'static str,
}

/// Builds the log proof of `r` (see [`LogProof`]).
pub async fn log_proof(
    store: &Store,
    r: &AuditRecord,
    verifier: &(dyn CheckpointVerifier + Sync),
) -> Result<LogProof, StoreError> {
    let Some(row) = stored_row(r) else {
        return Ok(LogProof {
            instance_id: String::new(),
            seq: 0,
            leaf: String::new(),
            leaf_hash: String::new(),
            checkpoint: None,
            inclusion: Vec::new(),
            verdict: "unchained",
        });
    };
    let leaf = row.leaf.encode().unwrap_or_default();
    let hash: Hash = merkle::leaf_hash(&leaf);
    let mut proof = LogProof {
        instance_id: row.leaf.instance_id.clone(),
        seq: row.leaf.seq,
        leaf: hex::encode(&leaf),
        leaf_hash: hex::encode(hash),
        checkpoint: None,
        inclusion: Vec::new(),
        verdict: "does_not_verify",
    };
    if leaf.is_empty() || !merkle::hash_eq(&hash, &row.chain_hash) {
        return Ok(proof);
    }
    let cps = store.audit_checkpoints(&row.leaf.instance_id).await?;
    let covering = cps.iter().find_map(|c| {
        let cp = SignedCheckpoint::from_note(&c.note).ok()?;
        (cp.checkpoint.size > row.leaf.seq).then(|| (c.note.clone(), cp))
    });
    let Some((note, cp)) = covering else {
        proof.verdict = "pending";
        return Ok(proof);
    };
    proof.checkpoint = Some(note);
    let size = cp.checkpoint.size;
    let leaves = store.audit_leaf_hashes(&row.leaf.instance_id, size).await?;
    let index = usize::try_from(row.leaf.seq).unwrap_or(usize::MAX);
    if let Ok(path) = merkle::inclusion_proof(&leaves, index) {
        proof.inclusion = path.iter().map(hex::encode).collect();
        let ok = u64::try_from(leaves.len()).ok() == Some(size)
            && cp.verify(verifier).is_ok()
            && merkle::verify_inclusion(row.leaf.seq, size, &hash, &path, &cp.checkpoint.root)
                .is_ok();
        if ok {
            proof.verdict = "verified";
        }
    }
    Ok(proof)
}
