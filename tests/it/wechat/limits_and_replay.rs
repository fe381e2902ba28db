//! RULE_LIMIT (per identity, in flight) and the Redis replay store shared by two instances.
//! Redis tests read `TEST_REDIS_URL` (.ci/run sets it): unset → note and return; set and
//! unreachable → they fail.

use crate::common;

use common::{send, Db, Gateway, Req, NOW};

#[actix_web::test]
async fn per_identity_rate_limit() {
    let gw = Gateway::start_with(Db::Sqlite, |s| s.limits.per_identity_per_minute = 3)
        .await
        .unwrap();
    let svc = gw.service().await;
    gw.clock.set(NOW - NOW % 60); // start of a minute
    for i in 0..3 {
        let mut req = Req::query("张三", "11010519491231002X");
        req.timestamp = NOW - NOW % 60;
        assert_eq!(
            send(&svc, &gw.keys, req.build(&gw.keys)).await.status,
            200,
            "query {i}"
        );
    }
    let mut req = Req::query("张三", "11010519491231002X");
    req.timestamp = NOW - NOW % 60;
    let r = send(&svc, &gw.keys, req.build(&gw.keys)).await;
    assert_eq!((r.status, r.code()), (403, "RULE_LIMIT"));
    assert_eq!(r.signed_by, Ok(1));
    // Another user is not affected; the lower-case x is the same identity.
    let mut other = Req::query("李四", "440300198503151236");
    other.timestamp = NOW - NOW % 60;
    assert_eq!(
        send(&svc, &gw.keys, other.build(&gw.keys)).await.status,
        200
    );
    let mut lower = Req::query("张三", "11010519491231002x");
    lower.timestamp = NOW - NOW % 60;
    assert_eq!(
        send(&svc, &gw.keys, lower.build(&gw.keys)).await.code(),
        "RULE_LIMIT"
    );
    // The next minute opens a new window.
    gw.clock.set(NOW - NOW % 60 + 60);
    let mut later = Req::query("张三", "11010519491231002X");
    later.timestamp = NOW - NOW % 60 + 60;
    assert_eq!(
        send(&svc, &gw.keys, later.build(&gw.keys)).await.status,
        200
    );
    // RULE_LIMIT answers are audited like every verified request.
    let rows = gw
        .state
        .accounts()
        .store()
        .audit_for_request(req.request_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(rows[0].outcome, "RULE_LIMIT");
}

#[actix_web::test]
async fn in_flight_cap() {
    let gw = Gateway::start_with(Db::Sqlite, |s| s.limits.max_concurrent = 1)
        .await
        .unwrap();
    let svc = gw.service().await;
    let held = gw.state.concurrency().try_acquire().unwrap();
    let r = send(
        &svc,
        &gw.keys,
        Req::query("张三", "11010519491231002X").build(&gw.keys),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "RULE_LIMIT"));
    assert_eq!(r.signed_by, Ok(1));
    drop(held);
    assert_eq!(gw.state.concurrency().in_flight(), 0);
    assert_eq!(
        send(
            &svc,
            &gw.keys,
            Req::query("张三", "11010519491231002X").build(&gw.keys)
        )
        .await
        .status,
        200
    );
}

#[actix_web::test]
async fn replay_refused_across_two_instances_sharing_redis() {
    let Some(url) = common::redis_url() else {
        return;
    };
    let prefix = format!("pgw-test:{}:", uuid::Uuid::new_v4().simple());
    let setup = |s: &mut pension_gateway::config::Settings| {
        s.replay.store = pension_gateway::config::ReplayStoreKind::Redis;
        s.replay.redis_url = url.clone();
        s.replay.key_prefix = prefix.clone();
    };
    let a = Gateway::start_with(Db::Sqlite, setup).await.unwrap();
    // Instance B: its own process state and database, the same Redis and the same keys.
    let b_db = common::test_db(Db::Sqlite).await.unwrap();
    let mut s = common::settings(&a.keys);
    setup(&mut s);
    let b_state = pension_gateway::server::build_state(
        &s,
        b_db.store.clone(),
        pension_gateway::server::load_keys(&s).unwrap(),
        a.clock.clone(),
    )
    .unwrap();
    pension_gateway::accounts::demo::seed_demo(b_state.accounts(), NOW)
        .await
        .unwrap();
    let svc_a = a.service().await;
    let svc_b = actix_web::test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::http::configure(cfg, b_state)),
    )
    .await;
    let req = Req::query("张三", "11010519491231002X");
    let first = send(&svc_a, &a.keys, req.build(&a.keys)).await;
    assert_eq!(
        first.status, 200,
        "{:?} — is Redis at {url} reachable?",
        first.json
    );
    let replayed = send(&svc_b, &a.keys, req.build(&a.keys)).await;
    assert_eq!((replayed.status, replayed.code()), (401, "SIGN_ERROR"));
    assert!(replayed.json["message"]
        .as_str()
        .unwrap()
        .contains("NONCE_REPLAYED"));
    assert_eq!(replayed.signed_by, Ok(1));
    // A fresh nonce goes through on B.
    assert_eq!(
        send(
            &svc_b,
            &a.keys,
            Req::query("张三", "11010519491231002X").build(&a.keys)
        )
        .await
        .status,
        200
    );
}

#[actix_web::test]
async fn unreachable_redis_fails_closed_with_a_signed_503_unless_configured_open() {
    for fail_open in [false, true] {
        let gw = Gateway::start_with(Db::Sqlite, |s| {
            s.replay.store = pension_gateway::config::ReplayStoreKind::Redis;
            s.replay.redis_url = "redis://127.0.0.1:1/".into();
            s.replay.timeout_ms = 300;
            s.replay.fail_open = fail_open;
        })
        .await
        .unwrap();
        let svc = gw.service().await;
        let started = std::time::Instant::now();
        let r = send(
            &svc,
            &gw.keys,
            Req::query("张三", "11010519491231002X").build(&gw.keys),
        )
        .await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "must not hang"
        );
        if fail_open {
            assert_eq!(r.status, 200);
        } else {
            assert_eq!((r.status, r.code()), (503, "SYSTEM_ERROR"));
            assert_eq!(r.signed_by, Ok(1));
        }
    }
}
