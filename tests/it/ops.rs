//! The operator's listeners: `/readyz` and `/metrics` only on the ops listener (the public one
//! keeps a `/healthz` that says nothing but "ok"), readiness that a flood cannot turn into
//! database load, and the admin reload behind its bearer token.

use crate::common;

use std::sync::Arc;
use std::time::Instant;

use actix_web::{test, App};
use common::{Db, Gateway};
use pension_gateway::ops::AdminToken;

#[actix_web::test]
async fn readiness_and_metrics_are_off_the_public_listener() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let public = gw.service().await;
    for path in ["/readyz", "/metrics", "/admin/keyring/reload"] {
        let r = test::call_service(&public, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(
            r.status(),
            404,
            "{path} must not answer on the public listener"
        );
    }
    let r = test::call_service(
        &public,
        test::TestRequest::get().uri("/healthz").to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        test::read_body(r).await,
        "ok",
        "/healthz says nothing but ok"
    );

    let st = gw.state.clone();
    let ops = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    let r = test::call_service(&ops, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["database"], "ok");
    assert_eq!(body["active_bank_key_version"], 1);
    let r = test::call_service(&ops, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(r.status(), 200);
    let text = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
    assert!(
        text.contains("gateway_keyring_reloads_total") || text.contains("gateway_"),
        "{text}"
    );
    let r = test::call_service(&ops, test::TestRequest::get().uri("/healthz").to_request()).await;
    assert_eq!(r.status(), 200);
}

#[actix_web::test]
async fn a_readiness_flood_costs_one_database_ping_per_second() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let st = gw.state.clone();
    let ops = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    let before = gw.state.readiness().pings();
    let started = Instant::now();
    const POLLS: u64 = 2_000;
    for _ in 0..POLLS {
        let r =
            test::call_service(&ops, test::TestRequest::get().uri("/readyz").to_request()).await;
        assert_eq!(r.status(), 200);
    }
    let secs = started.elapsed().as_secs();
    let pings = gw.state.readiness().pings() - before;
    // One ping per started second of the flood (and one for a boundary crossed).
    assert!(
        pings <= secs + 2,
        "{POLLS} polls in {secs} s made {pings} database pings"
    );
    println!(
        "{POLLS} /readyz polls in {:?}: {pings} database pings",
        started.elapsed()
    );
}

#[actix_web::test]
async fn admin_reload_requires_the_bearer_token() {
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let st = gw.state.clone();
    let token = Arc::new(AdminToken::new(b"the-admin-token"));
    let admin = test::init_service(
        App::new().configure(move |cfg| pension_gateway::ops::configure_admin(cfg, st, token)),
    )
    .await;
    let post = || test::TestRequest::post().uri("/admin/keyring/reload");
    let r = test::call_service(&admin, post().to_request()).await;
    assert_eq!(r.status(), 401, "no token");
    assert_eq!(r.headers().get("WWW-Authenticate").unwrap(), "Bearer");
    for wrong in [
        "Bearer the-admin-tokeN",
        "Bearer the-admin-token2",
        "Basic the-admin-token",
        "the-admin-token",
    ] {
        let r = test::call_service(
            &admin,
            post().insert_header(("Authorization", wrong)).to_request(),
        )
        .await;
        assert_eq!(r.status(), 401, "{wrong}");
    }
    let reloads_before = gw.state.metrics().render();
    let r = test::call_service(
        &admin,
        post()
            .insert_header(("Authorization", "Bearer the-admin-token"))
            .to_request(),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = test::read_body_json(r).await;
    assert_eq!(body["status"], "reloaded");
    assert_ne!(
        reloads_before,
        gw.state.metrics().render(),
        "the reload was counted"
    );
}

#[core::prelude::v1::test]
fn the_admin_token_file_follows_the_secret_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.token");
    std::fs::write(&path, "tok-123\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AdminToken::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("admin.token"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let token = AdminToken::from_file(&path).unwrap();
    assert!(token.accepts(Some(b"Bearer tok-123")));
    assert_eq!(format!("{token:?}"), "AdminToken(***)");
}
