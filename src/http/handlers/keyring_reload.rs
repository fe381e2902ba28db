//! `POST /admin/keyring/reload` on the loopback admin listener: rebuild the key ring from disk.
//! A refused set leaves the running one in place; the answer says which happened.

use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::http::state::AppState;

/// Reloads the key ring.
pub async fn reload(state: Data<AppState>) -> HttpResponse {
    match crate::server::reload_keys(&state) {
        Ok(()) => {
            let ring = state.keyring().snapshot();
            HttpResponse::Ok().json(serde_json::json!({
                "status": "reloaded",
                "active_bank_key_version": ring.active_version(),
                "rollout": ring.rollout().map(|r| serde_json::json!({"version": r.version, "percent": r.percent})),
                "trusted_wechat_key_versions": ring.trusted_wechat_keys().map(|k| k.version).collect::<Vec<_>>(),
            }))
        }
        Err(e) => HttpResponse::Conflict().json(serde_json::json!({
            "status": "refused",
            "error": e.to_string(),
            "active_bank_key_version": state.keyring().snapshot().active_version(),
        })),
    }
}
