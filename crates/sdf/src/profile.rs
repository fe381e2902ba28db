//! What differs between vendors' SDF libraries, as data: the size of the ECC fields in
//! `ECCrefPublicKey` / `ECCSignature`, and the SM2 signature algorithm identifier. One code path
//! reads every vendor's structures through these numbers; the default follows GM/T 0018-2012.

use serde::{Deserialize, Serialize};

/// `SGD_SM2_1`, the SM2 signature algorithm (GM/T 0006).
pub const SGD_SM2_1: u32 = 0x0002_0200;

/// A vendor profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// A name for logs and errors.
    pub name: String,
    /// Bytes in each coordinate and signature component field (`ECCref_MAX_LEN`): 64 in the
    /// standard (`ECCref_MAX_BITS` 512); 32 in libraries built with 256-bit fields.
    pub ecc_field_len: usize,
    /// The identifier the device lists in `DEVICEINFO.AsymAlgAbility[0]` for SM2 signatures.
    pub sm2_sign_algorithm: u32,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::standard()
    }
}

/// The largest field size a profile may name (the standard's); buffers are sized from it, so a
/// profile can never make a library write past them.
pub const MAX_FIELD_LEN: usize = 64;

/// Why a profile is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// A field size other than 32 or 64 bytes.
    #[error("profile `{name}`: ecc_field_len {len} is not 32 or 64")]
    FieldLen {
        /// The profile's name.
        name: String,
        /// The size it names.
        len: usize,
    },
}

impl Profile {
    /// GM/T 0018-2012 as published: 64-byte fields, numbers right-aligned, `SGD_SM2_1`.
    pub fn standard() -> Self {
        Profile {
            name: "standard".to_owned(),
            ecc_field_len: 64,
            sm2_sign_algorithm: SGD_SM2_1,
        }
    }

    /// Checks the numbers are ones this crate can lay out.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.ecc_field_len != 32 && self.ecc_field_len != MAX_FIELD_LEN {
            return Err(ProfileError::FieldLen {
                name: self.name.clone(),
                len: self.ecc_field_len,
            });
        }
        Ok(())
    }

    /// Bytes of an `ECCrefPublicKey`: `bits`, x, y.
    pub fn public_key_len(&self) -> usize {
        4 + 2 * self.ecc_field_len
    }

    /// Bytes of an `ECCSignature`: r, s.
    pub fn signature_len(&self) -> usize {
        2 * self.ecc_field_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_standard() {
        let p = Profile::default();
        assert_eq!(p.ecc_field_len, 64);
        assert_eq!(p.sm2_sign_algorithm, 0x0002_0200);
        assert_eq!((p.public_key_len(), p.signature_len()), (132, 128));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn a_profile_is_data_read_from_configuration() {
        let p: Profile = toml::from_str("name = \"vendor-256\"\necc_field_len = 32\n").unwrap();
        assert_eq!(p.ecc_field_len, 32);
        assert_eq!(
            p.sm2_sign_algorithm, SGD_SM2_1,
            "unnamed numbers keep the standard's"
        );
        assert_eq!((p.public_key_len(), p.signature_len()), (68, 64));
        let odd: Profile = toml::from_str("ecc_field_len = 48").unwrap();
        assert!(odd.validate().is_err());
        assert!(toml::from_str::<Profile>("ecc_field_bytes = 32").is_err());
    }
}
