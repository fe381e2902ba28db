//! The actix application: route table, state, the WeChat channel adapter, health and metrics.

pub mod handlers;
pub mod metrics;
pub mod state;
pub mod wechat;

use actix_web::web::{self, ServiceConfig};

pub use state::{AppState, Clock, ManualClock, SystemClock};

/// The route table. `route` is the configured path of the account-query API.
pub fn configure(cfg: &mut ServiceConfig, state: AppState) {
    let route = state.wechat().route.clone();
    cfg.app_data(web::Data::new(state))
        .route("/healthz", web::get().to(handlers::health::healthz))
        .route("/readyz", web::get().to(handlers::health::readyz))
        .route("/metrics", web::get().to(handlers::health::metrics))
        .route("/openapi.json", web::get().to(handlers::openapi::openapi))
        .route(&route, web::route().to(handlers::account_query::entry));
}

/// The admin route table (served only on the loopback admin listener).
pub fn configure_admin(cfg: &mut ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state)).route(
        "/admin/keyring/reload",
        web::post().to(handlers::keyring_reload::reload),
    );
}
