//! Signed checkpoints (tree heads) of an instance's log, their canonical text form and the
//! witness line written to the append-only file outside the database.
//!
//! The text form follows Go's checksum-database signed notes: a body of newline-terminated lines
//! (origin, tree size, Base64 root, then the time), a blank line, and one signature line
//! `— bank-v<version> <Base64 of r ‖ s>`. The signature is SM2-with-SM3 (signer ID
//! `1234567812345678`) over the body bytes exactly. Every field has one spelling (decimal
//! without leading zeros, canonical padded Base64), so a checkpoint has exactly one parse.
//! `docs/audit.md` gives the grammar.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::chain::valid_instance_id;
use super::merkle::Hash;
use crate::crypto::{
    KeyError, PreparedSigner, PreparedVerifier, PublicKey, SignError, Signature, Sm2Engine,
    DEFAULT_SIGNER_ID,
};
use crate::keyring::BankKey;

/// First word of the origin line: names what the note is about.
pub const ORIGIN_PREFIX: &str = "pension-gateway audit ";
/// Prefix of the signature line (U+2014 EM DASH and a space, as in Go's signed notes).
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Name of a signing key in the signature line: `bank-v<version>`.
pub const KEY_NAME_PREFIX: &str = "bank-v";
/// First field of a witness line: the witness format version.
pub const WITNESS_TAG: &str = "pgw1";

/// An instance's tree head at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The instance whose log this is.
    pub instance_id: String,
    /// Number of leaves (rows) covered: seq 0 .. size-1.
    pub size: u64,
    /// RFC 6962 Merkle tree hash (SM3) of those leaves.
    pub root: Hash,
    /// Unix milliseconds the checkpoint was made.
    pub time_ms: i64,
}

/// A checkpoint with the bank key version that signed it and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What was signed.
    pub checkpoint: Checkpoint,
    /// Bank key version of the signer.
    pub key_version: u32,
    /// SM2-with-SM3 signature over [`Checkpoint::body`].
    pub signature: Signature,
}

/// Why a checkpoint or witness line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The text does not follow the grammar (which part is named, never the input).
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The instance id cannot appear in a checkpoint.
    #[error("invalid instance id")]
    InvalidInstanceId,
    /// No public key for the signer's key version.
    #[error("unknown signing key version {0}")]
    UnknownKey(u32),
    /// The signature does not verify.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// The signer failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The module holding the bank key did not sign (an error, or no answer within its
    /// deadline); the text is the module error's.
    #[error("the signing module did not sign the checkpoint: {0}")]
    Module(String),
}

/// Signs checkpoint bodies with one bank key version. Implemented over the crypto layer's
/// [`PreparedSigner`], so whatever backs the bank key (a file or a module) signs checkpoints
/// exactly as it signs answers.
pub trait CheckpointSigner {
    /// The key version written in the signature line.
    fn key_version(&self) -> u32;
    /// SM2-with-SM3 signature over `body`.
    fn sign_body(&self, body: &[u8]) -> Result<Signature, CheckpointError>;
}

/// Verifies checkpoint signatures by key version.
pub trait CheckpointVerifier {
    /// Checks `signature` over `body` against the key of `key_version`.
    fn verify_body(
        &self,
        key_version: u32,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), CheckpointError>;
}

/// A [`PreparedSigner`] under a bank key version.
pub struct Sm2CheckpointSigner<'a> {
    /// The version named in the signature line.
    pub key_version: u32,
    /// The prepared bank key.
    pub signer: &'a dyn PreparedSigner,
}

impl CheckpointSigner for Sm2CheckpointSigner<'_> {
    fn key_version(&self) -> u32 {
        self.key_version
    }

    fn sign_body(&self, body: &[u8]) -> Result<Signature, CheckpointError> {
        Ok(self.signer.sign(body)?)
    }
}

/// A bank key version of the ring: a key file signs inline, a module key under the module's
/// deadline (never longer: the audit writer signs on its own thread and must not stall).
impl CheckpointSigner for BankKey {
    fn key_version(&self) -> u32 {
        self.version
    }

    fn sign_body(&self, body: &[u8]) -> Result<Signature, CheckpointError> {
        use crate::keyring::BankSignError;
        self.signer.sign_within_deadline(body).map_err(|e| match e {
            BankSignError::Engine(e) => CheckpointError::Sign(e),
            BankSignError::Module(e) => CheckpointError::Module(e.to_string()),
        })
    }
}

