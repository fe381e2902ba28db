//! Hostile input on the partner channels: validly signed requests of each channel, mutated at
//! random (bit flips, deletions, insertions, truncations in the query string and the body), sent
//! through the real service. Asserts: no panic, no 5xx, and nothing accepted unless what the
//! channel signs is unchanged (a mutation that leaves the signed values equal — e.g. JSON
//! whitespace outside the signed Plain — may be accepted; anything else must be refused).
//! Cases per channel: `PARTNER_HOSTILE_CASES` (default 2,000; CI-size).

use crate::common;

use std::collections::BTreeMap;

use actix_web::test as at;
use common::partners::*;
use common::{Db, NOW};
use pension_gateway::client::partners::{HmacClient, OpenPlatformClient};
use pension_gateway::partners::callback::Envelope;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use zeroize::Zeroizing;

fn cases() -> usize {
    std::env::var("PARTNER_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn mutate(rng: &mut rand::rngs::StdRng, mut b: Vec<u8>, printable: bool) -> Vec<u8> {
    let pick = |rng: &mut rand::rngs::StdRng| -> u8 {
        if printable {
            rng.gen_range(b'!'..=b'~')
        } else {
            rng.gen()
        }
    };
    for _ in 0..rng.gen_range(1..=3) {
        if b.is_empty() {
            b.push(pick(rng));
            continue;
        }
        let i = rng.gen_range(0..b.len());
        match rng.gen_range(0..4) {
            0 => {
                b[i] = if printable {
                    pick(rng)
                } else {
                    b[i] ^ (1 << rng.gen_range(0..8))
                }
            }
            1 => {
                b.remove(i);
            }
            2 => b.insert(i, pick(rng)),
            _ => b.truncate(i),
        }
    }
    b
}

fn query_map(uri: &str) -> Option<BTreeMap<String, String>> {
    let qs = uri.split_once('?').map_or("", |(_, q)| q);
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(qs).ok()?;
    Some(pairs.into_inner().into_iter().collect())
}

#[actix_web::test]
async fn mutated_partner_requests_are_refused_and_never_crash() {
    let gw = gateway(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let n = cases();
    let seed: u64 = rand::random();
    eprintln!("PARTNER_HOSTILE seed {seed}, {n} cases per channel");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let send = |method: &'static str, uri: String, body: Vec<u8>| {
        let svc = &svc;
        async move {
            let req = if method == "GET" {
                at::TestRequest::get()
            } else {
                at::TestRequest::post()
            };
            let resp = at::call_service(
                svc,
                req.uri(&uri)
                    .insert_header(("Content-Type", "application/json"))
                    .set_payload(body)
                    .to_request(),
            )
            .await;
            let status = resp.status().as_u16();
            let bytes = at::read_body(resp).await;
            (status, bytes.to_vec())
        }
    };
    // A token and a sign ticket to sign with.
    let (_, t) = send("GET", format!("/api/oauth2/access_token?app_id={APP}&secret={APP_SECRET}&grant_type=client_credential&version=2.0.0"), vec![]).await;
    let token = serde_json::from_slice::<Value>(&t).unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, k) = send(
        "GET",
        format!("/api/oauth2/api_ticket?app_id={APP}&access_token={token}&type=sign&version=2.0.0"),
        vec![],
    )
    .await;
    let ticket = serde_json::from_slice::<Value>(&k).unwrap()["tickets"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let op = OpenPlatformClient::new("", APP, Zeroizing::new(APP_SECRET.into()));
    let hmac = HmacClient::new("", FAPP, Zeroizing::new(FAPP_TOKEN.into()));
    let mut tally: BTreeMap<&str, [usize; 3]> = BTreeMap::new(); // refused, accepted-intact, other

    for i in 0..n {
        let nonce = pension_gateway::crypto::nonce::generate();
        // open platform: mutate the query string or the body.
        let call = op.sign_call("pension", "10001", None, QUERY, &ticket, &nonce);
        let (uri, body) = if i % 2 == 0 {
            let m = mutate(&mut rng, call.url.clone().into_bytes(), true);
            (String::from_utf8(m).unwrap(), QUERY.as_bytes().to_vec())
        } else {
            (
                call.url.clone(),
                mutate(&mut rng, QUERY.as_bytes().to_vec(), false),
            )
        };
        if uri.parse::<actix_web::http::Uri>().is_err() {
            continue;
        }
        let (status, bytes) = send("POST", uri.clone(), body.clone()).await;
        assert!(status < 500 || status == 503, "op: HTTP {status} for {uri}");
        let row = tally.entry("open-platform").or_default();
        let code = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if code == "60840000" {
            let intact = body == QUERY.as_bytes()
                && query_map(&uri) == query_map(&call.url)
                && uri.starts_with("/api/s/pension/10001?");
            assert!(
                intact,
                "op accepted a forgery: {uri} {:?}",
                String::from_utf8_lossy(&body)
            );
            row[1] += 1;
        } else if code.starts_with("6084") {
            row[0] += 1;
        } else {
            row[2] += 1;
        }

        // callback: mutate the envelope body.
        let seq = format!("seq-{i}");
        let env = Envelope::seal(
            QUERY,
            SALT,
            NOW * 1000 + i as i64,
            &seq,
            "PensionAccountQuery",
        );
        let original = serde_json::to_vec(&env).unwrap();
        let body = mutate(&mut rng, original.clone(), false);
        let (status, bytes) = send("POST", format!("/callback/{PARTNER}"), body.clone()).await;
        assert!(status < 500 || status == 503, "callback: HTTP {status}");
        let row = tally.entry("callback").or_default();
        // Refused before authentication: a plain, unsigned answer; otherwise a signed envelope.
        let plain: Value = match Envelope::parse(&bytes) {
            Ok(reply) => {
                serde_json::from_str(&reply.open([SALT], NOW * 1000).expect("replies are signed"))
                    .unwrap()
            }
            Err(_) => {
                assert!(status >= 400, "an unsigned answer is a refusal: {status}");
                serde_json::from_slice(&bytes).expect("an unsigned refusal is JSON")
            }
        };
        if plain["CODE"] == "0000" {
            let sent: Option<Envelope> = serde_json::from_slice(&body).ok();
            assert!(
                sent.is_some_and(|s| s.plain == env.plain && s.timestamp == env.timestamp),
                "callback accepted a forgery: {}",
                String::from_utf8_lossy(&body)
            );
            row[1] += 1;
        } else {
            row[0] += 1;
        }

        // hmac: mutate the JSON body.
        let original = hmac.body(QUERY, NOW, &nonce).to_string().into_bytes();
        let body = mutate(&mut rng, original.clone(), false);
        let (status, bytes) = send("POST", "/hmac/v1/pension/account".into(), body.clone()).await;
        assert!(status < 500 || status == 503, "hmac: HTTP {status}");
        let row = tally.entry("hmac").or_default();
        if status == 200 {
            let a: Value = serde_json::from_slice(&body).unwrap();
            let b: Value = serde_json::from_slice(&original).unwrap();
            let signed = |v: &Value| {
                v.as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, v)| *k != "sign" && v.as_str() != Some(""))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
            };
            assert_eq!(signed(&a), signed(&b), "hmac accepted a forgery");
            row[1] += 1;
        } else {
            let _: Value = serde_json::from_slice(&bytes).expect("JSON answers");
            row[0] += 1;
        }
    }
    eprintln!("PARTNER_HOSTILE tally (refused, accepted-intact, other): {tally:?}");
    for (channel, [refused, _, _]) in &tally {
        assert!(
            *refused > n / 2,
            "{channel}: most mutations must be refused"
        );
    }
}
