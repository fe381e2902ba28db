//! No personal data in logs: run every kind of request (successes, each error, bodies full of
//! names, ID numbers, phones and card numbers) with the production JSON log format at TRACE
//! level captured, then scan the capture for the demo people's data and for any run of 11 or
//! more digits (phone 11, card 16–19, ID 18).

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{send, Db, Req};
use pension_gateway::accounts::demo::DEMO_PEOPLE;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Blanks out the tokens that are random by construction and legitimately digit-heavy — UUIDs
/// (Request-IDs: a 12-hex-digit group holds 11+ decimal digits in ~0.8 % of them) and hex
/// digests/fingerprints of 32+ characters — so that the digit scan below stays strict for
/// everything else without being flaky.
fn without_random_tokens(line: &str) -> String {
    let is_hexish = |c: char| c.is_ascii_hexdigit() || c == '-';
    let mut out = String::with_capacity(line.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let groups: Vec<&str> = token.split('-').collect();
        let uuid = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12]);
        let digest = !token.contains('-')
            && token.len() >= 32
            && token.chars().any(|c| c.is_ascii_alphabetic());
        if uuid || digest {
            out.push_str("<random>");
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in line.chars() {
        if is_hexish(c) {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

fn longest_digit_run(s: &str) -> usize {
    without_random_tokens(s)
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn the_scanner_ignores_uuids_but_not_personal_data() {
    // The Request-ID that made CI flaky once.
    let line = r#"{"request_id":"43346116-2f50-4f45-a125-b92967529221","status":412}"#;
    assert!(longest_digit_run(line) < 11);
    // A bare ID number, phone, or an ID number glued to a UUID-looking neighbour still count.
    assert_eq!(longest_digit_run(r#"{"id":"11010519491231002X"}"#), 17);
    assert_eq!(longest_digit_run("phone 13800138000 called"), 11);
    assert_eq!(longest_digit_run("card=6222021234567890123;"), 19);
    assert_eq!(longest_digit_run("digest 6222021234567890123-"), 19);
}

/// Every partner channel, success and refusals, with the person's data in the bodies.
async fn partner_requests<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    name: &str,
    id: &str,
) {
    use actix_web::test as at;
    use common::partners::*;
    use pension_gateway::client::partners::{HmacClient, OpenPlatformClient};
    use pension_gateway::partners::callback::Envelope;
    use zeroize::Zeroizing;
    let post = |uri: String, body: String| async move {
        let req = at::TestRequest::post()
            .uri(&uri)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body)
            .to_request();
        at::read_body(at::call_service(svc, req).await).await
    };
    let get = |uri: String| async move {
        let resp = at::call_service(svc, at::TestRequest::get().uri(&uri).to_request()).await;
        serde_json::from_slice::<serde_json::Value>(&at::read_body(resp).await).unwrap()
    };
    let query = serde_json::json!({"user_true_name": name, "user_identify_card_num": id,
        "corpno": "weibao", "USER_ID": id})
    .to_string();
    let token = get(format!("/api/oauth2/access_token?app_id={APP}&secret={APP_SECRET}&grant_type=client_credential&version=2.0.0")).await;
    let token = token["access_token"].as_str().unwrap().to_owned();
    let user_data = pension_gateway::partners::callback::url_encode(
        &serde_json::json!({"USER_ID": id, "USER_NAME": name, "ID_NO": id}).to_string(),
    );
    let tickets = get(format!("/api/oauth2/api_ticket?app_id={APP}&access_token={token}&type=sign,user&version=2.0.0&user_data={user_data}&mechant_id=m")).await;
    let sign_ticket = tickets["tickets"][0]["value"].as_str().unwrap().to_owned();
    let op = OpenPlatformClient::new("", APP, Zeroizing::new(APP_SECRET.into()));
    for (ticket, kind) in [
        (sign_ticket.as_str(), None),
        ("0".repeat(64).as_str(), None),
    ] {
        let call = op.sign_call(
            "pension",
            "10001",
            kind,
            &query,
            ticket,
            &pension_gateway::crypto::nonce::generate(),
        );
        post(call.url.clone(), query.clone()).await;
    }
    let wrong = query.replace(name, "错误的名字");
    let call = op.sign_call(
        "pension",
        "10001",
        None,
        &wrong,
        &sign_ticket,
        &pension_gateway::crypto::nonce::generate(),
    );
    post(call.url.clone(), wrong).await;
    for salt in [SALT, "wrong-salt"] {
        let env = Envelope::seal(
            &query,
            salt,
            common::NOW * 1000,
            "seq-1",
            "PensionAccountQuery",
        );
        post(
            format!("/callback/{PARTNER}"),
            serde_json::to_string(&env).unwrap(),
        )
        .await;
    }
    for token in [FAPP_TOKEN, "wrong-token"] {
        let h = HmacClient::new("", FAPP, Zeroizing::new(token.into()));
        let body = h.body(
            &query,
            common::NOW,
            &pension_gateway::crypto::nonce::generate(),
        );
        post("/hmac/v1/pension/account".into(), body.to_string()).await;
    }
}

#[actix_web::test]
async fn logs_carry_no_personal_data() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let gw = common::partners::gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    for p in DEMO_PEOPLE {
        partner_requests(&svc, p.name, p.id_number).await;
    }
    for p in DEMO_PEOPLE {
        assert_eq!(
            send(
                &svc,
                &gw.keys,
                Req::query(p.name, p.id_number).build(&gw.keys)
            )
            .await
            .status,
            200
        );
        send(
            &svc,
            &gw.keys,
            Req::query("错误的名字", p.id_number).build(&gw.keys),
        )
        .await; // INVALID_USER_INFO
        let bad_id = format!("{}0", &p.id_number[..17]);
        send(&svc, &gw.keys, Req::query(p.name, &bad_id).build(&gw.keys)).await; // INVALID_PARAMETERS
        let with_session = serde_json::to_vec(
            &serde_json::json!({"session_id": "nope", "user_true_name": p.name,
            "user_identify_card_num": p.id_number, "corpno": "weibao"}),
        )
        .unwrap();
        send(&svc, &gw.keys, Req::body(with_session).build(&gw.keys)).await; // SESSION_NOT_FOUND
        let unsigned = Req::query(p.name, p.id_number);
        send(&svc, &gw.keys, unsigned.build_with_auth(None)).await; // PARAM_ERROR
        let req = Req::query(p.name, p.id_number);
        let forged = req
            .authorization(&gw.keys)
            .replace("signature=\"M", "signature=\"N");
        send(&svc, &gw.keys, req.build_with_auth(Some(forged))).await; // SIGN_ERROR
        let replay = Req::query(p.name, p.id_number);
        send(&svc, &gw.keys, replay.build(&gw.keys)).await;
        send(&svc, &gw.keys, replay.build(&gw.keys)).await; // replay
    }
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().count() >= DEMO_PEOPLE.len() * 8,
        "the requests were logged:\n{text}"
    );
    assert!(text.contains("\"request_id\""), "logs carry Request-IDs");
    for channel in ["open-platform", "callback", "hmac"] {
        assert!(
            text.contains(&format!("\"channel\":\"{channel}\"")),
            "the {channel} requests were logged"
        );
    }
    for p in DEMO_PEOPLE {
        for needle in [
            Some(p.name),
            Some(p.id_number),
            Some(&p.id_number[..17]),
            p.phone,
            p.account_no,
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                !text.contains(needle),
                "personal data `{needle}` found in logs"
            );
        }
    }
    assert!(!text.contains("错误的名字"));
    // Migration versions (`20261124000000`) are the one legitimate long digit run.
    for line in text.lines().filter(|l| !l.contains("store::migrate")) {
        assert!(
            longest_digit_run(line) < 11,
            "a run of 11+ digits in a log line: {line}"
        );
    }
}
