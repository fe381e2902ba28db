//! `/healthz` (the process answers; public), `/readyz` (database reachable, key ring loaded,
//! not draining) and `/metrics` (both on the ops listener only).

use std::time::{Duration, Instant};

use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::state::AppState;

/// How long a readiness verdict is reused: a load balancer or an attacker polling `/readyz`
/// costs at most one database ping per this interval, whatever the request rate.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// The last readiness verdict and when it was taken. Callers queue on the lock, so a burst of
/// polls waits for one ping instead of starting one each.
#[derive(Default)]
pub struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
    pings: std::sync::atomic::AtomicU64,
    /// The replay store's (Redis) last verdict, cached like the database's.
    redis_last: tokio::sync::Mutex<Option<(Instant, bool)>>,
    draining: std::sync::atomic::AtomicBool,
}

impl Readiness {
    /// From now on `/readyz` answers 503 `draining` (SIGTERM received: the load balancer should
    /// send new requests elsewhere; requests that still arrive are served). There is no way back:
    /// the process stops when the drain ends.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Readiness::start_draining`] was called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the database answered, from a verdict at most [`READINESS_TTL`] old.
    pub async fn database_ok(&self, state: &AppState) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last {
            if at.elapsed() < READINESS_TTL {
                return ok;
            }
        }
        self.pings
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = match state.accounts().store().ping().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cause = %e, "not ready: database unavailable");
                false
            }
        };
        *last = Some((Instant::now(), ok));
        state.metrics().record_dependency("database", ok);
        ok
    }

    /// Whether the shared replay store (Redis) answered, from a verdict at most
    /// [`READINESS_TTL`] old; `None` when nonces are kept in memory. Reported in `/readyz` and
    /// `gateway_dependency_up{dependency="redis"}`, but not part of the verdict: every instance
    /// shares the one Redis, so taking instances out of the balancer would not help, and each
    /// request already answers a signed 503 (or fails open, if so configured) without it.
    pub async fn redis_ok(&self, state: &AppState) -> Option<bool> {
        let mut last = self.redis_last.lock().await;
        if let Some((at, ok)) = *last {
            if at.elapsed() < READINESS_TTL {
                return Some(ok);
            }
        }
        let ok = match state.replay().ping().await? {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(cause = %e, "replay store (Redis) unavailable");
                false
            }
        };
        *last = Some((Instant::now(), ok));
        state.metrics().record_dependency("redis", ok);
        Some(ok)
    }

    /// Database pings made for readiness since start.
    pub fn pings(&self) -> u64 {
        self.pings.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Liveness: the process is serving. Says nothing else (it is on the public listener).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// Readiness: the instance is not draining, the database answered within its deadline (cached
/// for a second) and a key ring is loaded. While draining it answers 503
/// `{"status":"draining"}` without touching the database.
pub async fn readyz(state: Data<AppState>) -> HttpResponse {
    if state.readiness().is_draining() {
        return HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "draining" }));
    }
    let ring = state.keyring().snapshot();
    let db = state.readiness().database_ok(&state).await;
    let redis = state.readiness().redis_ok(&state).await;
    let module = modules_ok(&state, &ring).await;
    let ready = db && module != Some(false);
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "signing_module": match module { None => "none", Some(true) => "ok", Some(false) => "unavailable" },
        "database": if db { "ok" } else { "unavailable" },
        "replay_store": match redis { None => "memory", Some(true) => "ok", Some(false) => "unavailable" },
        "active_bank_key_version": ring.active_version(),
        "trusted_wechat_key_versions": ring.trusted_wechat_keys().map(|k| k.version).collect::<Vec<_>>(),
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Whether every signing module of the ring answers: `None` when no bank version uses one. A
/// module marked unhealthy (a call failed or ran past its deadline) is probed with one test
/// signature under its deadline, so a module that answers again makes the instance ready
/// without waiting for traffic (the balancer sends none to an instance that is not ready).
async fn modules_ok(state: &AppState, ring: &crate::keyring::KeyRing) -> Option<bool> {
    let mut any = false;
    let mut ok = true;
    for m in ring.modules() {
        any = true;
        if !m.check().await {
            tracing::warn!(module = m.name(), "signing module unavailable");
            ok = false;
        }
    }
    if any {
        state.metrics().record_dependency("signing_module", ok);
    }
    any.then_some(ok)
}

/// Prometheus text exposition. The dependency verdicts are refreshed first (from the same
/// one-second cache as `/readyz`), so `gateway_dependency_up` is current at every scrape even
/// when nothing polls `/readyz`.
pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    state.readiness().database_ok(&state).await;
    state.readiness().redis_ok(&state).await;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics().render())
}
