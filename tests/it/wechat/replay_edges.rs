//! Replay at the edges of the acceptance window, for every channel with a timestamp window
//! (WeChat ±`clock_skew_secs`, HMAC ±300 s, callback ±300,000 ms) and every nonce store.
//!
//! The worst case: a request is first used when its timestamp is as far ahead as allowed
//! (ts = now + skew), then replayed when the clock has reached the other edge (now' = ts + skew,
//! 2 × skew later). The replay must be refused, while a fresh request with the same timestamp
//! is still accepted at that moment — so the refusal is the nonce memory's, not the clock's.
//!
//! Stores: memory always; Redis when `TEST_REDIS_URL` is set (then an unreachable Redis FAILS
//! the test), with a per-run key prefix. Redis expires keys by its own clock, which the manual
//! clock does not move, so there the test also checks each key's TTL outlives 2 × skew.

use crate::common;

use common::partners::*;
use common::{send, Db, Gateway, Req, NOW};
use pension_gateway::client::partners::HmacClient;
use pension_gateway::clock::Clock;
use pension_gateway::config::{ReplayStoreKind, Settings};
use pension_gateway::partners::callback::Envelope;
use serde_json::Value;
use zeroize::Zeroizing;

/// The HMAC and callback channels' fixed skew, seconds.
const PARTNER_SKEW: i64 = 300;

#[derive(Clone, Debug)]
enum Store {
    Memory,
    Redis { url: String, prefix: String },
}

impl Store {
    fn apply(&self, s: &mut Settings) {
        if let Store::Redis { url, prefix } = self {
            s.replay.store = ReplayStoreKind::Redis;
            s.replay.redis_url = url.clone();
            s.replay.key_prefix = prefix.clone();
        }
    }

    /// Every key under this run's prefix has a TTL longer than `2 × skew` seconds.
    async fn check_ttls(&self, skew: i64, at_least_keys: usize) {
        let Store::Redis { url, prefix } = self else {
            return;
        };
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.len() >= at_least_keys, "{keys:?}");
        for k in &keys {
            let ttl: i64 = redis::cmd("TTL")
                .arg(k)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(
                ttl > 2 * skew,
                "{k}: TTL {ttl} s does not outlive 2 × {skew} s"
            );
        }
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// The stores to test: memory, plus Redis when `TEST_REDIS_URL` is set (and reachable: an
/// unreachable server fails the test).
async fn stores() -> Vec<Store> {
    let mut out = vec![Store::Memory];
    if let Some(url) = common::redis_url() {
        let client = redis::Client::open(url.as_str())
            .unwrap_or_else(|e| panic!("TEST_REDIS_URL `{url}` is not a Redis URL: {e}"));
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| {
                panic!("TEST_REDIS_URL is set but Redis is unreachable ({e}); start it or unset it")
            });
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(pong, "PONG");
        out.push(Store::Redis {
            url,
            prefix: format!("pgw-test-edges:{}:", uuid::Uuid::new_v4().simple()),
        });
    }
    out
}

#[actix_web::test]
async fn wechat_replay_at_the_other_edge_is_refused() {
    for store in stores().await {
        let gw = Gateway::start_with(Db::Sqlite, |s| store.apply(s))
            .await
            .unwrap();
        let skew = gw.state.wechat().clock_skew_secs;
        let svc = gw.service().await;
        let mut req = Req::query("张三", "11010519491231002X");
        req.timestamp = NOW + skew;
        let first = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        assert_eq!(first.status, 200, "{store:?}: {:?}", first.json);
        // The other edge: now' = ts + skew.
        gw.clock.set(req.timestamp + skew);
        let replayed = send(&svc, &gw.keys, req.build(&gw.keys)).await;
        assert_eq!(
            (replayed.status, replayed.code()),
            (401, "SIGN_ERROR"),
            "{store:?}: {:?}",
            replayed.json
        );
        assert!(
            replayed.json["message"]
                .as_str()
                .unwrap_or("")
                .contains("NONCE_REPLAYED"),
            "{store:?}: {:?}",
            replayed.json
        );
        let mut fresh = Req::query("张三", "11010519491231002X");
        fresh.timestamp = req.timestamp;
        let fresh = send(&svc, &gw.keys, fresh.build(&gw.keys)).await;
        assert_eq!(fresh.status, 200, "{store:?}: {:?}", fresh.json);
        store.check_ttls(skew, 2).await;
    }
}

