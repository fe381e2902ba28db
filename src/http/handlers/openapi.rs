//! `GET /openapi.json`: the OpenAPI 3 document of `docs/openapi.json`, with the account-query
//! path replaced by the configured `wechat.route`.

use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::state::AppState;

/// The document as shipped in `docs/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

/// The path of the account-query API in the shipped document.
pub const DOCUMENTED_ROUTE: &str = "/v1/pension/account";

/// The document for this configuration.
pub fn document(route: &str) -> serde_json::Value {
    let mut doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap_or_default();
    if route != DOCUMENTED_ROUTE {
        if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
            if let Some(op) = paths.remove(DOCUMENTED_ROUTE) {
                paths.insert(route.to_string(), op);
            }
        }
    }
    doc
}

/// Serves the document.
pub async fn openapi(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(document(&state.wechat().route))
}
