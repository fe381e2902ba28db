//! `audit verify` and the log half of `audit prove`, over a store and a witness file: reads
//! each instance's rows (in pages), checkpoints and witness lines, and runs the verifier of
//! [`super::verify`]; builds a row's leaf, inclusion proof and covering checkpoint.

use serde::Serialize;

use super::checkpoint::{CheckpointVerifier, SignedCheckpoint};
use super::leaf::AuditLeaf;
use super::merkle::{self, Hash};
use super::prune::{SignedPrune, PRUNE_WITNESS_TAG};
use super::verify::{Damage, LogVerifier, Start, StoredRow};
use super::ChainHead;
use crate::store::{checked_frontier, AuditRecord, Store, StoreError, StoredCheckpoint};

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
    /// A prune record that does not hold up: see [`PruneDamage`].
    #[error("instance {instance}: the prune record removing rows up to {end}: {damage}")]
    Prune {
        /// The instance.
        instance: String,
        /// The record's end (one past the last row it says it removed).
        end: u64,
        /// What is wrong with it.
        damage: PruneDamage,
    },
    /// Rows that name an instance but carry no sequence number (or no chain hashes): they sit
    /// outside the chain while claiming a place in one.
    #[error("instance {instance}: {count} audit row(s) claim the instance but carry no sequence number or chain hash (the first: Request-ID {request_id}); unchained rows inserted under its name")]
    IncompleteChain {
        /// The instance the first such row names.
        instance: String,
        /// How many such rows (all instances).
        count: i64,
        /// The first one's `Request-ID`.
        request_id: String,
    },
    /// Rows without chain columns written after the first chained row: inserted around the
    /// chain (or written with the chain off).
    #[error("{count} audit row(s) written after the chain began carry no chain columns (inserted outside the writer, or audit.chain was off)")]
    Unchained {
        /// How many.
        count: i64,
    },
}

/// What is wrong with a prune record (`audit prune`, docs/audit.md "Retention").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PruneDamage {
    /// The row's note does not parse, or disagrees with its columns.
    #[error("malformed (note or columns altered)")]
    Malformed,
    /// Its signature does not verify (or names another instance).
    #[error("bad signature")]
    BadSignature,
    /// In the database, not in the witness file.
    #[error("no witness line")]
    WitnessMissing,
    /// In the witness file, not in the database.
    #[error("missing from the database")]
    Missing,
    /// It does not start where the previous prune ended (or at 0 for the first).
    #[error("does not follow the previous prune")]
    NotContiguous,
    /// No checkpoint of its size with its root: the cut is not at a signed tree head.
    #[error("does not match the checkpoint of its size")]
    NoCheckpoint,
}

/// A witness file's lines: checkpoints and prune records, each in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witnessed {
    /// `pgw1` lines.
    pub checkpoints: Vec<SignedCheckpoint>,
    /// `pgw1-prune` lines.
    pub prunes: Vec<SignedPrune>,
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

/// Parses a witness file's text: every line must be a checkpoint's or a prune record's witness
/// line (an empty last line is the final newline).
pub fn parse_witness(text: &str) -> Result<Witnessed, Finding> {
    let mut w = Witnessed::default();
    for (i, l) in text.lines().enumerate() {
        let bad = |_| Finding::MalformedWitness { line: i + 1 };
        if l.starts_with(PRUNE_WITNESS_TAG)
            && l.as_bytes().get(PRUNE_WITNESS_TAG.len()) == Some(&b' ')
        {
            w.prunes
                .push(SignedPrune::from_witness_line(l).map_err(bad)?);
        } else {
            w.checkpoints
                .push(SignedCheckpoint::from_witness_line(l).map_err(bad)?);
        }
    }
    Ok(w)
}

