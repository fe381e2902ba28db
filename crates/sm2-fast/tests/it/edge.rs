//! Edge cases: extreme secret keys and nonces, forced degenerate signatures, malformed
//! signatures and public keys, single-bit tampering.
use crate::common::*;
use num_bigint::BigUint;
use sm2::dsa::signature::hazmat::PrehashVerifier;
use sm2_fast::{arith, Error, SigningKey, VerifyingKey};

fn n() -> BigUint {
    big(&h32(N))
}
fn p() -> BigUint {
    big(&h32(P))
}
fn e_of(sk: &SigningKey, msg: &[u8]) -> [u8; 32] {
    digest(ID, &sk.public_key().to_sec1_uncompressed(), msg)
}
/// Both other libraries accept (r, s) for e under the key.
fn others_accept(pk: &[u8; 65], e: &[u8; 32], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let rc_vk = sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", pk).unwrap();
    let sig = sm2::dsa::Signature::from_scalars(*r, *s).unwrap();
    let ctx = libsm::sm2::signature::SigCtx::new();
    let ls_pk = ctx.load_pubkey(pk).unwrap();
    rc_vk.verify_prehash(e, &sig).is_ok()
        && ctx
            .verify_raw(e, &ls_pk, &libsm::sm2::signature::Signature::new(r, s))
            .unwrap()
}

#[test]
fn extreme_secret_keys() {
    let one = b32(&BigUint::from(1u32));
    let sk = SigningKey::from_bytes(&one).unwrap();
    let pk = sk.public_key().to_sec1_uncompressed();
    assert_eq!(hex::encode_upper(&pk[1..33]), GX);
    assert_eq!(hex::encode_upper(&pk[33..65]), GY);
    let nm2 = b32(&(n() - 2u32));
    for d in [one, nm2, b32(&(n() - 3u32)), b32(&BigUint::from(2u32))] {
        let sk = SigningKey::from_bytes(&d).unwrap();
        let pk = sk.public_key().to_sec1_uncompressed();
        let e = e_of(&sk, b"edge");
        let (r, s) = sk.sign_prehash(&e, &mut rand_core::OsRng);
        assert_eq!(sk.public_key().verify_prehash(&e, &r, &s), Ok(()));
        assert!(others_accept(&pk, &e, &r, &s));
    }
    // d = n-2 has public key -2G.
    let sk = SigningKey::from_bytes(&nm2).unwrap();
    let two = SigningKey::from_bytes(&b32(&BigUint::from(2u32))).unwrap();
    let (a, b) = (
        sk.public_key().to_sec1_uncompressed(),
        two.public_key().to_sec1_uncompressed(),
    );
    assert_eq!(a[..33], b[..33]);
    assert_eq!(big(&a[33..]) + big(&b[33..]), p());
}

#[test]
fn invalid_secret_keys_rejected() {
    let one = BigUint::from(1u32);
    for d in [
        BigUint::from(0u32),
        n() - 1u32,
        n(),
        n() + 1u32,
        p(),
        (&one << 256) - 1u32,
        (&one << 256) - 2u32,
        (&one << 256) - (&one << 224),
    ] {
        assert_eq!(
            SigningKey::from_bytes(&b32(&d)).err(),
            Some(Error::InvalidSecretKey),
            "{d:x}"
        );
    }
}

#[test]
fn extreme_nonces() {
    let sk = SigningKey::from_bytes(&h32(
        "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
    ))
    .unwrap();
    let vk = sk.public_key();
    let pk = vk.to_sec1_uncompressed();
    let e = e_of(&sk, b"nonce edges");
    for k in [
        BigUint::from(1u32),
        n() - 1u32,
        BigUint::from(2u32),
        n() - 2u32,
    ] {
        let (r, s) = sk.sign_prehash_with_k(&e, &b32(&k)).unwrap();
        assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
        assert!(others_accept(&pk, &e, &r, &s));
    }
    let one = BigUint::from(1u32);
    for k in [
        BigUint::from(0u32),
        n(),
        n() + 1u32,
        p(),
        (&one << 256) - 1u32,
    ] {
        assert_eq!(
            sk.sign_prehash_with_k(&e, &b32(&k)),
            Err(Error::InvalidNonce),
            "{k:x}"
        );
    }
    // e >= n is reduced like the other libraries do.
    let e_big = [0xFF; 32];
    let (r, s) = sk.sign_prehash(&e_big, &mut rand_core::OsRng);
    assert_eq!(vk.verify_prehash(&e_big, &r, &s), Ok(()));
    assert!(others_accept(&pk, &e_big, &r, &s));
}

