//! The full in-process handler path per request: verify (SM2) → replay check → lookup on SQLite
//! in memory → audit insert → sign (SM2), through the real actix service. Request signing (the
//! WeChat side) is done in the untimed setup. Compare against `sm2/verify` + `sm2/sign` of
//! `benches/sm2.rs`: the crypto floor of one request.
//! Run: `cargo bench --bench handler`.

use std::sync::Arc;

use actix_web::{test, App};
use criterion::{criterion_main, BatchSize, Criterion};
use pension_gateway::client::WechatClient;
use pension_gateway::clock::ManualClock;
use pension_gateway::config::{Settings, DEMO_PEPPER_HEX};
use pension_gateway::crypto::{nonce, EngineKind, SecretKey};
use pension_gateway::server::{build_state, load_keys};
use pension_gateway::store::{Store, StoreOptions};

const NOW: i64 = 1_661_776_967;

fn write_key(path: &std::path::Path, key: &SecretKey) {
    std::fs::write(path, key.to_pem().unwrap().as_bytes()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn handler_path(c: &mut Criterion) {
    let rt = actix_web::rt::System::new();
    let dir = tempfile::tempdir().unwrap();
    let (bank, wechat) = (SecretKey::generate(), SecretKey::generate());
    write_key(&dir.path().join("bank-v1.key"), &bank);
    std::fs::write(
        dir.path().join("wechat-v1.pub"),
        wechat.public_key().to_hex(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("keyring.toml"),
        "[[bank]]\nversion = 1\nstate = \"active\"\nprivate_key = \"bank-v1.key\"\n[[wechat]]\nversion = 1\nstate = \"trusted\"\npublic_key = \"wechat-v1.pub\"\n",
    )
    .unwrap();
    for engine in EngineKind::ALL {
        let mut s = Settings::default();
        s.keys.dir = dir.path().to_path_buf();
        s.keys.engine = engine;
        s.accounts.id_pepper = DEMO_PEPPER_HEX.into();
        s.server.demo = true;
        s.limits.per_identity_per_minute = 0; // one identity, many thousands of queries
        let svc = rt.block_on(async {
            let opts = StoreOptions {
                max_connections: 1,
                acquire_timeout: std::time::Duration::from_secs(5),
                create_if_missing: true,
            };
            let store = Store::open("sqlite::memory:", opts).await.unwrap();
            store.run_migrations().await.unwrap();
            let state = build_state(
                &s,
                store,
                load_keys(&s).unwrap(),
                Arc::new(ManualClock::at(NOW)),
            )
            .unwrap();
            pension_gateway::accounts::demo::seed_demo(state.accounts(), NOW)
                .await
                .unwrap();
            test::init_service(
                App::new().configure(move |cfg| pension_gateway::http::configure(cfg, state)),
            )
            .await
        });
        let client = WechatClient::new(
            engine,
            &wechat,
            Some(1),
            &[(1, bank.public_key())],
            b"1234567812345678",
        )
        .unwrap();
        let body = r#"{"user_true_name":"张三","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#.as_bytes();
        c.bench_function(&format!("handler/account_query/{engine}"), |b| {
            b.iter_batched(
                || {
                    let auth = client
                        .sign_request("POST", "/v1/pension/account", body, NOW, &nonce::generate())
                        .unwrap()
                        .authorization;
                    test::TestRequest::post()
                        .uri("/v1/pension/account")
                        .insert_header(("Authorization", auth))
                        .insert_header(("Request-ID", "bench"))
                        .insert_header(("Content-Type", "application/json"))
                        .set_payload(body.to_vec())
                        .to_request()
                },
                |req| {
                    let resp = rt.block_on(test::call_service(&svc, req));
                    assert_eq!(resp.status(), 200);
                },
                BatchSize::SmallInput,
            )
        });
    }
}

/// The criterion group, kept in a private module: `criterion_group!` makes its function `pub`
/// and gives it no documentation.
mod group {
    use super::{handler_path, Criterion};
    criterion::criterion_group! {
        name = benches;
        config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(4));
        targets = handler_path
    }
}
criterion_main!(group::benches);