/// The bank's public keys by version (retired versions included, so old checkpoints verify).
#[derive(Default)]
pub struct Sm2CheckpointVerifier {
    keys: BTreeMap<u32, Box<dyn PreparedVerifier>>,
}

impl Sm2CheckpointVerifier {
    /// Prepares each `(version, public key)` with `engine` under the default signer ID.
    pub fn new<'k>(
        engine: &dyn Sm2Engine,
        keys: impl IntoIterator<Item = (u32, &'k PublicKey)>,
    ) -> Result<Self, KeyError> {
        let mut out = BTreeMap::new();
        for (version, key) in keys {
            out.insert(version, engine.verifier(key, DEFAULT_SIGNER_ID)?);
        }
        Ok(Sm2CheckpointVerifier { keys: out })
    }
}

impl CheckpointVerifier for Sm2CheckpointVerifier {
    fn verify_body(
        &self,
        key_version: u32,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), CheckpointError> {
        let verifier = self
            .keys
            .get(&key_version)
            .ok_or(CheckpointError::UnknownKey(key_version))?;
        verifier
            .verify(body, signature)
            .map_err(|_| CheckpointError::BadSignature)
    }
}

impl Checkpoint {
    /// The signed body: origin, size, Base64 root and time lines, each ending in `\n`.
    pub fn body(&self) -> Result<String, CheckpointError> {
        if !valid_instance_id(&self.instance_id) {
            return Err(CheckpointError::InvalidInstanceId);
        }
        Ok(format!(
            "{ORIGIN_PREFIX}{}\n{}\n{}\ntime {}\n",
            self.instance_id,
            self.size,
            STANDARD.encode(self.root),
            self.time_ms
        ))
    }

    /// Signs the body with `signer`.
    pub fn sign(self, signer: &dyn CheckpointSigner) -> Result<SignedCheckpoint, CheckpointError> {
        let signature = signer.sign_body(self.body()?.as_bytes())?;
        Ok(SignedCheckpoint {
            checkpoint: self,
            key_version: signer.key_version(),
            signature,
        })
    }

    fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let lines: Vec<&str> = body.split_terminator('\n').collect();
        let [origin, size, root, time] = lines.as_slice() else {
            return Err(CheckpointError::Malformed("body must have four lines"));
        };
        let instance_id = origin
            .strip_prefix(ORIGIN_PREFIX)
            .ok_or(CheckpointError::Malformed("origin line"))?;
        let time = time
            .strip_prefix("time ")
            .ok_or(CheckpointError::Malformed("time line"))?;
        let cp = Checkpoint {
            instance_id: instance_id.to_owned(),
            size: parse_u64(size).ok_or(CheckpointError::Malformed("size"))?,
            root: parse_root(root)?,
            time_ms: parse_i64(time).ok_or(CheckpointError::Malformed("time"))?,
        };
        // The body must be exactly what `body()` writes (catches a missing final newline and
        // an invalid instance id).
        if cp.body()? != body {
            return Err(CheckpointError::Malformed("body is not canonical"));
        }
        Ok(cp)
    }
}

impl SignedCheckpoint {
    /// The full note: body, blank line, signature line.
    pub fn to_note(&self) -> Result<String, CheckpointError> {
        Ok(format!(
            "{}\n{SIGNATURE_PREFIX}{KEY_NAME_PREFIX}{} {}\n",
            self.checkpoint.body()?,
            self.key_version,
            STANDARD.encode(self.signature.to_raw())
        ))
    }

    /// Parses a note written by [`Self::to_note`] (the signature is not checked here).
    pub fn from_note(note: &str) -> Result<Self, CheckpointError> {
        let (body, key_version, signature) = split_note(note)?;
        let checkpoint = Checkpoint::parse_body(&body)?;
        let signed = SignedCheckpoint {
            checkpoint,
            key_version,
            signature,
        };
        if signed.to_note()? != note {
            return Err(CheckpointError::Malformed("note is not canonical"));
        }
        Ok(signed)
    }

    /// Checks the signature with `verifier`.
    pub fn verify(&self, verifier: &dyn CheckpointVerifier) -> Result<(), CheckpointError> {
        verifier.verify_body(
            self.key_version,
            self.checkpoint.body()?.as_bytes(),
            &self.signature,
        )
    }

