//! Any bytes as a SEC1 public key: never panics; an accepted key re-encodes to a point that
//! parses back to itself, and verifying any (e, r, s) under it never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sm2_fast::VerifyingKey;

fuzz_target!(|data: &[u8]| {
    let (key, rest) = data.split_at(data.len().min(65));
    if let Ok(vk) = VerifyingKey::from_sec1(key) {
        let sec1 = vk.to_sec1_uncompressed();
        let again = VerifyingKey::from_sec1(&sec1).expect("re-encoded key parses");
        assert_eq!(again.to_sec1_uncompressed(), sec1);
        if let Ok(ers) = <[u8; 96]>::try_from(rest.get(..96).unwrap_or(&[])) {
            let e: [u8; 32] = ers[..32].try_into().expect("32");
            let r: [u8; 32] = ers[32..64].try_into().expect("32");
            let s: [u8; 32] = ers[64..].try_into().expect("32");
            let _ = vk.verify_prehash(&e, &r, &s);
        }
    }
});
