//! Key-ring reload: [`reload_keys`] (SIGHUP, the manifest watch, the admin call) and
//! `POST /admin/keyring/reload` on the loopback admin listener, which requires the admin bearer
//! token. A refused set leaves the running one in place; the answer says which happened. When
//! the public listener speaks TLS the same call reloads its certificate (`tls` in the answer;
//! 409 when either was refused).

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};

use crate::keyring::KeyRingError;
use crate::ops::AdminToken;
use crate::state::AppState;

/// Reloads the key ring (401 without the admin bearer token).
pub async fn reload(
    req: HttpRequest,
    state: Data<AppState>,
    token: Data<AdminToken>,
) -> HttpResponse {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !token.accepts(presented) {
        tracing::warn!("admin reload refused: missing or wrong bearer token");
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .json(serde_json::json!({"status": "unauthorized"}));
    }
    let (mut ok, mut body) = match reload_keys(&state) {
        Ok(()) => {
            let ring = state.keyring().snapshot();
            (
                true,
                serde_json::json!({
                    "status": "reloaded",
                    "active_bank_key_version": ring.active_version(),
                    "rollout": ring.rollout().map(|r| serde_json::json!({"version": r.version, "percent": r.percent})),
                    "trusted_wechat_key_versions": ring.trusted_wechat_keys().map(|k| k.version).collect::<Vec<_>>(),
                }),
            )
        }
        Err(e) => (
            false,
            serde_json::json!({
                "status": "refused",
                "error": e.to_string(),
                "active_bank_key_version": state.keyring().snapshot().active_version(),
            }),
        ),
    };
    if let Some(tls) = req.app_data::<Data<crate::tls::server::ServerTls>>() {
        body["tls"] = match tls.reload() {
            Ok(leaf) => serde_json::json!({
                "status": "reloaded", "serial": leaf.serial_hex, "not_after": leaf.not_after,
            }),
            Err(e) => {
                ok = false;
                serde_json::json!({
                    "status": "refused", "code": e.code(), "error": e.to_string(),
                    "serial": tls.served().serial_hex,
                })
            }
        };
    }
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::Conflict().json(body)
    }
}

/// Reloads the key ring, logging and counting the result; a refused set keeps the old one.
pub fn reload_keys(state: &AppState) -> Result<(), KeyRingError> {
    match state.keyring().reload() {
        Ok(ring) => {
            state.metrics().record_keyring(&ring);
            state
                .metrics()
                .record_staged_since(&state.keyring().staged_since());
            state
                .metrics()
                .keyring_reloads
                .with_label_values(&["ok"])
                .inc();
            tracing::info!(active = ring.active_version(), rollout = ?ring.rollout(), "key ring reloaded");
            Ok(())
        }
        Err(e) => {
            state
                .metrics()
                .keyring_reloads
                .with_label_values(&["refused"])
                .inc();
            tracing::error!(error = %e, "key ring reload refused; still serving the previous set");
            Err(e)
        }
    }
}
