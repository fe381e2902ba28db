//! What differs between vendors' PKCS#11 tokens for SM2, as data: PKCS#11 defines no SM2
//! signature mechanism, so each vendor numbers its own (in the vendor-defined range) and decides
//! whether it takes the 32-byte digest e = SM3(Z‖M) or the message itself. One code path signs
//! through every token with these numbers.

use serde::{Deserialize, Serialize};

/// `CKM_VENDOR_DEFINED`.
pub const CKM_VENDOR_DEFINED: u64 = 0x8000_0000;

/// The default SM2 signature mechanism: `CKM_VENDOR_DEFINED | 0x00020200`, the vendor range
/// carrying the identifier GM/T 0006 gives SM2 signatures (`SGD_SM2_1`). It is this project's
/// convention (and the software token's), not a standard: set a vendor's own number from its
/// documentation.
pub const DEFAULT_SM2_MECHANISM: u64 = CKM_VENDOR_DEFINED | 0x0002_0200;

/// What the mechanism signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    /// The 32-byte digest e = SM3(Z‖M), computed by the gateway with its signer ID (the default:
    /// the token never sees the message, and the signer ID is the gateway's).
    #[default]
    Digest,
    /// The message M; the token computes Z (with its own default signer ID,
    /// 1234567812345678 for every vendor the project knows) and e itself.
    Message,
}

/// A vendor profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// A name for logs and errors.
    pub name: String,
    /// The mechanism code of SM2 signatures on this token (`CK_MECHANISM_TYPE`).
    pub mechanism: u64,
    /// Whether the mechanism takes the digest or the message.
    pub input: Input,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            name: "default".to_owned(),
            mechanism: DEFAULT_SM2_MECHANISM,
            input: Input::Digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_signs_the_digest_with_the_vendor_range_sm2_code() {
        let p = Profile::default();
        assert_eq!(p.mechanism, 0x8002_0200);
        assert_eq!(p.input, Input::Digest);
    }

    #[test]
    fn a_profile_is_data_read_from_configuration() {
        let p: Profile =
            toml::from_str("name = \"vendor-x\"\nmechanism = 0x80000A01\ninput = \"message\"\n")
                .unwrap();
        assert_eq!((p.mechanism, p.input), (0x8000_0A01, Input::Message));
        let q: Profile = toml::from_str("mechanism = 4161").unwrap();
        assert_eq!((q.name.as_str(), q.input), ("default", Input::Digest));
        assert!(toml::from_str::<Profile>("mech = 1").is_err());
        assert!(toml::from_str::<Profile>("input = \"hash\"").is_err());
    }
}
