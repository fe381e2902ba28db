//! Constant-time modular inversion by Bernstein–Yang "safegcd" divsteps (Bernstein and Yang,
//! "Fast constant-time gcd computation and modular inversion", TCHES 2019), in the half-delta
//! variant ("hddivsteps": δ starts at 1/2), batched 62 divsteps at a time.
//!
//! One divstep maps (δ, f, g), f odd, to
//! * (1 − δ, g, (g − f)/2) if δ > 0 and g is odd,
//! * (1 + δ, f, (g + (g mod 2)·f)/2) otherwise.
//!
//! Starting from f = m (the odd modulus), g = x, g reaches 0 and f reaches ±gcd(m, x) = ±1
//! within 590 half-delta divsteps for any 256-bit m and 0 ≤ x < m; we run a fixed 10 × 62 = 620.
//! Alongside f and g we carry d, e with f ≡ d·x and g ≡ e·x (mod m), so at the end
//! x⁻¹ ≡ ±d. Each batch of 62 divsteps is computed on the low 64 bits of f and g only, as a
//! 2×2 matrix scaled by 2^62, and then applied to the full f, g (exact division by 2^62) and to
//! d, e (division by 2^62 mod m, by adding the multiple of m that clears the low 62 bits).
//!
//! Every step is straight-line code on masks: no branch or memory index depends on x. Numbers
//! are five signed 62-bit limbs: limbs 0..=3 in [0, 2^62), limb 4 signed.

use super::limbs::{self, Limbs};
use zeroize::Zeroize;

const MASK62: u64 = (1 << 62) - 1;
/// Divsteps per batch.
const BATCH: usize = 62;
/// Batches: 10 × 62 = 620 ≥ 590, the bound for 256-bit inputs.
const BATCHES: usize = 10;

/// A signed number in radix 2^62: Σ limb_i · 2^(62·i), limbs 0..=3 in [0, 2^62), limb 4 signed.
type S62 = [i64; 5];

/// An odd modulus below 2^256 with its precomputed constants.
pub(crate) struct Modulus {
    /// The modulus in radix 2^62.
    m: S62,
    /// −m⁻¹ mod 2^64 (only its low 62 bits are used).
    neg_inv: u64,
}

impl Modulus {
    /// Constants for an odd modulus m with 2^255 < m < 2^256.
    pub(crate) const fn new(m: &Limbs) -> Modulus {
        Modulus {
            m: to_s62(m),
            neg_inv: limbs::neg_inv64(m[0]),
        }
    }
}

/// 64-bit limbs (an unsigned 256-bit value) to radix 2^62.
const fn to_s62(a: &Limbs) -> S62 {
    let [a0, a1, a2, a3] = *a;
    [
        (a0 & MASK62) as i64,
        (((a0 >> 62) | (a1 << 2)) & MASK62) as i64,
        (((a1 >> 60) | (a2 << 4)) & MASK62) as i64,
        (((a2 >> 58) | (a3 << 6)) & MASK62) as i64,
        (a3 >> 56) as i64,
    ]
}

/// Radix 2^62 (a value in [0, 2^256)) back to 64-bit limbs.
fn from_s62(a: &S62) -> Limbs {
    let [a0, a1, a2, a3, a4] = a.map(|x| x as u64);
    [
        a0 | (a1 << 62),
        (a1 >> 2) | (a2 << 60),
        (a2 >> 4) | (a3 << 58),
        (a3 >> 6) | (a4 << 56),
    ]
}

/// 62 divsteps on the low 64 bits of f and g. Returns the new δ − 1/2 and the transition
/// matrix (u, v, q, r), scaled by 2^62: 2^62·f' = u·f + v·g and 2^62·g' = q·f + r·g.
/// |u| + |v| ≤ 2^62 and |q| + |r| ≤ 2^62. Branch-free.
#[inline(always)]
fn divsteps(mut delta: i64, f: u64, g: u64) -> (i64, [i64; 4]) {
    // `delta` holds δ − 1/2, so δ > 0 ⟺ delta ≥ 0.
    let (mut u, mut v, mut q, mut r) = (1i64, 0i64, 0i64, 1i64);
    let (mut f, mut g) = (f, g);
    for _ in 0..BATCH {
        // c1: δ > 0; c2: g odd. Both all-ones or zero.
        let c1 = !(delta >> 63);
        let c2 = 0i64.wrapping_sub((g & 1) as i64);
        // If g is odd, add f to g (or subtract it, when δ > 0), with the matching coefficients.
        let x = ((f as i64) ^ c1).wrapping_sub(c1);
        let y = (u ^ c1).wrapping_sub(c1);
        let z = (v ^ c1).wrapping_sub(c1);
        g = g.wrapping_add((x & c2) as u64);
        q = q.wrapping_add(y & c2);
        r = r.wrapping_add(z & c2);
        // Swap case (δ > 0 and g odd): δ' = 1 − δ, f' = old g = f + (g − f).
        let c = c1 & c2;
        delta = (delta ^ c).wrapping_add(1);
        f = f.wrapping_add(g & (c as u64));
        u = u.wrapping_add(q & c);
        v = v.wrapping_add(r & c);
        // g' = g / 2; keeping f while halving g doubles f's coefficients.
        g >>= 1;
        u = u.wrapping_shl(1);
        v = v.wrapping_shl(1);
    }
    (delta, [u, v, q, r])
}

