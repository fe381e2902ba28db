//! A flood of unauthenticated partner requests writes nothing to the database: 10,000 requests
//! (unknown app ids, wrong secrets, forged access tokens and tickets, wrong HMAC signatures and
//! replays, wrong and unknown callback salts) through the real service in process, in batches
//! of concurrent requests. After every batch `query_audit` has exactly the rows it had before,
//! and a signed WeChat query, sent between batches, is answered 200. SQLite and MySQL.

use crate::common;

use actix_web::test as at;
use common::partners::*;
use common::{send, Db, Req, NOW};
use pension_gateway::client::partners::{HmacClient, OpenPlatformClient};
use pension_gateway::partners::callback::Envelope;
use serde_json::Value;
use zeroize::Zeroizing;

const REQUESTS: usize = 10_000;
const BATCH: usize = 250;

/// One unauthenticated request of kind `i % 9`.
fn hostile(i: usize, ticket_token: &str, hmac_replay: &str) -> (at::TestRequest, &'static str) {
    let nonce = format!("{i:032}");
    let get = |uri: String| at::TestRequest::get().uri(&uri);
    let post = |uri: String, body: String| {
        at::TestRequest::post()
            .uri(&uri)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body)
    };
    match i % 9 {
        0 => (
            get(format!(
                "/api/oauth2/access_token?app_id=wbunknown{i}&secret=x&grant_type=client_credential&version=2.0.0"
            )),
            "unknown app id",
        ),
        1 => (
            get(format!(
                "/api/oauth2/access_token?app_id={APP}&secret=wrong-{i}&grant_type=client_credential&version=2.0.0"
            )),
            "wrong secret",
        ),
        2 => (
            get(format!(
                "/api/oauth2/api_ticket?app_id={APP}&access_token={:064x}&type=sign&version=2.0.0",
                i
            )),
            "forged access token",
        ),
        3 => {
            let forged = format!("{:064x}", i);
            let c = OpenPlatformClient::new("", APP, Zeroizing::new(String::new()))
                .sign_call("pension", "10001", None, QUERY, &forged, &nonce);
            (post(c.url, QUERY.into()), "forged ticket")
        }
        4 => {
            // A ticket-shaped value built with the wrong secret for a live ticket's id.
            let c = OpenPlatformClient::new("", APP, Zeroizing::new(String::new()))
                .sign_call("pension", "10001", Some("sign"), QUERY, ticket_token, &nonce);
            (post(c.url, QUERY.into()), "ticket of another secret")
        }
        5 => {
            let wrong = HmacClient::new("", FAPP, Zeroizing::new(format!("wrong-{i}")));
            let body = wrong.body(QUERY, NOW, &nonce).to_string();
            (post("/hmac/v1/pension/account".into(), body), "HMAC signature")
        }
        6 => (
            post("/hmac/v1/pension/account".into(), hmac_replay.into()),
            "HMAC replay",
        ),
        7 => {
            let env = Envelope::seal(QUERY, "not-the-salt", NOW * 1000, &i.to_string(), "PensionAccountQuery");
            (
                post(format!("/callback/{PARTNER}"), serde_json::to_string(&env).unwrap()),
                "callback signature",
            )
        }
        _ => {
            let env = Envelope::seal(QUERY, SALT, NOW * 1000, &i.to_string(), "PensionAccountQuery");
            (
                post(format!("/callback/nobody{i}"), serde_json::to_string(&env).unwrap()),
                "unknown callback partner",
            )
        }
    }
}

/// Whether a partner answer is a refusal (status and channel code).
fn refused(status: u16, body: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if let Some(code) = v["code"].as_str() {
        // open platform (HTTP 200, code) or HMAC (status mirrors code)
        return !matches!(code, "60850000" | "60840000" | "200");
    }
    if let Some(plain) = v["Plain"].as_str() {
        return !plain.contains("%220000%22") || status != 200;
    }
    // A callback refused before authentication: a plain, unsigned `{"CODE","DESC"}`.
    status >= 400 && v["CODE"].is_string()
}

