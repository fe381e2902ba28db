//! Field (mod p) and scalar (mod n) arithmetic against a `num-bigint` reference, on random
//! inputs and on values near 0, p, n and 2^256; plus the constant-time fixed-base
//! multiplication against a plain double-and-add.
use crate::common::*;
use num_bigint::BigUint;
use sm2_fast::arith;

/// Interesting values below modulus m: 0, 1, 2, m-1, m-2, m-2^32, m-2^64, 2^255, 2^224, …
fn specials(m: &BigUint) -> Vec<BigUint> {
    let one = BigUint::from(1u32);
    let mut v = vec![
        BigUint::from(0u32),
        one.clone(),
        BigUint::from(2u32),
        BigUint::from(3u32),
        m - 1u32,
        m - 2u32,
        m - 3u32,
        m - (&one << 32),
        m - (&one << 64),
        m - (&one << 128),
        &one << 255,
        (&one << 255) - 1u32,
        &one << 224,
        &one << 96,
        &one << 64,
        (&one << 64) - 1u32,
        (&one << 192) - 1u32,
        m >> 1,
        (m >> 1) + 1u32,
    ];
    v.retain(|x| x < m);
    v
}

fn inputs(m: &BigUint, random: usize, seed: u64) -> Vec<BigUint> {
    let mut rng = TestRng(seed);
    let mut v = specials(m);
    for i in 0..random {
        let mut b = rng.bytes32();
        // Mix in values with long runs of ones/zeros (carry-heavy limbs).
        match i % 4 {
            1 => b[..12].fill(0xff),
            2 => b[20..].fill(0xff),
            3 => b[4..16].fill(0),
            _ => {}
        }
        v.push(big(&b) % m);
    }
    v
}

fn check_field_like(
    m: &BigUint,
    seed: u64,
    mul: fn(&[u8; 32], &[u8; 32]) -> Option<[u8; 32]>,
    add: fn(&[u8; 32], &[u8; 32]) -> Option<[u8; 32]>,
    sub: fn(&[u8; 32], &[u8; 32]) -> Option<[u8; 32]>,
    inv: fn(&[u8; 32]) -> Option<[u8; 32]>,
) {
    let xs = inputs(m, 300, seed);
    let ys = inputs(m, 300, seed ^ 0xdead_beef);
    for (i, a) in xs.iter().enumerate() {
        for b in ys.iter().skip(i % 7).step_by(7) {
            let (ab, bb) = (b32(a), b32(b));
            assert_eq!(big(&mul(&ab, &bb).unwrap()), (a * b) % m, "mul {a:x} {b:x}");
            assert_eq!(big(&add(&ab, &bb).unwrap()), (a + b) % m, "add {a:x} {b:x}");
            assert_eq!(
                big(&sub(&ab, &bb).unwrap()),
                (a + m - b) % m,
                "sub {a:x} {b:x}"
            );
        }
        let ab = b32(a);
        let expect_inv = a.modpow(&(m - 2u32), m);
        assert_eq!(big(&inv(&ab).unwrap()), expect_inv, "inv {a:x}");
        if *a != BigUint::from(0u32) {
            assert_eq!((a * &expect_inv) % m, BigUint::from(1u32));
        }
    }
    // Out-of-range inputs are refused, never reduced silently or panicking.
    for bad in [m.clone(), m + 1u32, (BigUint::from(1u32) << 256) - 1u32] {
        let b = b32(&bad);
        assert!(mul(&b, &b).is_none() && add(&b, &b).is_none() && sub(&b, &b).is_none());
        assert!(inv(&b).is_none());
    }
}

#[test]
fn field_ops_match_bigint() {
    let p = big(&h32(P));
    check_field_like(
        &p,
        1,
        arith::fe_mul,
        arith::fe_add,
        arith::fe_sub,
        arith::fe_invert,
    );
    for a in inputs(&p, 500, 2) {
        assert_eq!(
            big(&arith::fe_square(&b32(&a)).unwrap()),
            (&a * &a) % &p,
            "square {a:x}"
        );
    }
}

#[test]
fn field_sqrt_matches_bigint() {
    let p = big(&h32(P));
    let exp = (&p + 1u32) >> 2;
    for a in inputs(&p, 300, 3) {
        let cand = a.modpow(&exp, &p);
        let is_square = (&cand * &cand) % &p == a;
        match arith::fe_sqrt(&b32(&a)).unwrap() {
            Some(r) => {
                assert!(is_square);
                assert_eq!((big(&r) * big(&r)) % &p, a);
            }
            None => assert!(!is_square),
        }
    }
}

#[test]
fn scalar_ops_match_bigint() {
    let n = big(&h32(N));
    check_field_like(
        &n,
        4,
        arith::sc_mul,
        arith::sc_add,
        arith::sc_sub,
        arith::sc_invert,
    );
    let one = BigUint::from(1u32);
    let mut rng = TestRng(5);
    let mut vals = vec![
        n.clone(),
        &n + 1u32,
        (&one << 256) - 1u32,
        &n - 1u32,
        BigUint::from(0u32),
    ];
    vals.extend((0..200).map(|_| big(&rng.bytes32())));
    for v in vals {
        assert_eq!(big(&arith::sc_reduce(&b32(&v))), &v % &n);
    }
}

#[test]
fn fixed_base_table_matches_double_and_add() {
    let n = big(&h32(N));
    let mut ks: Vec<[u8; 32]> = vec![
        b32(&BigUint::from(1u32)),
        b32(&BigUint::from(2u32)),
        b32(&BigUint::from(31u32)),
        b32(&BigUint::from(32u32)),
        b32(&BigUint::from(33u32)),
        b32(&(&n - 1u32)),
        b32(&(&n - 2u32)),
        b32(&((BigUint::from(1u32) << 255) + 1u32)),
        [0x55; 32],
        [0xAA; 32],
        [0xFF; 32], // >= n: still an integer multiple of G
        [0x80; 32],
        [0x7F; 32],
    ];
    let mut rng = TestRng(6);
    ks.extend((0..200).map(|_| rng.bytes32()));
    for k in &ks {
        assert_eq!(
            arith::mul_base(k),
            arith::mul_base_ladder(k),
            "k = {}",
            hex::encode(k)
        );
    }
    assert_eq!(arith::mul_base(&[0; 32]), None);
    assert_eq!(arith::mul_base(&b32(&n)), None);
    assert_eq!(
        arith::mul_base(&b32(&(&n + 1u32))),
        arith::mul_base(&b32(&BigUint::from(1u32)))
    );
}
