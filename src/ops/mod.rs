//! The operator's side of the process, none of it on the WeChat channel: the ops listener
//! (readiness and metrics, for the load balancer and Prometheus; it may bind an internal
//! interface) and the admin listener (the key-ring reload, loopback only, bearer token).

pub mod admin_token;
pub mod check_config;
pub mod health;
pub mod reload;

use actix_web::web::{self, ServiceConfig};

pub use admin_token::AdminToken;
pub use check_config::check_config;

use crate::http::RouteEntry;
use crate::state::AppState;

/// The ops listener's routes.
pub fn ops_routes() -> Vec<RouteEntry> {
    vec![
        RouteEntry {
            method: "GET",
            path: "/healthz".into(),
            route: || web::get().to(health::healthz),
        },
        RouteEntry {
            method: "GET",
            path: "/readyz".into(),
            route: || web::get().to(health::readyz),
        },
        RouteEntry {
            method: "GET",
            path: "/metrics".into(),
            route: || web::get().to(health::metrics),
        },
    ]
}

/// The admin listener's routes.
pub fn admin_routes() -> Vec<RouteEntry> {
    vec![RouteEntry {
        method: "POST",
        path: "/admin/keyring/reload".into(),
        route: || web::post().to(reload::reload),
    }]
}

/// The ops listener's application: [`ops_routes`] over `state`.
pub fn configure_ops(cfg: &mut ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state));
    for e in ops_routes() {
        cfg.route(&e.path, (e.route)());
    }
}

/// The admin listener's application: [`admin_routes`], for callers presenting `token`.
pub fn configure_admin(
    cfg: &mut ServiceConfig,
    state: AppState,
    token: std::sync::Arc<AdminToken>,
) {
    cfg.app_data(web::Data::new(state))
        .app_data(web::Data::from(token));
    for e in admin_routes() {
        cfg.route(&e.path, (e.route)());
    }
}
