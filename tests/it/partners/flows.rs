//! The partner channels end to end through the real service: open-platform
//! tokens, tickets and signed business calls; salted callbacks; sorted-parameter HMAC. Time is
//! the harness's manual clock, so grace windows are tested to the second.

use crate::common;

use actix_web::test as at;
use common::{Db, Gateway, NOW};
use pension_gateway::client::partners::{HmacClient, OpenPlatformClient};
use pension_gateway::crypto::EngineKind;
use pension_gateway::keyring::admin::KeyDir;
use pension_gateway::partners::callback::Envelope;
use pension_gateway::partners::Channel;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use common::partners::*;

fn key_dir(gw: &Gateway) -> KeyDir {
    KeyDir::new(gw.keys.dir.path(), EngineKind::DEFAULT, b"1234567812345678")
}

macro_rules! svc {
    ($gw:expr) => {
        $gw.service().await
    };
}

async fn get<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    uri: &str,
) -> Value {
    let resp = at::call_service(svc, at::TestRequest::get().uri(uri).to_request()).await;
    assert_eq!(resp.status(), 200, "platform answers are HTTP 200");
    serde_json::from_slice(&at::read_body(resp).await).unwrap()
}

/// GETs `uri` and returns the string at JSON `pointer` of the answer.
async fn value<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    uri: &str,
    pointer: &str,
) -> String {
    let v = get(svc, uri).await;
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {v}"))
        .to_owned()
}

fn op_client(secret: &str) -> OpenPlatformClient {
    OpenPlatformClient::new("", APP, Zeroizing::new(secret.to_owned()))
}

fn token_uri(secret: &str) -> String {
    format!("/api/oauth2/access_token?app_id={APP}&secret={secret}&grant_type=client_credential&version=2.0.0")
}

fn ticket_uri(token: &str, kind: &str) -> String {
    format!("/api/oauth2/api_ticket?app_id={APP}&access_token={token}&type={kind}&version=2.0.0")
}

fn user_ticket_uri(token: &str, user: &str) -> String {
    let data =
        pension_gateway::partners::callback::url_encode(&json!({"USER_ID": user}).to_string());
    format!(
        "{}&user_data={data}&mechant_id=m1",
        ticket_uri(token, "user")
    )
}

fn nonce() -> String {
    pension_gateway::crypto::nonce::generate()
}

fn assert_envelope(v: &Value, code: &str) {
    assert_eq!(v["code"], code, "{v}");
    assert!(v["msg"].is_string());
    let t = v["transactionTime"].as_str().unwrap();
    assert!(
        t.len() == 14 && t.bytes().all(|b| b.is_ascii_digit()),
        "{t}"
    );
}

/// Calls `/api/s/pension/10001` with `body` signed by `ticket`; returns the envelope.
async fn call<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    ticket: &str,
    kind: Option<&str>,
    body: &str,
) -> Value {
    let c = op_client(APP_SECRET).sign_call("pension", "10001", kind, body, ticket, &nonce());
    let (status, bytes) = post(svc, &c.url, body).await;
    assert_eq!(status, 200);
    serde_json::from_slice(&bytes).unwrap()
}

