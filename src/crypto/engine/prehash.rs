//! The shared shape of engines that work on e = SM3(Z_A ‖ M): cache Z_A once per key, hash the
//! message per call, hand e to the engine's arithmetic. `fast` and `libsm` use it; RustCrypto
//! caches Z_A inside its own key types.

use super::{PreparedSigner, PreparedVerifier};
use crate::crypto::keys::{KeyError, PublicKey};
use crate::crypto::signature::Signature;
use crate::crypto::sm3::{message_digest, z_a};
use crate::crypto::{SignError, VerifyError};

/// Signs a prehashed e.
pub(super) trait PrehashSign: Send + Sync {
    /// (r, s) over e.
    fn sign_e(&self, e: &[u8; 32]) -> Result<([u8; 32], [u8; 32]), SignError>;
}

/// Verifies a signature over a prehashed e.
pub(super) trait PrehashVerify: Send + Sync {
    /// Whether `sig` is valid over e.
    fn verify_e(&self, e: &[u8; 32], sig: &Signature) -> bool;
}

/// An engine key with its public key and cached Z_A.
pub(super) struct WithZa<K> {
    key: K,
    public: PublicKey,
    z_a: [u8; 32],
}

impl<K> WithZa<K> {
    /// Computes Z_A for `public` under `signer_id` once.
    pub(super) fn new(key: K, public: PublicKey, signer_id: &[u8]) -> Result<Self, KeyError> {
        let z_a = z_a(signer_id, &public).ok_or(KeyError::Hex("signer ID too long"))?;
        Ok(Self { key, public, z_a })
    }
}

impl<K: PrehashSign> PreparedSigner for WithZa<K> {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let (r, s) = self.key.sign_e(&message_digest(&self.z_a, message))?;
        Signature::from_scalars(r, s)
            .map_err(|_| SignError("engine produced an out-of-range signature"))
    }
}

impl<K: PrehashVerify> PreparedVerifier for WithZa<K> {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), VerifyError> {
        if self
            .key
            .verify_e(&message_digest(&self.z_a, message), signature)
        {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }
}
