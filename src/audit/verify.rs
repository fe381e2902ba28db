//! The verifier: given an instance's rows in sequence order, its checkpoints from the database
//! and the witness lines, finds the first damage and names its kind.
//!
//! The checks run in a fixed order, so a given tampering is always reported the same way:
//! 1. every checkpoint (database and witness) is signed by a bank key version
//!    ([`Damage::BadSignature`]);
//! 2. consecutive checkpoints do not shrink, go back in time or disagree at one size
//!    ([`Damage::InconsistentCheckpoints`]);
//! 3. the rows, one by one: the right instance, the next sequence number
//!    ([`Damage::Gap`], [`Damage::SwappedRows`]), a stored chain hash equal to the recomputed
//!    leaf hash ([`Damage::EditedLeaf`]), a `prev_hash` equal to the previous row's chain hash
//!    ([`Damage::BrokenLink`]), and at every checkpoint's size the recomputed root
//!    ([`Damage::RootMismatch`]);
//! 4. no checkpoint covers more rows than remain ([`Damage::TruncatedTail`]);
//! 5. every database checkpoint has its witness line ([`Damage::WitnessMissing`]) and every
//!    witness line its database checkpoint ([`Damage::CheckpointMissing`]).

use super::chain::ChainHead;
use super::checkpoint::{CheckpointVerifier, SignedCheckpoint};
use super::leaf::AuditLeaf;
use super::merkle::{hash_eq, Frontier, Hash};

/// One stored audit row: its columns and the chain hash stored beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    /// The row's columns as they enter the leaf.
    pub leaf: AuditLeaf,
    /// The chain hash column as stored (the writer's leaf hash of the row).
    pub chain_hash: Hash,
}

/// Where verification starts: the chain head and the tree's frontier before the first row
/// given. [`Start::genesis`] for a full run; a saved state for an incremental one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The chain head before the first row.
    pub head: ChainHead,
    /// The compact range of all leaves before the first row.
    pub frontier: Frontier,
}

impl Start {
    /// The start of a new instance's log.
    pub fn genesis(head: ChainHead) -> Self {
        Start {
            head,
            frontier: Frontier::new(),
        }
    }
}

/// What was checked when the log is intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intact {
    /// Where an incremental run can continue from.
    pub end: Start,
    /// Rows checked.
    pub rows: u64,
    /// Distinct checkpoints whose roots were checked.
    pub checkpoints: usize,
}

