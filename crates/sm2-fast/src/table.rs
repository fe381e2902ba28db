//! Precomputed tables of affine multiples and the scalar multiplications that use them.
//!
//! A scalar k < 2^256 is written in signed radix 2^W (Booth recoding):
//! k = Σ_{i<WINDOWS} d_i · 2^(W·i) with d_i ∈ [-2^(W-1), 2^(W-1)].
//! Row i of a table holds j·2^(W·i)·P for j = 1..=2^(W-1), so k·P is a sum of WINDOWS
//! table entries (one per row, negated as needed) and needs no doublings at all.
//!
//! Signing uses `mul_ct`: every row is scanned in full with constant-time selects, the sign
//! is applied by a constant-time conditional negation, and a zero digit is handled by
//! computing the addition anyway and discarding it with a constant-time select.
//! Verification uses `mul2_vartime`, which indexes rows directly and skips zero digits.

use super::field::Fe;
use super::limbs::Limbs;
use super::point::{batch_to_affine, Affine, Jacobian, G};
use std::sync::OnceLock;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// Window width of the signing table for G (scanned in full, constant-time, per row).
pub(crate) const W_SIGN: usize = 6;
/// Window width of the verification table for G (indexed directly; built once per process).
pub(crate) const W_VERIFY_G: usize = 8;
/// Window width of the per-key verification tables (built at key load).
pub(crate) const W_VERIFY_KEY: usize = 7;

/// A fixed-base table for one point: `windows` rows of `half` affine points, row i holding
/// j·2^(w·i)·P for j = 1..=half, with half = 2^(w−1) and w·windows > 256 (so that the top
/// Booth digit needs no carry). W = 6: 43 × 32 points, 88 KiB; W = 7: 37 × 64, 152 KiB;
/// W = 8: 33 × 128, 270 KiB.
pub(crate) struct Table {
    w: usize,
    half: usize,
    entries: Vec<Affine>,
}

/// The same kind of table stored as eight limbs per entry (x then y, Montgomery form), for the
/// constant-time full-row scan of signing: one loop of selects over eight words per entry.
pub(crate) struct CtTable {
    w: usize,
    half: usize,
    flat: Vec<[u64; 8]>,
}

impl CtTable {
    fn new(p: &Affine, w: usize) -> CtTable {
        let t = Table::new(p, w);
        let flat = t
            .entries
            .iter()
            .map(|a| {
                let ([x0, x1, x2, x3], [y0, y1, y2, y3]) = (a.x.0, a.y.0);
                [x0, x1, x2, x3, y0, y1, y2, y3]
            })
            .collect();
        CtTable {
            w: t.w,
            half: t.half,
            flat,
        }
    }

    fn rows(&self) -> std::slice::ChunksExact<'_, [u64; 8]> {
        self.flat.chunks_exact(self.half)
    }

    /// The signing table for the base point G, built once per process.
    pub(crate) fn base() -> &'static CtTable {
        static T: OnceLock<CtTable> = OnceLock::new();
        T.get_or_init(|| CtTable::new(&G, W_SIGN))
    }
}

impl Table {
    /// Builds the table of window `w` (2..=8) for a non-identity point (public data;
    /// variable-time).
    pub(crate) fn new(p: &Affine, w: usize) -> Table {
        let half = 1usize << (w - 1);
        let windows = 256 / w + 1;
        let mut proj = Vec::with_capacity(windows * half);
        let mut base = p.to_projective();
        for _ in 0..windows {
            let mut acc = base;
            proj.push(acc);
            for _ in 1..half {
                acc = acc.add(&base);
                proj.push(acc);
            }
            // next base = 2^w · base = 2 · (half · base) = 2 · acc
            base = acc.double();
        }
        Table {
            w,
            half,
            entries: batch_to_affine(&proj),
        }
    }

    fn rows(&self) -> std::slice::ChunksExact<'_, Affine> {
        self.entries.chunks_exact(self.half)
    }

    /// The wider verification table for G, built once per process on first use.
    pub(crate) fn base_verify() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        T.get_or_init(|| Table::new(&G, W_VERIFY_G))
    }
}

