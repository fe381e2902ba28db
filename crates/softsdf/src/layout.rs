//! The standard's C structures (GM/T 0018-2012 §5, with `ECCref_MAX_BITS` 512 as in the
//! standard and GmSSL): byte arrays and `unsigned int`s only, so `#[repr(C)]` has no padding and
//! matches the `#pragma pack(1)` declarations vendors ship. Big-endian numbers sit right-aligned
//! in their 64-byte fields (the upper 32 bytes zero for a 256-bit curve).

/// Bytes in one coordinate or signature component field (`ECCref_MAX_LEN`).
pub const ECCREF_MAX_LEN: usize = 64;

/// `DEVICEINFO`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Manufacturer, NUL-padded.
    pub issuer_name: [u8; 40],
    /// Device model, NUL-padded.
    pub device_name: [u8; 16],
    /// Serial: 8-character date, 3-character batch, 5-character number.
    pub device_serial: [u8; 16],
    /// Device (hardware) version.
    pub device_version: u32,
    /// Version of the standard the interface follows.
    pub standard_version: u32,
    /// `[0]`: asymmetric algorithms (OR of `SGD_*`); `[1]`: key lengths.
    pub asym_alg_ability: [u32; 2],
    /// Symmetric algorithms (OR of `SGD_*`).
    pub sym_alg_ability: u32,
    /// Hash algorithms (OR of `SGD_*`).
    pub hash_alg_ability: u32,
    /// Largest buffer one call accepts, in bytes.
    pub buffer_size: u32,
}

/// `ECCrefPublicKey`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EccRefPublicKey {
    /// Curve size in bits (256 for SM2).
    pub bits: u32,
    /// x, big-endian, right-aligned.
    pub x: [u8; ECCREF_MAX_LEN],
    /// y, big-endian, right-aligned.
    pub y: [u8; ECCREF_MAX_LEN],
}

/// `ECCSignature`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EccSignature {
    /// r, big-endian, right-aligned.
    pub r: [u8; ECCREF_MAX_LEN],
    /// s, big-endian, right-aligned.
    pub s: [u8; ECCREF_MAX_LEN],
}

// The sizes a C compiler gives the packed declarations: a layout change fails the build.
const _: () = assert!(std::mem::size_of::<DeviceInfo>() == 100);
const _: () = assert!(std::mem::size_of::<EccRefPublicKey>() == 132);
const _: () = assert!(std::mem::size_of::<EccSignature>() == 128);

/// Places a 32-byte big-endian number right-aligned in a 64-byte field.
pub fn widen(value: &[u8; 32]) -> [u8; ECCREF_MAX_LEN] {
    let mut field = [0u8; ECCREF_MAX_LEN];
    field[ECCREF_MAX_LEN - 32..].copy_from_slice(value);
    field
}

/// The 32-byte number in a 64-byte field, or `None` when its upper half is not zero (a value
/// too large for a 256-bit curve, or a left-aligned vendor layout).
pub fn narrow(field: &[u8; ECCREF_MAX_LEN]) -> Option<[u8; 32]> {
    let (high, low) = field.split_at(ECCREF_MAX_LEN - 32);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    low.try_into().ok()
}

/// A fixed-size, NUL-padded text field (truncated if `text` is longer).
pub fn text_field<const N: usize>(text: &str) -> [u8; N] {
    let mut field = [0u8; N];
    let n = text.len().min(N);
    field[..n].copy_from_slice(&text.as_bytes()[..n]);
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_offsets_follow_the_standard() {
        // Offsets as in the C declarations: a Rust field order mistake shows here.
        assert_eq!(std::mem::offset_of!(DeviceInfo, device_name), 40);
        assert_eq!(std::mem::offset_of!(DeviceInfo, device_serial), 56);
        assert_eq!(std::mem::offset_of!(DeviceInfo, device_version), 72);
        assert_eq!(std::mem::offset_of!(DeviceInfo, asym_alg_ability), 80);
        assert_eq!(std::mem::offset_of!(DeviceInfo, buffer_size), 96);
        assert_eq!(std::mem::offset_of!(EccRefPublicKey, x), 4);
        assert_eq!(std::mem::offset_of!(EccRefPublicKey, y), 68);
        assert_eq!(std::mem::offset_of!(EccSignature, s), 64);
    }

    #[test]
    fn numbers_are_right_aligned() {
        let mut v = [0u8; 32];
        v[0] = 0xAB;
        v[31] = 0xCD;
        let f = widen(&v);
        assert_eq!(f[31], 0);
        assert_eq!(f[32], 0xAB);
        assert_eq!(f[63], 0xCD);
        assert_eq!(narrow(&f), Some(v));
        let mut left = [0u8; ECCREF_MAX_LEN];
        left[0] = 1;
        assert_eq!(narrow(&left), None);
    }

    #[test]
    fn text_fields_are_nul_padded_and_truncated() {
        assert_eq!(&text_field::<8>("abc"), b"abc\0\0\0\0\0");
        assert_eq!(&text_field::<4>("abcdef"), b"abcd");
    }
}
