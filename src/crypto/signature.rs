//! SM2 signature values and their wire form: ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }`,
//! then standard Base64 (RFC 4648 §4, padded).
//!
//! Decoding is strict: definite short-form lengths, minimal positive INTEGERs, no trailing
//! bytes, and 1 ≤ r, s ≤ n−1. A lax decoder would let one signature have many encodings.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The order n of the SM2 base point, big-endian.
pub const CURVE_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0x72, 0x03, 0xDF, 0x6B, 0x21, 0xC6, 0x05, 0x2B, 0x53, 0xBB, 0xF4, 0x09, 0x39, 0xD5, 0x41, 0x23,
];

/// The longest Base64 signature we read: 72 DER bytes → 96 characters; anything longer is refused
/// before decoding so hostile headers cost nothing.
pub const MAX_BASE64_LEN: usize = 96;

/// Why signature bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not standard padded Base64, or too long.
    #[error("not valid standard Base64")]
    Base64,
    /// Not a strict DER SEQUENCE of two INTEGERs.
    #[error("not a DER SEQUENCE {{INTEGER r, INTEGER s}}")]
    Der,
    /// r or s is zero or not below the curve order.
    #[error("r or s is out of range")]
    Range,
}

/// An SM2 signature (r, s), each a big-endian 32-byte integer in [1, n−1].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    r: [u8; 32],
    s: [u8; 32],
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Signature(r={}, s={})",
            hex::encode(self.r),
            hex::encode(self.s)
        )
    }
}

impl Signature {
    /// From big-endian r and s, checking 1 ≤ r, s ≤ n−1.
    pub fn from_scalars(r: [u8; 32], s: [u8; 32]) -> Result<Self, SignatureError> {
        if !in_range(&r) || !in_range(&s) {
            return Err(SignatureError::Range);
        }
        Ok(Self { r, s })
    }

    /// r, big-endian.
    pub fn r(&self) -> &[u8; 32] {
        &self.r
    }

    /// s, big-endian.
    pub fn s(&self) -> &[u8; 32] {
        &self.s
    }

    /// r ‖ s, 64 bytes (the "raw" form some SDKs use).
    pub fn to_raw(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// DER `SEQUENCE { INTEGER r, INTEGER s }` with minimal INTEGER encodings.
    pub fn to_der(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(70);
        der_integer(&mut body, &self.r);
        der_integer(&mut body, &self.s);
        let mut out = Vec::with_capacity(body.len() + 2);
        out.push(0x30);
        // At most 2 × 35 = 70 bytes: always the short length form.
        out.push(body.len() as u8);
        out.extend_from_slice(&body);
        out
    }

    /// Strict DER decoding, then the range check.
    pub fn from_der(der: &[u8]) -> Result<Self, SignatureError> {
        let (tag, rest) = der.split_first().ok_or(SignatureError::Der)?;
        let (len, body) = rest.split_first().ok_or(SignatureError::Der)?;
        if *tag != 0x30 || usize::from(*len) != body.len() || *len >= 0x80 {
            return Err(SignatureError::Der);
        }
        let (r, rest) = read_integer(body)?;
        let (s, rest) = read_integer(rest)?;
        if !rest.is_empty() {
            return Err(SignatureError::Der);
        }
        Self::from_scalars(r, s)
    }

    /// Base64 of the DER encoding, as carried in `Authorization` and `WxIns-Signature`.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.to_der())
    }

    /// Parses the Base64 wire form.
    pub fn from_base64(text: &str) -> Result<Self, SignatureError> {
        if text.len() > MAX_BASE64_LEN {
            return Err(SignatureError::Base64);
        }
        let der = STANDARD.decode(text).map_err(|_| SignatureError::Base64)?;
        Self::from_der(&der)
    }
}

/// 1 ≤ v ≤ n−1. Variable-time: signatures are public.
fn in_range(v: &[u8; 32]) -> bool {
    v.iter().any(|&b| b != 0) && v.as_slice() < CURVE_ORDER.as_slice()
}

fn der_integer(out: &mut Vec<u8>, v: &[u8; 32]) {
    let first = v.iter().position(|&b| b != 0).unwrap_or(31);
    let digits = v.get(first..).unwrap_or(&[0]);
    let pad = digits.first().is_some_and(|&b| b & 0x80 != 0);
    out.push(0x02);
    out.push((digits.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// Reads one minimal, non-negative INTEGER of at most 32 magnitude bytes.
fn read_integer(input: &[u8]) -> Result<([u8; 32], &[u8]), SignatureError> {
    let (tag, rest) = input.split_first().ok_or(SignatureError::Der)?;
    let (len, rest) = rest.split_first().ok_or(SignatureError::Der)?;
    let len = usize::from(*len);
    if *tag != 0x02 || len == 0 || len >= 0x80 || rest.len() < len {
        return Err(SignatureError::Der);
    }
    let (content, rest) = rest.split_at(len);
    let first = content.first().copied().ok_or(SignatureError::Der)?;
    if first & 0x80 != 0 {
        return Err(SignatureError::Der); // negative
    }
    let magnitude = if first == 0 {
        let tail = content.get(1..).unwrap_or(&[]);
        // A leading zero is only allowed to keep the sign bit clear.
        if tail.first().is_some_and(|&b| b & 0x80 == 0) {
            return Err(SignatureError::Der);
        }
        tail
    } else {
        content
    };
    if magnitude.len() > 32 {
        return Err(SignatureError::Range);
    }
    let mut out = [0u8; 32];
    out.get_mut(32 - magnitude.len()..)
        .ok_or(SignatureError::Der)?
        .copy_from_slice(magnitude);
    Ok((out, rest))
}