/// Bits [pos, pos + count) of k (count <= 63), zero beyond bit 255. `pos` is public.
#[inline(always)]
fn bits(k: &Limbs, pos: usize, count: usize) -> u64 {
    let limb = pos / 64;
    let off = pos % 64;
    let lo = k.get(limb).map_or(0, |w| w >> off);
    let hi = if off == 0 {
        0
    } else {
        k.get(limb + 1).map_or(0, |w| w << (64 - off))
    };
    (lo | hi) & ((1u64 << count) - 1)
}

/// Booth digit i of k for window w: returns (|d_i|, d_i < 0). Branch-free in k.
#[inline(always)]
pub(crate) fn booth_digit(k: &Limbs, i: usize, w: usize) -> (u32, u32) {
    // w+1 bits from bit w·i - 1 (a virtual zero bit below bit 0).
    let v = if i == 0 {
        bits(k, 0, w) << 1
    } else {
        bits(k, w * i - 1, w + 1)
    } as u32;
    let t = (v & 1) + (v >> 1);
    let neg = v >> w; // top bit: digit is t - 2^w
    let mask = 0u32.wrapping_sub(neg);
    let mag = (t & !mask) | (((1u32 << w).wrapping_sub(t)) & mask);
    (mag, neg)
}

/// k·G for a secret k, constant-time (k < 2^256).
pub(crate) fn mul_base_ct(k: &Limbs) -> Jacobian {
    mul_ct(CtTable::base(), k)
}

/// Constant-time read of digit i's entry from `row`: the whole row is scanned with `subtle`
/// constant-time selects over the eight words of each entry, then the entry is conditionally
/// negated. For a zero digit the result is
/// (0, 0) and the caller discards it. The digit (a piece of the secret scalar) is zeroized
/// before returning; the entry is the caller's to zeroize.
#[inline(always)]
fn lookup_ct(row: &[[u64; 8]], w: usize, k: &Limbs, i: usize) -> (Affine, Choice) {
    let (mut mag, mut neg) = booth_digit(k, i, w);
    // Hide the digit from the optimiser so the scan cannot be turned into an indexed load.
    let m = u64::from(std::hint::black_box(mag));
    let mut acc = [0u64; 8];
    for (j, e) in (1u64..).zip(row.iter()) {
        // `subtle` selects, not hand-made masks: an AND/OR scan with an arithmetic mask
        // measured faster but was compiled into code whose timing depended on the digit (the
        // dudect test `ct_sign` flagged it with |t| ≈ 60–800).
        let c = j.ct_eq(&m);
        for (o, v) in acc.iter_mut().zip(e.iter()) {
            o.conditional_assign(v, c);
        }
    }
    let [x0, x1, x2, x3, y0, y1, y2, y3] = acc;
    let mut q = Affine {
        x: Fe([x0, x1, x2, x3]),
        y: Fe([y0, y1, y2, y3]),
    };
    q.y = Fe::conditional_select(&q.y, &q.y.neg(), Choice::from(neg as u8));
    let nonzero = !mag.ct_eq(&0);
    mag.zeroize();
    neg.zeroize();
    acc.zeroize();
    (q, nonzero)
}

