//! Known-answer tests of the partner channels' signatures. Each expected value is computed here
//! independently — the sorted / concatenated string written out by hand and hashed with the
//! hash crates directly — and compared with the library (tests/data/README.md: provenance).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use pension_gateway::partners::callback::{self, url_decode, url_encode, Envelope, ReplyCode};
use pension_gateway::partners::{hmac as hmac_channel, open_platform};
use proptest::prelude::*;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

const TICKET: &str = "58b8ea10e5487b88e555feec27fb48201fd788c05b2d424234537b73c7282b70";

#[test]
fn open_platform_sign_sorts_values_and_the_ticket_as_java_does() {
    // The spec's §4.4 inputs (app_id, version, nonce, type = null, body) with a short body.
    let body = r#"{"ID_NO": "411528199110024452", "SERVICE_CODE": "10002"}"#;
    let values = open_platform::request_values(
        "wxhiw5xt6q4qtmwcrn",
        "2.0.0",
        "489c60c97daef599efd10cfda46860a1",
        None,
        body,
    );
    // Sorted by hand: "2.0.0" < "489c…" < "58b8…" (ticket) < "wxhi…" < "{…" ('{' = 0x7B).
    let by_hand = concat!(
        "2.0.0",
        "489c60c97daef599efd10cfda46860a1",
        "58b8ea10e5487b88e555feec27fb48201fd788c05b2d424234537b73c7282b70",
        "wxhiw5xt6q4qtmwcrn",
        r#"{"ID_NO": "411528199110024452", "SERVICE_CODE": "10002"}"#
    );
    let expected = hex::encode_upper(Sha1::digest(by_hand.as_bytes()));
    assert_eq!(open_platform::sign(&values, TICKET), expected);
    assert_eq!(expected.len(), 40);
    assert!(open_platform::verify(&values, TICKET, &expected));
    assert!(!open_platform::verify(
        &values,
        TICKET,
        &expected.to_lowercase()
    ));
    // type present: "sign" sorts after "58b8…" and before "wxhi…".
    let with_type = open_platform::request_values(
        "wxhiw5xt6q4qtmwcrn",
        "2.0.0",
        "489c60c97daef599efd10cfda46860a1",
        Some("sign"),
        body,
    );
    let by_hand = concat!(
        "2.0.0",
        "489c60c97daef599efd10cfda46860a1",
        "58b8ea10e5487b88e555feec27fb48201fd788c05b2d424234537b73c7282b70",
        "sign",
        "wxhiw5xt6q4qtmwcrn",
        r#"{"ID_NO": "411528199110024452", "SERVICE_CODE": "10002"}"#
    );
    assert_eq!(
        open_platform::sign(&with_type, TICKET),
        hex::encode_upper(Sha1::digest(by_hand.as_bytes()))
    );
}

#[test]
fn hmac_sign_is_the_hand_written_string_under_the_app_token() {
    let params = [
        ("version", "2"),
        ("timestamp", "1562754552"),
        ("sceneId", "123"),
        ("nonce", "XXXX"),
        ("fuinType", "1"),
        ("fuin", "085e9858ef869493fb3cd893c@wx.tenpay.com"),
        ("fplatform", "2"),
        ("fappid", "XXX"),
        ("paramJsons", ""), // empty: not signed
        ("sign", "ignored"),
    ];
    let by_hand = "fappid=XXX&fplatform=2&fuin=085e9858ef869493fb3cd893c@wx.tenpay.com&fuinType=1&nonce=XXXX&sceneId=123&timestamp=1562754552&version=2&fappToken=tok-123";
    assert_eq!(hmac_channel::string_to_sign(params, "tok-123"), by_hand);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"tok-123").unwrap();
    mac.update(by_hand.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD
        .encode(mac.finalize().into_bytes())
        .to_uppercase();
    assert_eq!(hmac_channel::sign(params, "tok-123"), expected);
    assert!(hmac_channel::verify(params, "tok-123", &expected));
    assert!(!hmac_channel::verify(params, "tok-124", &expected));
    // Upper-case ASCII sorts before lower-case: "Z" < "a".
    assert_eq!(
        hmac_channel::string_to_sign([("a", "1"), ("Z", "2")], "t"),
        "Z=2&a=1&fappToken=t"
    );
}