/// The first damage found, with the row's sequence number or the checkpoint's tree size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// A checkpoint's signature does not verify under its key version (or the version is
    /// unknown).
    #[error("checkpoint at size {size}: bad signature")]
    BadSignature {
        /// The checkpoint's tree size.
        size: u64,
    },
    /// Two consecutive checkpoints cannot both be true of one append-only log.
    #[error("checkpoints at sizes {first} and {second} are inconsistent")]
    InconsistentCheckpoints {
        /// The earlier checkpoint's size.
        first: u64,
        /// The later checkpoint's size.
        second: u64,
    },
    /// A row of another instance sits in this instance's chain.
    #[error("row {seq}: belongs to another instance")]
    ForeignRow {
        /// The row's sequence number.
        seq: u64,
    },
    /// Rows are missing: the next row has a later sequence number than expected.
    #[error("rows {expected}..{found} are missing")]
    Gap {
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// Rows are out of order (swapped, or a row repeats an earlier sequence number).
    #[error("row {expected} is out of place (found {found})")]
    SwappedRows {
        /// The sequence number expected.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// A row's columns no longer hash to its stored chain hash.
    #[error("row {seq}: edited (leaf hash differs from its chain hash)")]
    EditedLeaf {
        /// The row's sequence number.
        seq: u64,
    },
    /// A row's `prev_hash` is not the previous row's chain hash (a row was edited and re-hashed,
    /// inserted or replaced before it).
    #[error("row {seq}: chain link broken")]
    BrokenLink {
        /// The row's sequence number.
        seq: u64,
    },
    /// The root recomputed from the rows differs from a signed checkpoint's root.
    #[error("checkpoint at size {size}: root does not match the rows")]
    RootMismatch {
        /// The checkpoint's tree size.
        size: u64,
    },
    /// A signed checkpoint covers rows that are no longer there.
    #[error("checkpoint at size {size} covers rows beyond the last one ({rows} rows)")]
    TruncatedTail {
        /// The checkpoint's tree size.
        size: u64,
        /// Rows present (next sequence number after the last row).
        rows: u64,
    },
    /// A database checkpoint has no line in the witness file.
    #[error("checkpoint at size {size}: no witness line")]
    WitnessMissing {
        /// The checkpoint's tree size.
        size: u64,
    },
    /// A witness line has no checkpoint in the database.
    #[error("witness line at size {size}: checkpoint missing from the database")]
    CheckpointMissing {
        /// The checkpoint's tree size.
        size: u64,
    },
}

/// Verifies one instance's log. `rows` in sequence order from `start`; `checkpoints` and
/// `witness` (already parsed, this instance's only) in the order they were written.
pub fn verify_log(
    start: Start,
    rows: &[StoredRow],
    checkpoints: &[SignedCheckpoint],
    witness: &[SignedCheckpoint],
    verifier: &dyn CheckpointVerifier,
) -> Result<Intact, Damage> {
    let mut v = LogVerifier::new(start, checkpoints, witness, verifier)?;
    for row in rows {
        v.push(row)?;
    }
    v.finish()
}

/// [`verify_log`] one row at a time, for tables too large to hold: [`LogVerifier::new`] runs
/// steps 1 and 2, [`LogVerifier::push`] step 3 for each row in sequence order,
/// [`LogVerifier::finish`] steps 4 and 5. Names exactly what [`verify_log`] names.
pub struct LogVerifier<'a> {
    instance: String,
    checkpoints: &'a [SignedCheckpoint],
    witness: &'a [SignedCheckpoint],
    targets: Vec<(u64, Hash)>,
    next_target: usize,
    head: ChainHead,
    frontier: Frontier,
    rows: u64,
    checked: usize,
    /// A row whose sequence number was later than expected: a gap, unless the next row is the
    /// expected one (then the two were swapped).
    pending: Option<(u64, u64)>,
}

impl<'a> LogVerifier<'a> {
    /// Checks the checkpoints' signatures and their order.
    pub fn new(
        start: Start,
        checkpoints: &'a [SignedCheckpoint],
        witness: &'a [SignedCheckpoint],
        verifier: &dyn CheckpointVerifier,
    ) -> Result<Self, Damage> {
        let instance = start.head.instance_id.clone();
        // 1. Signatures. A checkpoint of another instance is refused like a forged one.
        for cp in checkpoints.iter().chain(witness) {
            let size = cp.checkpoint.size;
            if cp.checkpoint.instance_id != instance || cp.verify(verifier).is_err() {
                return Err(Damage::BadSignature { size });
            }
        }
        // 2. Consecutive checkpoints, in each list's own (write) order.
        for list in [checkpoints, witness] {
            for pair in list.windows(2) {
                let [a, b] = pair else { continue };
                let (a, b) = (&a.checkpoint, &b.checkpoint);
                if b.size < a.size
                    || b.time_ms < a.time_ms
                    || (b.size == a.size && !hash_eq(&a.root, &b.root))
                {
                    return Err(Damage::InconsistentCheckpoints {
                        first: a.size,
                        second: b.size,
                    });
                }
            }
        }
        // Roots to check, by size (both lists; a size they disagree on was refused in step 2
        // only when consecutive, so check every one).
        let mut targets: Vec<(u64, Hash)> = checkpoints
            .iter()
            .chain(witness)
            .map(|c| (c.checkpoint.size, c.checkpoint.root))
            .filter(|(size, _)| *size > start.frontier.size())
            .collect();
        targets.sort_by_key(|(size, _)| *size);
        targets.dedup();
        Ok(LogVerifier {
            instance,
            checkpoints,
            witness,
            targets,
            next_target: 0,
            head: start.head,
            frontier: start.frontier,
            rows: 0,
            checked: 0,
            pending: None,
        })
    }

