//! Known-answer vectors: GB/T 32918.5 Annex A and the WeChat Pay SDK test signature.
use crate::common as fast_sm2;
use base64::Engine as _;
use fast_sm2::*;
use sm2_fast::{Error, SigningKey, VerifyingKey};

const ANNEX_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const ANNEX_K: &str = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21";
const ANNEX_XA: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
const ANNEX_YA: &str = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";
const ANNEX_ZA: &str = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3";
const ANNEX_R: &str = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3";
const ANNEX_S: &str = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA";

#[test]
fn annex_a_public_key_za_and_signature() {
    let sk = SigningKey::from_bytes(&h32(ANNEX_D)).unwrap();
    let pk = sk.public_key().to_sec1_uncompressed();
    assert_eq!(hex::encode_upper(&pk[1..33]), ANNEX_XA);
    assert_eq!(hex::encode_upper(&pk[33..65]), ANNEX_YA);
    assert_eq!(hex::encode_upper(za(ID, &pk)), ANNEX_ZA);
    let e = digest(ID, &pk, b"message digest");
    let (r, s) = sk.sign_prehash_with_k(&e, &h32(ANNEX_K)).unwrap();
    assert_eq!(hex::encode_upper(r), ANNEX_R);
    assert_eq!(hex::encode_upper(s), ANNEX_S);
    let vk = VerifyingKey::from_sec1(&pk).unwrap();
    assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
    // The same through the compressed encoding.
    let mut c = [0u8; 33];
    c[0] = 2 | (pk[64] & 1);
    c[1..].copy_from_slice(&pk[1..33]);
    let vkc = VerifyingKey::from_sec1(&c).unwrap();
    assert_eq!(vkc.to_sec1_uncompressed(), pk);
    assert_eq!(vkc.verify_prehash(&e, &r, &s), Ok(()));
    // A wrong message fails.
    let e2 = digest(ID, &pk, b"message digesT");
    assert_eq!(vk.verify_prehash(&e2, &r, &s), Err(Error::InvalidSignature));
}

/// The WeChat Pay SDK (wechatpay-java, shangmi-testing) merchant key, read from the SDK's
/// merchant_private_key.pem (docs/protocol.md §12.2); its public key equals the one in the SDK's
/// merchant_certificate.pem. A copy with the byte 0x50 after …9084 missing (31 bytes) is a
/// different key under which no engine verifies the SDK signature.
const WECHAT_SDK_D: &str = "fd4f526b3e5c78319084504c7ff707221dbeab92f3be1adbf0bd92238b0f511f";
const WECHAT_SDK_PK: &str = "047bcd47f75ea19d04c0a72b4da70f57dd1b3f9337cc5dd1241881b913431939bf69a55ef6b46710c7e1724523d0f646dd694d2483976f6e850d466378fa8b2f7e";
const WECHAT_SDK_D_ONE_BYTE_SHORT: &str =
    "fd4f526b3e5c783190844c7ff707221dbeab92f3be1adbf0bd92238b0f511f";

#[test]
fn wechat_pay_sdk_vector_verifies() {
    let d = h32(WECHAT_SDK_D);
    let sk = SigningKey::from_bytes(&d).unwrap();
    let vk = sk.public_key();
    let pk = vk.to_sec1_uncompressed();
    assert_eq!(hex::encode(pk), WECHAT_SDK_PK);
    let der = base64::engine::general_purpose::STANDARD
        .decode("MEYCIQD35Rp3CKt7pLme/a0GaCVmwSeOl7X/12+ppRivcJuf6QIhAO5Vpy4tSk9SJUrgH5I5Qy0aYhFG9lN0aof1f5wJOI05")
        .unwrap();
    let (r, s) = der_decode(&der).unwrap();
    let e = digest(ID, &pk, b"message");
    assert_eq!(vk.verify_prehash(&e, &r, &s), Ok(()));
    let vk2 = VerifyingKey::from_sec1(&pk).unwrap();
    assert_eq!(vk2.verify_prehash(&e, &r, &s), Ok(()));
    assert!(vk2
        .verify_prehash(&digest(ID, &pk, b"messagf"), &r, &s)
        .is_err());
}

#[test]
fn wechat_guide_key_pair_matches() {
    let sk = SigningKey::from_bytes(&h32(
        "d9cda240b9d3ef5dd9593cfd3c78e4274f6dc8c592c0d45fcb7955d44e3e892c",
    ))
    .unwrap();
    assert_eq!(
        hex::encode(sk.public_key().to_sec1_uncompressed()),
        "04d3dfbe659754ef9cfc417502d223d81da18c53b5a61a75234ec9996c4c23a1920b5603ee254a38547bf321f060d7461d485f23cafcde8fd844765ca8c628d293"
    );
}

#[test]
fn wechat_pay_sdk_vector_with_one_byte_short_key_does_not_verify() {
    // Documents the transcription error (see WECHAT_SDK_D): the 31-byte key, left-padded,
    // is a different key, so the SDK signature must not verify under it.
    let sk = SigningKey::from_bytes(&h32(WECHAT_SDK_D_ONE_BYTE_SHORT)).unwrap();
    let vk = sk.public_key();
    let pk = vk.to_sec1_uncompressed();
    let der = base64::engine::general_purpose::STANDARD
        .decode("MEYCIQD35Rp3CKt7pLme/a0GaCVmwSeOl7X/12+ppRivcJuf6QIhAO5Vpy4tSk9SJUrgH5I5Qy0aYhFG9lN0aof1f5wJOI05")
        .unwrap();
    let (r, s) = der_decode(&der).unwrap();
    assert_eq!(
        vk.verify_prehash(&digest(ID, &pk, b"message"), &r, &s),
        Err(Error::InvalidSignature)
    );
}