#[test]
fn callback_signature_is_sha256_hex_of_plain_salt_timestamp() {
    let json = r#"{"merchantno":"00000006","product_cd":"230001","req_nbr":"tbt001"}"#;
    // The spec's §5.5 step 2, byte for byte.
    let plain = "%7B%22merchantno%22%3A%2200000006%22%2C%22product_cd%22%3A%22230001%22%2C%22req_nbr%22%3A%22tbt001%22%7D";
    assert_eq!(url_encode(json), plain);
    let expected = hex::encode(Sha256::digest(
        format!("{plain}salt-0011519700632680").as_bytes(),
    ));
    assert_eq!(
        callback::signature(plain, "salt-001", "1519700632680"),
        expected
    );
    let env = Envelope::seal(
        json,
        "salt-001",
        1_519_700_632_680,
        "1519700632680112122",
        "TLMerchantQuery",
    );
    assert_eq!(env.plain, plain);
    assert_eq!(env.signature, expected);
    assert_eq!(
        serde_json::to_value(&env).unwrap(),
        serde_json::json!({"Plain": plain, "Signature": expected, "Timestamp": "1519700632680",
                           "SeqNo": "1519700632680112122", "transName": "TLMerchantQuery"})
    );
    assert_eq!(
        env.open(["salt-001"], 1_519_700_632_680),
        Ok(json.to_owned())
    );
    // Upper-case hex verifies too; another salt, a stale or a future timestamp do not.
    let mut upper = env.clone();
    upper.signature = upper.signature.to_uppercase();
    assert!(upper.open(["salt-001"], 1_519_700_632_680).is_ok());
    assert_eq!(
        env.open(["salt-002"], 1_519_700_632_680),
        Err(ReplyCode::SignatureFailed)
    );
    assert_eq!(
        env.open(["salt-001"], 1_519_700_632_680 + 300_001),
        Err(ReplyCode::TimestampExpired)
    );
    assert_eq!(
        env.open(["salt-001"], 1_519_700_632_680 - 300_001),
        Err(ReplyCode::TimestampExpired)
    );
    assert!(env.open(["salt-001"], 1_519_700_632_680 + 300_000).is_ok());
}

#[test]
fn reply_codes_and_platform_codes_are_the_specs() {
    let codes: Vec<(&str, &str)> = ReplyCode::ALL
        .iter()
        .map(|c| (c.code(), c.desc()))
        .collect();
    assert!(ReplyCode::ALL
        .iter()
        .all(|c| ReplyCode::parse(c.code()) == Some(*c)));
    assert_eq!(
        codes,
        [
            ("0000", "系统处理成功"),
            ("0001", "报文格式错误"),
            ("0002", "未满足接口输入要求"),
            ("0103", "报文解析失败"),
            ("0010", "签名验证失败"),
            ("0012", "时间戳过期"),
            ("0016", "SSL认证失败"),
        ]
    );
    let op: Vec<(&str, &str)> = open_platform::OpCode::ALL
        .iter()
        .map(|c| (c.code(), c.msg()))
        .collect();
    // The spec's 附录2, 2.1 then 2.2, as printed.
    assert_eq!(
        op,
        [
            ("60850000", "系统处理成功"),
            ("60856999", "未知异常信息"),
            ("60851001", "Type类型不存在"),
            ("60851007", "无效的请求调用"),
            ("60851009", "无效的appid"),
            ("60851002", "无效的access_token"),
            ("60851003", "无效的ticket"),
            ("60851004", "access_token已过期"),
            ("60851005", "ticket已过期"),
            ("60851010", "ticket获取失败"),
            ("60851013", "access_token获取失败"),
            ("60840000", "系统处理成功"),
            ("60846999", "未知异常信息"),
            ("60840002", "未满足接口输入要求"),
            ("60840003", "交易超时"),
            ("60840110", "请求路径不合法"),
            ("60841017", "ticket验证失败"),
            ("60841018", "接入签名不正确"),
        ]
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Java URLEncoder/URLDecoder round trip over arbitrary text.
    #[test]
    fn url_coding_round_trips(s in any::<String>()) {
        let enc = url_encode(&s);
        prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"%+.-*_".contains(&b)));
        prop_assert_eq!(url_decode(&enc), Some(s));
    }

    /// Arbitrary bytes never panic the envelope parser or the decoder.
    #[test]
    fn hostile_callback_bodies_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::parse(&b);
        let _ = url_decode(&String::from_utf8_lossy(&b));
    }

    /// Any change to a signed value breaks the open-platform signature.
    #[test]
    fn open_platform_tampering_is_detected(body in "[ -~]{0,64}", flip in 0usize..64) {
        let values = open_platform::request_values("app", "2.0.0", "n", None, &body);
        let sig = open_platform::sign(&values, TICKET);
        let mut tampered = body.clone().into_bytes();
        if !tampered.is_empty() {
            let i = flip % tampered.len();
            tampered[i] = if tampered[i] == b'a' { b'b' } else { b'a' };
            let t = String::from_utf8(tampered).unwrap();
            let values2 = open_platform::request_values("app", "2.0.0", "n", None, &t);
            prop_assert!(!open_platform::verify(&values2, TICKET, &sig));
        }
    }
}
