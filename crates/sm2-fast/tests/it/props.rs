//! Property tests: sign/verify round trip, rejection of tampered signatures, parse/encode
//! round trip, and "never panics" on arbitrary inputs.
use crate::common as fast_sm2;
use proptest::prelude::*;
use sm2_fast::{Error, SigningKey, VerifyingKey};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip_and_tamper(d in any::<[u8; 32]>(), e in any::<[u8; 32]>(), seed in any::<u64>(),
                             which in 0usize..4, bit in 0usize..256) {
        let sk = match SigningKey::from_bytes(&d) { Ok(k) => k, Err(_) => return Ok(()) };
        let vk = sk.public_key();
        let (r, s) = sk.sign_prehash(&e, &mut fast_sm2::TestRng(seed));
        prop_assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
        let vk2 = VerifyingKey::from_sec1(&vk.to_sec1_uncompressed()).unwrap();
        prop_assert_eq!(vk2.to_sec1_uncompressed(), vk.to_sec1_uncompressed());
        prop_assert_eq!(vk2.verify_prehash(&e, &r, &s), Ok(()));
        let (mut e2, mut r2, mut s2) = (e, r, s);
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        match which {
            0 => e2[byte] ^= mask,
            1 => r2[byte] ^= mask,
            2 => s2[byte] ^= mask,
            _ => { r2 = s; s2 = r; }
        }
        if (e2, r2, s2) != (e, r, s) {
            prop_assert_eq!(vk.verify_prehash(&e2, &r2, &s2), Err(Error::InvalidSignature));
        }
    }

    #[test]
    fn deterministic_k_matches_random_path_verification(d in any::<[u8; 32]>(), e in any::<[u8; 32]>(), k in any::<[u8; 32]>()) {
        let sk = match SigningKey::from_bytes(&d) { Ok(k) => k, Err(_) => return Ok(()) };
        match sk.sign_prehash_with_k(&e, &k) {
            Ok((r, s)) => {
                prop_assert_eq!(sk.public_key().verify_prehash(&e, &r, &s), Ok(()));
                prop_assert_eq!(sk.sign_prehash_with_k(&e, &k), Ok((r, s)));
            }
            Err(err) => prop_assert_eq!(err, Error::InvalidNonce),
        }
    }

    #[test]
    fn arbitrary_inputs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                                    e in any::<[u8; 32]>(), r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
        if let Ok(vk) = VerifyingKey::from_sec1(&bytes) {
            let _ = vk.verify_prehash(&e, &r, &s);
        }
        let _ = SigningKey::from_bytes(&r).map(|k| k.sign_prehash_with_k(&e, &s));
    }

    #[test]
    fn safegcd_inverse_equals_fermat(x in any::<[u8; 32]>(), shift in 0u32..256) {
        use sm2_fast::arith;
        // Also a shifted-down copy, to reach small values with many halvings.
        let mut small = [0u8; 32];
        let v = fast_sm2::big(&x) >> shift;
        let vb = v.to_bytes_be();
        if let Some(dst) = small.get_mut(32 - vb.len()..) {
            dst.copy_from_slice(&vb);
        }
        for b in [x, small] {
            prop_assert_eq!(arith::fe_invert(&b), arith::fe_invert_fermat(&b));
            prop_assert_eq!(arith::sc_invert(&b), arith::sc_invert_fermat(&b));
        }
    }
}
