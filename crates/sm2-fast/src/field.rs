//! Arithmetic in GF(p) for the SM2 prime p = 2^256 - 2^224 - 2^96 + 2^64 - 1.
//!
//! Elements are kept in Montgomery form (a·2^256 mod p), fully reduced, as four 64-bit limbs.
//! Because p ≡ -1 (mod 2^64), -p^{-1} mod 2^64 = 1: each Montgomery reduction step uses the
//! low limb itself as the multiplier, and the products m·p_i are shifts and subtractions
//! (p's limbs are 2^64-1, 2^64-2^32, 2^64-1, 2^64-2^32-1). Every operation here is
//! constant-time (no secret-dependent branches or indices) except those named `*_vartime`.

use super::limbs::{self, adc, mac, sbb, Limbs};
use super::safegcd;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// The field prime p.
pub(crate) const P: Limbs =
    limbs::from_hex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF");
/// R^2 mod p with R = 2^256.
const R2: Limbs = limbs::r2_mod(&P);
/// R^3 mod p (turns the integer inverse of a Montgomery form back into a Montgomery form).
const R3: Limbs = mont_reduce(mul_wide(&R2, &R2));
/// p's constants for the safegcd inversion.
static P_MOD: safegcd::Modulus = safegcd::Modulus::new(&P);

/// A field element in Montgomery form, always in [0, p). `Copy`, so it cannot zeroize on drop:
/// code holding secret-derived values calls `zeroize()` before returning.
#[derive(Clone, Copy, Debug, Default, Zeroize)]
pub(crate) struct Fe(pub(crate) Limbs);

/// `m * p_j + a + c` for the four limbs of p, with no multiplication.
#[inline(always)]
const fn mac_p0(a: u64, m: u64, c: u64) -> (u64, u64) {
    // m * (2^64 - 1)
    let t = (a as u128) + (c as u128) + (((m as u128) << 64) - (m as u128));
    (t as u64, (t >> 64) as u64)
}
#[inline(always)]
const fn mac_p1(a: u64, m: u64, c: u64) -> (u64, u64) {
    // m * (2^64 - 2^32)
    let t = (a as u128) + (c as u128) + (((m as u128) << 64) - ((m as u128) << 32));
    (t as u64, (t >> 64) as u64)
}
#[inline(always)]
const fn mac_p3(a: u64, m: u64, c: u64) -> (u64, u64) {
    // m * (2^64 - 2^32 - 1)
    let t = (a as u128) + (c as u128) + (((m as u128) << 64) - ((m as u128) << 32) - (m as u128));
    (t as u64, (t >> 64) as u64)
}

/// Montgomery reduction of a 512-bit value t < p * 2^256: returns t / 2^256 mod p in [0, p).
#[inline(always)]
const fn mont_reduce(t: [u64; 8]) -> Limbs {
    let [r0, r1, r2, r3, r4, r5, r6, r7] = t;
    // Step 1: m = r0 (since -p^{-1} = 1 mod 2^64); r0 + m*p0 = m*2^64 exactly, carry m.
    let (r1, c) = mac_p1(r1, r0, r0);
    let (r2, c) = mac_p0(r2, r0, c);
    let (r3, c) = mac_p3(r3, r0, c);
    let (r4, c2) = adc(r4, c, 0);
    // Step 2
    let (r2, c) = mac_p1(r2, r1, r1);
    let (r3, c) = mac_p0(r3, r1, c);
    let (r4, c) = mac_p3(r4, r1, c);
    let (r5, c2) = adc(r5, c, c2);
    // Step 3
    let (r3, c) = mac_p1(r3, r2, r2);
    let (r4, c) = mac_p0(r4, r2, c);
    let (r5, c) = mac_p3(r5, r2, c);
    let (r6, c2) = adc(r6, c, c2);
    // Step 4
    let (r4, c) = mac_p1(r4, r3, r3);
    let (r5, c) = mac_p0(r5, r3, c);
    let (r6, c) = mac_p3(r6, r3, c);
    let (r7, c2) = adc(r7, c, c2);
    // Result [r4..r7] + c2*2^256 < 2p: subtract p once if needed.
    sub_p_if_needed(&[r4, r5, r6, r7], c2)
}

/// Given x + carry*2^256 < 2p, returns the value reduced into [0, p).
#[inline(always)]
const fn sub_p_if_needed(x: &Limbs, carry: u64) -> Limbs {
    let (s0, b) = sbb(x[0], P[0], 0);
    let (s1, b) = sbb(x[1], P[1], b);
    let (s2, b) = sbb(x[2], P[2], b);
    let (s3, b) = sbb(x[3], P[3], b);
    let (_, b) = sbb(carry, 0, b);
    // b == 1: x + carry*2^256 < p, keep x.
    limbs::select_by_bit(&[s0, s1, s2, s3], x, b)
}

