//! The security review's partner findings, each tried as the attack it describes: replies
//! reflected as requests on every channel, the HMAC re-split replay, authenticated refusals
//! without an audit row, database statements spent on forged requests, and refusals that tell
//! who exists.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::test as at;
use common::{send, Db, Gateway, Req, NOW};
use pension_gateway::client::partners::{HmacClient, OpenPlatformClient};
use pension_gateway::partners::callback::Envelope;
use pension_gateway::partners::hmac;
use pension_gateway::replay::ReplayGuard;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use common::partners::*;

const HMAC_ROUTE: &str = "/hmac/v1/pension/account";

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

impl Capture {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Captures every event of this thread (the actix test runtime runs handlers on it) as JSON.
fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_target(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    (capture, tracing::subscriber::set_default(subscriber))
}

fn replay_entries(gw: &Gateway) -> usize {
    match gw.state.replay() {
        ReplayGuard::Memory(m) => m.len(),
        ReplayGuard::Redis { .. } => panic!("these tests use the in-memory replay store"),
    }
}

async fn audit_rows(gw: &Gateway) -> i64 {
    gw.db.store.count_audit().await.unwrap()
}

async fn get_json<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    uri: &str,
) -> Value {
    let resp = at::call_service(svc, at::TestRequest::get().uri(uri).to_request()).await;
    serde_json::from_slice(&at::read_body(resp).await).unwrap()
}

fn nonce() -> String {
    pension_gateway::crypto::nonce::generate()
}

fn op_client() -> OpenPlatformClient {
    OpenPlatformClient::new("", APP, Zeroizing::new(APP_SECRET.to_owned()))
}

/// A live sign ticket of the test app.
async fn sign_ticket<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
) -> String {
    let t = get_json(svc, &format!("/api/oauth2/access_token?app_id={APP}&secret={APP_SECRET}&grant_type=client_credential&version=2.0.0")).await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    let k = get_json(
        svc,
        &format!(
            "/api/oauth2/api_ticket?app_id={APP}&access_token={token}&type=sign&version=2.0.0"
        ),
    )
    .await;
    k["tickets"][0]["value"].as_str().unwrap().to_owned()
}

fn seal(json: &str, ts_ms: i64, seq: &str) -> String {
    serde_json::to_string(&Envelope::seal(
        json,
        SALT,
        ts_ms,
        seq,
        "PensionAccountQuery",
    ))
    .unwrap()
}

fn hmac_body(param_jsons: &str, nonce: &str) -> String {
    HmacClient::new("", FAPP, Zeroizing::new(FAPP_TOKEN.to_owned()))
        .body(param_jsons, NOW, nonce)
        .to_string()
}

/// A captured answer: its body and, for the WeChat channel, its signing headers.
struct Captured {
    what: String,
    body: Vec<u8>,
    wx: Option<(String, String, String)>,
}

/// Whether an answer of any channel is a success (anything accepted as a request).
fn accepted(status: u16, body: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Ok(env) = Envelope::parse(body) {
        let plain = env.open([SALT], NOW * 1000).unwrap_or_default();
        return plain.contains("\"0000\"");
    }
    status == 200
        && (v["code"] == "60840000" || v["code"] == "200" || v.get("user_true_name").is_some())
}