/// Verifies every instance's log in `store` against `witness` (the witness file's parsed
/// lines). `since_ms`: start each instance at its last checkpoint made at or before that time
/// (Unix ms), checking only what follows. `progress(instance, rows so far)` after each page.
/// `Ok(Err(_))` is damage; `Err(_)` is a database error (nothing was decided).
pub async fn verify_store(
    store: &Store,
    witness: &Witnessed,
    verifier: &(dyn CheckpointVerifier + Sync),
    since_ms: Option<i64>,
    progress: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<Result<Summary, Finding>, StoreError> {
    let (total, after) = store.audit_unchained().await?;
    if after > 0 {
        return Ok(Err(Finding::Unchained { count: after }));
    }
    if let (count, Some((instance, request_id))) = store.audit_incomplete_chain().await? {
        return Ok(Err(Finding::IncompleteChain {
            instance,
            count,
            request_id,
        }));
    }
    let mut instances = store.audit_instances().await?;
    instances.extend(
        witness
            .checkpoints
            .iter()
            .map(|w| w.checkpoint.instance_id.clone()),
    );
    instances.extend(witness.prunes.iter().map(|w| w.prune.instance_id.clone()));
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
    witness: &Witnessed,
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
        .checkpoints
        .iter()
        .filter(|w| w.checkpoint.instance_id == instance)
        .cloned()
        .collect();
    // Where to start: genesis, or after the last prune (its signed record checked against the
    // witness, the previous prune and the checkpoint it cuts at), or (`--since`) the last
    // checkpoint at or before the time that the witness also holds, with its stored frontier
    // checked against its signed root.
    let mut start =
        match pruned_start(store, instance, witness, verifier, &rows, &checkpoints).await? {
            Ok(Some(s)) => s,
            Ok(None) => Start::genesis(head),
            Err(f) => return Ok(Err(f)),
        };
    let pruned_to = start.head.next_seq;
    if let Some(since) = since_ms {
        let base = rows.iter().zip(&checkpoints).rev().find(|(_, cp)| {
            cp.checkpoint.size > pruned_to && cp.checkpoint.time_ms <= since && lines.contains(cp)
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

/// Where an instance's log starts after its prune records (`None`: never pruned). Each record
/// must parse, verify, appear both in the database and in the witness, start where the previous
/// one ended, and end at a checkpoint of the same root; the last one's checkpoint frontier must
/// give that root.
async fn pruned_start(
    store: &Store,
    instance: &str,
    witness: &Witnessed,
    verifier: &(dyn CheckpointVerifier + Sync),
    rows: &[StoredCheckpoint],
    checkpoints: &[SignedCheckpoint],
) -> Result<Result<Option<Start>, Finding>, StoreError> {
    let damaged = |end, damage| {
        Err(Finding::Prune {
            instance: instance.to_owned(),
            end,
            damage,
        })
    };
    let mut prunes = Vec::new();
    for row in store.audit_prunes(Some(instance)).await? {
        let end = u64::try_from(row.end_seq).unwrap_or(0);
        match SignedPrune::from_note(&row.note) {
            Ok(p) if p.prune.end == end && p.prune.instance_id == instance => prunes.push(p),
            _ => return Ok(damaged(end, PruneDamage::Malformed)),
        }
    }
    let lines: Vec<&SignedPrune> = witness
        .prunes
        .iter()
        .filter(|p| p.prune.instance_id == instance)
        .collect();
    for p in prunes.iter().chain(lines.iter().copied()) {
        if p.verify(verifier).is_err() {
            return Ok(damaged(p.prune.end, PruneDamage::BadSignature));
        }
    }
    for p in &prunes {
        if !lines.contains(&p) {
            return Ok(damaged(p.prune.end, PruneDamage::WitnessMissing));
        }
    }
    for p in &lines {
        if !prunes.contains(p) {
            return Ok(damaged(p.prune.end, PruneDamage::Missing));
        }
    }
    let mut expected_first = 0;
    for p in &prunes {
        if p.prune.first != expected_first {
            return Ok(damaged(p.prune.end, PruneDamage::NotContiguous));
        }
        expected_first = p.prune.end;
        let at_cut = checkpoints.iter().any(|c| {
            c.checkpoint.size == p.prune.end && merkle::hash_eq(&c.checkpoint.root, &p.prune.root)
        });
        if !at_cut {
            return Ok(damaged(p.prune.end, PruneDamage::NoCheckpoint));
        }
    }
    let Some(last) = prunes.last() else {
        return Ok(Ok(None));
    };
    let end = last.prune.end;
    let frontier = rows
        .iter()
        .find(|r| i64::try_from(end).ok() == Some(r.tree_size))
        .and_then(|r| checked_frontier(end, &r.frontier, &r.note))
        .filter(|f| merkle::hash_eq(&f.root(), &last.prune.root));
    let Some(frontier) = frontier else {
        return Ok(Err(Finding::BadFrontier {
            instance: instance.to_owned(),
            size: end,
        }));
    };
    let head = ChainHead::resume(instance, end, last.prune.last_hash)
        .map_err(|_| crate::store::StatementError::Invalid("instance id"))?;
    Ok(Ok(Some(Start { head, frontier })))
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
    // After a prune, the leaves before the cut are known through the frontier stored with the
    // checkpoint the cut was made at (checked against its signed root).
    let instance = &row.leaf.instance_id;
    let cut = store
        .audit_prunes(Some(instance))
        .await?
        .last()
        .and_then(|p| u64::try_from(p.end_seq).ok())
        .filter(|end| *end <= row.leaf.seq);
    let frontier = match cut {
        None => merkle::Frontier::new(),
        Some(end) => match cps
            .iter()
            .find(|c| i64::try_from(end).ok() == Some(c.tree_size))
            .and_then(|c| checked_frontier(end, &c.frontier, &c.note))
        {
            Some(f) => f,
            None => return Ok(proof),
        },
    };
    let leaves = store
        .audit_leaf_hashes(instance, frontier.size(), size)
        .await?;
    if let Ok(path) = merkle::inclusion_proof_after(&frontier, &leaves, row.leaf.seq) {
        proof.inclusion = path.iter().map(hex::encode).collect();
        let ok = u64::try_from(leaves.len())
            .ok()
            .map(|n| n + frontier.size())
            == Some(size)
            && cp.verify(verifier).is_ok()
            && merkle::verify_inclusion(row.leaf.seq, size, &hash, &path, &cp.checkpoint.root)
                .is_ok();
        if ok {
            proof.verdict = "verified";
        }
    }
    Ok(proof)
}
