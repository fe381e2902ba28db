//! The actix application: route table, state, the WeChat channel adapter, health and metrics.

pub(crate) mod body;
pub mod handlers;
pub mod outcome;
pub mod partners;
pub mod wechat;

use actix_web::web::{self, ServiceConfig};

use crate::ops::health;
use crate::state::AppState;

/// One route of a listener: the method it is documented with, its path, and the actix route
/// that serves it. The route tables below are the single source both for the listeners and for
/// the test that holds `docs/openapi.json` to them, in both directions.
pub struct RouteEntry {
    /// The documented method (upper case). The WeChat route answers every method, so that
    /// even a wrong one gets a signed error, but is documented as POST.
    pub method: &'static str,
    /// The path, with `{placeholders}` as actix and OpenAPI write them.
    pub path: String,
    /// Builds the actix route.
    pub route: fn() -> actix_web::Route,
}

impl RouteEntry {
    fn new(method: &'static str, path: impl Into<String>, route: fn() -> actix_web::Route) -> Self {
        Self {
            method,
            path: path.into(),
            route,
        }
    }
}

/// The public listener's routes for this configuration: the WeChat channel, the enabled
/// partner channels, `/healthz` and `/openapi.json`.
pub fn public_routes(wechat_route: &str, p: &crate::config::PartnerSettings) -> Vec<RouteEntry> {
    let mut table = vec![
        RouteEntry::new("POST", wechat_route, || {
            web::route().to(wechat::get_account::entry)
        }),
        RouteEntry::new("GET", "/healthz", || web::get().to(health::healthz)),
        RouteEntry::new("GET", "/openapi.json", || {
            web::get().to(handlers::openapi::openapi)
        }),
    ];
    if p.open_platform {
        table.push(RouteEntry::new("GET", "/api/oauth2/access_token", || {
            web::get().to(partners::op_access_token::entry)
        }));
        table.push(RouteEntry::new("GET", "/api/oauth2/api_ticket", || {
            web::get().to(partners::op_api_ticket::entry)
        }));
        table.push(RouteEntry::new("POST", "/api/s/{service}/{code}", || {
            web::post().to(partners::op_service::entry)
        }));
    }
    if p.callback {
        table.push(RouteEntry::new("POST", "/callback/{partner}", || {
            web::post().to(partners::callback_receive::entry)
        }));
    }
    if p.hmac {
        table.push(RouteEntry::new("POST", p.hmac_route.clone(), || {
            web::post().to(partners::hmac_account::entry)
        }));
    }
    table
}

/// The public listener's application: the routes of [`public_routes`] over `state`.
pub fn configure(cfg: &mut ServiceConfig, state: AppState) {
    let table = public_routes(&state.wechat().route, state.partners());
    cfg.app_data(web::Data::new(state));
    for e in table {
        cfg.route(&e.path, (e.route)());
    }
}
