//! Any d, e and k: loading and signing never panic; a signature made with k verifies under the
//! key, and the same signature with one bit of r or s flipped does not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sm2_fast::SigningKey;

fuzz_target!(|input: ([u8; 32], [u8; 32], [u8; 32], u8)| {
    let (d, e, k, bit) = input;
    let Ok(sk) = SigningKey::from_bytes(&d) else {
        return;
    };
    let Ok((r, s)) = sk.sign_prehash_with_k(&e, &k) else {
        return;
    };
    let vk = sk.public_key();
    assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
    let (mut r2, mut s2) = (r, s);
    let byte = usize::from(bit / 8) % 32;
    if bit & 1 == 0 {
        r2[byte] ^= 1 << (bit % 8);
    } else {
        s2[byte] ^= 1 << (bit % 8);
    }
    assert!(vk.verify_prehash(&e, &r2, &s2).is_err());
});
