//! The canonical, versioned encoding of one audit row as a Merkle leaf.
//!
//! The leaf carries identifiers, codes, times, key versions and digests — never personal data:
//! the queried identity enters only as the keyed digest the row already stores; the evidence of
//! both signatures enters as stored (nonce, timestamp text, digest e, raw r ‖ s). Every field has a fixed
//! place; integers are fixed-width big-endian, optional values are a presence byte (0 or 1)
//! followed by the value, byte strings are a 4-byte big-endian length then the bytes. So a leaf
//! has exactly one parse ([`AuditLeaf::decode`] refuses anything [`AuditLeaf::encode`] could not
//! have written) and two different rows never encode alike. `docs/audit.md` lists the layout.

use super::merkle::{self, Hash};

/// The encoding version this module writes (the leaf's first byte).
pub const LEAF_VERSION: u8 = 1;

/// Longest byte string a leaf field may hold. Audit columns are far shorter (Request-ID ≤ 64,
/// outcome ≤ 32); the bound keeps a hostile encoding from asking for a huge allocation.
pub const MAX_FIELD_LEN: usize = 1024;

/// What one side signed, kept as evidence without the body (the security review's item 10): the
/// store's own type, so the row written and the leaf hashed cannot drift apart. Its key version
/// is the row's (`wechat_key_version` for the request, `bank_key_version` for the answer).
pub use crate::store::SignedEvidence;

/// The columns of one audit row that enter the log, in a form independent of the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLeaf {
    /// The instance whose chain holds the row (see [`super::chain::valid_instance_id`]).
    pub instance_id: String,
    /// Position of the row in its instance's chain, from 0; also its leaf index in the tree.
    pub seq: u64,
    /// Chain hash of the previous row of the instance (all zeros for the first).
    pub prev_hash: Hash,
    /// `Request-ID` of the query.
    pub request_id: String,
    /// The channel that answered: `wechat`, `open-platform`, `callback`, `hmac`.
    pub channel: String,
    /// `OK` or the error code returned.
    pub outcome: String,
    /// HTTP status returned.
    pub http_status: u16,
    /// Unix milliseconds the request arrived.
    pub received_at_ms: i64,
    /// Bank key version that signed the response.
    pub bank_key_version: i32,
    /// WeChat key version that verified the request.
    pub wechat_key_version: Option<i32>,
    /// Keyed digest (HMAC-SM3) of the queried identity, as the row stores it.
    pub id_digest: Option<Hash>,
    /// Pension status disclosed.
    pub pension_status: Option<i16>,
    /// What the caller signed (WeChat channel), when the row keeps it.
    pub request: Option<SignedEvidence>,
    /// What the bank signed in its answer, when the row keeps it.
    pub response: Option<SignedEvidence>,
}

/// Why bytes are not a leaf this module could have written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// The first byte names an encoding version this build does not know.
    #[error("unknown leaf version {0}")]
    UnknownVersion(u8),
    /// The bytes end inside a field.
    #[error("leaf is truncated")]
    Truncated,
    /// Bytes follow the last field.
    #[error("leaf has trailing bytes")]
    TrailingBytes,
    /// A presence byte is neither 0 nor 1.
    #[error("bad presence byte")]
    BadPresence,
    /// A byte string is longer than [`MAX_FIELD_LEN`] or is not UTF-8.
    #[error("bad text field")]
    BadText,
    /// The HTTP status is not a three-digit code.
    #[error("bad http status")]
    BadStatus,
}