/// k·P from a table, constant-time in k, for any k < 2^256. The table entries read and the
/// partial sums (each tells which digit of k was used) are zeroized before returning; the
/// result is the caller's.
///
/// The additions use the incomplete Jacobian mixed addition. Its exceptional cases cannot
/// occur here:
/// * "accumulator is the identity" (all digits so far zero) is tracked by a constant-time flag,
///   and while it is set the entry itself is selected instead of the sum;
/// * "accumulator = entry" (a doubling): before row i the accumulator is A = Σ_{j<i} d_j·2^(wj)·P
///   with |A| < 2^(wi) (as integers, |d_j| ≤ 2^(w−1)), and the entry is d_i·2^(wi)·P with
///   |d_i| ≥ 1. For the W_SIGN = 6 table and i ≤ 41 both multipliers are below n/2 in absolute
///   value and differ, so the points differ. In the top row (i = 42, d_42 ∈ [0, 16] because
///   k < 2^256) A = k − d_42·2^252 equals the entry only if k ≡ d_42·2^253 (mod n); for each of
///   the 16 digit values the (at most two) k < 2^256 in that class have a different top digit
///   (checked by `top_row_has_no_doubling_case` below). So the case never arises for any k.
/// * "accumulator = −entry" gives Z = 0, the identity, which is the right answer (k ≡ 0).
pub(crate) fn mul_ct(table: &CtTable, k: &Limbs) -> Jacobian {
    let w = table.w;
    let mut rows = table.rows().enumerate();
    // Row 0: the accumulator is the identity, so take the entry itself (no addition).
    let mut acc = Jacobian::IDENTITY;
    let mut q = Affine::default();
    let mut sum = Jacobian::IDENTITY;
    let mut fresh = Jacobian::IDENTITY;
    let mut acc_is_identity = Choice::from(1);
    if let Some((i, row)) = rows.next() {
        let nonzero;
        (q, nonzero) = lookup_ct(row, w, k, i);
        sum = Jacobian::from_affine(&q);
        acc.conditional_assign(&sum, nonzero);
        acc_is_identity &= !nonzero;
    }
    for (i, row) in rows {
        let nonzero;
        (q, nonzero) = lookup_ct(row, w, k, i);
        sum = acc.add_mixed_incomplete(&q);
        fresh = Jacobian::from_affine(&q);
        sum.conditional_assign(&fresh, acc_is_identity);
        acc.conditional_assign(&sum, nonzero);
        acc_is_identity &= !nonzero;
    }
    q.zeroize();
    sum.zeroize();
    fresh.zeroize();
    acc
}

/// Adds Σ_i d_i·row_i[|d_i|] for the Booth digits of k to `acc`, variable-time.
#[inline(always)]
fn add_digits_vartime(acc: &mut Jacobian, table: &Table, k: &Limbs) {
    let w = table.w;
    for (i, row) in table.rows().enumerate() {
        let (mag, neg) = booth_digit(k, i, w);
        if mag == 0 {
            continue;
        }
        if let Some(e) = row.get(mag as usize - 1) {
            *acc = if neg == 1 {
                acc.add_mixed_vartime(&e.neg())
            } else {
                acc.add_mixed_vartime(e)
            };
        }
    }
}

/// a·G + b·P, variable-time (verification only: public scalars). The tables hold all the
/// multiples of the powers of 2^w needed, so there are no doublings: the two sums are simply
/// accumulated one after the other.
pub(crate) fn mul2_vartime(a: &Limbs, p_table: &Table, b: &Limbs) -> Jacobian {
    let mut acc = Jacobian::IDENTITY;
    add_digits_vartime(&mut acc, Table::base_verify(), a);
    add_digits_vartime(&mut acc, p_table, b);
    acc
}

#[cfg(test)]
mod tests {
    use super::super::scalar::N;
    use super::*;

    /// For the signing table: no k < 2^256 with top Booth digit d ≥ 1 satisfies
    /// k ≡ d·2^253 (mod n), the only way the top row's addition could be a doubling.
    #[test]
    fn top_row_has_no_doubling_case() {
        let top = 256 / W_SIGN;
        for d in 1u64..=16 {
            // d·2^253 mod n, then + n if still below 2^256.
            let mut x: Limbs = [0, 0, 0, d << 61];
            if d >= 8 {
                // d·2^253 ≥ 2^256: the limbs above overflowed; compute (d·2^253) mod n by
                // repeated doubling of d mod n instead.
                x = [d, 0, 0, 0];
                for _ in 0..253 {
                    x = super::super::scalar::add(&x, &x);
                }
            } else {
                x = super::super::scalar::reduce(&x);
            }
            let mut candidates = vec![x];
            let (xn, carry) = super::super::limbs::add(&x, &N);
            if carry == 0 {
                candidates.push(xn);
            }
            for k in candidates {
                let (mag, neg) = booth_digit(&k, top, W_SIGN);
                assert!(
                    !(neg == 0 && u64::from(mag) == d),
                    "k = {k:x?} has top digit {d}"
                );
            }
        }
    }
}