#[actix_web::test]
async fn open_platform_token_ticket_and_signed_call() {
    for db in [Db::Sqlite, Db::Mysql] {
        let Some(gw) = gateway(db).await else {
            continue;
        };
        let svc = svc!(gw);
        let t = get(&svc, &token_uri(APP_SECRET)).await;
        assert_envelope(&t, "60850000");
        assert_eq!(t["msg"], "系统处理成功");
        assert_eq!(t["expire_in"], "3600");
        assert_eq!(t["expire_time"], ((NOW + 3600) * 1000).to_string());
        let token = t["access_token"].as_str().unwrap();
        assert_eq!(token.len(), 64);
        let k = get(&svc, &ticket_uri(token, "sign")).await;
        assert_envelope(&k, "60850000");
        assert_eq!(k["tickets"][0]["expire_in"], 3600);
        assert_eq!(
            k["tickets"][0]["expire_time"],
            ((NOW + 3600) * 1000).to_string()
        );
        let ticket = k["tickets"][0]["value"].as_str().unwrap();

        let env = call(&svc, ticket, None, QUERY).await;
        assert_envelope(&env, "60840000");
        assert_eq!(env["BizSeqNo"].as_str().unwrap().len(), 32);
        let data: Value = serde_json::from_str(env["jsonData"].as_str().unwrap()).unwrap();
        assert_eq!(data["CODE"], "0000");
        assert_eq!(data["DATA"]["pension_status"], 1);
        assert_eq!(data["DATA"]["user_identify_card_num"], "11010519491231002X");
        // The audit row names the channel and the outcome.
        let audit = gw
            .db
            .store
            .audit_for_request(env["BizSeqNo"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(
            (audit[0].channel.as_str(), audit[0].outcome.as_str()),
            ("open-platform", "60840000")
        );
        assert_eq!(audit[0].pension_status, Some(1));

        // A business refusal is a platform success carrying the business code.
        let wrong = QUERY.replace("张三", "李四");
        let env = call(&svc, ticket, None, &wrong).await;
        assert_envelope(&env, "60840000");
        let data: Value = serde_json::from_str(env["jsonData"].as_str().unwrap()).unwrap();
        assert_eq!(data["CODE"], "INVALID_USER_INFO");

        // Several types at once come back in order.
        let k2 = get(
            &svc,
            &format!(
                "{}&user_data=%7B%22USER_ID%22%3A%22u1%22%7D&mechant_id=m",
                ticket_uri(token, "sign,user")
            ),
        )
        .await;
        assert_envelope(&k2, "60850000");
        assert_eq!(k2["tickets"][0]["expire_in"], 3600);
        assert_eq!(k2["tickets"][1]["expire_in"], 300);
    }
}

#[actix_web::test]
async fn open_platform_codes_for_each_refusal() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = svc!(gw);
    // Credential stage.
    assert_envelope(&get(&svc, &token_uri("wrong-secret")).await, "60851009");
    assert_envelope(
        &get(&svc, &token_uri(APP_SECRET).replace(APP, "wbunknown")).await,
        "60851009",
    );
    assert_envelope(
        &get(
            &svc,
            &token_uri(APP_SECRET).replace("client_credential", "password"),
        )
        .await,
        "60851007",
    );
    assert_envelope(
        &get(&svc, &token_uri(APP_SECRET).replace("2.0.0", "1.0.0")).await,
        "60851007",
    );
    assert_envelope(&get(&svc, "/api/oauth2/access_token").await, "60851007");
    let t = get(&svc, &token_uri(APP_SECRET)).await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    assert_envelope(&get(&svc, &ticket_uri(&token, "card")).await, "60851001");
    assert_envelope(
        &get(&svc, &ticket_uri(&"0".repeat(64), "sign")).await,
        "60851002",
    );
    let mut forged = token.clone();
    forged.replace_range(63..64, if token.ends_with('0') { "1" } else { "0" });
    assert_envelope(&get(&svc, &ticket_uri(&forged, "sign")).await, "60851002");
    assert_envelope(&get(&svc, &ticket_uri(&token, "user")).await, "60851007"); // no user_data
                                                                                // Business stage, before any ticket exists.
    assert_envelope(&call(&svc, &"0".repeat(64), None, QUERY).await, "60841017");
    let k = get(&svc, &ticket_uri(&token, "sign")).await;
    let ticket = k["tickets"][0]["value"].as_str().unwrap().to_owned();
    // Signed with a wrong ticket; body changed after signing (one answer for every signature
    // that matches no ticket: 60841017); replayed nonce; bad params; path.
    assert_envelope(&call(&svc, &"0".repeat(64), None, QUERY).await, "60841017");
    let c = op_client(APP_SECRET).sign_call("pension", "10001", None, QUERY, &ticket, &nonce());
    let (_, b) = post(&svc, &c.url, &QUERY.replace("张三", "张四")).await;
    assert_envelope(&serde_json::from_slice(&b).unwrap(), "60841017");
    let (_, b) = post(&svc, &c.url, QUERY).await;
    assert_envelope(&serde_json::from_slice(&b).unwrap(), "60840000");
    let (_, b) = post(&svc, &c.url, QUERY).await;
    // A replayed nonce is an input fault (60840002), not a ticket fault: a new ticket would
    // not help.
    assert_envelope(&serde_json::from_slice(&b).unwrap(), "60840002");
    let c = op_client(APP_SECRET).sign_call("pension", "10001", None, QUERY, &ticket, "short");
    let (_, b) = post(&svc, &c.url, QUERY).await;
    assert_envelope(&serde_json::from_slice(&b).unwrap(), "60840002");
    let c = op_client(APP_SECRET).sign_call("other", "99999", None, QUERY, &ticket, &nonce());
    let (_, b) = post(&svc, &c.url, QUERY).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_envelope(&v, "60840110");
    assert!(
        v.get("jsonData").is_none(),
        "platform errors carry no jsonData"
    );
    let (_, b) = post(&svc, "/api/s/pension/10001?app_id=x", QUERY).await;
    assert_envelope(&serde_json::from_slice(&b).unwrap(), "60840002");
    // The access token expires after 3600 s (60851004).
    gw.clock.set(NOW + 3600);
    assert_envelope(&get(&svc, &ticket_uri(&token, "sign")).await, "60851004");
}

#[actix_web::test]
async fn previous_ticket_lives_five_minutes_after_a_new_one() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = svc!(gw);
    let token = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
    let a = value(&svc, &ticket_uri(&token, "sign"), "/tickets/0/value").await;
    let t1 = NOW + 100;
    gw.clock.set(t1);
    let b = value(&svc, &ticket_uri(&token, "sign"), "/tickets/0/value").await;
    assert_ne!(a, b);
    gw.clock.set(t1 + 299); // 4:59 after the new ticket: both valid
    assert_envelope(&call(&svc, &a, None, QUERY).await, "60840000");
    assert_envelope(&call(&svc, &b, None, QUERY).await, "60840000");
    gw.clock.set(t1 + 300); // 5:00: the previous one is gone
    assert_envelope(&call(&svc, &a, None, QUERY).await, "60841018");
    gw.clock.set(t1 + 301); // 5:01
    assert_envelope(&call(&svc, &a, None, QUERY).await, "60841018");
    assert_envelope(&call(&svc, &b, Some("sign"), QUERY).await, "60840000");
    // The current one expires 3600 s after issue; then nothing is live (60841017).
    gw.clock.set(t1 + 3600);
    assert_envelope(&call(&svc, &b, None, QUERY).await, "60841017");
}

