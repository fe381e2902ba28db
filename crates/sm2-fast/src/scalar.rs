//! Arithmetic modulo the SM2 group order n. All constant-time.
//!
//! Scalars are plain canonical limbs in [0, n); the only multiplication is a Montgomery product
//! `mont_mul(a, b) = a·b·2^-256 mod n`. A value `x·2^256 mod n` is "Montgomery form": the signing
//! key caches (1+d)^-1 in that form, so one `mont_mul` with a plain scalar yields a plain result.

use super::limbs::{self, adc, mac, sbb, Limbs};
use super::safegcd;
use subtle::Choice;

/// The group order n.
pub(crate) const N: Limbs =
    limbs::from_hex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123");
/// n - 2 (the Fermat inversion exponent; public).
const N_MINUS_2: Limbs =
    limbs::from_hex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54121");
/// R^2 mod n.
const R2: Limbs = limbs::r2_mod(&N);
/// -n^{-1} mod 2^64.
const N0: u64 = limbs::neg_inv64(N[0]);
/// n's constants for the safegcd inversion.
static N_MOD: safegcd::Modulus = safegcd::Modulus::new(&N);

/// Given x + carry*2^256 < 2n, returns the value in [0, n).
#[inline(always)]
const fn sub_n_if_needed(x: &Limbs, carry: u64) -> Limbs {
    let (s0, b) = sbb(x[0], N[0], 0);
    let (s1, b) = sbb(x[1], N[1], b);
    let (s2, b) = sbb(x[2], N[2], b);
    let (s3, b) = sbb(x[3], N[3], b);
    let (_, b) = sbb(carry, 0, b);
    limbs::select_by_bit(&[s0, s1, s2, s3], x, b)
}

/// Reduces any 256-bit value into [0, n) (one conditional subtraction suffices as 2n > 2^256).
#[inline]
pub(crate) const fn reduce(x: &Limbs) -> Limbs {
    sub_n_if_needed(x, 0)
}

/// (a + b) mod n for a, b < n.
#[inline]
pub(crate) const fn add(a: &Limbs, b: &Limbs) -> Limbs {
    let (s, c) = limbs::add(a, b);
    sub_n_if_needed(&s, c)
}

/// (a - b) mod n for a, b < n.
#[inline]
pub(crate) const fn sub(a: &Limbs, b: &Limbs) -> Limbs {
    let (d, borrow) = limbs::sub(a, b);
    let m = 0u64.wrapping_sub(borrow);
    let (r0, c) = adc(d[0], N[0] & m, 0);
    let (r1, c) = adc(d[1], N[1] & m, c);
    let (r2, c) = adc(d[2], N[2] & m, c);
    let (r3, _) = adc(d[3], N[3] & m, c);
    [r0, r1, r2, r3]
}

/// One CIOS round: (t + a·b_i + m·n) / 2^64 with m chosen to clear the low limb.
/// `t` holds a value < 2n as four limbs plus a carry limb.
#[inline(always)]
const fn mont_round(t: [u64; 5], a: &Limbs, bi: u64) -> [u64; 5] {
    let [t0, t1, t2, t3, t4] = t;
    let [a0, a1, a2, a3] = *a;
    let [n0, n1, n2, n3] = N;
    let (t0, c) = mac(t0, a0, bi, 0);
    let (t1, c) = mac(t1, a1, bi, c);
    let (t2, c) = mac(t2, a2, bi, c);
    let (t3, c) = mac(t3, a3, bi, c);
    let (t4, t5) = adc(t4, c, 0);
    let m = t0.wrapping_mul(N0);
    let (_, c) = mac(t0, m, n0, 0);
    let (r0, c) = mac(t1, m, n1, c);
    let (r1, c) = mac(t2, m, n2, c);
    let (r2, c) = mac(t3, m, n3, c);
    let (r3, c2) = adc(t4, c, 0);
    [r0, r1, r2, r3, t5 + c2]
}

/// Montgomery product a·b·2^-256 mod n (CIOS), for a, b < n.
pub(crate) const fn mont_mul(a: &Limbs, b: &Limbs) -> Limbs {
    let [b0, b1, b2, b3] = *b;
    let t = mont_round([0; 5], a, b0);
    let t = mont_round(t, a, b1);
    let t = mont_round(t, a, b2);
    let [t0, t1, t2, t3, t4] = mont_round(t, a, b3);
    sub_n_if_needed(&[t0, t1, t2, t3], t4)
}

/// Converts a plain scalar (< n) into Montgomery form.
#[inline]
pub(crate) const fn to_mont(a: &Limbs) -> Limbs {
    mont_mul(a, &R2)
}

/// Converts out of Montgomery form.
#[inline]
pub(crate) const fn from_mont(a: &Limbs) -> Limbs {
    mont_mul(a, &[1, 0, 0, 0])
}

/// Plain product a·b mod n.
#[inline]
pub(crate) const fn mul(a: &Limbs, b: &Limbs) -> Limbs {
    mont_mul(&to_mont(a), b)
}

/// Returns a^-1 · 2^256 mod n (the inverse in Montgomery form) for a plain scalar a in [0, n),
/// by safegcd divsteps (constant-time, see `safegcd`). Returns 0 for 0.
pub(crate) fn invert_to_mont(a: &Limbs) -> Limbs {
    let mut ainv = safegcd::invert(a, &N_MOD);
    let out = to_mont(&ainv);
    zeroize::Zeroize::zeroize(&mut ainv);
    out
}

/// Returns a^-1 · 2^256 mod n (the inverse in Montgomery form) for a plain scalar a in [1, n),
/// by Fermat's little theorem (the reference for `invert_to_mont`). The exponent n-2 is public, so the square-and-multiply sequence
/// is the same for every input (constant-time). Returns 0 for 0.
pub(crate) fn invert_to_mont_fermat(a: &Limbs) -> Limbs {
    let am = to_mont(a);
    let mut acc = to_mont(&[1, 0, 0, 0]);
    for limb in N_MINUS_2.iter().rev() {
        for bit in (0..64).rev() {
            acc = mont_mul(&acc, &acc);
            if (limb >> bit) & 1 == 1 {
                acc = mont_mul(&acc, &am);
            }
        }
    }
    acc
}

/// Constant-time `0 < x < n`.
#[inline]
pub(crate) fn is_in_range(x: &Limbs) -> Choice {
    !limbs::ct_is_zero(x) & limbs::ct_lt(x, &N)
}
