//! SM2 key material as it arrives from outside: raw hex (`04‖x‖y` public keys and 32-byte
//! private keys, as WeChat hands them out) and PEM (PKCS#8 private, SPKI public).
//!
//! Parsing validates fully: points must be on the curve and not the identity, private keys
//! must lie in [1, n−2] (SM2 needs 1+d invertible mod n). Secrets zeroize on drop and never
//! appear in `Debug`.

use std::fmt;

use sm2::elliptic_curve::sec1::ToEncodedPoint;
use sm2::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Why key material was refused. Messages name the problem, never the key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not valid hexadecimal, or the wrong number of digits.
    #[error("key is not valid hex of the expected length: {0}")]
    Hex(&'static str),
    /// The point is not on the SM2 curve, is the identity, or is not a SEC1 encoding.
    #[error("public key is not a valid point on the SM2 curve")]
    InvalidPoint,
    /// The private scalar is 0 or not below n−1.
    #[error("private key is out of range (must be 1 ≤ d ≤ n−2)")]
    ScalarOutOfRange,
    /// PEM or DER could not be decoded as an SM2 key.
    #[error("key is not a valid SM2 {0} PEM")]
    Pem(&'static str),
}

/// An SM2 public key, held as its validated uncompressed SEC1 encoding `04‖x‖y`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey {
    sec1: [u8; 65],
}

impl PublicKey {
    /// Parses a SEC1 point (65-byte uncompressed, or 33-byte compressed), checking it is on the curve.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        let pk = sm2::PublicKey::from_sec1_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        Ok(Self::from_rustcrypto(&pk))
    }

    /// Parses hex as WeChat publishes it: `04‖x‖y` (130 digits) or, tolerated, `x‖y` (128 digits).
    /// Surrounding whitespace is ignored; case does not matter.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        let bytes = hex::decode(s).map_err(|_| KeyError::Hex("public key"))?;
        match bytes.len() {
            65 | 33 => Self::from_sec1(&bytes),
            64 => {
                let mut sec1 = [0u8; 65];
                sec1[0] = 4;
                sec1[1..].copy_from_slice(&bytes);
                Self::from_sec1(&sec1)
            }
            _ => Err(KeyError::Hex("public key must be 04‖x‖y, 65 bytes")),
        }
    }

    /// Parses an SPKI `-----BEGIN PUBLIC KEY-----` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pk = sm2::PublicKey::from_public_key_pem(pem.trim())
            .map_err(|_| KeyError::Pem("public key (SPKI)"))?;
        Ok(Self::from_rustcrypto(&pk))
    }

    /// Accepts either hex or PEM, whichever the text is.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pem(text)
        } else {
            Self::from_hex(text)
        }
    }

    fn from_rustcrypto(pk: &sm2::PublicKey) -> Self {
        let point = pk.to_encoded_point(false);
        let mut sec1 = [0u8; 65];
        // An uncompressed encoding of a non-identity point is always 65 bytes.
        if point.as_bytes().len() == 65 {
            sec1.copy_from_slice(point.as_bytes());
        }
        Self { sec1 }
    }

    /// The uncompressed SEC1 encoding `04‖x‖y`.
    pub fn to_sec1(&self) -> [u8; 65] {
        self.sec1
    }

    /// Lower-case hex of `04‖x‖y`, the form WeChat exchanges.
    pub fn to_hex(&self) -> String {
        hex::encode(self.sec1)
    }

    /// SPKI PEM.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let pk = sm2::PublicKey::from_sec1_bytes(&self.sec1).map_err(|_| KeyError::InvalidPoint)?;
        pk.to_public_key_pem(LineEnding::LF)
            .map_err(|_| KeyError::Pem("public key (SPKI)"))
    }

    /// The affine x coordinate, big-endian.
    pub fn x(&self) -> &[u8] {
        &self.sec1[1..33]
    }

    /// The affine y coordinate, big-endian.
    pub fn y(&self) -> &[u8] {
        &self.sec1[33..65]
    }

    /// A short fingerprint for logs and `keys list`: the first 8 bytes of SM3(04‖x‖y), hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(&super::sm3::sm3(&self.sec1)[..8])
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