/// x-coordinate of k·G (the engine's own table path, checked elsewhere against RustCrypto).
fn x_of_kg(k: &BigUint) -> BigUint {
    big(&arith::mul_base(&b32(k)).unwrap()[1..33])
}

#[test]
fn forced_degenerate_signatures_rejected() {
    let n = n();
    let d = BigUint::parse_bytes(
        b"3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
        16,
    )
    .unwrap();
    let sk = SigningKey::from_bytes(&b32(&d)).unwrap();
    let k = BigUint::parse_bytes(
        b"59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21",
        16,
    )
    .unwrap();
    let x1 = x_of_kg(&k) % &n;
    // r = e + x1 = 0  <=>  e = -x1
    let e = (&n - &x1) % &n;
    assert_eq!(
        sk.sign_prehash_with_k(&b32(&e), &b32(&k)),
        Err(Error::InvalidNonce)
    );
    // r + k = n  <=>  e = n - k - x1
    let e = (&n * 2u32 - &k - &x1) % &n;
    assert_eq!(
        sk.sign_prehash_with_k(&b32(&e), &b32(&k)),
        Err(Error::InvalidNonce)
    );
    // Also as e + n (unreduced 256-bit e) where that fits.
    let e2 = &e + &n;
    if e2.bits() <= 256 {
        assert_eq!(
            sk.sign_prehash_with_k(&b32(&e2), &b32(&k)),
            Err(Error::InvalidNonce)
        );
    }
    // s = 0  <=>  k = r·d  <=>  r = k·d^-1  <=>  e = k·d^-1 - x1
    let dinv = d.modpow(&(&n - 2u32), &n);
    let e = (&k * &dinv + &n - &x1) % &n;
    assert_eq!(
        sk.sign_prehash_with_k(&b32(&e), &b32(&k)),
        Err(Error::InvalidNonce)
    );
    // Neighbouring e values sign fine.
    let e = (&e + 1u32) % &n;
    assert!(sk.sign_prehash_with_k(&b32(&e), &b32(&k)).is_ok());
}

#[test]
fn malformed_signatures_rejected() {
    let sk = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let vk = sk.public_key();
    let e = e_of(&sk, b"sig edges");
    let (r, s) = sk.sign_prehash(&e, &mut rand_core::OsRng);
    assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
    let zero = [0u8; 32];
    let nb = h32(N);
    let n1 = b32(&(n() + 1u32));
    let ff = [0xFF; 32];
    for (rr, ss) in [
        (zero, s),
        (r, zero),
        (zero, zero),
        (nb, s),
        (r, nb),
        (n1, s),
        (r, n1),
        (ff, s),
        (r, ff),
    ] {
        assert_eq!(
            vk.verify_prehash(&e, &rr, &ss),
            Err(Error::InvalidSignature)
        );
    }
    // t = r + s = n.
    let s_t0 = b32(&(n() - big(&r)));
    assert_eq!(
        vk.verify_prehash(&e, &r, &s_t0),
        Err(Error::InvalidSignature)
    );
    // r ± n style aliases of a valid r are out of range.
    let r_alias = big(&r) + n();
    if r_alias.bits() <= 256 {
        assert_eq!(
            vk.verify_prehash(&e, &b32(&r_alias), &s),
            Err(Error::InvalidSignature)
        );
    }
    // -s (n - s) is not valid either.
    assert_eq!(
        vk.verify_prehash(&e, &r, &b32(&(n() - big(&s)))),
        Err(Error::InvalidSignature)
    );
}

#[test]
fn single_bit_flips_rejected() {
    let sk = SigningKey::from_bytes(&[0x17; 32]).unwrap();
    let vk = sk.public_key();
    let pk = vk.to_sec1_uncompressed();
    let e = e_of(&sk, b"flip");
    let (r, s) = sk.sign_prehash(&e, &mut rand_core::OsRng);
    for bit in 0..256 {
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        let mut x = e;
        x[byte] ^= mask;
        assert!(vk.verify_prehash(&x, &r, &s).is_err(), "e bit {bit}");
        let mut x = r;
        x[byte] ^= mask;
        assert!(vk.verify_prehash(&e, &x, &s).is_err(), "r bit {bit}");
        let mut x = s;
        x[byte] ^= mask;
        assert!(vk.verify_prehash(&e, &r, &x).is_err(), "s bit {bit}");
    }
    // Public key bit flips: either the encoding is refused or the signature fails.
    for bit in 0..(64 * 8) {
        let mut x = pk;
        x[1 + bit / 8] ^= 1 << (bit % 8);
        if let Ok(vk2) = VerifyingKey::from_sec1(&x) {
            assert!(vk2.verify_prehash(&e, &r, &s).is_err(), "pk bit {bit}");
        }
    }
    // Secret key bit flips give keys under which the signature fails.
    for bit in [0usize, 1, 100, 200, 254] {
        let mut d = [0x17; 32];
        d[31 - bit / 8] ^= 1 << (bit % 8);
        let other = SigningKey::from_bytes(&d).unwrap().public_key();
        assert!(other.verify_prehash(&e, &r, &s).is_err(), "d bit {bit}");
    }
}

