//! No personal data in logs: run every kind of request (successes, each error, bodies full of
//! names, ID numbers, phones and card numbers) with the production JSON log format at TRACE
//! level captured, then scan the capture for the demo people's data and for any run of 11 or
//! more digits (phone 11, card 16–19, ID 18).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{send, Db, Gateway, Req};
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

    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
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
