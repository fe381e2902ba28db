//! The `libsm` engine. libsm computes with `num-bigint`, which is variable-time and cannot be
//! zeroized; the engine stays for comparison and cross-checking, never as the default signer
//! (see `docs/crypto.md`). Z_A is computed once per key and libsm is handed e directly.

use std::sync::Arc;

use libsm::sm2::signature::SigCtx;

use super::prehash::{PrehashSign, PrehashVerify, WithZa};
use super::{EngineKind, PreparedSigner, PreparedVerifier, Sm2Engine};
use crate::crypto::keys::{KeyError, PublicKey, SecretKey};
use crate::crypto::signature::Signature;
use crate::crypto::SignError;

/// The libsm engine; holds one shared libsm context (curve parameters and tables).
#[derive(Clone)]
pub struct LibsmEngine {
    ctx: Arc<SigCtx>,
}

impl LibsmEngine {
    /// Builds the libsm context once.
    pub fn new() -> Self {
        Self {
            ctx: Arc::new(SigCtx::new()),
        }
    }
}

impl Default for LibsmEngine {
    fn default() -> Self {
        Self::new()
    }
}

struct LibsmSecret {
    ctx: Arc<SigCtx>,
    sk: num_bigint::BigUint,
}

struct LibsmPublic {
    ctx: Arc<SigCtx>,
    pk: libsm::sm2::ecc::Point,
}

impl Sm2Engine for LibsmEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Libsm
    }

    fn signer(
        &self,
        key: &SecretKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedSigner>, KeyError> {
        let sk = self
            .ctx
            .load_seckey(key.to_bytes().as_ref())
            .map_err(|_| KeyError::ScalarOutOfRange)?;
        Ok(Box::new(WithZa::new(
            LibsmSecret {
                ctx: Arc::clone(&self.ctx),
                sk,
            },
            key.public_key(),
            signer_id,
        )?))
    }

    fn verifier(
        &self,
        key: &PublicKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedVerifier>, KeyError> {
        let pk = self
            .ctx
            .load_pubkey(&key.to_sec1())
            .map_err(|_| KeyError::InvalidPoint)?;
        Ok(Box::new(WithZa::new(
            LibsmPublic {
                ctx: Arc::clone(&self.ctx),
                pk,
            },
            *key,
            signer_id,
        )?))
    }
}

fn to_32(v: &num_bigint::BigUint) -> Option<[u8; 32]> {
    let bytes = v.to_bytes_be();
    let mut out = [0u8; 32];
    out.get_mut(32usize.checked_sub(bytes.len())?..)?
        .copy_from_slice(&bytes);
    Some(out)
}

impl PrehashSign for LibsmSecret {
    fn sign_e(&self, e: &[u8; 32]) -> Result<([u8; 32], [u8; 32]), SignError> {
        let sig = self
            .ctx
            .sign_raw(e, &self.sk)
            .map_err(|_| SignError("libsm"))?;
        let r = to_32(sig.get_r()).ok_or(SignError("libsm r length"))?;
        let s = to_32(sig.get_s()).ok_or(SignError("libsm s length"))?;
        Ok((r, s))
    }
}

impl PrehashVerify for LibsmPublic {
    fn verify_e(&self, e: &[u8; 32], sig: &Signature) -> bool {
        let sig = libsm::sm2::signature::Signature::new(sig.r(), sig.s());
        matches!(self.ctx.verify_raw(e, &self.pk, &sig), Ok(true))
    }
}
