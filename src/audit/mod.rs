//! The audit trail as evidence.
//!
//! - [`prove`]: what one audit row proves — both signatures re-verified from the row alone.
//! - The tamper-evident log's pure core: the canonical leaf of an audit row ([`leaf`]), the
//!   per-instance hash chain ([`chain`]), RFC 6962 Merkle trees with SM3 ([`merkle`]), signed
//!   checkpoints with their witness lines ([`checkpoint`]), and the verifier that names the first
//!   damage ([`verify`]). No I/O: the store and the commands wire these to the audit table and
//!   the witness file. `docs/audit.md` specifies every format precisely enough for an outside
//!   verifier.

pub mod chain;
pub mod check;
pub mod checkpoint;
pub mod leaf;
pub mod merkle;
pub mod prove;
pub mod prune;
pub mod verify;

pub use chain::{ChainError, ChainHead};
pub use checkpoint::{
    Checkpoint, CheckpointError, CheckpointSigner, CheckpointVerifier, SignedCheckpoint,
    Sm2CheckpointSigner, Sm2CheckpointVerifier,
};
pub use leaf::{AuditLeaf, LeafError, SignedEvidence};
pub use merkle::{Frontier, Hash, ProofError};
pub use prune::{Prune, SignedPrune};
pub use verify::{verify_log, Damage, Intact, LogVerifier, Start, StoredRow};