impl AuditLeaf {
    /// The canonical bytes of this row (version [`LEAF_VERSION`]).
    ///
    /// Text longer than [`MAX_FIELD_LEN`] is refused rather than cut, so the encoding stays
    /// one-to-one; no audit column comes near the bound.
    pub fn encode(&self) -> Result<Vec<u8>, LeafError> {
        let mut out = Vec::with_capacity(384);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// [`Self::encode`] into a buffer the caller reuses (cleared first).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), LeafError> {
        out.clear();
        if !(100..=999).contains(&self.http_status) {
            return Err(LeafError::BadStatus);
        }
        out.push(LEAF_VERSION);
        put_text(out, &self.instance_id)?;
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.prev_hash);
        put_text(out, &self.request_id)?;
        put_text(out, &self.channel)?;
        put_text(out, &self.outcome)?;
        out.extend_from_slice(&self.http_status.to_be_bytes());
        out.extend_from_slice(&self.received_at_ms.to_be_bytes());
        out.extend_from_slice(&self.bank_key_version.to_be_bytes());
        put_opt(out, self.wechat_key_version.map(i32::to_be_bytes));
        put_opt(out, self.id_digest);
        put_opt(out, self.pension_status.map(i16::to_be_bytes));
        for ev in [&self.request, &self.response] {
            match ev {
                None => out.push(0),
                Some(ev) => {
                    out.push(1);
                    put_text(out, &ev.nonce)?;
                    put_text(out, &ev.timestamp)?;
                    out.extend_from_slice(&ev.digest);
                    out.extend_from_slice(&ev.signature);
                }
            }
        }
        Ok(())
    }

    /// The leaf hash SM3(0x00 ‖ encoding): the row's chain hash and its Merkle leaf.
    pub fn leaf_hash(&self) -> Result<Hash, LeafError> {
        Ok(merkle::leaf_hash(&self.encode()?))
    }

    /// Parses the canonical bytes back; refuses everything [`Self::encode`] could not have
    /// produced.
    pub fn decode(bytes: &[u8]) -> Result<Self, LeafError> {
        let mut r = Reader(bytes);
        let version = r.array::<1>()?[0];
        if version != LEAF_VERSION {
            return Err(LeafError::UnknownVersion(version));
        }
        let instance_id = r.text()?;
        let seq = u64::from_be_bytes(r.array()?);
        let prev_hash = r.array()?;
        let request_id = r.text()?;
        let channel = r.text()?;
        let outcome = r.text()?;
        let http_status = u16::from_be_bytes(r.array()?);
        if !(100..=999).contains(&http_status) {
            return Err(LeafError::BadStatus);
        }
        let received_at_ms = i64::from_be_bytes(r.array()?);
        let bank_key_version = i32::from_be_bytes(r.array()?);
        let wechat_key_version = r.opt::<4>()?.map(i32::from_be_bytes);
        let id_digest = r.opt::<32>()?;
        let pension_status = r.opt::<2>()?.map(i16::from_be_bytes);
        let mut evidence = [None, None];
        for slot in &mut evidence {
            if r.presence()? {
                *slot = Some(SignedEvidence {
                    nonce: r.text()?,
                    timestamp: r.text()?,
                    digest: r.array()?,
                    signature: r.array()?,
                });
            }
        }
        if !r.0.is_empty() {
            return Err(LeafError::TrailingBytes);
        }
        let [request, response] = evidence;
        Ok(AuditLeaf {
            instance_id,
            seq,
            prev_hash,
            request_id,
            channel,
            outcome,
            http_status,
            received_at_ms,
            bank_key_version,
            wechat_key_version,
            id_digest,
            pension_status,
            request,
            response,
        })
    }
}

