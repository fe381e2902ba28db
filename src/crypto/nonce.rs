//! Nonces: 32 letters and digits drawn from a CSPRNG without modulo bias.

use rand::RngCore;

/// The alphabet of nonces: digits, upper and lower case letters (62 symbols).
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the nonces this gateway generates (`WxIns-Nonce`, outbound `Authorization`).
pub const NONCE_LEN: usize = 32;

/// A fresh 32-character nonce from the thread-local CSPRNG (ChaCha, reseeded from the OS).
pub fn generate() -> String {
    generate_with(&mut rand::thread_rng())
}

/// A 32-character nonce from `rng`. Bytes ≥ 248 (= 4 × 62) are rejected and redrawn, so each
/// symbol is exactly uniform (`b % 62` on every byte would favour the first 8 symbols).
pub fn generate_with<R: RngCore + rand::CryptoRng + ?Sized>(rng: &mut R) -> String {
    let mut out = String::with_capacity(NONCE_LEN);
    let mut buf = [0u8; 48];
    while out.len() < NONCE_LEN {
        rng.fill_bytes(&mut buf);
        for &b in &buf {
            if b < 248 {
                if let Some(&c) = ALPHABET.get(usize::from(b % 62)) {
                    out.push(char::from(c));
                }
                if out.len() == NONCE_LEN {
                    break;
                }
            }
        }
    }
    out
}

/// True when `s` is a plausible nonce: 1–64 ASCII letters or digits.
pub fn is_valid(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}
