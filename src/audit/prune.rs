//! Signed prune records: what `audit prune` removed from an instance's log, so that what remains
//! still verifies and a deletion without such a record does not.
//!
//! A record names the instance, the rows removed (`first` .. `end` − 1, `end` being the size of
//! a signed checkpoint of that instance), the chain hash of row `end` − 1 (the `prev_hash` the
//! first remaining row must carry) and that checkpoint's root. It is a signed note like a
//! checkpoint, under its own origin (`pension-gateway audit-prune <instance>`) so that neither
//! can pass for the other, and is written to `audit_prunes` and to the witness file as one line
//! (`pgw1-prune …`). `docs/audit.md` ("Retention") gives the grammar.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::chain::valid_instance_id;
use super::checkpoint::{
    parse_i64, parse_root, parse_signature, parse_u32, parse_u64, split_note, CheckpointError,
    CheckpointSigner, CheckpointVerifier, KEY_NAME_PREFIX, SIGNATURE_PREFIX,
};
use super::merkle::Hash;
use crate::crypto::Signature;

/// Origin line prefix of a prune record.
pub const PRUNE_ORIGIN_PREFIX: &str = "pension-gateway audit-prune ";
/// First field of a prune record's witness line.
pub const PRUNE_WITNESS_TAG: &str = "pgw1-prune";

/// What one prune removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    /// The instance whose rows were removed.
    pub instance_id: String,
    /// First sequence number removed (0, or the previous prune's `end`).
    pub first: u64,
    /// One past the last sequence number removed: the size of the checkpoint the cut is at.
    pub end: u64,
    /// Chain hash of row `end` − 1 (the first remaining row's `prev_hash`).
    pub last_hash: Hash,
    /// Root of the instance's checkpoint of size `end`.
    pub root: Hash,
    /// Unix milliseconds of the prune.
    pub time_ms: i64,
}

/// A prune record with the bank key version that signed it and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPrune {
    /// What was signed.
    pub prune: Prune,
    /// Bank key version of the signer.
    pub key_version: u32,
    /// SM2-with-SM3 signature over [`Prune::body`].
    pub signature: Signature,
}

impl Prune {
    /// The signed body: origin, first, end, last hash, root and time lines, each ending in `\n`.
    pub fn body(&self) -> Result<String, CheckpointError> {
        if !valid_instance_id(&self.instance_id) {
            return Err(CheckpointError::InvalidInstanceId);
        }
        if self.end <= self.first {
            return Err(CheckpointError::Malformed("prune removes no row"));
        }
        Ok(format!(
            "{PRUNE_ORIGIN_PREFIX}{}\n{}\n{}\n{}\n{}\ntime {}\n",
            self.instance_id,
            self.first,
            self.end,
            STANDARD.encode(self.last_hash),
            STANDARD.encode(self.root),
            self.time_ms
        ))
    }

    /// Signs the body with `signer`.
    pub fn sign(self, signer: &dyn CheckpointSigner) -> Result<SignedPrune, CheckpointError> {
        let signature = signer.sign_body(self.body()?.as_bytes())?;
        Ok(SignedPrune {
            prune: self,
            key_version: signer.key_version(),
            signature,
        })
    }

    fn parse_body(body: &str) -> Result<Self, CheckpointError> {
        let lines: Vec<&str> = body.split_terminator('\n').collect();
        let [origin, first, end, last, root, time] = lines.as_slice() else {
            return Err(CheckpointError::Malformed("prune body must have six lines"));
        };
        let p = Prune {
            instance_id: origin
                .strip_prefix(PRUNE_ORIGIN_PREFIX)
                .ok_or(CheckpointError::Malformed("prune origin line"))?
                .to_owned(),
            first: parse_u64(first).ok_or(CheckpointError::Malformed("first"))?,
            end: parse_u64(end).ok_or(CheckpointError::Malformed("end"))?,
            last_hash: parse_root(last)?,
            root: parse_root(root)?,
            time_ms: time
                .strip_prefix("time ")
                .and_then(parse_i64)
                .ok_or(CheckpointError::Malformed("time line"))?,
        };
        if p.body()? != body {
            return Err(CheckpointError::Malformed("prune body is not canonical"));
        }
        Ok(p)
    }
}

impl SignedPrune {
    /// The full note: body, blank line, signature line.
    pub fn to_note(&self) -> Result<String, CheckpointError> {
        Ok(format!(
            "{}\n{SIGNATURE_PREFIX}{KEY_NAME_PREFIX}{} {}\n",
            self.prune.body()?,
            self.key_version,
            STANDARD.encode(self.signature.to_raw())
        ))
    }