#[actix_web::test]
async fn replies_of_every_channel_are_refused_as_requests_on_every_channel() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let ticket = sign_ticket(&svc).await;
    let now_ms = NOW * 1000;
    let mut captured: Vec<Captured> = Vec::new();

    // Callback: replies to junk, to an authenticated query, to an authenticated refusal.
    let junk = json!({"Plain": "x", "Signature": "00", "Timestamp": "1", "SeqNo": "j", "transName": "PensionAccountQuery"}).to_string();
    for (what, body) in [
        ("callback reply to junk", junk.clone()),
        ("callback reply to a query", seal(QUERY, now_ms, "c1")),
        (
            "callback reply to a refused query",
            seal(&QUERY.replace("张三", "李四"), now_ms + 1, "c2"),
        ),
    ] {
        let (_, b) = post(&svc, &format!("/callback/{PARTNER}"), &body).await;
        captured.push(Captured {
            what: what.into(),
            body: b,
            wx: None,
        });
    }
    // HMAC: replies to junk and to an authenticated query.
    for (what, body) in [
        ("hmac reply to junk", "{\"fappid\":\"x\"}".to_owned()),
        ("hmac reply to a query", hmac_body(QUERY, &nonce())),
    ] {
        let (_, b) = post(&svc, HMAC_ROUTE, &body).await;
        captured.push(Captured {
            what: what.into(),
            body: b,
            wx: None,
        });
    }
    // Open platform: replies to junk and to an authenticated call.
    let (_, b) = post(&svc, "/api/s/pension/10001?app_id=x", QUERY).await;
    captured.push(Captured {
        what: "op reply to junk".into(),
        body: b,
        wx: None,
    });
    let c = op_client().sign_call("pension", "10001", None, QUERY, &ticket, &nonce());
    let (_, b) = post(&svc, &c.url, QUERY).await;
    captured.push(Captured {
        what: "op reply to a call".into(),
        body: b,
        wx: None,
    });
    // WeChat: signed replies to a query and to junk.
    for (what, req) in [
        (
            "wechat reply to a query",
            Req::query("张三", "11010519491231002X").build(&gw.keys),
        ),
        (
            "wechat reply to junk",
            Req::query("张三", "11010519491231002X").build_with_auth(None),
        ),
    ] {
        let r = send(&svc, &gw.keys, req).await;
        let h = |n: &str| r.header(n).unwrap_or_default().to_owned();
        captured.push(Captured {
            what: what.into(),
            body: r.body.clone(),
            wx: Some((h("WxIns-Timestamp"), h("WxIns-Nonce"), h("WxIns-Signature"))),
        });
    }

    let rows = audit_rows(&gw).await;
    let entries = replay_entries(&gw);
    let op_uri = {
        let c = op_client().sign_call("pension", "10001", None, "{}", &ticket, &nonce());
        c.url
    };
    for c in &captured {
        let text = String::from_utf8_lossy(&c.body).into_owned();
        for route in [
            format!("/callback/{PARTNER}"),
            HMAC_ROUTE.to_owned(),
            op_uri.clone(),
        ] {
            let (status, answer) = post(&svc, &route, &text).await;
            assert!(
                !accepted(status, &answer),
                "{} posted to {route} was accepted: {status} {}",
                c.what,
                String::from_utf8_lossy(&answer)
            );
        }
        // To the WeChat channel, with the reply's own signature presented as WeChat's.
        let mut req = Req::body(c.body.clone());
        let auth = match &c.wx {
            Some((ts, n, sig)) if !sig.is_empty() => {
                let real = req.authorization(&gw.keys);
                let scheme = real.split(' ').next().unwrap();
                req.timestamp = ts.parse().unwrap_or(NOW);
                format!(
                    "{scheme} version=\"1\",nonce=\"{n}\",timestamp=\"{ts}\",signature=\"{sig}\""
                )
            }
            _ => "WECHAT-SM2 nonce=\"n\",timestamp=\"1\",signature=\"AA==\"".into(),
        };
        let r = send(&svc, &gw.keys, req.build_with_auth(Some(auth))).await;
        assert_ne!(r.status, 200, "{} posted to WeChat was accepted", c.what);
    }
    assert_eq!(
        audit_rows(&gw).await,
        rows,
        "a reflected reply wrote an audit row"
    );
    assert_eq!(
        replay_entries(&gw),
        entries,
        "a reflected reply wrote a nonce entry"
    );
}

#[actix_web::test]
async fn reflected_callback_replies_are_refused_and_logged_sampled() {
    const N: i64 = 40;
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let mut replies = Vec::new();
    for i in 0..N {
        let (status, b) = post(
            &svc,
            &format!("/callback/{PARTNER}"),
            &seal(QUERY, NOW * 1000 + i, &format!("s{i}")),
        )
        .await;
        assert_eq!(status, 200);
        replies.push(String::from_utf8(b).unwrap());
    }
    let rows = audit_rows(&gw).await;
    let entries = replay_entries(&gw);
    let (logs, guard) = capture();
    for reply in &replies {
        let (status, answer) = post(&svc, &format!("/callback/{PARTNER}"), reply).await;
        assert!(
            Envelope::parse(&answer).is_err(),
            "a refusal before authentication is not signed: {status} {}",
            String::from_utf8_lossy(&answer)
        );
        let v: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!((status, v["CODE"].as_str()), (400, Some("0001")));
    }
    drop(guard);
    assert_eq!(audit_rows(&gw).await, rows);
    assert_eq!(replay_entries(&gw), entries);
    let warns = logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .count();
    // One line per second per route at most: the run takes a second or two, never N lines.
    assert!(warns <= 3, "{warns} WARN lines for {N} refusals");
}

