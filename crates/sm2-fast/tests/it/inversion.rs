//! The constant-time safegcd inversion (mod p and mod n) against known inverses, the Fermat
//! inversion it replaced, and a big-integer reference; and the Jacobian fixed-base
//! multiplication on the scalars closest to its one excluded exceptional case.
use crate::common::*;
use num_bigint::BigUint;
use sm2_fast::arith;

/// (x, x⁻¹ mod p) and (x, x⁻¹ mod n), computed independently (Python's `pow(x, -1, m)`).
const P_VECTORS: &[(&str, &str)] = &[
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "7FFFFFFF7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF800000008000000000000000",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000003",
        "55555554FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFAAAAAAAB0000000000000000",
    ),
    (
        "0000000000000000000000000000000000000000000000001234567890ABCDEF",
        "FD51C86C937575318D37CA5683C05F0DD65368463A044EADBA5C68A59FF14EE1",
    ),
    (
        GX,
        "053B878FB82E213C17E554B9A574B7BD31775222704B7FD9C7D6F8441026CD80",
    ),
];
const N_VECTORS: &[(&str, &str)] = &[
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "7FFFFFFF7FFFFFFFFFFFFFFFFFFFFFFFB901EFB590E30295A9DDFA049CEAA092",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000003",
        "AAAAAAA9FFFFFFFFFFFFFFFFFFFFFFFFA157EA476BD958C78D27F806268E2B6D",
    ),
    (
        "0000000000000000000000000000000000000000000000001234567890ABCDEF",
        "104CBFFB689F38BF9BA60FBBAC604AD946ECF9011008EB41BDCF3E69320E18D1",
    ),
];

#[test]
fn known_inverses() {
    for (x, inv) in P_VECTORS {
        assert_eq!(arith::fe_invert(&h32(x)), Some(h32(inv)), "mod p: {x}");
        assert_eq!(arith::fe_invert(&h32(inv)), Some(h32(x)), "mod p: {inv}");
    }
    for (x, inv) in N_VECTORS {
        assert_eq!(arith::sc_invert(&h32(x)), Some(h32(inv)), "mod n: {x}");
        assert_eq!(arith::sc_invert(&h32(inv)), Some(h32(x)), "mod n: {inv}");
    }
    // 0 maps to 0, as with Fermat; 1 and −1 are their own inverses.
    for (m, inv) in [
        (P, arith::fe_invert as fn(&[u8; 32]) -> Option<[u8; 32]>),
        (N, arith::sc_invert),
    ] {
        let m = big(&h32(m));
        assert_eq!(inv(&[0; 32]), Some([0; 32]));
        let one = b32(&BigUint::from(1u32));
        assert_eq!(inv(&one), Some(one));
        let minus_one = b32(&(&m - 1u32));
        assert_eq!(inv(&minus_one), Some(minus_one));
        assert_eq!(inv(&b32(&m)), None, "m itself is out of range");
    }
}

/// Inputs shaped to stress divsteps: powers of two (long runs of halvings), m minus powers
/// of two, values with long runs of ones, tiny and huge values, plus random ones.
fn stress_inputs(m: &BigUint, random: usize, seed: u64) -> Vec<BigUint> {
    let one = BigUint::from(1u32);
    let mut v = Vec::new();
    for k in 0..256u32 {
        v.push(&one << k);
        v.push(m - (&one << k));
        v.push((&one << k) - 1u32);
        v.push(m >> k);
    }
    let mut rng = TestRng(seed);
    for _ in 0..random {
        v.push(big(&rng.bytes32()));
        // Small values: the gcd runs longest in terms of swaps.
        v.push(BigUint::from(rng.next_u64() >> (rng.next_u64() % 64)));
    }
    v.into_iter()
        .map(|x| x % m)
        .filter(|x| *x != BigUint::from(0u32))
        .collect()
}

#[test]
fn safegcd_matches_fermat_and_bigint_mod_p() {
    let p = big(&h32(P));
    for x in stress_inputs(&p, 3000, 11) {
        let b = b32(&x);
        let got = arith::fe_invert(&b).unwrap();
        assert_eq!(Some(got), arith::fe_invert_fermat(&b), "x = {x:x}");
        assert_eq!((big(&got) * &x) % &p, BigUint::from(1u32), "x = {x:x}");
    }
}

#[test]
fn safegcd_matches_fermat_and_bigint_mod_n() {
    let n = big(&h32(N));
    for x in stress_inputs(&n, 3000, 12) {
        let b = b32(&x);
        let got = arith::sc_invert(&b).unwrap();
        assert_eq!(Some(got), arith::sc_invert_fermat(&b), "x = {x:x}");
        assert_eq!((big(&got) * &x) % &n, BigUint::from(1u32), "x = {x:x}");
    }
}

/// The signing multiplication adds with an incomplete formula; the only way its top-row
/// addition could be a doubling is k ≡ d·2^253 (mod n) with top digit d. Those k (and their
/// neighbours) must still give the right point.
#[test]
fn fixed_base_near_the_excluded_doubling_case() {
    let n = big(&h32(N));
    let one = BigUint::from(1u32);
    for d in 1u32..=16 {
        let k = (BigUint::from(d) << 253u32) % &n;
        for cand in [k.clone(), &k + &n, &k + 1u32, &k - 1u32, &n - &k] {
            if cand >= (&one << 256u32) {
                continue;
            }
            let kb = b32(&cand);
            assert_eq!(
                arith::mul_base(&kb),
                arith::mul_base_ladder(&kb),
                "k = {cand:x}"
            );
        }
    }
    // Multiples of the row bases, where all but one or two digits are zero.
    for shift in (0..256u32).step_by(6) {
        for m in [1u32, 2, 31, 32, 33, 63] {
            let k = (BigUint::from(m) << shift) % (&one << 256u32);
            let kb = b32(&k);
            assert_eq!(
                arith::mul_base(&kb),
                arith::mul_base_ladder(&kb),
                "k = {k:x}"
            );
        }
    }
}