#[actix_web::test]
async fn user_ticket_is_single_use_and_bound_to_its_user() {
    for db in [Db::Sqlite, Db::Mysql] {
        let Some(gw) = gateway(db).await else {
            continue;
        };
        let svc = svc!(gw);
        let token = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
        let k = get(&svc, &user_ticket_uri(&token, "u-1001")).await;
        assert_envelope(&k, "60850000");
        assert_eq!(k["tickets"][0]["expire_in"], 300);
        let ticket = k["tickets"][0]["value"].as_str().unwrap().to_owned();
        let body = QUERY.replace("\"corpno\"", "\"USER_ID\":\"u-1001\",\"corpno\"");
        let other = QUERY.replace("\"corpno\"", "\"USER_ID\":\"u-2002\",\"corpno\"");
        // Another user's body cannot use it; the sign ticket route does not accept it.
        assert_envelope(&call(&svc, &ticket, Some("user"), &other).await, "60841017");
        assert_envelope(&call(&svc, &ticket, None, &body).await, "60841017");
        assert_envelope(&call(&svc, &ticket, Some("user"), &body).await, "60840000");
        // Single use.
        assert_envelope(&call(&svc, &ticket, Some("user"), &body).await, "60841017");
        // A fresh one lives 300 s: accepted at 299 s, gone at 300 s.
        let t = value(&svc, &user_ticket_uri(&token, "u-1001"), "/tickets/0/value").await;
        gw.clock.set(NOW + 300);
        assert_envelope(&call(&svc, &t, Some("user"), &body).await, "60841017");
        gw.clock.set(NOW + 299);
        assert_envelope(&call(&svc, &t, Some("user"), &body).await, "60840000");
    }
}

#[actix_web::test]
async fn the_user_ticket_row_holds_a_keyed_digest_of_the_user() {
    use sha2::Digest;
    for db in [Db::Sqlite, Db::Mysql] {
        let Some(gw) = gateway(db).await else {
            continue;
        };
        let svc = svc!(gw);
        let token = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
        let ticket = value(&svc, &user_ticket_uri(&token, "u-1001"), "/tickets/0/value").await;
        let row = gw
            .db
            .store
            .grant_by_id(&ticket[..32])
            .await
            .unwrap()
            .unwrap();
        // HMAC-SM3 keyed with the accounts pepper, over "open-platform-user" ‖ 0 ‖ app ‖ 0 ‖ user.
        let pepper = hex::decode(pension_gateway::config::DEMO_PEPPER_HEX).unwrap();
        let keyed = pension_gateway::crypto::sm3::hmac_sm3(
            &pepper,
            format!("open-platform-user\0{APP}\0u-1001").as_bytes(),
        );
        assert_eq!(row.user_ref, Some(keyed));
        // Not the unkeyed digest a dictionary of user ids would reverse.
        let mut h = sha2::Sha256::new();
        h.update(format!("{APP}\0u-1001").as_bytes());
        let unkeyed: [u8; 32] = h.finalize().into();
        assert_ne!(row.user_ref, Some(unkeyed));
        assert_eq!(row.parent_id.as_deref(), Some(&token[..32]));
    }
}