#[actix_web::test]
async fn the_hmac_re_split_replay_is_refused() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let ts = NOW.to_string();
    let n = nonce();
    let fields = [
        ("fappid", FAPP),
        ("timestamp", ts.as_str()),
        ("nonce", n.as_str()),
        ("version", "2"),
        ("openid", "o1"),
        ("paramJsons", QUERY),
    ];
    let sign = hmac::sign(fields.iter().copied(), FAPP_TOKEN);
    let mut captured: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    captured.insert("sign".into(), json!(sign));
    let (status, _) = post(
        &svc,
        HMAC_ROUTE,
        &Value::Object(captured.clone()).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    // Drop `openid` and fold it into the nonce: the same signed string, a "new" nonce.
    let mut resplit = captured.clone();
    resplit.remove("openid");
    resplit.insert("nonce".into(), json!(format!("{n}&openid=o1")));
    let same = hmac::string_to_sign(
        resplit
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap())),
        FAPP_TOKEN,
    );
    assert_eq!(
        same,
        hmac::string_to_sign(fields.iter().copied(), FAPP_TOKEN),
        "the attack keeps the signed string"
    );
    let rows = audit_rows(&gw).await;
    let (status, body) = post(&svc, HMAC_ROUTE, &Value::Object(resplit).to_string()).await;
    assert_ne!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(audit_rows(&gw).await, rows);
    // The untouched request replayed is refused too (its signed string is spent).
    let (status, _) = post(&svc, HMAC_ROUTE, &Value::Object(captured).to_string()).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn the_open_platform_replay_guard_keys_on_the_signature() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let ticket = sign_ticket(&svc).await;
    let c = op_client().sign_call("pension", "10001", None, QUERY, &ticket, &nonce());
    let (_, b) = post(&svc, &c.url, QUERY).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["code"],
        "60840000"
    );
    let before = replay_entries(&gw);
    // The same signed message with the signature in lower case: the same message.
    let lower = c.url.replace(
        &c.url[c.url.find("sign=").unwrap() + 5..][..40],
        &c.url[c.url.find("sign=").unwrap() + 5..][..40].to_ascii_lowercase(),
    );
    let (_, b) = post(&svc, &lower, QUERY).await;
    assert_ne!(
        serde_json::from_slice::<Value>(&b).unwrap()["code"],
        "60840000"
    );
    assert_eq!(replay_entries(&gw), before);
}

