//! The RustCrypto `sm2` engine. Its `SigningKey`/`VerifyingKey` cache Z_A at construction and
//! its arithmetic is constant-time; the signing key zeroizes on drop.

use signature::{Signer, Verifier};

use super::{EngineKind, PreparedSigner, PreparedVerifier, Sm2Engine};
use crate::crypto::keys::{KeyError, PublicKey, SecretKey};
use crate::crypto::signature::Signature;
use crate::crypto::{SignError, VerifyError};

/// The RustCrypto `sm2` engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoEngine;

struct RcSigner {
    key: sm2::dsa::SigningKey,
    public: PublicKey,
}

struct RcVerifier {
    key: sm2::dsa::VerifyingKey,
    public: PublicKey,
}

fn distid(signer_id: &[u8]) -> Result<&str, KeyError> {
    std::str::from_utf8(signer_id)
        .map_err(|_| KeyError::Hex("signer ID must be UTF-8 for this engine"))
}

impl Sm2Engine for RustCryptoEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::RustCrypto
    }

    fn signer(
        &self,
        key: &SecretKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedSigner>, KeyError> {
        let sk = sm2::SecretKey::from_slice(key.to_bytes().as_ref())
            .map_err(|_| KeyError::ScalarOutOfRange)?;
        let signing = sm2::dsa::SigningKey::new(distid(signer_id)?, &sk)
            .map_err(|_| KeyError::ScalarOutOfRange)?;
        Ok(Box::new(RcSigner {
            key: signing,
            public: key.public_key(),
        }))
    }

    fn verifier(
        &self,
        key: &PublicKey,
        signer_id: &[u8],
    ) -> Result<Box<dyn PreparedVerifier>, KeyError> {
        let verifying = sm2::dsa::VerifyingKey::from_sec1_bytes(distid(signer_id)?, &key.to_sec1())
            .map_err(|_| KeyError::InvalidPoint)?;
        Ok(Box::new(RcVerifier {
            key: verifying,
            public: *key,
        }))
    }
}

impl PreparedSigner for RcSigner {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Signature, SignError> {
        let sig: sm2::dsa::Signature = self
            .key
            .try_sign(message)
            .map_err(|_| SignError("rustcrypto sm2"))?;
        let bytes = sig.to_bytes();
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(bytes.get(..32).ok_or(SignError("rustcrypto sm2 length"))?);
        s.copy_from_slice(
            bytes
                .get(32..64)
                .ok_or(SignError("rustcrypto sm2 length"))?,
        );
        Signature::from_scalars(r, s)
            .map_err(|_| SignError("rustcrypto sm2 produced an out-of-range signature"))
    }
}

impl PreparedVerifier for RcVerifier {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), VerifyError> {
        let sig = sm2::dsa::Signature::from_slice(&signature.to_raw())
            .map_err(|_| VerifyError::Mismatch)?;
        self.key
            .verify(message, &sig)
            .map_err(|_| VerifyError::Mismatch)
    }
}