#[actix_web::test]
async fn changing_the_app_secret_invalidates_its_token_and_tickets() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = svc!(gw);
    let token = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
    let ticket = value(&svc, &ticket_uri(&token, "sign"), "/tickets/0/value").await;
    let user = value(&svc, &user_ticket_uri(&token, "u-7"), "/tickets/0/value").await;
    let user_body = QUERY.replace("\"corpno\"", "\"USER_ID\":\"u-7\",\"corpno\"");
    assert_envelope(&call(&svc, &ticket, None, QUERY).await, "60840000");
    let (v, _) = key_dir(&gw)
        .partner_set(
            Channel::OpenPlatform,
            APP,
            Some(Zeroizing::new("newAppSecret0002newAppSecret0002".into())),
        )
        .unwrap();
    assert_eq!(v, 2);
    gw.state.keyring().reload().unwrap();
    assert_envelope(&call(&svc, &ticket, None, QUERY).await, "60841017");
    assert_envelope(
        &call(&svc, &user, Some("user"), &user_body).await,
        "60841017",
    );
    assert_envelope(&get(&svc, &ticket_uri(&token, "sign")).await, "60851002");
    assert_envelope(&get(&svc, &token_uri(APP_SECRET)).await, "60851009");
    let token2 = value(
        &svc,
        &token_uri("newAppSecret0002newAppSecret0002"),
        "/access_token",
    )
    .await;
    let ticket2 = value(&svc, &ticket_uri(&token2, "sign"), "/tickets/0/value").await;
    let c = OpenPlatformClient::new(
        "",
        APP,
        Zeroizing::new("newAppSecret0002newAppSecret0002".into()),
    )
    .sign_call("pension", "10001", None, QUERY, &ticket2, &nonce());
    let (_, b) = post(&svc, &c.url, QUERY).await;
    assert_envelope(&serde_json::from_slice(&b).unwrap(), "60840000");
    // With the new chain in place, a ticket of the old one still answers 60841017 ("ticket
    // 不存在或已失效": fetch a new one), not 60841018.
    assert_envelope(&call(&svc, &ticket, None, QUERY).await, "60841017");
    assert_envelope(
        &call(&svc, &user, Some("user"), &user_body).await,
        "60841017",
    );
}

#[actix_web::test]
async fn two_instances_share_issued_grants_through_mysql() {
    let Some(gw) = gateway(Db::Mysql).await else {
        return;
    };
    let svc_a = svc!(gw);
    let svc_b = second_instance(&gw).await;
    let token = value(&svc_a, &token_uri(APP_SECRET), "/access_token").await;
    let ticket = value(&svc_b, &ticket_uri(&token, "sign"), "/tickets/0/value").await;
    assert_envelope(&call(&svc_a, &ticket, None, QUERY).await, "60840000");
    assert_envelope(&call(&svc_b, &ticket, None, QUERY).await, "60840000");
    let user = value(&svc_a, &user_ticket_uri(&token, "u-9"), "/tickets/0/value").await;
    let body = QUERY.replace("\"corpno\"", "\"USER_ID\":\"u-9\",\"corpno\"");
    assert_envelope(&call(&svc_b, &user, Some("user"), &body).await, "60840000");
    assert_envelope(&call(&svc_a, &user, Some("user"), &body).await, "60841017");
}

fn user_body(user: &str) -> String {
    QUERY.replace("\"corpno\"", &format!("\"USER_ID\":\"{user}\",\"corpno\""))
}

/// The previous chain after a token refresh: the old token cannot issue tickets, and none of
/// the tickets it issued (sign or user) authorises a call.
async fn assert_chain_dead<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    token: &str,
    sign: &str,
    user: &str,
    user_id: &str,
) {
    assert_envelope(&get(svc, &ticket_uri(token, "sign")).await, "60851002");
    assert_envelope(&call(svc, sign, None, QUERY).await, "60841017");
    assert_envelope(
        &call(svc, user, Some("user"), &user_body(user_id)).await,
        "60841017",
    );
}