    /// Rows accepted so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Checks the next row (step 3).
    pub fn push(&mut self, row: &StoredRow) -> Result<(), Damage> {
        let leaf = &row.leaf;
        let expected = self.head.next_seq;
        if let Some((expected, found)) = self.pending {
            return Err(
                if leaf.instance_id == self.instance && leaf.seq == expected {
                    Damage::SwappedRows { expected, found }
                } else {
                    Damage::Gap { expected, found }
                },
            );
        }
        if leaf.instance_id != self.instance {
            return Err(Damage::ForeignRow { seq: leaf.seq });
        }
        if leaf.seq != expected {
            if leaf.seq < expected {
                return Err(Damage::SwappedRows {
                    expected,
                    found: leaf.seq,
                });
            }
            // Decided by the next row (or `finish`).
            self.pending = Some((expected, leaf.seq));
            return Ok(());
        }
        // A row that cannot be encoded cannot have been written by the writer: edited.
        let hash = match leaf.leaf_hash() {
            Ok(h) if hash_eq(&h, &row.chain_hash) => h,
            _ => {
                return Err(match moved_from(leaf, &row.chain_hash) {
                    Some(found) => Damage::SwappedRows { expected, found },
                    None => Damage::EditedLeaf { seq: expected },
                })
            }
        };
        if !hash_eq(&leaf.prev_hash, &self.head.prev_hash) {
            return Err(Damage::BrokenLink { seq: expected });
        }
        self.head.next_seq += 1;
        self.head.prev_hash = hash;
        self.frontier.push(hash);
        self.rows += 1;
        while let Some((size, root)) = self.targets.get(self.next_target) {
            if *size != self.frontier.size() {
                break;
            }
            if !hash_eq(root, &self.frontier.root()) {
                return Err(Damage::RootMismatch { size: *size });
            }
            self.checked += 1;
            self.next_target += 1;
        }
        Ok(())
    }

    /// Steps 4 and 5, after the last row.
    pub fn finish(self) -> Result<Intact, Damage> {
        if let Some((expected, found)) = self.pending {
            return Err(Damage::Gap { expected, found });
        }
        // 4. Checkpoints beyond the last row.
        if let Some((size, _)) = self.targets.get(self.next_target) {
            return Err(Damage::TruncatedTail {
                size: *size,
                rows: self.frontier.size(),
            });
        }
        // 5. Database and witness hold the same checkpoints.
        for cp in self.checkpoints {
            if !self.witness.contains(cp) {
                return Err(Damage::WitnessMissing {
                    size: cp.checkpoint.size,
                });
            }
        }
        for cp in self.witness {
            if !self.checkpoints.contains(cp) {
                return Err(Damage::CheckpointMissing {
                    size: cp.checkpoint.size,
                });
            }
        }
        Ok(Intact {
            end: Start {
                head: self.head,
                frontier: self.frontier,
            },
            rows: self.rows,
            checkpoints: self.checked,
        })
    }
}

/// How far from its place a row whose sequence number was rewritten is looked for.
const MOVE_WINDOW: u64 = 16;

