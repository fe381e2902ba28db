//! Prometheus metrics (text exposition at `/metrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
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
    /// Time from a request's arrival to its answer (audit row written), by route.
    pub request_duration: HistogramVec,
    /// Whether a dependency (`database`, `redis`) answered its last readiness ping: 1 or 0.
    pub dependency_up: IntGaugeVec,
    /// Unix time each staged bank key version was first seen staged (see
    /// [`KeyRingHandle::staged_since`](crate::keyring::KeyRingHandle::staged_since)).
    pub key_staged_since: IntGaugeVec,
    /// Not-after time of the certificate the public listener serves, unix seconds (0 without TLS).
    pub tls_not_after: IntGauge,
    /// Certificate reloads by result (ok / refused).
    pub tls_reloads: IntCounterVec,
    /// Rows per audit batch written by the group-commit writer.
    pub audit_batch_rows: Histogram,
    /// The process collector's own registry (Linux): `process_cpu_seconds_total`,
    /// `process_resident_memory_bytes`, … under their standard names, without the `gateway_`
    /// prefix. `process_cpu_seconds_total` counts whole seconds (the crate truncates).
    process: Registry,
}

const CRYPTO_BUCKETS: &[f64] = &[
    0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
];

/// Request latency buckets, seconds: from a fast refusal (well under a millisecond) to the
/// deadlines of a slow database (seconds); the alert on p99 sits around 0.25 s.
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from a request's arrival to its answer, by route",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["route"],
        )?;
        let dependency_up = IntGaugeVec::new(
            Opts::new(
                "dependency_up",
                "Whether a dependency answered its last readiness ping (1) or not (0)",
            ),
            &["dependency"],
        )?;
        let key_staged_since = IntGaugeVec::new(
            Opts::new(
                "key_staged_since_seconds",
                "Unix time a staged bank key version was first seen staged",
            ),
            &["version"],
        )?;
        registry.register(Box::new(keyring_reloads.clone()))?;
        // Both results exported from the start at 0, so the first refused reload is an
        // increase that `increase()` in an alert can see (a series born at 1 is not).
        for result in ["ok", "refused"] {
            keyring_reloads.with_label_values(&[result]);
        }
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(dependency_up.clone()))?;
        registry.register(Box::new(key_staged_since.clone()))?;
        let tls_not_after = IntGauge::with_opts(Opts::new(
            "tls_certificate_not_after_seconds",
            "Not-after time of the served TLS certificate, unix seconds",
        ))?;
        let tls_reloads = IntCounterVec::new(
            Opts::new("tls_reloads_total", "TLS certificate reloads by result"),
            &["result"],
        )?;
        registry.register(Box::new(tls_not_after.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        for result in ["ok", "refused"] {
            tls_reloads.with_label_values(&[result]);
        }
        let audit_batch_rows = Histogram::with_opts(
            HistogramOpts::new(
                "audit_batch_rows",
                "Audit rows per group-commit batch (one multi-row INSERT each)",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
        )?;
        registry.register(Box::new(audit_batch_rows.clone()))?;
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
            request_duration,
            dependency_up,
            key_staged_since,
            tls_not_after,
            tls_reloads,
            audit_batch_rows,
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

    /// Counts one answered request and observes its duration: the one place every channel
    /// reports an answer (`requests_total` and `request_duration_seconds` stay consistent).
    pub fn record_answer(&self, route: &str, status: &str, code: &str, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, status, code])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Records whether `dependency` (`database`, `redis`) answered.
    pub fn record_dependency(&self, dependency: &str, up: bool) {
        self.dependency_up
            .with_label_values(&[dependency])
            .set(i64::from(up));
    }

    /// Publishes when each staged bank key version was first seen staged (version → unix
    /// seconds); versions no longer staged disappear from the exposition.
    pub fn record_staged_since(&self, staged: &BTreeMap<u32, i64>) {
        self.key_staged_since.reset();
        for (version, since) in staged {
            self.key_staged_since
                .with_label_values(&[&version.to_string()])
                .set(*since);
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