#[inline(always)]
const fn mul_wide(a: &Limbs, b: &Limbs) -> [u64; 8] {
    let (w0, c) = mac(0, a[0], b[0], 0);
    let (w1, c) = mac(0, a[0], b[1], c);
    let (w2, c) = mac(0, a[0], b[2], c);
    let (w3, w4) = mac(0, a[0], b[3], c);

    let (w1, c) = mac(w1, a[1], b[0], 0);
    let (w2, c) = mac(w2, a[1], b[1], c);
    let (w3, c) = mac(w3, a[1], b[2], c);
    let (w4, w5) = mac(w4, a[1], b[3], c);

    let (w2, c) = mac(w2, a[2], b[0], 0);
    let (w3, c) = mac(w3, a[2], b[1], c);
    let (w4, c) = mac(w4, a[2], b[2], c);
    let (w5, w6) = mac(w5, a[2], b[3], c);

    let (w3, c) = mac(w3, a[3], b[0], 0);
    let (w4, c) = mac(w4, a[3], b[1], c);
    let (w5, c) = mac(w5, a[3], b[2], c);
    let (w6, w7) = mac(w6, a[3], b[3], c);
    [w0, w1, w2, w3, w4, w5, w6, w7]
}

#[inline(always)]
const fn square_wide(a: &Limbs) -> [u64; 8] {
    // Off-diagonal products.
    let (w1, c) = mac(0, a[0], a[1], 0);
    let (w2, c) = mac(0, a[0], a[2], c);
    let (w3, w4) = mac(0, a[0], a[3], c);
    let (w3, c) = mac(w3, a[1], a[2], 0);
    let (w4, w5) = mac(w4, a[1], a[3], c);
    let (w5, w6) = mac(w5, a[2], a[3], 0);
    // Double.
    let w7 = w6 >> 63;
    let w6 = (w6 << 1) | (w5 >> 63);
    let w5 = (w5 << 1) | (w4 >> 63);
    let w4 = (w4 << 1) | (w3 >> 63);
    let w3 = (w3 << 1) | (w2 >> 63);
    let w2 = (w2 << 1) | (w1 >> 63);
    let w1 = w1 << 1;
    // Diagonal squares.
    let (w0, c) = mac(0, a[0], a[0], 0);
    let (w1, c) = adc(w1, 0, c);
    let (w2, c) = mac(w2, a[1], a[1], c);
    let (w3, c) = adc(w3, 0, c);
    let (w4, c) = mac(w4, a[2], a[2], c);
    let (w5, c) = adc(w5, 0, c);
    let (w6, c) = mac(w6, a[3], a[3], c);
    let (w7, _) = adc(w7, 0, c);
    [w0, w1, w2, w3, w4, w5, w6, w7]
}

impl Fe {
    pub(crate) const ZERO: Fe = Fe([0; 4]);
    /// 1 in Montgomery form (R mod p).
    pub(crate) const ONE: Fe = Fe::from_canonical(&[1, 0, 0, 0]);

    /// Converts canonical limbs (must be < p) into Montgomery form.
    #[inline]
    pub(crate) const fn from_canonical(x: &Limbs) -> Fe {
        Fe(mont_reduce(mul_wide(x, &R2)))
    }

    /// Big-endian bytes to a field element; `None` if the value is >= p.
    pub(crate) fn from_bytes(b: &[u8; 32]) -> Option<Fe> {
        let x = limbs::from_be_bytes(b);
        if bool::from(limbs::ct_lt(&x, &P)) {
            Some(Fe::from_canonical(&x))
        } else {
            None
        }
    }

    /// Canonical limbs (leaves Montgomery form).
    #[inline]
    pub(crate) const fn to_canonical(self) -> Limbs {
        let a = &self.0;
        mont_reduce([a[0], a[1], a[2], a[3], 0, 0, 0, 0])
    }

    /// Canonical big-endian bytes.
    pub(crate) fn to_bytes(self) -> [u8; 32] {
        limbs::to_be_bytes(&self.to_canonical())
    }

    #[inline(always)]
    pub(crate) const fn mul(&self, rhs: &Fe) -> Fe {
        Fe(mont_reduce(mul_wide(&self.0, &rhs.0)))
    }

    #[inline(always)]
    pub(crate) const fn square(&self) -> Fe {
        Fe(mont_reduce(square_wide(&self.0)))
    }

    /// `self^(2^k)`.
    #[inline]
    pub(crate) fn sqn(&self, k: u32) -> Fe {
        let mut x = *self;
        for _ in 0..k {
            x = x.square();
        }
        x
    }

