//! The project's own engine (the `sm2-fast` crate): per-key precomputation, fixed-base tables read by
//! constant-time scans, (1+d)⁻¹ cached, constant-time signing; verification (public data) uses
//! per-key tables for WeChat's few trusted keys, built once at key-ring load.

use super::prehash::{PrehashSign, PrehashVerify, WithZa};
use super::{EngineKind, PreparedSigner, PreparedVerifier, Sm2Engine};
use crate::crypto::keys::{KeyError, PublicKey, SecretKey};
use crate::crypto::signature::Signature;
use crate::crypto::SignError;
use sm2_fast as fast;

/// The project's fast SM2 engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastEngine;

impl Sm2Engine for FastEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Fast
    }

    fn signer(
        &self,
        key: &SecretKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedSigner>, KeyError> {
        let sk = fast::SigningKey::from_bytes(&key.to_bytes())
            .map_err(|_| KeyError::ScalarOutOfRange)?;
        Ok(Box::new(WithZa::new(sk, key.public_key(), signer_id)?))
    }

    fn verifier(
        &self,
        key: &PublicKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedVerifier>, KeyError> {
        let vk =
            fast::VerifyingKey::from_sec1(&key.to_sec1()).map_err(|_| KeyError::InvalidPoint)?;
        Ok(Box::new(WithZa::new(vk, *key, signer_id)?))
    }
}

impl PrehashSign for fast::SigningKey {
    fn sign_e(&self, e: &[u8; 32]) -> Result<([u8; 32], [u8; 32]), SignError> {
        // thread_rng: ChaCha12 seeded from the OS and reseeded; it does not fail once seeded.
        Ok(self.sign_prehash(e, &mut rand::thread_rng()))
    }
}

impl PrehashVerify for fast::VerifyingKey {
    fn verify_e(&self, e: &[u8; 32], sig: &Signature) -> bool {
        self.verify_prehash(e, sig.r(), sig.s()).is_ok()
    }
}
