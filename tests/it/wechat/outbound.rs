//! Bank-initiated (outbound) requests: the bank signs with its active key and names itself and
//! its key version; "WeChat" (a mock built from the same primitives) verifies that and answers
//! signed with its own key, which the bank verifies.

use pension_gateway::client::{ResponseError, SigningClient};
use pension_gateway::crypto::signing_string::{request_signing_string, response_signing_string};
use pension_gateway::crypto::{Authorization, EngineKind, SecretKey, Signature, DEFAULT_SIGNER_ID};

/// WeChat's side of one exchange: verify the bank's request, answer signed with `wechat_key`.
fn mock_wechat(
    bank_public: &pension_gateway::crypto::PublicKey,
    wechat_key: &SecretKey,
    path: &str,
    body: &[u8],
    authorization: &str,
) -> Vec<(String, String)> {
    let auth = Authorization::parse(
        authorization.as_bytes(),
        &["WECHATPAY2-SM2-WITH-SM3".to_string()],
    )
    .unwrap();
    assert_eq!(auth.bank_id.as_deref(), Some("BANK0001"));
    assert_eq!(auth.version, Some(3));
    let msg = request_signing_string("POST", path.as_bytes(), &auth.timestamp, &auth.nonce, body);
    let v = EngineKind::DEFAULT
        .engine()
        .verifier(bank_public, DEFAULT_SIGNER_ID)
        .unwrap();
    v.verify(&msg, &Signature::from_base64(&auth.signature).unwrap())
        .expect("WeChat verifies the bank's request");
    let (ts, nonce, resp_body) = (
        "1661776967",
        "abcdefghijklmnopqrstuvwxyz012345",
        br#"{"ok":true}"#,
    );
    let sig = EngineKind::DEFAULT
        .engine()
        .signer(wechat_key, DEFAULT_SIGNER_ID)
        .unwrap()
        .sign(&response_signing_string(ts, nonce, resp_body))
        .unwrap();
    vec![
        ("WxIns-Nonce".into(), nonce.into()),
        ("WxIns-Timestamp".into(), ts.into()),
        ("WxIns-Signature".into(), sig.to_base64()),
        ("WxIns-Version".into(), "7".into()),
    ]
}

#[test]
fn bank_signs_outbound_and_verifies_wechat_response() {
    let (bank, wechat) = (SecretKey::generate(), SecretKey::generate());
    let client = SigningClient::bank_outbound(
        EngineKind::DEFAULT,
        &bank,
        3,
        "BANK0001",
        &[(7, wechat.public_key())],
        DEFAULT_SIGNER_ID,
    )
    .unwrap();
    let body = br#"{"event":"account_opened"}"#;
    let signed = client
        .sign_request(
            "POST",
            "/v1/pension/notify?x=1",
            body,
            1_661_776_967,
            "n0nce",
        )
        .unwrap();
    assert!(signed
        .authorization
        .starts_with("WECHATPAY2-SM2-WITH-SM3 version=\"3\",bank_id=\"BANK0001\",nonce=\"n0nce\""));
    let headers = mock_wechat(
        &bank.public_key(),
        &wechat,
        "/v1/pension/notify?x=1",
        body,
        &signed.authorization,
    );
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        client.verify_response(get, br#"{"ok":true}"#, 1_661_776_967),
        Ok(7)
    );
    // Tampered body, unknown version, missing header are refused.
    assert_eq!(
        client.verify_response(get, br#"{"ok":false}"#, 1_661_776_967),
        Err(ResponseError::Signature(7))
    );
    let other: Vec<_> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == "WxIns-Version" {
                    "8".into()
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let get2 = |n: &str| {
        other
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        client.verify_response(get2, br#"{"ok":true}"#, 1_661_776_967),
        Err(ResponseError::UnknownVersion(8))
    );
    assert_eq!(
        client.verify_response(|_| None, b"", 1_661_776_967),
        Err(ResponseError::Header("WxIns-Version"))
    );
    // A signed answer is only taken within ±300 s of the verifier's clock (inclusive): a
    // captured old answer replayed to the client is refused.
    for dt in [-300, 0, 300] {
        assert_eq!(
            client.verify_response(get, br#"{"ok":true}"#, 1_661_776_967 + dt),
            Ok(7)
        );
    }
    for dt in [-301, 301, 86_400] {
        assert_eq!(
            client.verify_response(get, br#"{"ok":true}"#, 1_661_776_967 + dt),
            Err(ResponseError::Stale {
                timestamp: 1_661_776_967,
                now: 1_661_776_967 + dt,
                skew: 300
            })
        );
    }
}
