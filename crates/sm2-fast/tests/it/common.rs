//! Shared helpers for the engine tests: Z_A, e = SM3(Z_A ‖ M), DER decoding.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use num_bigint::BigUint;
use sm3::{Digest, Sm3};

pub const ID: &[u8] = b"1234567812345678";
pub const A: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC";
pub const B: &str = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93";
pub const GX: &str = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7";
pub const GY: &str = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
pub const N: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123";
pub const P: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF";

pub fn h32(s: &str) -> [u8; 32] {
    let v = hex::decode(s).expect("hex");
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(&v);
    out
}

/// A big-endian byte string as an integer.
pub fn big(b: &[u8]) -> BigUint {
    BigUint::from_bytes_be(b)
}

/// An integer below 2^256 as 32 big-endian bytes.
pub fn b32(x: &BigUint) -> [u8; 32] {
    let v = x.to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(&v);
    out
}

/// Z_A = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) for an uncompressed public key.
pub fn za(id: &[u8], pk: &[u8; 65]) -> [u8; 32] {
    let mut h = Sm3::new();
    let entl = (id.len() as u16) * 8;
    h.update(entl.to_be_bytes());
    h.update(id);
    for c in [A, B, GX, GY] {
        h.update(h32(c));
    }
    h.update(&pk[1..65]);
    h.finalize().into()
}

/// e = SM3(Z_A ‖ M).
pub fn digest(id: &[u8], pk: &[u8; 65], msg: &[u8]) -> [u8; 32] {
    let mut h = Sm3::new();
    h.update(za(id, pk));
    h.update(msg);
    h.finalize().into()
}

/// Decodes DER `SEQUENCE { INTEGER r, INTEGER s }` (short-form lengths) into 32-byte r, s.
pub fn der_decode(der: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    fn int(b: &[u8]) -> Option<([u8; 32], &[u8])> {
        if *b.first()? != 0x02 {
            return None;
        }
        let len = *b.get(1)? as usize;
        let mut v = b.get(2..2 + len)?;
        while v.len() > 32 && v[0] == 0 {
            v = &v[1..];
        }
        if v.len() > 32 {
            return None;
        }
        let mut out = [0u8; 32];
        out[32 - v.len()..].copy_from_slice(v);
        Some((out, &b[2 + len..]))
    }
    if *der.first()? != 0x30 || *der.get(1)? as usize != der.len() - 2 {
        return None;
    }
    let (r, rest) = int(&der[2..])?;
    let (s, rest) = int(rest)?;
    rest.is_empty().then_some((r, s))
}

/// A small deterministic RNG for reproducible tests (SplitMix64; NOT cryptographic).
pub struct TestRng(pub u64);
impl TestRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in out.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }
}
impl rand_core::RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        TestRng::next_u64(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for c in dest.chunks_mut(8) {
            let v = TestRng::next_u64(self).to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
// Test-only: lets the deterministic RNG drive `sign_prehash` in reproducible tests.
impl rand_core::CryptoRng for TestRng {}

pub fn cases(default: usize) -> usize {
    std::env::var("FAST_SM2_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
