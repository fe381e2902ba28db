//! Prometheus metrics (text exposition at `/metrics`).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::keyring::KeyRing;

/// The gateway's metrics, registered in their own registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by route, HTTP status and public code.
    pub requests: IntCounterVec,
    /// Failed verifications by reason (header, timestamp, signature, replay).
    pub verify_failures: IntCounterVec,
    /// Time to verify one request signature.
    pub verify_seconds: HistogramVec,
    /// Time to sign one response.
    pub sign_seconds: HistogramVec,
    /// Loaded key versions: 1 per (role, version, state).
    pub key_versions: IntGaugeVec,
    /// Key ring reloads by result (ok / refused).
    pub keyring_reloads: IntCounterVec,
    /// The process collector's own registry (Linux): `process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`, … under their standard names, without the `gateway_`
    /// prefix. `process_cpu_seconds_total` counts whole seconds (the crate truncates).
    process: Registry,
}

const CRYPTO_BUCKETS: &[f64] = &[
    0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
];

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("gateway".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Requests answered, by route, HTTP status and public code",
            ),
            &["route", "status", "code"],
        )?;
        let verify_failures = IntCounterVec::new(
            Opts::new(
                "verify_failures_total",
                "WeChat requests refused before the handler, by reason",
            ),
            &["reason"],
        )?;
        let verify_seconds = HistogramVec::new(
            HistogramOpts::new("verify_seconds", "SM2 verification time")
                .buckets(CRYPTO_BUCKETS.to_vec()),
            &["engine"],
        )?;
        let sign_seconds = HistogramVec::new(
            HistogramOpts::new("sign_seconds", "SM2 signing time").buckets(CRYPTO_BUCKETS.to_vec()),
            &["engine"],
        )?;
        let key_versions = IntGaugeVec::new(
            Opts::new("key_versions", "Loaded key versions"),
            &["role", "version", "state"],
        )?;
        let keyring_reloads = IntCounterVec::new(
            Opts::new("keyring_reloads_total", "Key ring reloads by result"),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(verify_failures.clone()))?;
        registry.register(Box::new(verify_seconds.clone()))?;
        registry.register(Box::new(sign_seconds.clone()))?;
        registry.register(Box::new(key_versions.clone()))?;
        registry.register(Box::new(keyring_reloads.clone()))?;
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            requests,
            verify_failures,
            verify_seconds,
            sign_seconds,
            key_versions,
            keyring_reloads,
            process,
        })
    }

    /// Publishes the versions of a (newly loaded) key ring.
    pub fn record_keyring(&self, ring: &KeyRing) {
        self.key_versions.reset();
        for k in ring.bank_keys() {
            let state = if ring.rollout().is_some_and(|r| r.version == k.version) {
                "rollout".to_string()
            } else {
                format!("{:?}", k.state).to_lowercase()
            };
            self.key_versions
                .with_label_values(&["bank", &k.version.to_string(), &state])
                .set(1);
        }
        for k in ring.trusted_wechat_keys() {
            self.key_versions
                .with_label_values(&["wechat", &k.version.to_string(), "trusted"])
                .set(1);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