fn nonce() -> String {
    pension_gateway::crypto::nonce::generate()
}

#[actix_web::test]
async fn hmac_replay_at_the_other_edge_is_refused() {
    for store in stores().await {
        let gw = Gateway::start_with(Db::Sqlite, |s| {
            store.apply(s);
            s.partners.hmac = true;
        })
        .await
        .unwrap();
        add_partners(&gw);
        let svc = gw.service().await;
        let route = gw.state.partners().hmac_route.clone();
        let client = HmacClient::new(&route, FAPP, Zeroizing::new(FAPP_TOKEN.into()));
        let ts = NOW + PARTNER_SKEW;
        let body = client.body(QUERY, ts, &nonce()).to_string();
        let (status, bytes) = post(&svc, &route, &body).await;
        assert_eq!(
            status,
            200,
            "{store:?}: {}",
            String::from_utf8_lossy(&bytes)
        );
        gw.clock.set(ts + PARTNER_SKEW);
        let (status, bytes) = post(&svc, &route, &body).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, 401, "{store:?}: {v}");
        assert!(
            v.to_string().contains("nonce already used"),
            "{store:?}: {v}"
        );
        let fresh = client.body(QUERY, ts, &nonce()).to_string();
        assert_eq!(post(&svc, &route, &fresh).await.0, 200, "{store:?}");
        store.check_ttls(PARTNER_SKEW, 2).await;
    }
}

/// Posts a callback and opens the signed reply's Plain (or reads the unsigned refusal).
async fn callback<S: common::TestService<B>, B: actix_web::body::MessageBody>(
    svc: &S,
    gw: &Gateway,
    body: &str,
) -> Value {
    let (status, bytes) = post(svc, &format!("/callback/{PARTNER}"), body).await;
    let Ok(env) = Envelope::parse(&bytes) else {
        // Refused before authentication (a replay among them): plain and unsigned.
        assert!(status >= 400, "an unsigned answer is a refusal: {status}");
        return serde_json::from_slice(&bytes).expect("an unsigned refusal is JSON");
    };
    let plain = env
        .open([SALT], gw.clock.now_ms())
        .expect("every signed reply is signed with the active salt");
    serde_json::from_str(&plain).unwrap()
}

#[actix_web::test]
async fn callback_replay_at_the_other_edge_is_refused() {
    let skew_ms = pension_gateway::partners::callback::TIMESTAMP_WINDOW_MS;
    assert_eq!(skew_ms, PARTNER_SKEW * 1000);
    for store in stores().await {
        let gw = Gateway::start_with(Db::Sqlite, |s| {
            store.apply(s);
            s.partners.callback = true;
        })
        .await
        .unwrap();
        add_partners(&gw);
        let svc = gw.service().await;
        let trans = gw.state.partners().callback_account_trans_name.clone();
        let ts_ms = NOW * 1000 + skew_ms;
        let seal = |at_ms: i64, seq: &str| {
            serde_json::to_string(&Envelope::seal(QUERY, SALT, at_ms, seq, &trans)).unwrap()
        };
        let first = seal(ts_ms, "S1");
        assert_eq!(
            callback(&svc, &gw, &first).await["CODE"],
            "0000",
            "{store:?}"
        );
        // now' = ts + skew, to the millisecond.
        gw.clock.set((ts_ms + skew_ms) / 1000);
        assert_eq!(gw.clock.now_ms(), ts_ms + skew_ms);
        assert_eq!(
            callback(&svc, &gw, &first).await["CODE"],
            "0010",
            "{store:?}: replay accepted"
        );
        // A new SeqNo does not make it new either (SeqNo is not signed).
        let resent = first.replace("\"S1\"", "\"S1-again\"");
        assert_eq!(
            callback(&svc, &gw, &resent).await["CODE"],
            "0010",
            "{store:?}"
        );
        // A fresh message (1 ms later, so its own signature) is still inside the window.
        let fresh = seal(ts_ms + 1, "S2");
        assert_eq!(
            callback(&svc, &gw, &fresh).await["CODE"],
            "0000",
            "{store:?}"
        );
        store.check_ttls(PARTNER_SKEW, 2).await;
    }
}
