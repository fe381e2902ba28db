//! The OpenAPI document matches the real routes, error codes and response fields.

use crate::common;

use actix_web::test;
use common::{send, Db, Gateway, Req};
use pension_gateway::error::ErrorCode;

/// (method, path) pairs.
type Routes = std::collections::BTreeSet<(String, String)>;

fn table(entries: Vec<pension_gateway::http::RouteEntry>) -> Routes {
    entries
        .into_iter()
        .map(|e| (e.method.to_lowercase(), e.path))
        .collect()
}

/// The document's paths per listener (`x-listener`, default public; `/healthz` is on both).
fn documented(doc: &serde_json::Value, listener: &str) -> Routes {
    let mut out = Routes::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let on = op["x-listener"].as_str().unwrap_or("public");
            if on.split(", ").any(|l| l == listener) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[actix_web::test]
async fn document_matches_the_routes() {
    let gw = Gateway::start_with(Db::Sqlite, |s| {
        s.wechat.route = "/bank/wx/account".into();
        s.partners.hmac_route = "/bank/hmac/account".into();
        s.partners.open_platform = true;
        s.partners.callback = true;
        s.partners.hmac = true;
    })
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
        paths.contains_key("/bank/wx/account") && paths.contains_key("/bank/hmac/account"),
        "served document uses the configured routes"
    );
    assert!(!paths.contains_key("/v1/pension/account"));

    // Both directions, per listener: every routed path is documented, every documented path
    // is routed — from the same tables the listeners are built from.
    let public = table(pension_gateway::http::public_routes(
        &gw.state.wechat().route,
        gw.state.partners(),
    ));
    assert_eq!(documented(&doc, "public"), public, "public listener");
    assert_eq!(
        documented(&doc, "ops"),
        table(pension_gateway::ops::ops_routes()),
        "ops listener"
    );
    assert_eq!(
        documented(&doc, "admin"),
        table(pension_gateway::ops::admin_routes()),
        "admin listener"
    );

    // And the tables are what the listeners serve: each documented public path answers its
    // method (not actix's 404), with a concrete value for each `{placeholder}`.
    for (method, path) in &public {
        let uri = path
            .replace("{service}", "pension")
            .replace("{code}", "10001")
            .replace("{partner}", "demo-partner");
        let req = test::TestRequest::default()
            .method(method.to_uppercase().parse().unwrap())
            .uri(&uri)
            .to_request();
        let resp = test::call_service(&svc, req).await;
        let status = resp.status().as_u16();
        // actix's own 404 for an unrouted path has an empty body; a handler's 404 (an unknown
        // callback partner) says why.
        let body = test::read_body(resp).await;
        assert!(
            !(status == 404 && body.is_empty()),
            "{method} {path} is documented but not routed"
        );
    }
    for (path, on) in [
        ("/readyz", "ops"),
        ("/metrics", "ops"),
        ("/admin/keyring/reload", "admin"),
    ] {
        let status = test::call_service(&svc, test::TestRequest::get().uri(path).to_request())
            .await
            .status();
        assert_eq!(status, 404, "{path} lives only on the {on} listener");
    }
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