#[actix_web::test]
async fn a_new_access_token_kills_the_previous_token_and_every_ticket_it_issued() {
    for db in [Db::Sqlite, Db::Mysql] {
        let Some(gw) = gateway(db).await else {
            continue;
        };
        let svc = svc!(gw);
        let t1 = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
        let s1 = value(&svc, &ticket_uri(&t1, "sign"), "/tickets/0/value").await;
        let u1 = value(&svc, &user_ticket_uri(&t1, "u-1"), "/tickets/0/value").await;
        let u1b = value(&svc, &user_ticket_uri(&t1, "u-1"), "/tickets/0/value").await;
        assert_envelope(&call(&svc, &s1, None, QUERY).await, "60840000");
        assert_envelope(
            &call(&svc, &u1b, Some("user"), &user_body("u-1")).await,
            "60840000",
        );
        // One second later a new token is issued: at once, the old chain is dead.
        gw.clock.set(NOW + 1);
        let t2 = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
        assert_ne!(t1, t2);
        assert_chain_dead(&svc, &t1, &s1, &u1, "u-1").await;
        // The new token's tickets work; the old ones stay dead.
        let s2 = value(&svc, &ticket_uri(&t2, "sign"), "/tickets/0/value").await;
        let u2 = value(&svc, &user_ticket_uri(&t2, "u-1"), "/tickets/0/value").await;
        assert_envelope(&call(&svc, &s2, Some("sign"), QUERY).await, "60840000");
        assert_envelope(
            &call(&svc, &u2, Some("user"), &user_body("u-1")).await,
            "60840000",
        );
        assert_chain_dead(&svc, &t1, &s1, &u1, "u-1").await;
    }
}

#[actix_web::test]
async fn a_token_refresh_on_one_instance_kills_the_chain_on_the_other() {
    let Some(gw) = gateway(Db::Mysql).await else {
        return;
    };
    let svc_a = svc!(gw);
    let svc_b = second_instance(&gw).await;
    let t1 = value(&svc_a, &token_uri(APP_SECRET), "/access_token").await;
    let s1 = value(&svc_b, &ticket_uri(&t1, "sign"), "/tickets/0/value").await;
    let u1 = value(&svc_a, &user_ticket_uri(&t1, "u-5"), "/tickets/0/value").await;
    assert_envelope(&call(&svc_a, &s1, None, QUERY).await, "60840000");
    gw.clock.set(NOW + 1);
    let t2 = value(&svc_b, &token_uri(APP_SECRET), "/access_token").await;
    assert_chain_dead(&svc_a, &t1, &s1, &u1, "u-5").await;
    assert_chain_dead(&svc_b, &t1, &s1, &u1, "u-5").await;
    let s2 = value(&svc_a, &ticket_uri(&t2, "sign"), "/tickets/0/value").await;
    assert_envelope(&call(&svc_b, &s2, None, QUERY).await, "60840000");
}

#[actix_web::test]
async fn an_explicit_token_grace_keeps_the_previous_chain_for_that_long() {
    let gw = Gateway::start_with(Db::Sqlite, |s| {
        s.partners.open_platform = true;
        s.partners.access_token_grace_secs = 60;
    })
    .await
    .unwrap();
    add_partners(&gw);
    let svc = svc!(gw);
    let t1 = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
    let s1 = value(&svc, &ticket_uri(&t1, "sign"), "/tickets/0/value").await;
    let u1 = value(&svc, &user_ticket_uri(&t1, "u-3"), "/tickets/0/value").await;
    gw.clock.set(NOW + 10);
    let _t2 = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
    gw.clock.set(NOW + 69); // 59 s after the new token: the old chain still works
    assert_envelope(&get(&svc, &ticket_uri(&t1, "sign")).await, "60850000");
    assert_envelope(&call(&svc, &s1, None, QUERY).await, "60840000");
    gw.clock.set(NOW + 70); // 60 s: gone, with its tickets
    assert_chain_dead(&svc, &t1, &s1, &u1, "u-3").await;
}

#[actix_web::test]
async fn the_reply_echoes_the_callers_serial_as_consumer_seq_no() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = svc!(gw);
    let token = value(&svc, &token_uri(APP_SECRET), "/access_token").await;
    let ticket = value(&svc, &ticket_uri(&token, "sign"), "/tickets/0/value").await;
    let serial = "20170911100904727419000550615401";
    let body = QUERY.replace(
        "\"corpno\"",
        &format!("\"BIZ_SEQ_NO\":\"{serial}\",\"corpno\""),
    );
    let env = call(&svc, &ticket, None, &body).await;
    assert_envelope(&env, "60840000");
    assert_eq!(env["ConsumerSeqNo"], serial);
    assert_ne!(env["BizSeqNo"], serial);
    // A refusal echoes it too (the body was read); no serial sent, none echoed.
    let env = call(&svc, &"0".repeat(64), None, &body).await;
    assert_envelope(&env, "60841017");
    assert_eq!(env["ConsumerSeqNo"], serial);
    let env = call(&svc, &ticket, None, QUERY).await;
    assert_envelope(&env, "60840000");
    assert!(env.get("ConsumerSeqNo").is_none(), "{env}");
}