#[actix_web::test]
async fn a_flood_of_unauthenticated_partner_requests_writes_nothing() {
    for db in [Db::Sqlite, Db::Mysql] {
        let Some(gw) = gateway(db).await else {
            continue;
        };
        let svc = gw.service().await;
        // A live chain, so that forged tickets are checked against real rows.
        let token = {
            let resp = at::call_service(
                &svc,
                at::TestRequest::get()
                    .uri(&format!("/api/oauth2/access_token?app_id={APP}&secret={APP_SECRET}&grant_type=client_credential&version=2.0.0"))
                    .to_request(),
            )
            .await;
            let v: Value = serde_json::from_slice(&at::read_body(resp).await).unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        };
        let resp = at::call_service(
            &svc,
            at::TestRequest::get()
                .uri(&format!(
                    "/api/oauth2/api_ticket?app_id={APP}&access_token={token}&type=sign&version=2.0.0"
                ))
                .to_request(),
        )
        .await;
        let v: Value = serde_json::from_slice(&at::read_body(resp).await).unwrap();
        let live = v["tickets"][0]["value"].as_str().unwrap().to_owned();
        // Same id, wrong mac: the shape of a ticket derived under another secret.
        let other_secret_ticket = format!("{}{}", &live[..32], "0".repeat(32));
        // One genuine HMAC request, answered (and audited) once; its replays are the flood's.
        let hmac = HmacClient::new("", FAPP, Zeroizing::new(FAPP_TOKEN.into()));
        let genuine = hmac
            .body(QUERY, NOW, &pension_gateway::crypto::nonce::generate())
            .to_string();
        let resp = at::call_service(
            &svc,
            at::TestRequest::post()
                .uri("/hmac/v1/pension/account")
                .insert_header(("Content-Type", "application/json"))
                .set_payload(genuine.clone())
                .to_request(),
        )
        .await;
        assert_eq!(resp.status(), 200);

        let before = gw.db.store.count_audit().await.unwrap();
        let mut wechat_rows = 0;
        for start in (0..REQUESTS).step_by(BATCH) {
            let batch = (start..start + BATCH).map(|i| {
                let (req, what) = hostile(i, &other_secret_ticket, &genuine);
                let svc = &svc;
                async move {
                    let resp = at::call_service(svc, req.to_request()).await;
                    let status = resp.status().as_u16();
                    let body = at::read_body(resp).await;
                    assert!(
                        refused(status, &body),
                        "{what} (request {i}) was not refused: {status} {}",
                        String::from_utf8_lossy(&body)
                    );
                    assert!(status < 500, "{what}: {status}");
                }
            });
            futures_util::future::join_all(batch).await;
            assert_eq!(
                gw.db.store.count_audit().await.unwrap(),
                before + wechat_rows,
                "requests {start}..{} wrote audit rows",
                start + BATCH
            );
            if (start / BATCH) % 8 == 0 {
                // Interleaved: WeChat still answers, signed, between the batches.
                let r = send(
                    &svc,
                    &gw.keys,
                    Req::query("张三", "11010519491231002X").build(&gw.keys),
                )
                .await;
                assert_eq!(r.status, 200, "{:?}", r.json);
                assert!(r.signed_by.is_ok());
                wechat_rows += 1;
            }
        }
        assert_eq!(
            gw.db.store.count_audit().await.unwrap(),
            before + wechat_rows
        );
        let r = send(
            &svc,
            &gw.keys,
            Req::query("张三", "11010519491231002X").build(&gw.keys),
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.json);
        // The refusals were counted.
        let text = gw.state.metrics().render();
        for reason in [
            "op_unauthenticated",
            "hmac_unauthenticated",
            "callback_unauthenticated",
        ] {
            assert!(text.contains(reason), "{reason} not counted");
        }
    }
}
