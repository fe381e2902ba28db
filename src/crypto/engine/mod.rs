//! SM2-with-SM3 engines behind one small trait, so the key ring and the HTTP layer never care
//! which implementation signs, and the performance team can swap and compare them.
//!
//! An engine turns key material into a *prepared* signer or verifier once (at key-ring load);
//! the prepared form caches everything that does not depend on the message — at least Z_A —
//! so the per-request cost is one SM3 over the message plus the curve arithmetic.

use std::fmt;
use std::str::FromStr;

use super::keys::{KeyError, PublicKey, SecretKey};
use super::signature::Signature;
use super::{SignError, VerifyError};

mod fast_engine;
mod libsm_engine;
mod prehash;
mod rustcrypto;

pub use fast_engine::FastEngine;
pub use libsm_engine::LibsmEngine;
pub use rustcrypto::RustCryptoEngine;

/// A key prepared for signing. Implementations zeroize their secret on drop where the
/// underlying library allows it (see `docs/crypto.md` for the libsm caveat).
pub trait PreparedSigner: Send + Sync {
    /// The public key matching this signer.
    fn public_key(&self) -> &PublicKey;
    /// Signs `message` (Z_A is prepended internally) with a fresh random k.
    fn sign(&self, message: &[u8]) -> Result<Signature, SignError>;
}

/// A public key prepared for verification.
pub trait PreparedVerifier: Send + Sync {
    /// The public key this verifier checks against.
    fn public_key(&self) -> &PublicKey;
    /// Verifies `signature` over `message` (Z_A is prepended internally).
    fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), VerifyError>;
}

/// An SM2 implementation.
pub trait Sm2Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;
    /// Prepares `key` for signing under `signer_id` (normally [`super::DEFAULT_SIGNER_ID`]).
    fn signer(
        &self,
        key: &SecretKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedSigner>, KeyError>;
    /// Prepares `key` for verifying signatures made under `signer_id`.
    fn verifier(
        &self,
        key: &PublicKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedVerifier>, KeyError>;
}

/// The engines the gateway can be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The project's own engine (the `sm2-fast` crate): constant-time signing with fixed-base tables,
    /// per-key verification tables. The default.
    Fast,
    /// RustCrypto `sm2` (constant-time field and scalar arithmetic).
    RustCrypto,
    /// `libsm` (the original choice; variable-time big-integer arithmetic).
    Libsm,
}

impl EngineKind {
    /// Every engine, for benches and differential tests.
    pub const ALL: [EngineKind; 3] = [EngineKind::Fast, EngineKind::RustCrypto, EngineKind::Libsm];

    /// The engine used when the configuration does not name one: the fastest that passes the
    /// correctness and constant-time bar (docs/crypto.md, docs/performance.md).
    pub const DEFAULT: EngineKind = EngineKind::Fast;

    /// Whether signing runs in constant time in the secret key and the nonce. `libsm` does not
    /// (big-integer arithmetic whose time depends on the values); the server signs with it only
    /// when `keys.allow_variable_time_signing` is set (docs/crypto.md).
    pub fn signs_in_constant_time(self) -> bool {
        match self {
            EngineKind::Fast | EngineKind::RustCrypto => true,
            EngineKind::Libsm => false,
        }
    }

    /// The engine's stable name, as used in config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Fast => "fast",
            EngineKind::RustCrypto => "rustcrypto",
            EngineKind::Libsm => "libsm",
        }
    }

    /// An instance of this engine.
    pub fn engine(self) -> Box<dyn Sm2Engine> {
        match self {
            EngineKind::Fast => Box::new(FastEngine),
            EngineKind::RustCrypto => Box::new(RustCryptoEngine),
            EngineKind::Libsm => Box::new(LibsmEngine::new()),
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown SM2 engine `{s}` (known: {})",
                    Self::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}
