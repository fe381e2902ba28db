//! 256-bit integers as four little-endian `u64` limbs: carry helpers, byte conversion,
//! constant-time comparisons. Shared by the field (mod p) and scalar (mod n) arithmetic.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// Four little-endian 64-bit limbs.
pub(crate) type Limbs = [u64; 4];

/// `a + b + carry`, returning (sum, carry-out). `carry` may be any u64.
#[inline(always)]
pub(crate) const fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// `a - b - borrow` with `borrow` in {0, 1}, returning (difference, borrow-out in {0, 1}).
#[inline(always)]
pub(crate) const fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub((b as u128) + (borrow as u128));
    (t as u64, (t >> 127) as u64)
}

/// `a + b * c + carry`, returning (low, high).
#[inline(always)]
pub(crate) const fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) + (b as u128) * (c as u128) + (carry as u128);
    (t as u64, (t >> 64) as u64)
}

/// Big-endian bytes to limbs.
#[inline]
pub(crate) fn from_be_bytes(b: &[u8; 32]) -> Limbs {
    let mut out = [0u64; 4];
    // rchunks_exact yields the least significant 8 bytes first.
    for (o, c) in out.iter_mut().zip(b.rchunks_exact(8)) {
        *o = c.iter().fold(0u64, |w, &x| (w << 8) | x as u64);
    }
    out
}

/// Limbs to big-endian bytes.
#[inline]
pub(crate) fn to_be_bytes(l: &Limbs) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(l.iter().rev()) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    out
}

/// Parses a 64-digit hex constant. Only ever evaluated at compile time (in `const` items), where
/// a malformed literal fails the build; never called at run time.
#[expect(
    clippy::indexing_slicing,
    clippy::panic,
    reason = "evaluated at compile time only, where a bad literal fails the build"
)]
pub(crate) const fn from_hex(s: &str) -> Limbs {
    let b = s.as_bytes();
    assert!(b.len() == 64);
    let mut out = [0u64; 4];
    let mut i = 0;
    while i < 64 {
        let c = b[i];
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex"),
        } as u64;
        let bit = (63 - i) * 4;
        out[bit / 64] |= v << (bit % 64);
        i += 1;
    }
    out
}

/// `a - b` over 256 bits, returning (difference, borrow in {0, 1}).
#[inline(always)]
pub(crate) const fn sub(a: &Limbs, b: &Limbs) -> (Limbs, u64) {
    let (r0, c) = sbb(a[0], b[0], 0);
    let (r1, c) = sbb(a[1], b[1], c);
    let (r2, c) = sbb(a[2], b[2], c);
    let (r3, c) = sbb(a[3], b[3], c);
    ([r0, r1, r2, r3], c)
}

/// `a + b` over 256 bits, returning (sum, carry in {0, 1}).
#[inline(always)]
pub(crate) const fn add(a: &Limbs, b: &Limbs) -> (Limbs, u64) {
    let (r0, c) = adc(a[0], b[0], 0);
    let (r1, c) = adc(a[1], b[1], c);
    let (r2, c) = adc(a[2], b[2], c);
    let (r3, c) = adc(a[3], b[3], c);
    ([r0, r1, r2, r3], c)
}

/// Constant-time `a < b`.
#[inline]
pub(crate) fn ct_lt(a: &Limbs, b: &Limbs) -> Choice {
    let (_, borrow) = sub(a, b);
    Choice::from(borrow as u8)
}

/// Constant-time `a == 0`.
#[inline]
pub(crate) fn ct_is_zero(a: &Limbs) -> Choice {
    (a[0] | a[1] | a[2] | a[3]).ct_eq(&0)
}

/// Constant-time equality.
#[inline]
pub(crate) fn ct_eq(a: &Limbs, b: &Limbs) -> Choice {
    ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])).ct_eq(&0)
}

/// Constant-time select: `a` if `c` is 0, `b` if `c` is 1.
#[inline(always)]
pub(crate) fn select(a: &Limbs, b: &Limbs, c: Choice) -> Limbs {
    [
        u64::conditional_select(&a[0], &b[0], c),
        u64::conditional_select(&a[1], &b[1], c),
        u64::conditional_select(&a[2], &b[2], c),
        u64::conditional_select(&a[3], &b[3], c),
    ]
}

/// Mask-based select on a borrow flag (0 or 1): `a` if `flag == 0`, `b` if `flag == 1`.
/// Used inside hot arithmetic where the flag is already a plain bit.
#[inline(always)]
pub(crate) const fn select_by_bit(a: &Limbs, b: &Limbs, flag: u64) -> Limbs {
    let m = 0u64.wrapping_sub(flag);
    [
        (a[0] & !m) | (b[0] & m),
        (a[1] & !m) | (b[1] & m),
        (a[2] & !m) | (b[2] & m),
        (a[3] & !m) | (b[3] & m),
    ]
}

/// Compile-time `2^512 mod m` for a modulus `m > 2^255` (the Montgomery constant R^2).
pub(crate) const fn r2_mod(m: &Limbs) -> Limbs {
    // 2^256 mod m = 2^256 - m (as m > 2^255), i.e. the two's complement of m.
    let (mut x, _) = sub(&[0, 0, 0, 0], m);
    let mut i = 0;
    while i < 256 {
        // x = 2x mod m
        let (d, carry) = add(&x, &x);
        let (s, borrow) = sub(&d, m);
        // keep d only if no carry and the subtraction borrowed
        let keep_d = borrow & (carry ^ 1);
        x = select_by_bit(&s, &d, keep_d);
        i += 1;
    }
    x
}

/// Compile-time `-m^{-1} mod 2^64` for odd `m0`.
pub(crate) const fn neg_inv64(m0: u64) -> u64 {
    let mut inv = 1u64;
    let mut i = 0;
    while i < 7 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
        i += 1;
    }
    inv.wrapping_neg()
}
