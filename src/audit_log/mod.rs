//! The tamper-evident audit log's pure core: the canonical leaf of an audit row, the
//! per-instance hash chain, RFC 6962 Merkle trees with SM3, signed checkpoints with their witness
//! lines, and the verifier that names the first damage. No I/O: the store and the commands wire
//! these to the audit table and the witness file.
//!
//! `docs/audit.md` specifies every format here precisely enough for an outside verifier.

pub mod chain;
pub mod checkpoint;
pub mod leaf;
pub mod merkle;
pub mod verify;

pub use chain::{ChainError, ChainHead};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifier, SignedCheckpoint,
    Sm2CheckpointSigner, Sm2CheckpointVerifier,
};
pub use leaf::{AuditLeaf, LeafError, SignedEvidence};
pub use merkle::{Frontier, Hash, ProofError};
pub use verify::{verify_log, Damage, Intact, Start, StoredRow};
