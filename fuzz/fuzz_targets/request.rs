//! Fuzz the whole WeChat request path: arbitrary headers and body through the real handler
//! entry point (verification, parsing, lookup, audit, signing) with a real key ring and an
//! in-memory store. Input: `Name: value` header lines, a blank line, then the body.
//! Asserts: no panic; every answer signed by the bank key; nothing random is ever accepted.
#![no_main]
use std::sync::Arc;

use actix_web::web::Data;
use libfuzzer_sys::fuzz_target;
use pension_gateway::client::WechatClient;
use pension_gateway::crypto::{EngineKind, SecretKey};
use pension_gateway::clock::ManualClock;
use pension_gateway::state::AppState;

struct World {
    rt: actix_web::rt::SystemRunner,
    state: AppState,
    checker: WechatClient,
    _dir: tempfile::TempDir,
}

thread_local! {
    static WORLD: World = world();
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (bank, wechat) = (SecretKey::generate(), SecretKey::generate());
    let key_path = dir.path().join("bank-v1.key");
    std::fs::write(&key_path, bank.to_pem().unwrap().as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.path().join("wechat-v1.pub"), wechat.public_key().to_hex()).unwrap();
    std::fs::write(
        dir.path().join("keyring.toml"),
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    )
    .unwrap();
    let mut s = pension_gateway::config::Settings::demo();
    s.keys.dir = dir.path().to_path_buf();
    let rt = actix_web::rt::System::new();
    let state = rt.block_on(async {
        let opts = pension_gateway::store::StoreOptions {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_secs(5),
            create_if_missing: true,
        };
        let store = pension_gateway::store::Store::open("sqlite::memory:", opts).await.unwrap();
        store.run_migrations().await.unwrap();
        let ring = pension_gateway::server::load_keys(&s).unwrap();
        let state = pension_gateway::server::build_state(&s, store, ring, Arc::new(ManualClock::at(1_661_776_967))).unwrap();
        pension_gateway::accounts::demo::seed_demo(state.accounts(), 1_661_776_967).await.unwrap();
        state
    });
    let checker =
        WechatClient::new(EngineKind::DEFAULT, &wechat, Some(1), &[(1, bank.public_key())], b"1234567812345678").unwrap();
    World { rt, state, checker, _dir: dir }
}

fuzz_target!(|data: &[u8]| {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let body = body.get(2..).unwrap_or(&[]);
    let mut req = actix_web::test::TestRequest::post().uri("/v1/pension/account");
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or(&[]).trim_ascii();
        if let (Ok(n), Ok(v)) = (
            actix_web::http::header::HeaderName::from_bytes(name),
            actix_web::http::header::HeaderValue::from_bytes(value),
        ) {
            req = req.append_header((n, v));
        }
    }
    let (http_req, mut payload) = req.set_payload(body.to_vec()).to_http_parts();
    WORLD.with(|w| {
        let resp = w.rt.block_on(async {
            use actix_web::FromRequest;
            let payload = actix_web::web::Payload::from_request(&http_req, &mut payload).await.unwrap();
            pension_gateway::http::wechat::get_account::entry(http_req, payload, Data::new(w.state.clone())).await
        });
        assert_ne!(resp.status().as_u16(), 200, "random input must never be accepted");
        let headers = resp.headers().clone();
        let bytes = w.rt.block_on(actix_web::body::to_bytes(resp.into_body())).unwrap_or_default();
        let verdict = w.checker.verify_response(|n| headers.get(n).and_then(|v| v.to_str().ok()), &bytes, 1_661_776_967);
        assert_eq!(verdict, Ok(1), "every answer of the channel is signed");
    });
});