/// An SM2 private key: a scalar d with 1 ≤ d ≤ n−2, big-endian. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    d: [u8; 32],
}

impl SecretKey {
    /// From 32 big-endian bytes; refuses 0 and values ≥ n−1.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, KeyError> {
        let sk = sm2::SecretKey::from_slice(bytes).map_err(|_| KeyError::ScalarOutOfRange)?;
        // sm2 accepts [1, n−1]; SM2 signing additionally needs 1 + d ≠ 0 mod n.
        if bool::from(bytes.ct_eq(&N_MINUS_1)) {
            return Err(KeyError::ScalarOutOfRange);
        }
        drop(sk);
        Ok(Self { d: *bytes })
    }

    /// From hex as WeChat hands it out. Shorter encodings (e.g. 62 digits when the top byte is
    /// zero) are left-padded; more than 64 digits is refused.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        if s.is_empty() || s.len() > 64 || s.len() % 2 != 0 {
            return Err(KeyError::Hex("private key must be up to 64 hex digits"));
        }
        let raw = Zeroizing::new(hex::decode(s).map_err(|_| KeyError::Hex("private key"))?);
        let mut d = Zeroizing::new([0u8; 32]);
        d.get_mut(32usize.saturating_sub(raw.len())..)
            .filter(|dst| dst.len() == raw.len())
            .ok_or(KeyError::Hex("private key must be up to 64 hex digits"))?
            .copy_from_slice(&raw);
        Self::from_bytes(&d)
    }

    /// From a PKCS#8 `-----BEGIN PRIVATE KEY-----` PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let sk = sm2::SecretKey::from_pkcs8_pem(pem.trim())
            .map_err(|_| KeyError::Pem("private key (PKCS#8)"))?;
        let bytes = Zeroizing::new(<[u8; 32]>::from(sk.to_bytes()));
        Self::from_bytes(&bytes)
    }

    /// Accepts either hex or PEM, whichever the text is.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        if text.trim_start().starts_with("-----BEGIN") {
            Self::from_pem(text)
        } else {
            Self::from_hex(text)
        }
    }

    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        loop {
            let sk = sm2::SecretKey::random(&mut rand_core::OsRng);
            let bytes = Zeroizing::new(<[u8; 32]>::from(sk.to_bytes()));
            if let Ok(key) = Self::from_bytes(&bytes) {
                return key;
            }
        }
    }

    /// The big-endian scalar. Handle with care: callers must not log or persist it unprotected.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.d)
    }

    /// Lower-case hex of the scalar, for writing key files (mode 0600).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.d))
    }

    /// PKCS#8 PEM of the key, for writing key files (mode 0600).
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let sk = sm2::SecretKey::from_slice(&self.d).map_err(|_| KeyError::ScalarOutOfRange)?;
        sk.to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::Pem("private key (PKCS#8)"))
    }

    /// The matching public key dA·G.
    pub fn public_key(&self) -> PublicKey {
        match sm2::SecretKey::from_slice(&self.d) {
            Ok(sk) => PublicKey::from_rustcrypto(&sk.public_key()),
            // Unreachable: `d` was validated in the constructor.
            Err(_) => PublicKey { sec1: [0u8; 65] },
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.d.ct_eq(&other.d).into()
    }
}
impl Eq for SecretKey {}

/// n − 1 for the SM2 curve, big-endian.
const N_MINUS_1: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x72, 0x03, 0xDF, 0x6B, 0x21, 0xC6, 0x05, 0x2B, 0x53, 0xBB, 0xF4, 0x09, 0x39, 0xD5, 0x41, 0x22,
];