    #[inline(always)]
    pub(crate) const fn add(&self, rhs: &Fe) -> Fe {
        let (s, carry) = limbs::add(&self.0, &rhs.0);
        Fe(sub_p_if_needed(&s, carry))
    }

    #[inline(always)]
    pub(crate) const fn sub(&self, rhs: &Fe) -> Fe {
        let (d, borrow) = limbs::sub(&self.0, &rhs.0);
        // Add p back if we borrowed.
        let m = 0u64.wrapping_sub(borrow);
        let (r0, c) = adc(d[0], P[0] & m, 0);
        let (r1, c) = adc(d[1], P[1] & m, c);
        let (r2, c) = adc(d[2], P[2] & m, c);
        let (r3, _) = adc(d[3], P[3] & m, c);
        Fe([r0, r1, r2, r3])
    }

    #[inline(always)]
    pub(crate) const fn double(&self) -> Fe {
        self.add(self)
    }

    #[inline(always)]
    pub(crate) const fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    pub(crate) fn is_zero(&self) -> Choice {
        limbs::ct_is_zero(&self.0)
    }

    /// Inverse by safegcd divsteps (constant-time, see `safegcd`). Returns 0 for 0. With
    /// A = a·R the Montgomery form, safegcd gives A⁻¹ = a⁻¹·R⁻¹ as an integer, and one
    /// Montgomery product with R³ yields a⁻¹·R.
    pub(crate) fn invert(&self) -> Fe {
        let mut ainv = safegcd::invert(&self.0, &P_MOD);
        let out = Fe(mont_reduce(mul_wide(&ainv, &R3)));
        ainv.zeroize();
        out
    }

    /// Inverse by Fermat's little theorem, x^(p-2), with a fixed addition chain (constant-time).
    /// Returns 0 for 0. The chain's temporaries (powers of the input, which may be a secret
    /// point's Z) are zeroized before returning. The reference for `invert`.
    pub(crate) fn invert_fermat(&self) -> Fe {
        // p - 2 in binary, from the top: 31 ones, 0, 128 ones, 32 zeros, 62 ones, 0, 1.
        let mut x1 = *self;
        let mut x2 = x1.square().mul(&x1);
        let mut x3 = x2.square().mul(&x1);
        let mut x6 = x3.sqn(3).mul(&x3);
        let mut x12 = x6.sqn(6).mul(&x6);
        let mut x24 = x12.sqn(12).mul(&x12);
        let mut x30 = x24.sqn(6).mul(&x6);
        let mut x31 = x30.square().mul(&x1);
        let mut x32 = x31.square().mul(&x1);
        let mut t = x31.square(); // 31 ones, 0
        for _ in 0..4 {
            t = t.sqn(32).mul(&x32); // 128 ones
        }
        t = t.sqn(32); // 32 zeros
        t = t.sqn(32).mul(&x32);
        t = t.sqn(30).mul(&x30); // 62 ones
        let inv = t.sqn(2).mul(&x1); // 0, 1
        for v in [
            &mut x1, &mut x2, &mut x3, &mut x6, &mut x12, &mut x24, &mut x30, &mut x31, &mut x32,
            &mut t,
        ] {
            v.zeroize();
        }
        inv
    }

    /// Square root for p ≡ 3 (mod 4): x^((p+1)/4). Returns `None` if `self` is not a square.
    /// Only used on public data (point decompression).
    pub(crate) fn sqrt_vartime(&self) -> Option<Fe> {
        // (p+1)/4 in binary: 31 ones, 0, 128 ones, 31 zeros, 1, 62 zeros.
        let x1 = *self;
        let x2 = x1.square().mul(&x1);
        let x4 = x2.sqn(2).mul(&x2);
        let x8 = x4.sqn(4).mul(&x4);
        let x16 = x8.sqn(8).mul(&x8);
        let x32 = x16.sqn(16).mul(&x16);
        let x31 = x16
            .sqn(15)
            .mul(&x8.sqn(7).mul(&x4.sqn(3).mul(&x2.square().mul(&x1))));
        let mut t = x31.square();
        for _ in 0..4 {
            t = t.sqn(32).mul(&x32);
        }
        t = t.sqn(32).mul(&x1); // 31 zeros then a one
        t = t.sqn(62);
        if bool::from(t.square().ct_eq(self)) {
            Some(t)
        } else {
            None
        }
    }

    /// Whether the canonical value is odd.
    pub(crate) fn is_odd(&self) -> Choice {
        Choice::from((self.to_canonical()[0] & 1) as u8)
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Fe) -> Choice {
        limbs::ct_eq(&self.0, &other.0)
    }
}

impl ConditionallySelectable for Fe {
    #[inline(always)]
    fn conditional_select(a: &Fe, b: &Fe, choice: Choice) -> Fe {
        Fe(limbs::select(&a.0, &b.0, choice))
    }
}