fn put_text(out: &mut Vec<u8>, s: &str) -> Result<(), LeafError> {
    if s.len() > MAX_FIELD_LEN {
        return Err(LeafError::BadText);
    }
    // Bounded by MAX_FIELD_LEN above, so the length fits in four bytes.
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_opt<const N: usize>(out: &mut Vec<u8>, v: Option<[u8; N]>) {
    match v {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&b);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LeafError> {
        if self.0.len() < n {
            return Err(LeafError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LeafError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn presence(&mut self) -> Result<bool, LeafError> {
        match self.array::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LeafError::BadPresence),
        }
    }

    fn opt<const N: usize>(&mut self) -> Result<Option<[u8; N]>, LeafError> {
        if self.presence()? {
            Ok(Some(self.array()?))
        } else {
            Ok(None)
        }
    }

    fn text(&mut self) -> Result<String, LeafError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        if len > MAX_FIELD_LEN {
            return Err(LeafError::BadText);
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| LeafError::BadText)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fully populated row used by several tests.
    pub(crate) fn sample(seq: u64, prev_hash: Hash) -> AuditLeaf {
        AuditLeaf {
            instance_id: "gw-a".into(),
            seq,
            prev_hash,
            request_id: format!("req-{seq}"),
            channel: "wechat".into(),
            outcome: "OK".into(),
            http_status: 200,
            received_at_ms: 1_700_000_000_000 + seq as i64,
            bank_key_version: 1,
            wechat_key_version: Some(1),
            id_digest: Some([0x11; 32]),
            pension_status: Some(1),
            request: Some(SignedEvidence {
                nonce: "n0nce".into(),
                timestamp: "1700000000".into(),
                digest: [0x22; 32],
                signature: [0x33; 64],
            }),
            response: None,
        }
    }

    #[test]
    fn known_encoding_of_a_minimal_row() {
        let leaf = AuditLeaf {
            instance_id: "i".into(),
            seq: 2,
            prev_hash: [0; 32],
            request_id: "r".into(),
            channel: "hmac".into(),
            outcome: "OK".into(),
            http_status: 200,
            received_at_ms: 1,
            bank_key_version: 3,
            wechat_key_version: None,
            id_digest: None,
            pension_status: None,
            request: None,
            response: None,
        };
        let expect = concat!(
            "01",
            "00000001",
            "69",
            "0000000000000002",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "00000001",
            "72",
            "00000004",
            "686d6163",
            "00000002",
            "4f4b",
            "00c8",
            "0000000000000001",
            "00000003",
            "00",
            "00",
            "00",
            "00",
            "00"
        );
        assert_eq!(hex::encode(leaf.encode().unwrap()), expect);
        assert_eq!(AuditLeaf::decode(&hex::decode(expect).unwrap()), Ok(leaf));
    }

    #[test]
    fn refuses_what_encode_cannot_write() {
        let bytes = sample(0, [0; 32]).encode().unwrap();
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(AuditLeaf::decode(&extra), Err(LeafError::TrailingBytes));
        assert_eq!(
            AuditLeaf::decode(&bytes[..bytes.len() - 1]),
            Err(LeafError::Truncated)
        );
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(AuditLeaf::decode(&v2), Err(LeafError::UnknownVersion(2)));
        let long = AuditLeaf {
            request_id: "x".repeat(MAX_FIELD_LEN + 1),
            ..sample(0, [0; 32])
        };
        assert_eq!(long.encode(), Err(LeafError::BadText));
    }

    fn arb_evidence() -> impl Strategy<Value = Option<SignedEvidence>> {
        proptest::option::of(
            (
                "[ -~]{0,40}",
                "[0-9]{0,18}",
                any::<[u8; 32]>(),
                proptest::collection::vec(any::<u8>(), 64),
            )
                .prop_map(|(nonce, timestamp, digest, sig)| {
                    let mut signature = [0u8; 64];
                    signature.copy_from_slice(&sig);
                    SignedEvidence {
                        nonce,
                        timestamp,
                        digest,
                        signature,
                    }
                }),
        )
    }

    prop_compose! {
        fn arb_leaf()(
            instance_id in "[a-z0-9-]{1,16}",
            seq in any::<u64>(),
            prev_hash in any::<[u8; 32]>(),
            request_id in "\\PC{0,64}",
            channel in "[a-z-]{0,16}",
            outcome in "[A-Z_]{0,32}",
            http_status in 100u16..=999,
            received_at_ms in any::<i64>(),
            bank_key_version in any::<i32>(),
            wechat_key_version in any::<Option<i32>>(),
            id_digest in any::<Option<[u8; 32]>>(),
            pension_status in any::<Option<i16>>(),
            request in arb_evidence(),
            response in arb_evidence(),
        ) -> AuditLeaf {
            AuditLeaf { instance_id, seq, prev_hash, request_id, channel, outcome, http_status,
                received_at_ms, bank_key_version, wechat_key_version, id_digest, pension_status,
                request, response }
        }
    }

    proptest! {
        #[test]
        fn encoding_round_trips(leaf in arb_leaf()) {
            let bytes = leaf.encode().unwrap();
            prop_assert_eq!(AuditLeaf::decode(&bytes), Ok(leaf));
        }

        #[test]
        fn distinct_rows_have_distinct_encodings(a in arb_leaf(), b in arb_leaf()) {
            prop_assume!(a != b);
            prop_assert_ne!(a.encode().unwrap(), b.encode().unwrap());
        }

        #[test]
        fn decode_never_panics_and_has_one_parse(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(leaf) = AuditLeaf::decode(&bytes) {
                prop_assert_eq!(leaf.encode().unwrap(), bytes);
            }
        }
    }
}
