//! `audit prove`: re-verifies, from an audit row alone, WeChat's signature of the request and the
//! bank's signature of the answer.
//!
//! The row keeps e = SM3(Z_A ‖ M) of each signing string M and the signature (r ‖ s), so the
//! check needs neither the body nor the private keys: only the signers' public keys, every
//! version the key ring's manifest names (retired and untrusted ones included, since an old row
//! was signed by a key that may no longer be in service). Whoever also holds the body can
//! recompute M from it, the path and the row's nonce and timestamp, and show that e is that
//! body's (docs/audit.md).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::crypto::PublicKey;
use crate::keyring::{read_key_text, KeyFileKind, KeyRingError, Manifest};
use crate::store::{AuditRecord, SignedEvidence};
use sm2_fast::VerifyingKey;

/// The public keys a proof is checked against, by version.
#[derive(Debug, Default, Clone)]
pub struct PublicKeys {
    /// The bank's keys (signers of the answers).
    pub bank: BTreeMap<u32, PublicKey>,
    /// WeChat's keys (signers of the requests).
    pub wechat: BTreeMap<u32, PublicKey>,
}

impl PublicKeys {
    /// Every key version `dir/keyring.toml` names, in any state. A bank version is read from
    /// `bank-v{N}.pub` next to the manifest when present (no private key is opened), else
    /// derived from its private key file; a bank version with neither (a retired key whose
    /// files were removed) is left out and its rows report the key as missing.
    pub fn from_key_dir(dir: &Path) -> Result<Self, KeyRingError> {
        let manifest = Manifest::parse(&read_key_text(
            &dir.join("keyring.toml"),
            KeyFileKind::Manifest,
        )?)?;
        let mut keys = PublicKeys::default();
        for entry in &manifest.bank {
            let public = dir.join(format!("bank-v{}.pub", entry.version));
            let key = if public.exists() {
                parse_public(&public)?
            } else {
                let private = dir.join(&entry.private_key);
                if !private.exists() {
                    continue;
                }
                let text = read_key_text(&private, KeyFileKind::Secret)?;
                crate::crypto::SecretKey::parse(&text)
                    .map_err(|e| invalid(&private, e))?
                    .public_key()
            };
            keys.bank.insert(entry.version, key);
        }
        for entry in &manifest.wechat {
            keys.wechat
                .insert(entry.version, parse_public(&dir.join(&entry.public_key))?);
        }
        Ok(keys)
    }
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> KeyRingError {
    KeyRingError::Invalid(format!("{}: {e}", path.display()))
}

fn parse_public(path: &Path) -> Result<PublicKey, KeyRingError> {
    let text = read_key_text(path, KeyFileKind::PublicKey)?;
    PublicKey::parse(&text).map_err(|e| invalid(path, e))
}

/// The verdict on one signature of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The signature verifies over the stored digest with the named key version.
    Verified,
    /// It does not verify: the row's evidence was altered, or was never this key's signature.
    DoesNotVerify,
    /// The row names a key version whose public key is not available.
    KeyMissing,
    /// The row keeps no evidence (written before evidence was recorded, or a partner channel).
    NoEvidence,
}

impl Verdict {
    /// Human text of the verdict.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::DoesNotVerify => "DOES NOT VERIFY",
            Verdict::KeyMissing => "cannot be checked: key version not available",
            Verdict::NoEvidence => "no evidence recorded",
        }
    }
}

/// One signature's proof: who signed, with which key version, what, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureProof {
    /// `wechat` (the request) or `bank` (the answer).
    pub signer: &'static str,
    /// The key version the row names.
    pub key_version: Option<i64>,
    /// The nonce as signed.
    pub nonce: Option<String>,
    /// The timestamp as signed.
    pub timestamp: Option<String>,
    /// e = SM3(Z_A ‖ M), hex.
    pub digest: Option<String>,
    /// r ‖ s, hex.
    pub signature: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The proof of one audit row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProof {
    /// The request's `Request-ID`.
    pub request_id: String,
    /// Unix milliseconds the request arrived.
    pub received_at_ms: i64,
    /// The channel that answered.
    pub channel: String,
    /// The outcome the row records.
    pub outcome: String,
    /// The HTTP status the row records.
    pub http_status: i16,
    /// The caller got a signed 503 instead of what the row records (`audit_undelivered`).
    pub undelivered: bool,
    /// WeChat's signature of the request.
    pub request: SignatureProof,
    /// The bank's signature of the answer.
    pub response: SignatureProof,
}

impl RowProof {
    /// Both signatures verified.
    pub fn verified(&self) -> bool {
        self.request.verdict == Verdict::Verified && self.response.verdict == Verdict::Verified
    }
}

/// Whether `signature` (r ‖ s) is `public`'s SM2 signature over the digest `e`.
pub fn verify_digest(public: &PublicKey, e: &[u8; 32], signature: &[u8; 64]) -> bool {
    let (mut r, mut s) = ([0u8; 32], [0u8; 32]);
    r.copy_from_slice(&signature[..32]);
    s.copy_from_slice(&signature[32..]);
    VerifyingKey::from_sec1(&public.to_sec1()).is_ok_and(|k| k.verify_prehash(e, &r, &s).is_ok())
}

fn check(
    signer: &'static str,
    version: Option<i32>,
    evidence: Option<&SignedEvidence>,
    keys: &BTreeMap<u32, PublicKey>,
) -> SignatureProof {
    let verdict = match (evidence, version) {
        (None, _) | (_, None) => Verdict::NoEvidence,
        (Some(e), Some(v)) => match u32::try_from(v).ok().and_then(|v| keys.get(&v)) {
            None => Verdict::KeyMissing,
            Some(k) if verify_digest(k, &e.digest, &e.signature) => Verdict::Verified,
            Some(_) => Verdict::DoesNotVerify,
        },
    };
    SignatureProof {
        signer,
        key_version: version.map(i64::from),
        nonce: evidence.map(|e| e.nonce.clone()),
        timestamp: evidence.map(|e| e.timestamp.clone()),
        digest: evidence.map(|e| hex::encode(e.digest)),
        signature: evidence.map(|e| hex::encode(e.signature)),
        verdict,
    }
}

/// Checks both signatures of `row` against `keys`.
pub fn prove(row: &AuditRecord, keys: &PublicKeys) -> RowProof {
    RowProof {
        request_id: row.request_id.clone(),
        received_at_ms: row.received_at_ms,
        channel: row.channel.clone(),
        outcome: row.outcome.clone(),
        http_status: row.http_status,
        undelivered: row.undelivered,
        request: check(
            "wechat",
            row.wechat_key_version,
            row.evidence.request.as_ref(),
            &keys.wechat,
        ),
        response: check(
            "bank",
            Some(row.bank_key_version),
            row.evidence.response.as_ref(),
            &keys.bank,
        ),
    }
}
