//! Keys and secrets that are public because this repository (or a document it reproduces)
//! publishes them: refused outside demo mode whatever the manifest says.
//!
//! The manifest's `demo = true` marks the demo directory, but a copy with `demo = false` would
//! otherwise load: then anyone could sign WeChat's requests with the guide's example key, or
//! read the bank's answers as signed by a key whose private half is on the internet. So the key
//! ring also refuses every key and secret below by fingerprint, at start, in
//! `serve --check-config` and on every reload, outside demo mode.
//!
//! The list is data: SHA-256 of the canonical public key bytes (the 65-byte uncompressed SEC1
//! point `04‖x‖y`, whatever the file's format — a private key is caught through its public key)
//! or of the secret's bytes (the one line of the secret file). A test recomputes every entry
//! from the files of the repository and fails when a key or secret file under `keys/` or
//! `tests/data/` is not on the list, so the list cannot drift from what is published.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::PublicKey;

/// What a fingerprint is taken of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishedKind {
    /// An SM2 key pair: SHA-256 of the public key's `04‖x‖y`.
    Sm2Key,
    /// A partner secret (app secret, callback salt, HMAC app token): SHA-256 of its text.
    Secret,
}

/// One published key or secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// What the fingerprint is taken of.
    pub kind: PublishedKind,
    /// Lower-case hex SHA-256 (see [`PublishedKind`]).
    pub sha256: &'static str,
    /// Where it is published, for the refusal message.
    pub origin: &'static str,
}

/// Every key and secret published in the repository, with where it comes from.
pub const PUBLISHED: &[Published] = &[
    Published {
        kind: PublishedKind::Sm2Key,
        sha256: "47f241a5688b83b475b57ffa68df6094fe2e3591b1768627e74625e237cea22e",
        origin:
            "the demo bank key (keys/demo/bank-v1.key, bank-v1.pub; also built into the binary)",
    },
    Published {
        kind: PublishedKind::Sm2Key,
        sha256: "bd0a05d0dde81fb7da54add539e0af47842249f142eba5ea0248019c5c0e8ba6",
        origin: "the WeChat pension developer guide's example key pair (docs/protocol.md §12.3; \
                 keys/demo/wechat-v1.key, wechat-v1.pub, built into the binary; \
                 tests/data/sm2_vectors.json)",
    },
    Published {
        kind: PublishedKind::Sm2Key,
        sha256: "ecda40ecd23fe373d1ff69d5b7eb6d421e7db8a999ca24ca16b683678c6b0b89",
        origin: "the WeChat Pay SDK's SM2 test key (docs/protocol.md §12.2; \
                 tests/data/wechatpay_sdk_merchant_private_key.pem, sm2_vectors.json)",
    },
    Published {
        kind: PublishedKind::Sm2Key,
        sha256: "7ad64964540082dd8bbe4e35de2da6880163d87ddad5cd453f5d6370d4533735",
        origin: "the GB/T 32918.5-2017 Annex A example key (docs/protocol.md §12.1; \
                 tests/data/sm2_vectors.json)",
    },
    Published {
        kind: PublishedKind::Secret,
        sha256: "eaa9fb5f6b5564971968427180e883f4a3b636bae92abc36d4b3daf790c3641a",
        origin: "the demo open-platform app secret \
                 (keys/demo/open-platform-wbdemo0000000001-v1.secret; also built into the binary)",
    },
    Published {
        kind: PublishedKind::Secret,
        sha256: "0f8c7b957c9cfbd7c7583330b539249321a3409a66fcae3c8c32f8fcdc8a1f77",
        origin: "the demo callback salt \
                 (keys/demo/callback-demo-partner-v1.secret; also built into the binary)",
    },
    Published {
        kind: PublishedKind::Secret,
        sha256: "8ed762fa82990989fdeebec5a510ded7793f010f22450151cb65a18dd61bff79",
        origin: "the demo HMAC app token \
                 (keys/demo/hmac-fappdemo0001-v1.secret; also built into the binary)",
    },
];

/// The entry of `kind` whose fingerprint is `digest`, if any. Compared in constant time: the
/// digest of a secret is not itself to be leaked through timing.
fn lookup(kind: PublishedKind, digest: &[u8; 32]) -> Option<&'static Published> {
    PUBLISHED.iter().find(|p| {
        p.kind == kind
            && hex::decode(p.sha256)
                .map(|known| bool::from(known.as_slice().ct_eq(digest)))
                .unwrap_or(false)
    })
}

/// SHA-256 of an SM2 public key's canonical bytes `04‖x‖y`, lower-case hex.
pub fn key_fingerprint(key: &PublicKey) -> String {
    hex::encode(Sha256::digest(key.to_sec1()))
}

/// SHA-256 of a secret's text, lower-case hex.
pub fn secret_fingerprint(secret: &[u8]) -> String {
    hex::encode(Sha256::digest(secret))
}

/// The published entry of SM2 key `key` (public key, or the public key of a private key).
pub fn published_key(key: &PublicKey) -> Option<&'static Published> {
    lookup(PublishedKind::Sm2Key, &Sha256::digest(key.to_sec1()).into())
}

/// The published entry of a partner secret's text.
pub fn published_secret(secret: &[u8]) -> Option<&'static Published> {
    lookup(PublishedKind::Secret, &Sha256::digest(secret).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_a_sha256_in_lower_hex_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for p in PUBLISHED {
            assert_eq!(p.sha256.len(), 64, "{}", p.origin);
            assert!(
                p.sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{}",
                p.origin
            );
            assert!(seen.insert(p.sha256), "listed twice: {}", p.origin);
        }
    }

    /// Known vector: the guide's example public key (docs/protocol.md §12.3) is found, one bit
    /// off is not.
    #[test]
    fn the_guides_example_key_is_found_and_a_neighbour_is_not() {
        let guide = PublicKey::from_hex(
            "04d3dfbe659754ef9cfc417502d223d81da18c53b5a61a75234ec9996c4c23a1920b5603ee254a38\
             547bf321f060d7461d485f23cafcde8fd844765ca8c628d293",
        )
        .unwrap();
        assert_eq!(
            key_fingerprint(&guide),
            "bd0a05d0dde81fb7da54add539e0af47842249f142eba5ea0248019c5c0e8ba6"
        );
        assert!(published_key(&guide).unwrap().origin.contains("§12.3"));
        let other = crate::crypto::SecretKey::generate().public_key();
        assert!(published_key(&other).is_none());
        assert!(published_secret(b"not a published secret").is_none());
    }
}