/// A second gateway instance on the same MySQL database: its own pool, key ring load, replay
/// memory and process state.
async fn second_instance(
    gw: &Gateway,
) -> impl actix_web::dev::Service<
    actix_http::Request,
    Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
    Error = actix_web::Error,
> {
    let url = gw.db.url.clone().unwrap();
    let store_b = pension_gateway::store::Store::open(&url, Default::default())
        .await
        .expect("second pool");
    let mut s = common::settings(&gw.keys);
    s.partners.open_platform = true;
    let ring_b = pension_gateway::server::load_keys(&s).unwrap();
    let state_b =
        pension_gateway::server::build_state(&s, store_b, ring_b, gw.clock.clone()).unwrap();
    at::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, state_b)),
    )
    .await
}

fn seal(json: &str, salt: &str, at_ms: i64, seq: &str, trans: &str) -> String {
    serde_json::to_string(&Envelope::seal(json, salt, at_ms, seq, trans)).unwrap()
}

/// Posts a callback; checks a signed reply is an envelope under `SALT` echoing `seq` (a refusal
/// before authentication is plain JSON instead).
async fn callback<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    gw: &Gateway,
    body: &str,
    seq: &str,
) -> (u16, Value) {
    let (status, bytes) = post(svc, &format!("/callback/{PARTNER}"), body).await;
    let Ok(env) = Envelope::parse(&bytes) else {
        // Refused before authentication: plain and unsigned, never HTTP 200.
        assert!(status >= 400, "an unsigned answer is a refusal: {status}");
        return (
            status,
            serde_json::from_slice(&bytes).expect("an unsigned refusal is JSON"),
        );
    };
    assert_eq!(env.seq_no, seq);
    let plain = env
        .open([SALT], gw.clock.as_ref().now_ms_for_tests())
        .expect("every signed reply is signed with the active salt");
    (status, serde_json::from_str(&plain).unwrap())
}

trait NowMs {
    fn now_ms_for_tests(&self) -> i64;
}
impl NowMs for pension_gateway::clock::ManualClock {
    fn now_ms_for_tests(&self) -> i64 {
        use pension_gateway::clock::Clock;
        self.now_ms()
    }
}