/// A row that does not hash to its chain hash at its sequence number but does at a nearby one
/// was moved there (its sequence number exchanged with another row's): that number.
fn moved_from(leaf: &AuditLeaf, chain_hash: &Hash) -> Option<u64> {
    let mut moved = leaf.clone();
    (leaf.seq.saturating_sub(MOVE_WINDOW)..=leaf.seq.saturating_add(MOVE_WINDOW))
        .filter(|s| *s != leaf.seq)
        .find(|s| {
            moved.seq = *s;
            moved.leaf_hash().is_ok_and(|h| hash_eq(&h, chain_hash))
        })
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::tests::{demo_signer, demo_verifier};
    use super::super::checkpoint::{Checkpoint, Sm2CheckpointSigner};
    use super::super::leaf::tests::sample;
    use super::*;

    struct Log {
        rows: Vec<StoredRow>,
        checkpoints: Vec<SignedCheckpoint>,
        witness: Vec<SignedCheckpoint>,
    }

    fn genesis() -> Start {
        Start::genesis(ChainHead::genesis("gw-a").unwrap())
    }

    /// `n` rows of instance gw-a with signed checkpoints at `at` (sizes), in both lists.
    fn log(n: u64, at: &[u64]) -> Log {
        let signer = demo_signer();
        let s = Sm2CheckpointSigner {
            key_version: 1,
            signer: signer.as_ref(),
        };
        let mut head = ChainHead::genesis("gw-a").unwrap();
        let mut frontier = Frontier::new();
        let mut rows = Vec::new();
        let mut checkpoints = Vec::new();
        for i in 0..n {
            let mut leaf = sample(i, [0; 32]);
            let chain_hash = head.link(&mut leaf).unwrap();
            frontier.push(chain_hash);
            rows.push(StoredRow { leaf, chain_hash });
            if at.contains(&frontier.size()) {
                let cp = Checkpoint {
                    instance_id: "gw-a".into(),
                    size: frontier.size(),
                    root: frontier.root(),
                    time_ms: 1_700_000_000_000 + i as i64,
                };
                checkpoints.push(cp.sign(&s).unwrap());
            }
        }
        Log {
            rows,
            witness: checkpoints.clone(),
            checkpoints,
        }
    }

    fn check(l: &Log) -> Result<Intact, Damage> {
        verify_log(
            genesis(),
            &l.rows,
            &l.checkpoints,
            &l.witness,
            &demo_verifier(),
        )
    }

    /// Re-hashes rows from `from` on as a forger without the signing key would: each row's
    /// chain hash and the next row's `prev_hash` made consistent again.
    fn rechain(rows: &mut [StoredRow], from: usize) {
        for i in from..rows.len() {
            if i > 0 {
                rows[i].leaf.prev_hash = rows[i - 1].chain_hash;
            }
            rows[i].chain_hash = rows[i].leaf.leaf_hash().unwrap();
        }
    }

    #[test]
    fn intact_log_verifies() {
        let l = log(10, &[3, 8, 10]);
        let ok = check(&l).unwrap();
        assert_eq!(ok.rows, 10);
        assert_eq!(ok.checkpoints, 3);
        assert_eq!(ok.end.head.next_seq, 10);
    }

    #[test]
    fn incremental_run_continues_where_the_last_one_ended() {
        let l = log(10, &[3, 8, 10]);
        let first = verify_log(
            genesis(),
            &l.rows[..5],
            &l.checkpoints[..1],
            &l.witness[..1],
            &demo_verifier(),
        )
        .unwrap();
        let second = verify_log(
            first.end,
            &l.rows[5..],
            &l.checkpoints,
            &l.witness,
            &demo_verifier(),
        )
        .unwrap();
        assert_eq!(second.checkpoints, 2);
    }

    #[test]
    fn edited_column_is_an_edited_leaf() {
        let mut l = log(6, &[6]);
        l.rows[2].leaf.outcome = "FORGED".into();
        assert_eq!(check(&l), Err(Damage::EditedLeaf { seq: 2 }));
    }

    #[test]
    fn edited_and_rehashed_row_breaks_the_next_link() {
        let mut l = log(6, &[6]);
        l.rows[2].leaf.http_status = 500;
        l.rows[2].chain_hash = l.rows[2].leaf.leaf_hash().unwrap();
        assert_eq!(check(&l), Err(Damage::BrokenLink { seq: 3 }));
    }

    #[test]
    fn rechained_tail_is_caught_by_the_signed_root() {
        let mut l = log(6, &[4, 6]);
        l.rows[5].leaf.outcome = "FORGED".into();
        rechain(&mut l.rows, 5);
        assert_eq!(check(&l), Err(Damage::RootMismatch { size: 6 }));
    }

    #[test]
    fn deleted_middle_row_is_a_gap() {
        let mut l = log(6, &[6]);
        l.rows.remove(2);
        assert_eq!(
            check(&l),
            Err(Damage::Gap {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn swapped_rows_are_named() {
        let mut l = log(6, &[6]);
        l.rows.swap(2, 3);
        assert_eq!(
            check(&l),
            Err(Damage::SwappedRows {
                expected: 2,
                found: 3
            })
        );
    }

    #[test]
    fn forged_row_inserted_breaks_the_chain() {
        let mut l = log(6, &[6]);
        // A forger inserts a well-formed row at seq 3 and renumbers the rest.
        let mut forged = sample(3, l.rows[2].chain_hash);
        forged.instance_id = "gw-a".into();
        forged.outcome = "FORGED".into();
        let chain_hash = forged.leaf_hash().unwrap();
        l.rows.insert(
            3,
            StoredRow {
                leaf: forged,
                chain_hash,
            },
        );
        for (i, r) in l.rows.iter_mut().enumerate().skip(4) {
            r.leaf.seq = i as u64;
        }
        rechain(&mut l.rows, 4);
        assert_eq!(check(&l), Err(Damage::RootMismatch { size: 6 }));
        // Without renumbering, the row after it links to the wrong hash.
        let mut l = log(6, &[6]);
        let mut forged = sample(3, l.rows[2].chain_hash);
        forged.instance_id = "gw-a".into();
        forged.outcome = "FORGED".into();
        l.rows[3] = StoredRow {
            chain_hash: forged.leaf_hash().unwrap(),
            leaf: forged,
        };
        assert_eq!(check(&l), Err(Damage::BrokenLink { seq: 4 }));
    }

    #[test]
    fn row_of_another_instance_is_foreign() {
        let mut l = log(4, &[]);
        l.rows[1].leaf.instance_id = "gw-b".into();
        assert_eq!(check(&l), Err(Damage::ForeignRow { seq: 1 }));
    }

    #[test]
    fn altered_checkpoint_signature_is_bad() {
        let mut l = log(6, &[3, 6]);
        let raw = l.checkpoints[1].signature.to_raw();
        let (r, s) = raw.split_at(32);
        let mut s2 = [0u8; 32];
        s2.copy_from_slice(s);
        s2[31] ^= 1;
        let mut r2 = [0u8; 32];
        r2.copy_from_slice(r);
        l.checkpoints[1].signature = crate::crypto::Signature::from_scalars(r2, s2).unwrap();
        assert_eq!(check(&l), Err(Damage::BadSignature { size: 6 }));
    }

    #[test]
    fn replaced_checkpoint_root_is_bad() {
        let mut l = log(6, &[3, 6]);
        l.checkpoints[0].checkpoint.root[0] ^= 1;
        assert_eq!(check(&l), Err(Damage::BadSignature { size: 3 }));
    }

    #[test]
    fn shrinking_checkpoints_are_inconsistent() {
        let mut l = log(6, &[3, 6]);
        l.checkpoints.reverse();
        assert_eq!(
            check(&l),
            Err(Damage::InconsistentCheckpoints {
                first: 6,
                second: 3
            })
        );
    }

    #[test]
    fn deleted_tail_is_found_through_the_witness() {
        let mut l = log(8, &[4, 8]);
        // Tail rows and the database checkpoint covering them are both deleted.
        l.rows.truncate(5);
        l.checkpoints.truncate(1);
        assert_eq!(check(&l), Err(Damage::TruncatedTail { size: 8, rows: 5 }));
    }

    #[test]
    fn removed_witness_line_is_named() {
        let mut l = log(6, &[3, 6]);
        l.witness.remove(0);
        assert_eq!(check(&l), Err(Damage::WitnessMissing { size: 3 }));
    }

    #[test]
    fn checkpoint_deleted_from_the_database_is_named() {
        let mut l = log(6, &[3, 6]);
        l.checkpoints.remove(0);
        assert_eq!(check(&l), Err(Damage::CheckpointMissing { size: 3 }));
    }
}