    /// Parses a note written by [`Self::to_note`] (the signature is not checked here).
    pub fn from_note(note: &str) -> Result<Self, CheckpointError> {
        let (body, key_version, signature) = split_note(note)?;
        let signed = SignedPrune {
            prune: Prune::parse_body(&body)?,
            key_version,
            signature,
        };
        if signed.to_note()? != note {
            return Err(CheckpointError::Malformed("prune note is not canonical"));
        }
        Ok(signed)
    }

    /// Checks the signature with `verifier`.
    pub fn verify(&self, verifier: &dyn CheckpointVerifier) -> Result<(), CheckpointError> {
        verifier.verify_body(
            self.key_version,
            self.prune.body()?.as_bytes(),
            &self.signature,
        )
    }

    /// The witness line:
    /// `pgw1-prune <instance> <first> <end> <last hash> <root> <time_ms> <key version> <signature>\n`.
    pub fn witness_line(&self) -> Result<String, CheckpointError> {
        let p = &self.prune;
        p.body()?;
        Ok(format!(
            "{PRUNE_WITNESS_TAG} {} {} {} {} {} {} {} {}\n",
            p.instance_id,
            p.first,
            p.end,
            STANDARD.encode(p.last_hash),
            STANDARD.encode(p.root),
            p.time_ms,
            self.key_version,
            STANDARD.encode(self.signature.to_raw())
        ))
    }

    /// Parses one prune witness line (with or without its final newline).
    pub fn from_witness_line(line: &str) -> Result<Self, CheckpointError> {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let fields: Vec<&str> = bare.split(' ').collect();
        let [tag, instance, first, end, last, root, time, version, sig] = fields.as_slice() else {
            return Err(CheckpointError::Malformed(
                "prune witness line must have nine fields",
            ));
        };
        if *tag != PRUNE_WITNESS_TAG {
            return Err(CheckpointError::Malformed("witness tag"));
        }
        let signed = SignedPrune {
            prune: Prune {
                instance_id: (*instance).to_owned(),
                first: parse_u64(first).ok_or(CheckpointError::Malformed("first"))?,
                end: parse_u64(end).ok_or(CheckpointError::Malformed("end"))?,
                last_hash: parse_root(last)?,
                root: parse_root(root)?,
                time_ms: parse_i64(time).ok_or(CheckpointError::Malformed("time"))?,
            },
            key_version: parse_u32(version).ok_or(CheckpointError::Malformed("key version"))?,
            signature: parse_signature(sig)?,
        };
        if signed.witness_line()?.trim_end_matches('\n') != bare {
            return Err(CheckpointError::Malformed(
                "prune witness line is not canonical",
            ));
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::checkpoint::tests::{demo_signer, demo_verifier};
    use super::super::checkpoint::{SignedCheckpoint, Sm2CheckpointSigner};
    use super::*;

    fn sample() -> Prune {
        Prune {
            instance_id: "gw-a".into(),
            first: 0,
            end: 4,
            last_hash: [0x11; 32],
            root: [0xab; 32],
            time_ms: 1_700_000_000_123,
        }
    }

    fn signed() -> SignedPrune {
        let signer = demo_signer();
        sample()
            .sign(&Sm2CheckpointSigner {
                key_version: 1,
                signer: signer.as_ref(),
            })
            .unwrap()
    }

    #[test]
    fn body_is_exactly_the_documented_text() {
        assert_eq!(
            sample().body().unwrap(),
            "pension-gateway audit-prune gw-a\n0\n4\n\
             ERERERERERERERERERERERERERERERERERERERERERE=\n\
             q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\ntime 1700000000123\n"
        );
    }

    #[test]
    fn note_and_witness_line_round_trip_and_verify() {
        let s = signed();
        let note = s.to_note().unwrap();
        assert_eq!(SignedPrune::from_note(&note).unwrap(), s);
        let line = s.witness_line().unwrap();
        assert!(line.starts_with("pgw1-prune gw-a 0 4 "));
        assert_eq!(SignedPrune::from_witness_line(&line).unwrap(), s);
        s.verify(&demo_verifier()).unwrap();
        // Neither form passes for a checkpoint.
        assert!(SignedCheckpoint::from_note(&note).is_err());
        assert!(SignedCheckpoint::from_witness_line(&line).is_err());
    }

    #[test]
    fn altered_record_does_not_verify() {
        let mut s = signed();
        s.prune.end = 8;
        assert_eq!(
            s.verify(&demo_verifier()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        let s = signed();
        let line = s.witness_line().unwrap();
        assert!(SignedPrune::from_witness_line(&line.replacen(" 0 4 ", " 00 4 ", 1)).is_err());
        let note = s.to_note().unwrap();
        assert!(SignedPrune::from_note(&note.replacen("\n4\n", "\n+4\n", 1)).is_err());
        let mut empty = sample();
        empty.end = 0;
        assert!(empty.body().is_err());
    }
}