/// Low 64 bits of a radix-2^62 number (two's complement).
#[inline(always)]
fn low64(a: &S62) -> u64 {
    let [a0, a1, ..] = *a;
    (a0 as u64) | ((a1 as u64) << 62)
}

/// (u·a + v·b + k·m) / 2^62 for the limbs given; the caller ensures the division is exact.
#[inline(always)]
fn combine(a: &S62, b: &S62, u: i64, v: i64, k: i64, m: &S62) -> S62 {
    let [a0, a1, a2, a3, a4] = *a;
    let [b0, b1, b2, b3, b4] = *b;
    let [m0, m1, m2, m3, m4] = *m;
    let (u, v, k) = (u as i128, v as i128, k as i128);
    let mut c = u * a0 as i128 + v * b0 as i128 + k * m0 as i128;
    c >>= 62;
    c += u * a1 as i128 + v * b1 as i128 + k * m1 as i128;
    let r0 = (c as u64 & MASK62) as i64;
    c >>= 62;
    c += u * a2 as i128 + v * b2 as i128 + k * m2 as i128;
    let r1 = (c as u64 & MASK62) as i64;
    c >>= 62;
    c += u * a3 as i128 + v * b3 as i128 + k * m3 as i128;
    let r2 = (c as u64 & MASK62) as i64;
    c >>= 62;
    c += u * a4 as i128 + v * b4 as i128 + k * m4 as i128;
    let r3 = (c as u64 & MASK62) as i64;
    c >>= 62;
    [r0, r1, r2, r3, c as i64]
}

/// The k in [0, 2^62) for which u·d + v·e + k·m ≡ 0 (mod 2^62).
#[inline(always)]
fn clearing_multiple(d: &S62, e: &S62, u: i64, v: i64, md: &Modulus) -> i64 {
    let lo = (u as u64)
        .wrapping_mul(low64(d))
        .wrapping_add((v as u64).wrapping_mul(low64(e)));
    (lo.wrapping_mul(md.neg_inv) & MASK62) as i64
}

/// a + c·b for a mask c (0 or −1) applied limb-wise, then carried into canonical limbs.
#[inline(always)]
fn add_masked(a: &S62, b: &S62, c: i64) -> S62 {
    let [a0, a1, a2, a3, a4] = *a;
    let [b0, b1, b2, b3, b4] = b.map(|x| x & c);
    carry([a0 + b0, a1 + b1, a2 + b2, a3 + b3, a4 + b4])
}

/// a − c·b for a mask c (0 or −1), carried.
#[inline(always)]
fn sub_masked(a: &S62, b: &S62, c: i64) -> S62 {
    let [a0, a1, a2, a3, a4] = *a;
    let [b0, b1, b2, b3, b4] = b.map(|x| x & c);
    carry([a0 - b0, a1 - b1, a2 - b2, a3 - b3, a4 - b4])
}

/// Propagates carries so limbs 0..=3 are back in [0, 2^62). Limbs may be in (−2^63, 2^63).
#[inline(always)]
fn carry(a: S62) -> S62 {
    let [a0, a1, a2, a3, a4] = a;
    let a1 = a1 + (a0 >> 62);
    let a2 = a2 + (a1 >> 62);
    let a3 = a3 + (a2 >> 62);
    let a4 = a4 + (a3 >> 62);
    [
        a0 & MASK62 as i64,
        a1 & MASK62 as i64,
        a2 & MASK62 as i64,
        a3 & MASK62 as i64,
        a4,
    ]
}

/// Negates a (when c = −1) or keeps it (c = 0).
#[inline(always)]
fn cond_negate(a: &S62, c: i64) -> S62 {
    // Limb-wise (a_i ^ c) − c is −a_i when c = −1; the carry pass restores the limb ranges.
    let [a0, a1, a2, a3, a4] = a.map(|x| (x ^ c) - c);
    carry([a0, a1, a2, a3, a4])
}

