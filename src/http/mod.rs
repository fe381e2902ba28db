//! The actix application: route table, state, the WeChat channel adapter, health and metrics.

pub mod handlers;
pub mod metrics;
pub(crate) mod open_platform;
pub(crate) mod partners;
pub mod state;
pub mod wechat;

use actix_web::web::{self, ServiceConfig};

pub use state::{AppState, Clock, ManualClock, SystemClock};

/// The route table. `route` is the configured path of the account-query API.
pub fn configure(cfg: &mut ServiceConfig, state: AppState) {
    let route = state.wechat().route.clone();
    let partners = state.partners().clone();
    cfg.app_data(web::Data::new(state))
        .route("/healthz", web::get().to(handlers::health::healthz))
        .route("/readyz", web::get().to(handlers::health::readyz))
        .route("/metrics", web::get().to(handlers::health::metrics))
        .route("/openapi.json", web::get().to(handlers::openapi::openapi))
        .route(&route, web::route().to(handlers::account_query::entry));
    configure_partners(cfg, &partners);
}

/// The partner channels' routes, each only when enabled (DESIGN.md §6).
fn configure_partners(cfg: &mut ServiceConfig, p: &crate::config::PartnerSettings) {
    if p.open_platform {
        cfg.route(
            "/api/oauth2/access_token",
            web::get().to(handlers::op_access_token::entry),
        )
        .route(
            "/api/oauth2/api_ticket",
            web::get().to(handlers::op_api_ticket::entry),
        )
        .route(
            "/api/s/{service}/{code}",
            web::post().to(handlers::op_service::entry),
        );
    }
    if p.callback {
        cfg.route(
            "/callback/{partner}",
            web::post().to(handlers::callback_receive::entry),
        );
    }
    if p.hmac {
        cfg.route(&p.hmac_route, web::post().to(handlers::hmac_account::entry));
    }
}

/// The admin route table (served only on the loopback admin listener).
pub fn configure_admin(cfg: &mut ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state)).route(
        "/admin/keyring/reload",
        web::post().to(handlers::keyring_reload::reload),
    );
}
