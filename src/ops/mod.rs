//! The operator's side of the process, none of it on the WeChat channel: the ops listener
//! (readiness and metrics, for the load balancer and Prometheus; it may bind an internal
//! interface) and the admin listener (the key-ring reload, loopback only, bearer token).

pub mod admin_token;
pub mod health;
pub mod reload;

use actix_web::web::{self, ServiceConfig};

pub use admin_token::AdminToken;

use crate::state::AppState;

/// The ops route table: `/healthz`, `/readyz`, `/metrics`.
pub fn configure_ops(cfg: &mut ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics));
}

/// The admin route table: `POST /admin/keyring/reload`, for callers presenting `token`.
pub fn configure_admin(
    cfg: &mut ServiceConfig,
    state: AppState,
    token: std::sync::Arc<AdminToken>,
) {
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::from(token))
        .route("/admin/keyring/reload", web::post().to(reload::reload));
}
