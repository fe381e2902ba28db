//! The per-instance hash chain: each row names its instance, its sequence number and the chain
//! hash of the row before it, and its own chain hash is its leaf hash. Instances never
//! coordinate: each one appends to its own chain and its own Merkle tree.

use super::leaf::{AuditLeaf, LeafError};
use super::merkle::{hash_eq, Hash};

/// The `prev_hash` of an instance's first row.
pub const GENESIS_PREV: Hash = [0; 32];

/// Longest instance id accepted.
pub const MAX_INSTANCE_ID_LEN: usize = 64;

/// Whether `id` can name an instance: 1 to [`MAX_INSTANCE_ID_LEN`] characters from
/// `A-Z a-z 0-9 . _ : -`. The id appears in checkpoint text and witness lines, so it has no
/// spaces, newlines or other characters that would give those lines a second parse.
pub fn valid_instance_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_INSTANCE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Where an instance's chain stands: the next row's sequence number and `prev_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// The instance this chain belongs to.
    pub instance_id: String,
    /// Sequence number the next row gets (= rows so far since genesis).
    pub next_seq: u64,
    /// Chain hash of the last row (or [`GENESIS_PREV`]).
    pub prev_hash: Hash,
}

/// Why a row could not be linked or a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The instance id is empty, too long or has characters outside the allowed set.
    #[error("invalid instance id")]
    InvalidInstanceId,
    /// The row could not be encoded.
    #[error("row cannot be encoded: {0}")]
    Leaf(#[from] LeafError),
    /// The row belongs to another instance.
    #[error("row {seq} belongs to another instance")]
    ForeignInstance {
        /// The row's sequence number.
        seq: u64,
    },
    /// The row's sequence number is not the next one.
    #[error("expected sequence {expected}, found {found}")]
    Sequence {
        /// What the chain expected.
        expected: u64,
        /// What the row says.
        found: u64,
    },
    /// The row's `prev_hash` is not the chain hash of the row before it.
    #[error("row {seq} does not link to the row before it")]
    BrokenLink {
        /// The row's sequence number.
        seq: u64,
    },
}

impl ChainHead {
    /// The head of a new chain for `instance_id`.
    pub fn genesis(instance_id: &str) -> Result<Self, ChainError> {
        Self::resume(instance_id, 0, GENESIS_PREV)
    }

    /// The head after a restart: continues from the stored tail (its sequence number + 1 and its
    /// chain hash).
    pub fn resume(instance_id: &str, next_seq: u64, prev_hash: Hash) -> Result<Self, ChainError> {
        if !valid_instance_id(instance_id) {
            return Err(ChainError::InvalidInstanceId);
        }
        Ok(ChainHead {
            instance_id: instance_id.to_owned(),
            next_seq,
            prev_hash,
        })
    }

    /// Fills `row`'s chain fields (instance, sequence, previous hash), advances the head and
    /// returns the row's chain hash (= its leaf hash). The head does not move when the row
    /// cannot be encoded.
    pub fn link(&mut self, row: &mut AuditLeaf) -> Result<Hash, ChainError> {
        row.instance_id.clone_from(&self.instance_id);
        row.seq = self.next_seq;
        row.prev_hash = self.prev_hash;
        let hash = row.leaf_hash()?;
        self.next_seq += 1;
        self.prev_hash = hash;
        Ok(hash)
    }

    /// Checks that `row`, with the chain hash stored beside it, is the next link; on success
    /// advances the head. Returns the recomputed chain hash.
    ///
    /// The checks run in the order that names the damage best: another instance, a sequence
    /// number out of place, then a `prev_hash` that does not match.
    pub fn check_next(&mut self, row: &AuditLeaf) -> Result<Hash, ChainError> {
        if row.instance_id != self.instance_id {
            return Err(ChainError::ForeignInstance { seq: row.seq });
        }
        if row.seq != self.next_seq {
            return Err(ChainError::Sequence {
                expected: self.next_seq,
                found: row.seq,
            });
        }
        if !hash_eq(&row.prev_hash, &self.prev_hash) {
            return Err(ChainError::BrokenLink { seq: row.seq });
        }
        let hash = row.leaf_hash()?;
        self.next_seq += 1;
        self.prev_hash = hash;
        Ok(hash)
    }
}

/// Checks `rows` (in sequence order) as a chain starting at `head`; returns the head after the
/// last row, or the first break.
pub fn check_chain<'a>(
    mut head: ChainHead,
    rows: impl IntoIterator<Item = &'a AuditLeaf>,
) -> Result<ChainHead, ChainError> {
    for row in rows {
        head.check_next(row)?;
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::super::leaf::tests::sample;
    use super::*;

    fn chain(n: u64) -> Vec<AuditLeaf> {
        let mut head = ChainHead::genesis("gw-a").unwrap();
        (0..n)
            .map(|i| {
                let mut row = sample(i, [9; 32]);
                head.link(&mut row).unwrap();
                row
            })
            .collect()
    }

    #[test]
    fn linked_rows_check() {
        let rows = chain(5);
        let head = check_chain(ChainHead::genesis("gw-a").unwrap(), &rows).unwrap();
        assert_eq!(head.next_seq, 5);
        assert_eq!(head.prev_hash, rows[4].leaf_hash().unwrap());
        assert_eq!(rows[0].prev_hash, GENESIS_PREV);
        assert_eq!(rows[3].prev_hash, rows[2].leaf_hash().unwrap());
    }

    #[test]
    fn resumed_chain_continues_from_the_tail() {
        let rows = chain(4);
        let mut head = ChainHead::resume("gw-a", 3, rows[2].leaf_hash().unwrap()).unwrap();
        let mut again = rows[3].clone();
        head.link(&mut again).unwrap();
        assert_eq!(again, rows[3]);
    }

    #[test]
    fn each_break_is_named() {
        let g = || ChainHead::genesis("gw-a").unwrap();
        let rows = chain(4);
        let mut gap = rows.clone();
        gap.remove(1);
        assert_eq!(
            check_chain(g(), &gap),
            Err(ChainError::Sequence {
                expected: 1,
                found: 2
            })
        );
        let mut relinked = rows.clone();
        relinked[2].prev_hash = [7; 32];
        assert_eq!(
            check_chain(g(), &relinked),
            Err(ChainError::BrokenLink { seq: 2 })
        );
        let mut foreign = rows.clone();
        foreign[1].instance_id = "gw-b".into();
        assert_eq!(
            check_chain(g(), &foreign),
            Err(ChainError::ForeignInstance { seq: 1 })
        );
        // An edited column changes the row's chain hash, so the next row's link breaks.
        let mut edited = rows;
        edited[1].outcome = "FORGED".into();
        assert_eq!(
            check_chain(g(), &edited),
            Err(ChainError::BrokenLink { seq: 2 })
        );
    }

    #[test]
    fn instance_ids_that_would_break_a_text_line_are_refused() {
        for bad in ["", "a b", "a\nb", "é", &"x".repeat(65)] {
            assert!(ChainHead::genesis(bad).is_err(), "{bad:?}");
        }
        assert!(ChainHead::genesis("gw-01.prod:a_b").is_ok());
    }
}
