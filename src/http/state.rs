//! Application state shared by every worker: a cheap `Clone` of `Arc`s with private fields.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::accounts::AccountDirectory;
use crate::config::{PartnerSettings, WechatSettings};
use crate::crypto::EngineKind;
use crate::http::metrics::Metrics;
use crate::keyring::KeyRingHandle;
use crate::limits::{ConcurrencyLimit, IdentityRateLimit};
use crate::replay::ReplayGuard;

/// Where "now" comes from, so tests control time exactly.
pub trait Clock: Send + Sync {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;
    /// Unix time in seconds.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `secs`.
    pub fn at(secs: i64) -> Self {
        Self(AtomicI64::new(secs * 1000))
    }
    /// Moves the clock to `secs`.
    pub fn set(&self, secs: i64) {
        self.0.store(secs * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything a request needs.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    wechat: WechatSettings,
    engine: EngineKind,
    keyring: Arc<KeyRingHandle>,
    replay: ReplayGuard,
    accounts: AccountDirectory,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
    rate: IdentityRateLimit,
    concurrency: ConcurrencyLimit,
    partners: PartnerSettings,
}

impl AppState {
    /// Assembles the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        wechat: WechatSettings,
        engine: EngineKind,
        keyring: Arc<KeyRingHandle>,
        replay: ReplayGuard,
        accounts: AccountDirectory,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        limits: &crate::config::LimitSettings,
        partners: PartnerSettings,
    ) -> Self {
        let rate = IdentityRateLimit::new(limits.per_identity_per_minute);
        let concurrency = ConcurrencyLimit::new(limits.max_concurrent);
        Self {
            inner: Arc::new(Inner {
                wechat,
                engine,
                keyring,
                replay,
                accounts,
                metrics,
                clock,
                rate,
                concurrency,
                partners,
            }),
        }
    }

    /// The per-identity rate limit.
    pub fn rate_limit(&self) -> &IdentityRateLimit {
        &self.inner.rate
    }

    /// The in-flight cap.
    pub fn concurrency(&self) -> &ConcurrencyLimit {
        &self.inner.concurrency
    }

    /// Partner channel settings.
    pub fn partners(&self) -> &PartnerSettings {
        &self.inner.partners
    }

    /// WeChat channel settings.
    pub fn wechat(&self) -> &WechatSettings {
        &self.inner.wechat
    }
    /// The SM2 engine in use (a metrics label).
    pub fn engine(&self) -> EngineKind {
        self.inner.engine
    }
    /// The live key ring.
    pub fn keyring(&self) -> &KeyRingHandle {
        &self.inner.keyring
    }
    /// The nonce store.
    pub fn replay(&self) -> &ReplayGuard {
        &self.inner.replay
    }
    /// The account directory.
    pub fn accounts(&self) -> &AccountDirectory {
        &self.inner.accounts
    }
    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }
}