    /// The witness line: `pgw1 <instance> <size> <root> <time_ms> <key version> <signature>\n`,
    /// Base64 for the root and for r ‖ s. One line holds everything needed to re-verify the
    /// checkpoint, so the witness file alone proves what the log held.
    pub fn witness_line(&self) -> Result<String, CheckpointError> {
        let cp = &self.checkpoint;
        if !valid_instance_id(&cp.instance_id) {
            return Err(CheckpointError::InvalidInstanceId);
        }
        Ok(format!(
            "{WITNESS_TAG} {} {} {} {} {} {}\n",
            cp.instance_id,
            cp.size,
            STANDARD.encode(cp.root),
            cp.time_ms,
            self.key_version,
            STANDARD.encode(self.signature.to_raw())
        ))
    }

    /// Parses one witness line (with or without its final newline).
    pub fn from_witness_line(line: &str) -> Result<Self, CheckpointError> {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let fields: Vec<&str> = bare.split(' ').collect();
        let [tag, instance, size, root, time, version, sig] = fields.as_slice() else {
            return Err(CheckpointError::Malformed(
                "witness line must have seven fields",
            ));
        };
        if *tag != WITNESS_TAG {
            return Err(CheckpointError::Malformed("witness tag"));
        }
        let signed = SignedCheckpoint {
            checkpoint: Checkpoint {
                instance_id: (*instance).to_owned(),
                size: parse_u64(size).ok_or(CheckpointError::Malformed("size"))?,
                root: parse_root(root)?,
                time_ms: parse_i64(time).ok_or(CheckpointError::Malformed("time"))?,
            },
            key_version: parse_u32(version).ok_or(CheckpointError::Malformed("key version"))?,
            signature: parse_signature(sig)?,
        };
        if signed.witness_line()?.trim_end_matches('\n') != bare {
            return Err(CheckpointError::Malformed("witness line is not canonical"));
        }
        Ok(signed)
    }
}

/// Decimal digits only; the round trip through `to_string` in the callers refuses `+1`, `01`.
pub(super) fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits a signed note — its body, a blank line, and the signature line that ends it
/// (`— pension-gateway-bank-v<N> <Base64 r‖s>`) — into the body (with its newline), the key
/// version and the signature. Checkpoints and prune records share these rules; the caller
/// parses the body and checks that the note is canonical.
pub(super) fn split_note(note: &str) -> Result<(String, u32, Signature), CheckpointError> {
    let (body, sig_line) = note.split_once("\n\n").ok_or(CheckpointError::Malformed(
        "no blank line before the signature",
    ))?;
    let sig_line = sig_line
        .strip_suffix('\n')
        .ok_or(CheckpointError::Malformed(
            "signature line must end the note",
        ))?;
    let rest = sig_line
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|s| s.strip_prefix(KEY_NAME_PREFIX))
        .ok_or(CheckpointError::Malformed("signature line"))?;
    let (version, sig) = rest
        .split_once(' ')
        .ok_or(CheckpointError::Malformed("signature line"))?;
    let version = parse_u32(version).ok_or(CheckpointError::Malformed("key version"))?;
    Ok((format!("{body}\n"), version, parse_signature(sig)?))
}

pub(super) fn parse_u32(s: &str) -> Option<u32> {
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

pub(super) fn parse_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

pub(super) fn parse_root(s: &str) -> Result<Hash, CheckpointError> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|_| CheckpointError::Malformed("root is not Base64"))?;
    Hash::try_from(bytes.as_slice()).map_err(|_| CheckpointError::Malformed("root length"))
}