#[test]
fn invalid_public_keys_rejected() {
    let g = {
        let mut v = vec![4u8];
        v.extend_from_slice(&h32(GX));
        v.extend_from_slice(&h32(GY));
        v
    };
    assert!(VerifyingKey::from_sec1(&g).is_ok());
    let reject = |b: &[u8], why: &str| {
        assert_eq!(
            VerifyingKey::from_sec1(b).err(),
            Some(Error::InvalidPublicKey),
            "{why}"
        );
    };
    // Off-curve.
    let mut off = g.clone();
    off[64] ^= 1;
    reject(&off, "y+1");
    let mut off = g.clone();
    off[32] ^= 0x10;
    reject(&off, "x changed");
    // Identity encodings.
    reject(&[0u8], "identity 00");
    reject(&[0u8; 65], "all zero");
    let mut z = [0u8; 65];
    z[0] = 4;
    reject(&z, "04 || 0 || 0");
    // Coordinates >= p, including x + p / y + p aliases of G.
    let pb = p();
    let xp_big = big(&h32(GX)) + &pb;
    if xp_big.bits() <= 256 {
        let mut xp = g.clone();
        xp[1..33].copy_from_slice(&b32(&xp_big));
        reject(&xp, "x + p");
    }
    let yp = big(&h32(GY)) + &pb;
    if yp.bits() <= 256 {
        let mut v = g.clone();
        v[33..].copy_from_slice(&b32(&yp));
        reject(&v, "y + p");
    }
    let mut v = g.clone();
    v[1..33].copy_from_slice(&b32(&pb));
    reject(&v, "x = p");
    let mut v = g.clone();
    v[33..].copy_from_slice(&[0xFF; 32]);
    reject(&v, "y = 2^256-1");
    // Wrong lengths and prefixes.
    reject(&[], "empty");
    reject(&g[..64], "64 bytes");
    let mut long = g.clone();
    long.push(0);
    reject(&long, "66 bytes");
    for tag in [0u8, 1, 5, 6, 7, 0xFF] {
        let mut v = g.clone();
        v[0] = tag;
        reject(&v, "bad tag");
    }
    let mut c = vec![2u8];
    c.extend_from_slice(&h32(GX));
    assert!(VerifyingKey::from_sec1(&c).is_ok());
    let mut c4 = c.clone();
    c4[0] = 4;
    reject(&c4, "33 bytes with 04");
    let mut c65 = g.clone();
    c65[0] = 2;
    reject(&c65, "65 bytes with 02");
    // Compressed x with no square root, and x >= p.
    let mut found = false;
    for i in 0u8..50 {
        let mut v = c.clone();
        v[32] = i;
        let x = big(&v[1..]);
        let rhs = (&x * &x * &x + &pb * 3u32 - &x * 3u32 + big(&h32(B))) % &pb;
        let is_sq = rhs.modpow(&((&pb - 1u32) >> 1), &pb) == BigUint::from(1u32)
            || rhs == BigUint::from(0u32);
        if !is_sq {
            reject(&v, "no sqrt");
            found = true;
        } else {
            assert!(VerifyingKey::from_sec1(&v).is_ok());
        }
    }
    assert!(found);
    let mut v = c.clone();
    v[1..].copy_from_slice(&b32(&pb));
    reject(&v, "compressed x = p");
}

#[test]
fn types_are_send_sync_and_debug_hides_secret() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SigningKey>();
    assert_send_sync::<VerifyingKey>();
    let sk = SigningKey::from_bytes(&[0x42; 32]).unwrap();
    let dbg = format!("{sk:?}");
    assert!(!dbg.contains(&"42".repeat(8)), "{dbg}");
    assert!(format!("{:?}", sk.public_key()).contains("04"));
    assert_eq!(Error::InvalidSignature.to_string(), "invalid SM2 signature");
    let _: &dyn std::error::Error = &Error::InvalidNonce;
}
