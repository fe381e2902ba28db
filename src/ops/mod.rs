//! The operator's side of the process, none of it on the WeChat channel: the ops listener
//! (readiness and metrics, for the load balancer and Prometheus; it may bind an internal
//! interface) and the admin listener (the reload and the per-version key traffic, loopback
//! only, bearer token).

pub mod admin_token;
pub mod check_config;
pub mod health;
pub mod key_guard;
pub mod reload;
pub mod secrets;
pub mod traffic;

use actix_web::web::{self, ServiceConfig};
use actix_web::HttpResponse;

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
    vec![
        RouteEntry {
            method: "POST",
            path: "/admin/keyring/reload".into(),
            route: || web::post().to(reload::reload),
        },
        RouteEntry {
            method: "GET",
            path: "/admin/keyring/traffic".into(),
            route: || web::get().to(traffic::traffic),
        },
    ]
}

/// The ops listener's application: [`ops_routes`] over `state`.
pub fn configure_ops(cfg: &mut ServiceConfig, state: AppState) {
    cfg.app_data(web::Data::new(state));
    for e in ops_routes() {
        cfg.route(&e.path, (e.route)());
    }
}

/// The admin listener's application: [`admin_routes`], for callers presenting the reloader's
/// admin token.
pub fn configure_admin(cfg: &mut ServiceConfig, reloader: std::sync::Arc<reload::Reloader>) {
    cfg.app_data(web::Data::from(reloader));
    for e in admin_routes() {
        cfg.route(&e.path, (e.route)());
    }
}

/// `None` when the request carries the admin bearer token; otherwise the 401 to answer (also
/// when the reloader has no token: the admin routes are never served without one).
fn require_admin(
    req: &actix_web::HttpRequest,
    reloader: &reload::Reloader,
) -> Option<HttpResponse> {
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if reloader.admin_token().is_some_and(|t| t.accepts(presented)) {
        return None;
    }
    tracing::warn!(
        path = req.path(),
        "admin call refused: missing or wrong bearer token"
    );
    Some(
        HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .json(serde_json::json!({"status": "unauthorized"})),
    )
}