pub(super) fn parse_signature(s: &str) -> Result<Signature, CheckpointError> {
    let bytes = STANDARD
        .decode(s)
        .map_err(|_| CheckpointError::Malformed("signature is not Base64"))?;
    let raw: [u8; 64] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| CheckpointError::Malformed("signature length"))?;
    let (r, s) = raw.split_at(32);
    let (mut rr, mut ss) = ([0u8; 32], [0u8; 32]);
    rr.copy_from_slice(r);
    ss.copy_from_slice(s);
    Signature::from_scalars(rr, ss).map_err(|_| CheckpointError::Malformed("signature range"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::{EngineKind, SecretKey};

    /// The published demo bank key (keys/demo/bank-v1.key), prepared for signing.
    pub(crate) fn demo_signer() -> Box<dyn PreparedSigner> {
        let key = SecretKey::parse(include_str!("../../keys/demo/bank-v1.key")).unwrap();
        EngineKind::Fast
            .engine()
            .signer(&key, DEFAULT_SIGNER_ID)
            .unwrap()
    }

    /// Verifier holding the demo bank public key as version 1.
    pub(crate) fn demo_verifier() -> Sm2CheckpointVerifier {
        let public = PublicKey::parse(include_str!("../../keys/demo/bank-v1.pub")).unwrap();
        Sm2CheckpointVerifier::new(EngineKind::RustCrypto.engine().as_ref(), [(1, &public)])
            .unwrap()
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            instance_id: "gw-a".into(),
            size: 7,
            root: [0xab; 32],
            time_ms: 1_700_000_000_123,
        }
    }

    /// A note signed with the demo bank key by an independent implementation (Python `gmssl`
    /// 3.2.2, `CryptSM2.sign_with_sm3`, default signer ID): the exact text must keep parsing and
    /// the signature must keep verifying.
    const KNOWN_NOTE: &str = "pension-gateway audit gw-a\n7\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\ntime 1700000000123\n\n\u{2014} bank-v1 gjzhHOoq9YGYcurEWdj6hkCBauO5dHWhhoNbTH5TdZcLAme6f7Thq0OmNxOHlB29ERzT/uWRWPQSsUcUGnNq9A==\n";

    #[test]
    fn body_has_the_documented_text() {
        assert_eq!(
            sample().body().unwrap(),
            "pension-gateway audit gw-a\n7\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\ntime 1700000000123\n"
        );
    }

    #[test]
    fn signed_note_round_trips_and_verifies() {
        let signer = demo_signer();
        let s = Sm2CheckpointSigner {
            key_version: 1,
            signer: signer.as_ref(),
        };
        let signed = sample().sign(&s).unwrap();
        let note = signed.to_note().unwrap();
        let parsed = SignedCheckpoint::from_note(&note).unwrap();
        assert_eq!(parsed, signed);
        parsed.verify(&demo_verifier()).unwrap();
        let line = signed.witness_line().unwrap();
        assert!(line.starts_with("pgw1 gw-a 7 q6ur") && line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        assert_eq!(SignedCheckpoint::from_witness_line(&line).unwrap(), signed);
    }

    #[test]
    fn known_note_verifies_with_the_demo_key() {
        let parsed = SignedCheckpoint::from_note(KNOWN_NOTE).unwrap();
        assert_eq!(parsed.checkpoint, sample());
        assert_eq!(parsed.key_version, 1);
        parsed.verify(&demo_verifier()).unwrap();
    }

    #[test]
    fn altered_checkpoints_do_not_verify() {
        let signer = demo_signer();
        let s = Sm2CheckpointSigner {
            key_version: 1,
            signer: signer.as_ref(),
        };
        let signed = sample().sign(&s).unwrap();
        let v = demo_verifier();
        let mut bigger = signed.clone();
        bigger.checkpoint.size += 1;
        assert_eq!(bigger.verify(&v), Err(CheckpointError::BadSignature));
        let mut other_root = signed.clone();
        other_root.checkpoint.root[31] ^= 1;
        assert_eq!(other_root.verify(&v), Err(CheckpointError::BadSignature));
        let mut other_key = signed;
        other_key.key_version = 2;
        assert_eq!(other_key.verify(&v), Err(CheckpointError::UnknownKey(2)));
    }

    #[test]
    fn non_canonical_text_is_refused() {
        let signer = demo_signer();
        let s = Sm2CheckpointSigner {
            key_version: 1,
            signer: signer.as_ref(),
        };
        let note = sample().sign(&s).unwrap().to_note().unwrap();
        for bad in [
            note.replace("\n7\n", "\n07\n"),
            note.replace("\n7\n", "\n+7\n"),
            note.replace("time ", "time  "),
            note.replace("bank-v1", "bank-v01"),
            note.replace("gw-a", "gw a"),
            format!("{note}\n"),
            note.trim_end().to_owned(),
            note.replace("q6s=", "q6s"),
        ] {
            assert!(SignedCheckpoint::from_note(&bad).is_err(), "{bad:?}");
        }
        let line = SignedCheckpoint::from_note(&note)
            .unwrap()
            .witness_line()
            .unwrap();
        for bad in [
            line.replace("pgw1", "pgw2"),
            line.replace(" 7 ", " 07 "),
            line.replace(" 7 ", "  7 "),
            format!("{} extra\n", line.trim_end()),
            line.replace(" 1 ", " 1x "),
        ] {
            assert!(
                SignedCheckpoint::from_witness_line(&bad).is_err(),
                "{bad:?}"
            );
        }
    }
}
