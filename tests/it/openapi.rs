//! The OpenAPI document matches the real routes, error codes and response fields.

use crate::common;

use actix_web::test;
use common::{send, Db, Gateway, Req};
use pension_gateway::error::ErrorCode;

#[actix_web::test]
async fn document_matches_the_routes() {
    let gw = Gateway::start_with(Db::Sqlite, |s| s.wechat.route = "/bank/wx/account".into())
        .await
        .unwrap();
    let svc = gw.service().await;
    let resp = test::call_service(
        &svc,
        test::TestRequest::get().uri("/openapi.json").to_request(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let doc: serde_json::Value = test::read_body_json(resp).await;
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        paths.contains_key("/bank/wx/account"),
        "served document uses the configured route"
    );
    assert!(!paths.contains_key("/v1/pension/account"));
    let st = gw.state.clone();
    let ops_svc = test::init_service(
        actix_web::App::new().configure(move |cfg| pension_gateway::ops::configure_ops(cfg, st)),
    )
    .await;
    // Every documented path answers its documented method (not 404/405 from actix), on the
    // listener that serves it.
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let req = test::TestRequest::default()
                .method(method.to_uppercase().parse().unwrap())
                .uri(path)
                .to_request();
            let status = if ["/readyz", "/metrics"].contains(&path.as_str()) {
                test::call_service(&ops_svc, req).await.status().as_u16()
            } else {
                test::call_service(&svc, req).await.status().as_u16()
            };
            assert!(
                status != 404,
                "{method} {path} is documented but not routed"
            );
        }
    }
    // Undocumented paths are not served.
    let status = test::call_service(
        &svc,
        test::TestRequest::get()
            .uri("/admin/keyring/reload")
            .to_request(),
    )
    .await
    .status();
    assert_eq!(
        status, 404,
        "the admin route lives only on the admin listener"
    );
}

#[actix_web::test]
async fn documented_codes_and_fields_are_the_real_ones() {
    let doc: serde_json::Value =
        serde_json::from_str(pension_gateway::http::handlers::openapi::DOCUMENT).unwrap();
    let codes: Vec<&str> = doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let all = [
        ErrorCode::ParamError,
        ErrorCode::InvalidParameters,
        ErrorCode::SignError,
        ErrorCode::TimestampExpired,
        ErrorCode::NonceReplayed,
        ErrorCode::RuleLimit,
        ErrorCode::MethodNotAllowed,
        ErrorCode::InvalidUserInfo,
        ErrorCode::SessionNotFound,
        ErrorCode::SystemError,
    ];
    assert_eq!(codes, all.map(|c| c.as_str()).to_vec());
    let responses = doc["paths"]["/v1/pension/account"]["post"]["responses"]
        .as_object()
        .unwrap();
    for c in all {
        let status = c.status().as_u16().to_string();
        let examples = &responses[&status]["content"]["application/json"]["examples"];
        assert!(
            examples.get(c.as_str()).is_some(),
            "{} not documented under {status}",
            c.as_str()
        );
    }
    // The 200 schema lists exactly the fields a real answer has.
    let gw = Gateway::start(Db::Sqlite).await.unwrap();
    let svc = gw.service().await;
    let r = send(
        &svc,
        &gw.keys,
        Req::query("李四", "440300198503151236").build(&gw.keys),
    )
    .await;
    let real: std::collections::BTreeSet<String> =
        r.json.as_object().unwrap().keys().cloned().collect();
    let documented: std::collections::BTreeSet<String> = doc["components"]["schemas"]
        ["AccountReply"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(real, documented);
    let required: Vec<&str> = doc["components"]["schemas"]["AccountReply"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in required {
        assert!(real.contains(f), "{f}");
    }
    // The headers every response carries are documented.
    for h in [
        "WxIns-Nonce",
        "WxIns-Signature",
        "WxIns-Timestamp",
        "WxIns-Version",
        "Request-ID",
    ] {
        assert!(doc["components"]["headers"].get(h).is_some(), "{h}");
        assert!(r.header(h).is_some(), "{h}");
    }
}
