//! SM3 digests, the signer identity hash Z_A, and HMAC-SM3 (used to digest ID numbers).

use hmac::{Hmac, Mac};
use sm3::{Digest, Sm3};

use super::keys::PublicKey;

/// SM2 curve coefficient a (GB/T 32918.5).
const CURVE_A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
/// SM2 curve coefficient b.
const CURVE_B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
/// x coordinate of the base point G.
const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
/// y coordinate of the base point G.
const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    Sm3::digest(data).into()
}

/// Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA), the identity hash mixed into every SM2
/// signature. Returns `None` when the ID is longer than the 16-bit ENTL field can express
/// (8191 bytes); no real signer ID comes near that.
pub fn z_a(signer_id: &[u8], public_key: &PublicKey) -> Option<[u8; 32]> {
    let bits = u16::try_from(signer_id.len().checked_mul(8)?).ok()?;
    let mut h = Sm3::new();
    h.update(bits.to_be_bytes());
    h.update(signer_id);
    h.update(CURVE_A);
    h.update(CURVE_B);
    h.update(GX);
    h.update(GY);
    h.update(public_key.x());
    h.update(public_key.y());
    Some(h.finalize().into())
}

/// e = SM3(Z_A ‖ M), the value that is actually signed.
pub fn message_digest(z_a: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut h = Sm3::new();
    h.update(z_a);
    h.update(message);
    h.finalize().into()
}

/// HMAC-SM3(key, data). Used to store a keyed digest of ID numbers instead of the numbers.
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sm3> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    // `Hmac::new_from_slice` is documented to accept every key length.
    panic!("HMAC rejected a key length; the hmac crate contract changed")
}

/// Decodes a 64-digit hex constant at compile time (a bad constant fails the build, never a
/// request: it only ever sees the literals above).
#[expect(
    clippy::indexing_slicing,
    reason = "const fn over compile-time literals of fixed length"
)]
const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(b[2 * i]) << 4) | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("bad hex constant"),
    }
}
