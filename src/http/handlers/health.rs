//! `/healthz` (the process answers), `/readyz` (database reachable, key ring loaded), `/metrics`.

use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::http::state::AppState;

/// Liveness: the process is serving.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers within its deadline and a key ring is loaded.
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    let ring = state.keyring().snapshot();
    let db = state.accounts().store().ping().await;
    let body = serde_json::json!({
        "database": if db.is_ok() { "ok" } else { "unavailable" },
        "active_bank_key_version": ring.active_version(),
        "trusted_wechat_key_versions": ring.trusted_wechat_keys().map(|k| k.version).collect::<Vec<_>>(),
    });
    match db {
        Ok(()) => HttpResponse::Ok().json(body),
        Err(e) => {
            tracing::warn!(cause = %e, "not ready: database unavailable");
            HttpResponse::ServiceUnavailable().json(body)
        }
    }
}

/// Prometheus text exposition.
pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics().render())
}
