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
use super::point::{batch_to_affine, Affine, Projective, G};
use std::sync::OnceLock;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// Window width in bits.
pub(crate) const W: usize = 6;
/// Entries per row: multiples 1..=2^(W-1).
pub(crate) const HALF: usize = 1 << (W - 1);
/// Number of rows; W·WINDOWS must exceed 256 so that the top Booth digit needs no carry.
pub(crate) const WINDOWS: usize = 256 / W + 1;

/// One row of a table: multiples 1..=HALF of 2^(W·i)·P.
pub(crate) type Row = [Affine; HALF];

/// A fixed-base table for one point (about 88 KiB for W = 6).
pub(crate) struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Builds the table for a non-identity point (public data; variable-time).
    pub(crate) fn new(p: &Affine) -> Table {
        let mut proj = Vec::with_capacity(WINDOWS * HALF);
        let mut base = p.to_projective();
        for _ in 0..WINDOWS {
            let mut acc = base;
            proj.push(acc);
            for _ in 1..HALF {
                acc = acc.add(&base);
                proj.push(acc);
            }
            // next base = 2^W · base = 2 · (HALF · base) = 2 · acc
            base = acc.double();
        }
        let aff = batch_to_affine(&proj);
        let rows = aff
            .chunks_exact(HALF)
            .map(|c| {
                let mut row = [Affine::default(); HALF];
                row.copy_from_slice(c);
                row
            })
            .collect();
        Table { rows }
    }

    /// The table for the base point G, built once per process.
    pub(crate) fn base() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        T.get_or_init(|| Table::new(&G))
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

/// Booth digit i of k: returns (|d_i|, d_i < 0). Branch-free in k.
#[inline(always)]
pub(crate) fn booth_digit(k: &Limbs, i: usize) -> (u32, u32) {
    // W+1 bits from bit W·i - 1 (a virtual zero bit below bit 0).
    let v = if i == 0 {
        bits(k, 0, W) << 1
    } else {
        bits(k, W * i - 1, W + 1)
    } as u32;
    let t = (v & 1) + (v >> 1);
    let neg = v >> W; // top bit: digit is t - 2^W
    let mask = 0u32.wrapping_sub(neg);
    let mag = (t & !mask) | (((1u32 << W).wrapping_sub(t)) & mask);
    (mag, neg)
}

/// k·G for a secret k, constant-time (k < 2^256; k·G must be computed for k in [1, n)).
pub(crate) fn mul_base_ct(k: &Limbs) -> Projective {
    mul_ct(Table::base(), k)
}

/// Constant-time read of digit i's entry from `row`: the whole row is scanned with
/// constant-time selects, then the entry is conditionally negated. For a zero digit the
/// result is (0, 0) and the caller discards it. The digit (a piece of the secret scalar) is
/// zeroized before returning; the entry is the caller's to zeroize.
#[inline(always)]
fn lookup_ct(row: &Row, k: &Limbs, i: usize) -> (Affine, Choice) {
    let (mut mag, mut neg) = booth_digit(k, i);
    let mut q = Affine::default();
    for (j, e) in row.iter().enumerate() {
        q.conditional_assign(e, (j as u32 + 1).ct_eq(&mag));
    }
    q.y = Fe::conditional_select(&q.y, &q.y.neg(), Choice::from(neg as u8));
    let nonzero = !mag.ct_eq(&0);
    mag.zeroize();
    neg.zeroize();
    (q, nonzero)
}

/// k·P from a table, constant-time in k. The table entries read and the partial sums (each
/// tells which digit of k was used) are zeroized before returning; the result is the caller's.
pub(crate) fn mul_ct(table: &Table, k: &Limbs) -> Projective {
    let mut rows = table.rows.iter().enumerate();
    // Row 0: the accumulator is the identity, so take the entry itself (no addition).
    let mut acc = Projective::IDENTITY;
    let mut q = Affine::default();
    let mut sum = Projective::IDENTITY;
    if let Some((i, row)) = rows.next() {
        let nonzero;
        (q, nonzero) = lookup_ct(row, k, i);
        sum = q.to_projective();
        acc.conditional_assign(&sum, nonzero);
    }
    for (i, row) in rows {
        let nonzero;
        (q, nonzero) = lookup_ct(row, k, i);
        sum = acc.add_mixed(&q);
        acc.conditional_assign(&sum, nonzero);
    }
    q.zeroize();
    sum.zeroize();
    acc
}

#[inline(always)]
fn add_digit_vartime(acc: &mut Projective, row: &Row, k: &Limbs, i: usize) {
    let (mag, neg) = booth_digit(k, i);
    if mag == 0 {
        return;
    }
    if let Some(e) = row.get(mag as usize - 1) {
        *acc = if neg == 1 {
            acc.add_mixed(&e.neg())
        } else {
            acc.add_mixed(e)
        };
    }
}

/// a·G + b·P, variable-time (verification only: public scalars).
pub(crate) fn mul2_vartime(a: &Limbs, p_table: &Table, b: &Limbs) -> Projective {
    let g_table = Table::base();
    let mut acc = Projective::IDENTITY;
    for (i, (gr, pr)) in g_table.rows.iter().zip(p_table.rows.iter()).enumerate() {
        add_digit_vartime(&mut acc, gr, a, i);
        add_digit_vartime(&mut acc, pr, b, i);
    }
    acc
}
