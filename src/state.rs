//! Application state shared by every worker: a cheap `Clone` of `Arc`s with private fields.

use std::sync::Arc;

use crate::accounts::AccountDirectory;
use crate::clock::Clock;
use crate::config::{PartnerSettings, WechatSettings};
use crate::crypto::EngineKind;
use crate::keyring::KeyRingHandle;
use crate::limits::{ConcurrencyLimit, IdentityLimit};
use crate::metrics::Metrics;
use crate::replay::ReplayGuard;

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
    rate: IdentityLimit,
    concurrency: ConcurrencyLimit,
    partners: PartnerSettings,
    body_timeout: std::time::Duration,
    readiness: crate::ops::health::Readiness,
}

impl AppState {
    /// Assembles the state.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per part of the state, assembled once at start-up"
    )]
    pub fn new(
        wechat: WechatSettings,
        engine: EngineKind,
        keyring: Arc<KeyRingHandle>,
        replay: ReplayGuard,
        accounts: AccountDirectory,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
        rate: IdentityLimit,
        concurrency: ConcurrencyLimit,
        partners: PartnerSettings,
        body_timeout: std::time::Duration,
    ) -> Self {
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
                body_timeout,
                readiness: Default::default(),
            }),
        }
    }

    /// The deadline for a whole request body.
    pub fn body_timeout(&self) -> std::time::Duration {
        self.inner.body_timeout
    }

    /// The cached readiness verdict (`/readyz`).
    pub fn readiness(&self) -> &crate::ops::health::Readiness {
        &self.inner.readiness
    }

    /// The per-identity rate limit.
    pub fn rate_limit(&self) -> &IdentityLimit {
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
