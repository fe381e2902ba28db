//! The wire's cryptography: SM3, SM2-with-SM3 signatures behind one engine trait, key parsing,
//! the request/response signing strings, the `Authorization` header codec and nonces.
//!
//! Everything here is a pure function over bytes: no I/O, no clock, no logging. Time and
//! randomness are parameters so tests are exact.
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod authorization;
pub mod engine;
pub mod keys;
pub mod nonce;
pub mod signature;
pub mod signing_string;
pub mod sm3;

pub use authorization::{Authorization, AuthorizationError};
pub use engine::{EngineKind, PreparedSigner, PreparedVerifier, Sm2Engine};
pub use keys::{KeyError, PublicKey, SecretKey};
pub use signature::{Signature, SignatureError};

/// The signer ID both WeChat and the bank use (GB/T 32918 default, "1234567812345678").
pub const DEFAULT_SIGNER_ID: &[u8] = b"1234567812345678";

/// Why a signature was not accepted. Deliberately coarse: the caller learns *that* it failed and
/// the broad reason, never anything about key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature is well formed but does not match the message and key.
    #[error("signature does not match")]
    Mismatch,
    /// The signature bytes are not a valid encoding (DER, Base64, or r/s out of range).
    #[error("signature is malformed: {0}")]
    Malformed(#[from] SignatureError),
}

/// Why signing failed. With a valid prepared key this happens only if the engine's RNG fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("signing failed: {0}")]
pub struct SignError(pub &'static str);
