//! Differential tests against libsm 0.6 and RustCrypto `sm2` 0.13, both directions.
//!
//! Case count: env `FAST_SM2_CASES` (default 5,000 for CI; the nightly-size run uses 100,000:
//! `FAST_SM2_CASES=100000 cargo test -p sm2-fast --test it differential:: -- --nocapture`, with
//! `[profile.test] opt-level = 2` or `--release`).
//! Seed: env `FAST_SM2_SEED` (default fixed, so failures reproduce).
use crate::common::*;
use num_bigint::BigUint;
use sm2::dsa::signature::{RandomizedSigner, Verifier};
use sm2::elliptic_curve::sec1::ToEncodedPoint;
use sm2_fast::{SigningKey, VerifyingKey};

#[test]
fn differential_against_libsm_and_rustcrypto() {
    let cases = cases(5_000);
    let seed = std::env::var("FAST_SM2_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026);
    let n = BigUint::from_bytes_be(&h32(N));
    let mut rng = TestRng(seed);
    let ctx = libsm::sm2::signature::SigCtx::new();
    let mut counts = [0usize; 6];

    for case in 0..cases {
        // Secret key in [1, n-2].
        let d_big = BigUint::from_bytes_be(&rng.bytes32()) % (&n - 2u32) + 1u32;
        let d = b32(&d_big);
        let msg_len = (rng.next_u64() % 200) as usize;
        let msg: Vec<u8> = (0..msg_len).map(|_| rng.next_u64() as u8).collect();

        let sk = SigningKey::from_bytes(&d).unwrap();
        let vk = sk.public_key();
        let pk = vk.to_sec1_uncompressed();

        // Public keys derived identically.
        let rc_sk = sm2::dsa::SigningKey::from_bytes("1234567812345678", &d.into()).unwrap();
        let rc_vk = rc_sk.verifying_key().clone();
        assert_eq!(
            rc_vk.as_affine().to_encoded_point(false).as_bytes(),
            &pk[..],
            "case {case}"
        );
        let ls_pk = ctx.pk_from_sk(&d_big).unwrap();
        assert_eq!(
            ctx.serialize_pubkey(&ls_pk, false).unwrap(),
            pk.to_vec(),
            "case {case}"
        );
        let e = digest(ID, &pk, &msg);
        assert_eq!(ctx.hash("1234567812345678", &ls_pk, &msg).unwrap(), e);

        // Ours -> theirs (random k from the RNG path).
        let (r, s) = sk.sign_prehash(&e, &mut rng);
        let rc_sig = sm2::dsa::Signature::from_scalars(r, s).unwrap();
        assert!(
            rc_vk.verify(&msg, &rc_sig).is_ok(),
            "case {case}: rustcrypto rejects ours"
        );
        let ls_sig = libsm::sm2::signature::Signature::new(&r, &s);
        assert!(
            ctx.verify(&msg, &ls_pk, &ls_sig).unwrap(),
            "case {case}: libsm rejects ours"
        );
        assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
        counts[0] += 1;

        // Theirs -> ours.
        let rc_sig: sm2::dsa::Signature = rc_sk.sign_with_rng(&mut rand_core::OsRng, &msg);
        let (rr, rs) = (rc_sig.r().to_bytes().into(), rc_sig.s().to_bytes().into());
        assert_eq!(
            vk.verify_prehash(&e, &rr, &rs),
            Ok(()),
            "case {case}: we reject rustcrypto's"
        );
        counts[1] += 1;
        let ls_sig = ctx.sign(&msg, &d_big, &ls_pk).unwrap();
        let (lr, ls) = (b32(ls_sig.get_r()), b32(ls_sig.get_s()));
        assert_eq!(
            vk.verify_prehash(&e, &lr, &ls),
            Ok(()),
            "case {case}: we reject libsm's"
        );
        counts[2] += 1;

        // Deterministic k against a big-integer reference: x1 = x(k·G) taken from RustCrypto's
        // public key for secret k; r = e + x1, s = (1+d)^-1 (k - r d) mod n.
        let k_big = BigUint::from_bytes_be(&rng.bytes32()) % (&n - 1u32) + 1u32;
        let k = b32(&k_big);
        let kg = sm2::SecretKey::from_bytes(&k.into()).unwrap().public_key();
        let x1 = BigUint::from_bytes_be(&kg.as_affine().to_encoded_point(false).as_bytes()[1..33]);
        let e_big = BigUint::from_bytes_be(&e);
        let r_big = (&e_big + &x1) % &n;
        let got = sk.sign_prehash_with_k(&e, &k);
        if r_big == BigUint::from(0u32) || (&r_big + &k_big) == n {
            assert!(got.is_err());
        } else {
            let inv = (&d_big + 1u32).modpow(&(&n - 2u32), &n);
            let s_big = (inv * ((&k_big + &n * &n - &r_big * &d_big) % &n)) % &n;
            let (r2, s2) = got.unwrap();
            assert_eq!((r2, s2), (b32(&r_big), b32(&s_big)), "case {case}");
            counts[3] += 1;
        }

        // Verifying key parsed from SEC1 (both encodings) agrees; a changed message fails.
        if case % 16 == 0 {
            let vk2 = VerifyingKey::from_sec1(&pk).unwrap();
            assert_eq!(vk2.verify_prehash(&e, &lr, &ls), Ok(()));
            let comp = rc_vk.as_affine().to_encoded_point(true);
            let vk3 = VerifyingKey::from_sec1(comp.as_bytes()).unwrap();
            assert_eq!(vk3.to_sec1_uncompressed(), pk);
            let mut e_bad = e;
            e_bad[(rng.next_u64() % 32) as usize] ^= 1 << (rng.next_u64() % 8);
            assert!(vk3.verify_prehash(&e_bad, &r, &s).is_err());
            counts[4] += 1;
        }
    }
    println!(
        "differential: {cases} cases; ours->rustcrypto+libsm {}, rustcrypto->ours {}, libsm->ours {}, \
         deterministic-k vs bigint {}, sec1 re-parse+tamper {}",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
}