#[actix_web::test]
async fn authenticated_refusals_leave_exactly_one_audit_row_on_every_channel() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let ticket = sign_ticket(&svc).await;
    let (logs, _guard) = capture();

    // HMAC: signed and fresh, no paramJsons: 400, one row, not "before authentication".
    let rows = audit_rows(&gw).await;
    let ts = NOW.to_string();
    let n = nonce();
    let fields = [
        ("fappid", FAPP),
        ("timestamp", ts.as_str()),
        ("nonce", n.as_str()),
        ("version", "2"),
    ];
    let sign = hmac::sign(fields.iter().copied(), FAPP_TOKEN);
    let mut body: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    body.insert("sign".into(), json!(sign));
    let (status, _) = post(&svc, HMAC_ROUTE, &Value::Object(body).to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(
        audit_rows(&gw).await,
        rows + 1,
        "hmac: signed request without paramJsons"
    );
    let before_auth: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .unwrap_or("")
                .contains("before authentication")
        })
        .collect();
    assert!(before_auth.is_empty(), "{before_auth:?}");

    // HMAC: signed, fresh, a paramJsons that is not a query.
    let (status, _) = post(&svc, HMAC_ROUTE, &hmac_body("{}", &nonce())).await;
    assert_eq!(status, 400);
    assert_eq!(audit_rows(&gw).await, rows + 2, "hmac: bad paramJsons");

    // Callback: signed and fresh with an unknown transName; with a body that is no query.
    let env =
        serde_json::to_string(&Envelope::seal(QUERY, SALT, NOW * 1000 + 5, "t1", "Other")).unwrap();
    let (status, _) = post(&svc, &format!("/callback/{PARTNER}"), &env).await;
    assert_eq!(status, 200);
    assert_eq!(
        audit_rows(&gw).await,
        rows + 3,
        "callback: unknown transName"
    );
    let (_, answer) = post(
        &svc,
        &format!("/callback/{PARTNER}"),
        &seal("{}", NOW * 1000 + 6, "t2"),
    )
    .await;
    let plain = Envelope::parse(&answer)
        .unwrap()
        .open([SALT], NOW * 1000)
        .unwrap();
    assert!(plain.contains("INVALID_PARAMETERS"), "{plain}");
    assert_eq!(audit_rows(&gw).await, rows + 4, "callback: no query");

    // Open platform: signed with a live ticket, body no query.
    let c = op_client().sign_call("pension", "10001", None, "{}", &ticket, &nonce());
    let (_, b) = post(&svc, &c.url, "{}").await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!(
        v["jsonData"]
            .as_str()
            .unwrap()
            .contains("INVALID_PARAMETERS"),
        "{v}"
    );
    assert_eq!(audit_rows(&gw).await, rows + 5, "open platform: no query");

    // WeChat: verified, body no query.
    let r = send(&svc, &gw.keys, Req::body(b"{}".to_vec()).build(&gw.keys)).await;
    assert_eq!(r.status, 400);
    assert_eq!(audit_rows(&gw).await, rows + 6, "wechat: no query");
}

fn db_statements(logs: &Capture) -> usize {
    logs.lines()
        .into_iter()
        .filter(|l| l["target"] == pension_gateway::http::partners::DB_STATEMENT_TARGET)
        .count()
}

#[actix_web::test]
async fn forged_open_platform_requests_cost_at_most_one_database_statement() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let _live = sign_ticket(&svc).await;

    let (logs, guard) = capture();
    // A forged business call for a known app with live tickets: the one read of the candidate
    // tickets, then the signature matches none of them.
    let c = op_client().sign_call("pension", "10001", None, QUERY, &"0".repeat(64), &nonce());
    let (_, b) = post(&svc, &c.url, QUERY).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["code"],
        "60841017"
    );
    assert_eq!(db_statements(&logs), 1, "forged business call, known app");
    // The same for an unknown app: none.
    let forged = c.url.replace(APP, "wbunknownapp0001");
    let (_, b) = post(&svc, &forged, QUERY).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["code"],
        "60841017"
    );
    assert_eq!(db_statements(&logs), 1, "forged business call, unknown app");
    // A forged access token asking for a ticket: none (the token's own MAC refuses it).
    let v = get_json(
        &svc,
        &format!(
            "/api/oauth2/api_ticket?app_id={APP}&access_token={}&type=sign&version=2.0.0",
            "ab".repeat(32)
        ),
    )
    .await;
    assert_eq!(v["code"], "60851002");
    assert_eq!(db_statements(&logs), 1, "forged access token");
    drop(guard);
}

/// The answer of an open-platform call without its per-request fields.
fn stable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("BizSeqNo");
    o.remove("transactionTime");
    v
}