#[actix_web::test]
async fn callbacks_are_verified_and_every_reply_is_signed() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = svc!(gw);
    let now = NOW * 1000;
    let ok = seal(QUERY, SALT, now, "S1", "PensionAccountQuery");
    let (status, plain) = callback(&svc, &gw, &ok, "S1").await;
    assert_eq!((status, plain["CODE"].as_str()), (200, Some("0000")));
    assert_eq!(plain["DESC"], "系统处理成功");
    assert_eq!(plain["DATA"]["pension_status"], 1);
    // Replayed message, also under a new SeqNo (SeqNo is not signed); wrong salt; tampered
    // Plain; stale and future timestamps.
    assert_eq!(callback(&svc, &gw, &ok, "S1").await.1["CODE"], "0010");
    let resent = ok.replace("\"S1\"", "\"S1-again\"");
    assert_eq!(
        callback(&svc, &gw, &resent, "S1-again").await.1["CODE"],
        "0010"
    );
    let bad = seal(QUERY, "not-the-salt", now, "S2", "PensionAccountQuery");
    assert_eq!(callback(&svc, &gw, &bad, "S2").await.1["CODE"], "0010");
    let mut env = Envelope::seal(QUERY, SALT, now, "S3", "PensionAccountQuery");
    env.plain = env.plain.replace("weibao", "weibaO");
    let tampered = serde_json::to_string(&env).unwrap();
    assert_eq!(callback(&svc, &gw, &tampered, "S3").await.1["CODE"], "0010");
    let stale = seal(QUERY, SALT, now - 300_001, "S4", "PensionAccountQuery");
    assert_eq!(callback(&svc, &gw, &stale, "S4").await.1["CODE"], "0012");
    let future = seal(QUERY, SALT, now + 300_001, "S5", "PensionAccountQuery");
    assert_eq!(callback(&svc, &gw, &future, "S5").await.1["CODE"], "0012");
    // Signed but not decodable (a broken %-escape), signed but unknown transName, bad input.
    let mut env = Envelope::seal(QUERY, SALT, now, "S6", "PensionAccountQuery");
    env.plain = "%E4%B8A".into();
    env.signature =
        pension_gateway::partners::callback::signature(&env.plain, SALT, &env.timestamp);
    assert_eq!(
        callback(&svc, &gw, &serde_json::to_string(&env).unwrap(), "S6")
            .await
            .1["CODE"],
        "0103"
    );
    let unknown = seal(QUERY, SALT, now + 7, "S7", "SomethingElse");
    assert_eq!(callback(&svc, &gw, &unknown, "S7").await.1["CODE"], "0002");
    let wrong = seal(
        &QUERY.replace("张三", "李四"),
        SALT,
        now,
        "S8",
        "PensionAccountQuery",
    );
    let (_, p) = callback(&svc, &gw, &wrong, "S8").await;
    assert_eq!(
        (p["CODE"].as_str(), p["REASON"].as_str()),
        (Some("0002"), Some("INVALID_USER_INFO"))
    );
    assert_eq!(callback(&svc, &gw, "not json", "").await.1["CODE"], "0001");
    // The spec's verifier compares lower-case hex; the same digest in upper case is accepted
    // (decoded, compared as bytes), and it is the same message for the replay guard.
    let mut env = Envelope::seal(QUERY, SALT, now + 8, "S8u", "PensionAccountQuery");
    env.signature = env.signature.to_ascii_uppercase();
    let upper = serde_json::to_string(&env).unwrap();
    assert_eq!(callback(&svc, &gw, &upper, "S8u").await.1["CODE"], "0000");
    let lower = upper.replace(&env.signature, &env.signature.to_ascii_lowercase());
    assert_eq!(callback(&svc, &gw, &lower, "S8u").await.1["CODE"], "0010");
    // An unknown partner is refused as a wrong signature is: plain 401 0010.
    let (status, body) = post(&svc, "/callback/nobody", &ok).await;
    assert_eq!(status, 401);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["CODE"],
        "0010"
    );
    // Salt rotation: the new salt signs replies, the previous one still verifies until retired.
    key_dir(&gw)
        .partner_set(
            Channel::Callback,
            PARTNER,
            Some(Zeroizing::new("test-salt-0002-for-tests".into())),
        )
        .unwrap();
    gw.state.keyring().reload().unwrap();
    let old = seal(QUERY, SALT, now + 9, "S9", "PensionAccountQuery");
    let (_, bytes) = post(&svc, &format!("/callback/{PARTNER}"), &old).await;
    let reply = Envelope::parse(&bytes).unwrap();
    let plain: Value =
        serde_json::from_str(&reply.open(["test-salt-0002-for-tests"], now).unwrap()).unwrap();
    assert_eq!(plain["CODE"], "0000");
    key_dir(&gw)
        .partner_retire(Channel::Callback, PARTNER, 1)
        .unwrap();
    gw.state.keyring().reload().unwrap();
    let old = seal(QUERY, SALT, now + 10, "S10", "PensionAccountQuery");
    let (status, bytes) = post(&svc, &format!("/callback/{PARTNER}"), &old).await;
    assert!(
        Envelope::parse(&bytes).is_err(),
        "a retired salt gets no signed answer"
    );
    let plain: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!((status, plain["CODE"].as_str()), (401, Some("0010")));
}

