//! `GET /openapi.json`: the OpenAPI 3 document of `docs/openapi.json`, with the account-query
//! and HMAC paths replaced by the configured `wechat.route` and `partners.hmac_route`.

use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::state::AppState;

/// The document as shipped in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The path of the account-query API in the shipped document.
pub const DOCUMENTED_ROUTE: &str = "/v1/pension/account";

/// The path of the HMAC channel in the shipped document.
pub const DOCUMENTED_HMAC_ROUTE: &str = "/hmac/v1/pension/account";

/// The document for this configuration.
pub fn document(route: &str, hmac_route: &str) -> serde_json::Value {
    let mut doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (documented, configured) in [
            (DOCUMENTED_ROUTE, route),
            (DOCUMENTED_HMAC_ROUTE, hmac_route),
        ] {
            if documented != configured {
                if let Some(op) = paths.remove(documented) {
                    paths.insert(configured.to_string(), op);
                }
            }
        }
    }
    doc
}

/// Serves the document.
pub async fn openapi(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(
        &state.wechat().route,
        &state.partners().hmac_route,
    ))
}