#[actix_web::test]
async fn refusals_do_not_tell_which_partners_exist() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let _live = sign_ticket(&svc).await;

    // Callback: unknown partner vs wrong salt.
    let wrong = serde_json::to_string(&Envelope::seal(
        QUERY,
        "not-the-salt",
        NOW * 1000,
        "u1",
        "PensionAccountQuery",
    ))
    .unwrap();
    let unknown = post(&svc, "/callback/nobody", &wrong).await;
    let forged = post(&svc, &format!("/callback/{PARTNER}"), &wrong).await;
    assert_eq!(unknown, forged, "callback");
    assert_eq!(unknown.0, 401);

    // HMAC: unknown fappid vs wrong token.
    let n = nonce();
    let good = HmacClient::new("", "fappnobody01", Zeroizing::new(FAPP_TOKEN.to_owned()))
        .body(QUERY, NOW, &n);
    let bad = HmacClient::new("", FAPP, Zeroizing::new("not-the-token-000".to_owned()))
        .body(QUERY, NOW, &n);
    let unknown = post(&svc, HMAC_ROUTE, &good.to_string()).await;
    let forged = post(&svc, HMAC_ROUTE, &bad.to_string()).await;
    assert_eq!(unknown, forged, "hmac");

    // Open platform business call: unknown app vs forged signature.
    let c = op_client().sign_call("pension", "10001", None, QUERY, &"0".repeat(64), &nonce());
    let (_, f) = post(&svc, &c.url, QUERY).await;
    let (_, u) = post(&svc, &c.url.replace(APP, "wbunknownapp0001"), QUERY).await;
    assert_eq!(
        stable(serde_json::from_slice(&u).unwrap()),
        stable(serde_json::from_slice(&f).unwrap()),
        "open platform call"
    );
    // Ticket route: unknown app vs forged token; token route: unknown app vs wrong secret.
    let tok = "ab".repeat(32);
    let u = get_json(&svc, &format!("/api/oauth2/api_ticket?app_id=wbunknownapp0001&access_token={tok}&type=sign&version=2.0.0")).await;
    let f = get_json(
        &svc,
        &format!("/api/oauth2/api_ticket?app_id={APP}&access_token={tok}&type=sign&version=2.0.0"),
    )
    .await;
    assert_eq!(
        (u["code"].clone(), u["msg"].clone()),
        (f["code"].clone(), f["msg"].clone()),
        "api_ticket"
    );
    let u = get_json(&svc, "/api/oauth2/access_token?app_id=wbunknownapp0001&secret=x&grant_type=client_credential&version=2.0.0").await;
    let f = get_json(&svc, &format!("/api/oauth2/access_token?app_id={APP}&secret=x&grant_type=client_credential&version=2.0.0")).await;
    assert_eq!(
        (u["code"].clone(), u["msg"].clone()),
        (f["code"].clone(), f["msg"].clone()),
        "access_token"
    );
}

#[actix_web::test]
async fn a_wrong_name_on_a_row_that_discloses_nothing_answers_as_no_account() {
    use pension_gateway::store::NewAccount;
    let gw = common::Gateway::start(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    // A row with status 3 (the bank records "no account" for this ID number).
    let id3 = "110101198001010010";
    gw.db
        .store
        .upsert_accounts(&[NewAccount {
            account_no: "6217000010000000003".into(),
            holder_name: "孙七".into(),
            phone: "13800000003".into(),
            id_digest: gw.state.accounts().digest(id3),
            status: 3,
            opened_at: None,
            closed_at: None,
            updated_at: NOW,
        }])
        .await
        .unwrap();
    let unknown = send(
        &svc,
        &gw.keys,
        Req::query("错误的名字", "110101198001010029").build(&gw.keys),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.json["pension_status"].as_i64()),
        (200, Some(3))
    );
    // Status 4 (赵六 of the demo data) and status 3, each with a wrong name: the same answer
    // as an ID number the bank has never seen.
    for id in ["510107197811207892", id3] {
        let r = send(&svc, &gw.keys, Req::query("错误的名字", id).build(&gw.keys)).await;
        assert_eq!(
            (r.status, r.json["pension_status"].as_i64()),
            (200, Some(3)),
            "{id}"
        );
        let mut a = r.json.clone();
        let mut b = unknown.json.clone();
        a["user_identify_card_num"] = Value::Null;
        b["user_identify_card_num"] = Value::Null;
        assert_eq!(a, b, "{id}");
    }
    // With the right name, status 4 is disclosed; a wrong name on status 1 stays 412.
    let r = send(
        &svc,
        &gw.keys,
        Req::query("赵六", "510107197811207892").build(&gw.keys),
    )
    .await;
    assert_eq!(r.json["pension_status"], 4);
    let r = send(
        &svc,
        &gw.keys,
        Req::query("错误的名字", "11010519491231002X").build(&gw.keys),
    )
    .await;
    assert_eq!((r.status, r.code()), (412, "INVALID_USER_INFO"));
}