#[actix_web::test]
async fn hmac_requests_are_verified() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = svc!(gw);
    let route = "/hmac/v1/pension/account";
    let client = HmacClient::new(route, FAPP, Zeroizing::new(FAPP_TOKEN.into()));
    let send = |body: Value| {
        let svc = &svc;
        async move {
            let (status, bytes) = post(svc, route, &body.to_string()).await;
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            (status, v)
        }
    };
    let body = client.body(QUERY, NOW, &nonce());
    let (status, v) = send(body.clone()).await;
    assert_eq!((status, v["code"].as_str()), (200, Some("200")));
    assert_eq!(v["data"]["pension_status"], 1);
    // Replay, tampering, a wrong token, a missing field.
    assert_eq!(send(body.clone()).await.0, 401);
    let mut t = client.body(QUERY, NOW, &nonce());
    t["paramJsons"] = json!(QUERY.replace("张三", "李四"));
    assert_eq!(send(t).await.0, 401);
    let other = HmacClient::new(route, FAPP, Zeroizing::new("wrong".into()));
    assert_eq!(send(other.body(QUERY, NOW, &nonce())).await.0, 401);
    let mut t = client.body(QUERY, NOW, &nonce());
    t.as_object_mut().unwrap().remove("sign");
    assert_eq!(send(t).await.0, 400);
    // An empty extra field is not signed and does not break the signature; a non-empty one is.
    let mut t = client.body(QUERY, NOW, &nonce());
    t["fuin"] = json!("");
    assert_eq!(send(t).await.0, 200);
    let mut t = client.body(QUERY, NOW, &nonce());
    t["fuin"] = json!("added");
    assert_eq!(send(t).await.0, 401);
    // Timestamp window: 300 s accepted, 301 s refused, both directions.
    assert_eq!(send(client.body(QUERY, NOW - 300, &nonce())).await.0, 200);
    assert_eq!(send(client.body(QUERY, NOW + 300, &nonce())).await.0, 200);
    assert_eq!(send(client.body(QUERY, NOW - 301, &nonce())).await.0, 401);
    assert_eq!(send(client.body(QUERY, NOW + 301, &nonce())).await.0, 401);
    // Business refusals keep their meaning.
    let (status, v) = send(client.body(&QUERY.replace("张三", "李四"), NOW, &nonce())).await;
    assert_eq!(status, 412);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .starts_with("INVALID_USER_INFO"));
    // Token rotation: the previous token keeps verifying while `accepted`.
    key_dir(&gw)
        .partner_set(
            Channel::Hmac,
            FAPP,
            Some(Zeroizing::new("test-fapp-token-0002".into())),
        )
        .unwrap();
    gw.state.keyring().reload().unwrap();
    assert_eq!(send(client.body(QUERY, NOW, &nonce())).await.0, 200);
    let new = HmacClient::new(route, FAPP, Zeroizing::new("test-fapp-token-0002".into()));
    assert_eq!(send(new.body(QUERY, NOW, &nonce())).await.0, 200);
    // Only authenticated, fresh requests leave an audit row: the seven answered above (five
    // 200s before the rotation, the 412, and two after it).
    assert_eq!(gw.db.store.count_audit().await.unwrap(), 7);
    // The spec writes the check letter of ID numbers in lower case on this channel; the lookup
    // (digest) is the same whichever case was sent.
    for id in ["11010519491231002X", "11010519491231002x"] {
        let q = QUERY.replace("11010519491231002X", id);
        let (status, v) = send(new.body(&q, NOW, &nonce())).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["user_identify_card_num"], "11010519491231002x");
        assert_eq!(v["data"]["pension_status"], 1);
    }
}

#[test]
fn partner_credentials_follow_the_manifest_rules() {
    let dir = tempfile::tempdir().unwrap();
    let kd = KeyDir::new(dir.path(), EngineKind::DEFAULT, b"1234567812345678");
    let wechat = pension_gateway::crypto::SecretKey::generate()
        .public_key()
        .to_hex();
    kd.init(1, &wechat).unwrap();
    let (v, path) = kd.partner_set(Channel::Hmac, "fapp1", None).unwrap();
    assert_eq!(v, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let generated = std::fs::read_to_string(&path).unwrap();
    assert!(generated.trim().len() >= 32);
    // The active version cannot be retired; an unknown one is an error; ids are checked.
    assert!(kd.partner_retire(Channel::Hmac, "fapp1", 1).is_err());
    assert!(kd.partner_retire(Channel::Hmac, "fapp1", 9).is_err());
    assert!(kd.partner_set(Channel::Hmac, "bad id!", None).is_err());
    // Open-platform secrets are replaced (retired), others kept as accepted.
    kd.partner_set(Channel::OpenPlatform, "app1", None).unwrap();
    kd.partner_set(Channel::OpenPlatform, "app1", None).unwrap();
    kd.partner_set(Channel::Hmac, "fapp1", None).unwrap();
    let states: Vec<_> = kd
        .partner_list()
        .unwrap()
        .into_iter()
        .map(|p| (p.channel, p.id, p.version, format!("{:?}", p.state)))
        .collect();
    assert_eq!(
        states,
        [
            (
                Channel::Hmac,
                "fapp1".to_string(),
                1,
                "Accepted".to_string()
            ),
            (
                Channel::OpenPlatform,
                "app1".to_string(),
                1,
                "Retired".to_string()
            ),
            (
                Channel::OpenPlatform,
                "app1".to_string(),
                2,
                "Active".to_string()
            ),
            (Channel::Hmac, "fapp1".to_string(), 2, "Active".to_string()),
        ]
    );
    // A loose secret file mode is refused at load, naming the file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = pension_gateway::keyring::load_keyring(
            dir.path(),
            EngineKind::DEFAULT,
            b"1234567812345678",
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("0600") && err.contains("fapp1"), "{err}");
    }
    // An accepted open-platform secret is refused by the manifest rules.
    let text = std::fs::read_to_string(dir.path().join("keyring.toml"))
        .unwrap()
        .replace("state = \"retired\"", "state = \"accepted\"");
    assert!(pension_gateway::keyring::Manifest::parse(&text)
        .unwrap()
        .check()
        .unwrap_err()
        .to_string()
        .contains("cannot be `accepted`"));
}
