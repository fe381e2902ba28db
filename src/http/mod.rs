//! The actix application: route table, state, the WeChat channel adapter, health and metrics.

pub(crate) mod body;
pub mod handlers;
pub mod partners;
pub mod wechat;

use actix_web::web::{self, ServiceConfig};

use crate::ops::health;
use crate::state::AppState;

/// The route table. `route` is the configured path of the account-query API.
pub fn configure(cfg: &mut ServiceConfig, state: AppState) {
    let route = state.wechat().route.clone();
    let partners = state.partners().clone();
    cfg.app_data(web::Data::new(state))
        .route("/healthz", web::get().to(health::healthz))
        .route("/openapi.json", web::get().to(handlers::openapi::openapi))
        .route(&route, web::route().to(wechat::account_query::entry));
    configure_partners(cfg, &partners);
}

/// The partner channels' routes, each only when enabled (docs/partner-channels.md).
fn configure_partners(cfg: &mut ServiceConfig, p: &crate::config::PartnerSettings) {
    if p.open_platform {
        cfg.route(
            "/api/oauth2/access_token",
            web::get().to(partners::op_access_token::entry),
        )
        .route(
            "/api/oauth2/api_ticket",
            web::get().to(partners::op_api_ticket::entry),
        )
        .route(
            "/api/s/{service}/{code}",
            web::post().to(partners::op_service::entry),
        );
    }
    if p.callback {
        cfg.route(
            "/callback/{partner}",
            web::post().to(partners::callback_receive::entry),
        );
    }
    if p.hmac {
        cfg.route(&p.hmac_route, web::post().to(partners::hmac_account::entry));
    }
}
