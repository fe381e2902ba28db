//! The wire codecs: Authorization header and DER/Base64 signatures. Properties: writer→reader
//! round trip, arbitrary bytes never panic, strictness where strictness is the contract.

use pension_gateway::crypto::authorization::{Authorization, AuthorizationError, MAX_HEADER_LEN};
use pension_gateway::crypto::nonce;
use pension_gateway::crypto::signature::{SignatureError, CURVE_ORDER};
use pension_gateway::crypto::Signature;
use proptest::prelude::*;

fn schemes() -> Vec<String> {
    vec!["WECHATPAY2-SM2-WITH-SM3".to_string()]
}

const SIG: &str = "MEYCIQD35Rp3CKt7pLme/a0GaCVmwSeOl7X/12+ppRivcJuf6QIhAO5Vpy4tSk9SJUrgH5I5Qy0aYhFG9lN0aof1f5wJOI05";

#[test]
fn reads_the_documented_shapes() {
    let cases = [
        format!(r#"WECHATPAY2-SM2-WITH-SM3 version="1",nonce="abc123",timestamp="1661776967",signature="{SIG}""#),
        format!(r#"version="1", nonce_str="abc123", timestamp="1661776967", signature="{SIG}""#),
        format!(r#"signature={SIG} , timestamp = 1661776967,nonce=abc123 ,serial_no=1"#),
        format!("wechatpay2-sm2-with-sm3\tnonce=\"abc123\",timestamp=\"1661776967\",signature=\"{SIG}\",version=1,extra=\"ignored\""),
    ];
    for c in &cases {
        let a =
            Authorization::parse(c.as_bytes(), &schemes()).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(a.nonce, "abc123");
        assert_eq!(a.timestamp, "1661776967");
        assert_eq!(a.timestamp_secs(), 1_661_776_967);
        assert_eq!(a.signature, SIG);
    }
    let a = Authorization::parse(cases[0].as_bytes(), &schemes()).unwrap();
    assert_eq!(a.version, Some(1));
    assert_eq!(a.scheme.as_deref(), Some("WECHATPAY2-SM2-WITH-SM3"));
    assert_eq!(
        Authorization::parse(cases[1].as_bytes(), &schemes())
            .unwrap()
            .scheme,
        None
    );
}

#[test]
fn refuses_what_it_must() {
    let s = schemes();
    let ok_tail = format!(r#"timestamp="1",signature="{SIG}""#);
    let cases: Vec<(String, AuthorizationError)> = vec![
        (
            format!(r#"OTHER-SCHEME nonce="a",{ok_tail}"#),
            AuthorizationError::Scheme,
        ),
        (
            format!(r#"nonce="a",nonce_str="b",{ok_tail}"#),
            AuthorizationError::Duplicate("nonce"),
        ),
        (ok_tail.clone(), AuthorizationError::Missing("nonce")),
        (
            format!(r#"nonce="a-b",{ok_tail}"#),
            AuthorizationError::Invalid("nonce"),
        ),
        (
            format!(r#"nonce="a",timestamp="-1",signature="{SIG}""#),
            AuthorizationError::Invalid("timestamp"),
        ),
        (
            format!(r#"nonce="a",timestamp="",signature="{SIG}""#),
            AuthorizationError::Invalid("timestamp"),
        ),
        (
            format!(r#"nonce="a",timestamp="1",signature="{SIG}",version="0""#),
            AuthorizationError::Invalid("version"),
        ),
        (
            r#"nonce="a" timestamp="1""#.to_string(),
            AuthorizationError::Syntax("pairs must be separated by commas"),
        ),
        (
            r#"nonce="a"#.to_string(),
            AuthorizationError::Syntax("unterminated quoted value"),
        ),
        ("x".repeat(MAX_HEADER_LEN + 1), AuthorizationError::TooLong),
        ("a=1,".repeat(20), AuthorizationError::TooLong),
        (
            "nonce=\"\u{e9}\"".to_string(),
            AuthorizationError::Syntax("only visible ASCII is allowed"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            Authorization::parse(input.as_bytes(), &s),
            Err(want),
            "{input}"
        );
    }
}

fn arb_auth() -> impl Strategy<Value = Authorization> {
    (
        proptest::option::of(Just("WECHATPAY2-SM2-WITH-SM3".to_string())),
        proptest::option::of(1u32..1_000_000_000),
        proptest::option::of("[A-Za-z0-9_-]{1,64}"),
        "[A-Za-z0-9]{1,64}",
        "[0-9]{1,18}",
        "[A-Za-z0-9+/]{1,92}={0,2}",
    )
        .prop_map(
            |(scheme, version, bank_id, nonce, timestamp, signature)| Authorization {
                scheme,
                version,
                bank_id,
                nonce,
                timestamp,
                signature,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn writer_then_reader_round_trips(a in arb_auth()) {
        let text = a.to_header_value();
        prop_assert_eq!(Authorization::parse(text.as_bytes(), &schemes()), Ok(a));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = Authorization::parse(&bytes, &schemes());
        let _ = Signature::from_der(&bytes);
        let _ = Signature::from_base64(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_miss_headers_never_panic(a in arb_auth(), cut in any::<usize>(), junk in "[ ,=\"a-z\t]{0,8}") {
        let mut text = a.to_header_value();
        let at = cut % (text.len() + 1);
        if text.is_char_boundary(at) { text.insert_str(at, &junk); }
        let _ = Authorization::parse(text.as_bytes(), &schemes());
    }

    #[test]
    fn der_round_trips(r in any::<[u8; 32]>(), s in any::<[u8; 32]>()) {
        match Signature::from_scalars(r, s) {
            Ok(sig) => {
                prop_assert_eq!(Signature::from_der(&sig.to_der()), Ok(sig));
                prop_assert_eq!(Signature::from_base64(&sig.to_base64()), Ok(sig));
            }
            Err(e) => prop_assert_eq!(e, SignatureError::Range),
        }
    }

    #[test]
    fn nonces_are_32_alphanumerics(_x in 0u8..1) {
        let n = nonce::generate();
        prop_assert_eq!(n.len(), 32);
        prop_assert!(nonce::is_valid(&n));
    }
}

#[test]
fn der_is_strict() {
    let sig = Signature::from_base64(SIG).unwrap();
    let der = sig.to_der();
    // Trailing byte, wrong outer length, long-form length, non-minimal leading zero, negative.
    let mut trailing = der.clone();
    trailing.push(0);
    assert_eq!(Signature::from_der(&trailing), Err(SignatureError::Der));
    let mut bad_len = der.clone();
    bad_len[1] += 1;
    assert_eq!(Signature::from_der(&bad_len), Err(SignatureError::Der));
    let mut long_form = vec![0x30, 0x81, der[1]];
    long_form.extend_from_slice(&der[2..]);
    assert_eq!(Signature::from_der(&long_form), Err(SignatureError::Der));
    let non_minimal = [0x30, 0x08, 0x02, 0x02, 0x00, 0x01, 0x02, 0x02, 0x00, 0x01];
    assert_eq!(Signature::from_der(&non_minimal), Err(SignatureError::Der));
    let negative = [0x30, 0x06, 0x02, 0x01, 0x81, 0x02, 0x01, 0x01];
    assert_eq!(Signature::from_der(&negative), Err(SignatureError::Der));
    let zero = [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01];
    assert_eq!(Signature::from_der(&zero), Err(SignatureError::Range));
    let mut n_der = vec![0x30, 0x26, 0x02, 0x21, 0x00];
    n_der.extend_from_slice(&CURVE_ORDER);
    n_der.extend_from_slice(&[0x02, 0x01, 0x01]);
    assert_eq!(Signature::from_der(&n_der), Err(SignatureError::Range));
    // Small values encode minimally: r = 1, s = 0x80 → 02 01 01, 02 02 00 80.
    let mut one = [0u8; 32];
    one[31] = 1;
    let mut x80 = [0u8; 32];
    x80[31] = 0x80;
    let small = Signature::from_scalars(one, x80).unwrap();
    assert_eq!(
        small.to_der(),
        vec![0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]
    );
    // Non-canonical Base64 (missing padding) is refused.
    assert_eq!(
        Signature::from_base64(SIG.trim_end_matches('=')).is_ok(),
        !SIG.ends_with('=')
    );
    assert_eq!(
        Signature::from_base64(&format!("{SIG}AAAA")),
        Err(SignatureError::Base64)
    );
}

#[test]
fn nonce_generation_is_unbiased_in_shape() {
    // 62 symbols, each should appear; with 62×32×200 draws, a symbol missing would be absurd.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        seen.extend(nonce::generate().chars());
    }
    assert_eq!(seen.len(), 62);
}