/// The sign mask of a carried number: −1 if negative, 0 otherwise.
#[inline(always)]
fn sign_mask(a: &S62) -> i64 {
    let [.., a4] = *a;
    a4 >> 63
}

/// x⁻¹ mod m for 0 ≤ x < m, constant-time; 0 for 0. Temporaries derived from x are zeroized.
pub(crate) fn invert(x: &Limbs, md: &Modulus) -> Limbs {
    let mut f = md.m;
    let mut g = to_s62(x);
    let mut d: S62 = [0; 5];
    let mut e: S62 = [1, 0, 0, 0, 0];
    let mut delta = 0i64;
    for _ in 0..BATCHES {
        let (nd, mut t) = divsteps(delta, low64(&f), low64(&g));
        delta = nd;
        let [u, v, q, r] = t;
        let nf = combine(&f, &g, u, v, 0, &md.m);
        let ng = combine(&f, &g, q, r, 0, &md.m);
        let kd = clearing_multiple(&d, &e, u, v, md);
        let ke = clearing_multiple(&d, &e, q, r, md);
        let nd2 = combine(&d, &e, u, v, kd, &md.m);
        let ne = combine(&d, &e, q, r, ke, &md.m);
        (f, g, d, e) = (nf, ng, nd2, ne);
        t.zeroize();
    }
    // Now g = 0 and f = ±1 (x ≠ 0) or f = m, d = 0 (x = 0); x⁻¹ ≡ sign(f)·d, |d| < 11m.
    let mut d = cond_negate(&d, sign_mask(&f));
    // Into [0, 16m): add 16m if negative; then subtract 8m, 4m, 2m, m where it fits.
    let m16 = shl_s62(&md.m, 4);
    d = add_masked(&d, &m16, sign_mask(&d));
    for ms in [
        shl_s62(&md.m, 3),
        shl_s62(&md.m, 2),
        shl_s62(&md.m, 1),
        md.m,
    ] {
        let t = sub_masked(&d, &ms, -1);
        d = select(&t, &d, sign_mask(&t));
    }
    let out = from_s62(&d);
    for v in [&mut f, &mut g, &mut d, &mut e] {
        v.zeroize();
    }
    delta.zeroize();
    out
}

/// a·2^s for a non-negative carried number below 2^256 and 1 ≤ s ≤ 4.
#[inline(always)]
fn shl_s62(a: &S62, s: u32) -> S62 {
    let [a0, a1, a2, a3, a4] = *a;
    let m = MASK62 as i64;
    let spill = 62 - s;
    [
        (a0 << s) & m,
        ((a1 << s) & m) | (a0 >> spill),
        ((a2 << s) & m) | (a1 >> spill),
        ((a3 << s) & m) | (a2 >> spill),
        (a4 << s) | (a3 >> spill),
    ]
}

/// `a` where the mask c is 0, `b` where it is −1.
#[inline(always)]
fn select(a: &S62, b: &S62, c: i64) -> S62 {
    let [a0, a1, a2, a3, a4] = *a;
    let [b0, b1, b2, b3, b4] = *b;
    [
        (a0 & !c) | (b0 & c),
        (a1 & !c) | (b1 & c),
        (a2 & !c) | (b2 & c),
        (a3 & !c) | (b3 & c),
        (a4 & !c) | (b4 & c),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_conversion_round_trips() {
        let x: Limbs = [
            0x0123_4567_89ab_cdef,
            0xfedc_ba98_7654_3210,
            0xffff_ffff_0000_0001,
            0x8000_0000_ffff_ffff,
        ];
        assert_eq!(from_s62(&to_s62(&x)), x);
        assert_eq!(from_s62(&carry(to_s62(&x))), x);
    }

    #[test]
    fn negate_twice_is_identity() {
        let x = to_s62(&[5, 6, 7, 8]);
        assert_eq!(cond_negate(&cond_negate(&x, -1), -1), x);
        assert_eq!(cond_negate(&x, 0), x);
        assert_eq!(sign_mask(&cond_negate(&x, -1)), -1);
    }

    #[test]
    fn shift_left_matches_limb_arithmetic() {
        let x: Limbs = [u64::MAX, u64::MAX - 7, u64::MAX, 0x0fff_ffff_ffff_ffff];
        let (x2, _) = limbs::add(&x, &x);
        let (x4, _) = limbs::add(&x2, &x2);
        let (x8, _) = limbs::add(&x4, &x4);
        let (x16, _) = limbs::add(&x8, &x8);
        assert_eq!(from_s62(&shl_s62(&to_s62(&x), 1)), x2);
        assert_eq!(from_s62(&shl_s62(&to_s62(&x), 4)), x16);
    }
}
