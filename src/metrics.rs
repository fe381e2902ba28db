//! Prometheus metrics (text exposition at `/metrics`).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// Responses a bank key's backend did not sign, by `backend` and `reason` (`timeout`,
    /// `device`, …): each one answered the unsigned 503.
    pub signer_failures: IntCounterVec,
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
    /// Failed appends of a checkpoint's line to the audit witness file (exported at 0).
    pub audit_witness_failures: IntCounter,
    /// `gateway_audit_witness_syslog_failures_total`.
    pub audit_witness_syslog_failures: IntCounter,
    /// `gateway_audit_checkpoint_failures_total`: checkpoints whose signature failed.
    pub audit_checkpoint_failures: IntCounter,
    /// Requests whose signature verified under a WeChat key version (`version` label; every
    /// trusted version exported from its load at 0).
    pub wechat_key_requests: IntCounterVec,
    /// Responses signed under a bank key version (`version` label; every loaded version
    /// exported from its load at 0).
    pub bank_key_signatures: IntCounterVec,
    /// Unix time a key version was last used (`role` = `wechat` / `bank`, `version`); 0: not
    /// since this process started.
    pub key_last_used: IntGaugeVec,
    /// 1, labelled with what was built and how it runs: `version`, `commit`, `engine`,
    /// `backend`.
    pub build_info: IntGaugeVec,
    /// The process collector's own registry (Linux): `process_resident_memory_bytes`,
    /// `process_open_fds`, … under their standard names, without the `gateway_` prefix. Its
    /// `process_cpu_seconds_total` (whole seconds: the crate truncates) is replaced by
    /// [`ProcessCpu`]'s, to the kernel's clock tick.
    process: Registry,
    /// [`ProcessCpu`] (Linux).
    process_cpu: Option<Registry>,
    /// Unix time the metrics were created (the process's start, for the per-version counts).
    started_at: i64,
}

/// The `reason` labels of `gateway_verify_failures_total` on the WeChat channel, exported at 0
/// from the start.
pub const WECHAT_REASONS: &[&str] = &[
    "method",
    "header",
    "body",
    "concurrency",
    "timestamp",
    "signature_encoding",
    "unknown_version",
    "signature",
    "replay",
    "replay_store",
];

/// The commit the binary was built from (`build.rs`: `git rev-parse`, or the
/// `PENSION_GATEWAY_COMMIT` variable of the build, or `unknown`).
pub const BUILD_COMMIT: &str = env!("PENSION_GATEWAY_COMMIT");

/// `process_cpu_seconds_total` to the kernel's clock tick (`utime + stime` of `/proc/self/stat`
/// over `CLK_TCK`, usually 1/100 s), where the `prometheus` crate's process collector truncates
/// to whole seconds — a gateway using a tenth of a core showed a staircase with a step every 10 s.
#[cfg(target_os = "linux")]
struct ProcessCpu {
    desc: prometheus::core::Desc,
}

#[cfg(target_os = "linux")]
impl ProcessCpu {
    const NAME: &'static str = "process_cpu_seconds_total";
    const HELP: &'static str =
        "Total user and system CPU time spent in seconds (to the kernel's clock tick)";

    fn new() -> Result<Self, prometheus::Error> {
        Ok(Self {
            desc: prometheus::core::Desc::new(
                Self::NAME.into(),
                Self::HELP.into(),
                Vec::new(),
                std::collections::HashMap::new(),
            )?,
        })
    }

    /// This process's CPU time, seconds.
    fn seconds() -> Option<f64> {
        let stat = procfs::process::Process::myself().ok()?.stat().ok()?;
        let ticks = procfs::ticks_per_second();
        (ticks > 0).then(|| (stat.utime + stat.stime) as f64 / ticks as f64)
    }
}

#[cfg(target_os = "linux")]
impl prometheus::core::Collector for ProcessCpu {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let Some(secs) = Self::seconds() else {
            return Vec::new();
        };
        let Ok(counter) = prometheus::Counter::with_opts(Opts::new(Self::NAME, Self::HELP)) else {
            return Vec::new();
        };
        counter.inc_by(secs);
        prometheus::core::Collector::collect(&counter)
    }
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
        let signer_failures = IntCounterVec::new(
            Opts::new(
                "signer_failures_total",
                "Responses a signing module did not sign, by backend and reason",
            ),
            &["backend", "reason"],
        )?;
        registry.register(Box::new(signer_failures.clone()))?;
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
        let audit_witness_failures = IntCounter::new(
            "audit_witness_failures_total",
            "Failed appends of an audit checkpoint's line to the witness file (the line is kept \
             in memory and retried before the next one)",
        )?;
        registry.register(Box::new(audit_witness_failures.clone()))?;
        let audit_witness_syslog_failures = IntCounter::new(
            "audit_witness_syslog_failures_total",
            "Witness lines whose copy to the syslog socket (audit.witness_syslog) was lost",
        )?;
        registry.register(Box::new(audit_witness_syslog_failures.clone()))?;
        let audit_checkpoint_failures = IntCounter::new(
            "audit_checkpoint_failures_total",
            "Audit checkpoints whose signature failed (the bank key's module down or past its \
             deadline); the rows are written uncovered and the checkpoint tried again",
        )?;
        registry.register(Box::new(audit_checkpoint_failures.clone()))?;
        let wechat_key_requests = IntCounterVec::new(
            Opts::new(
                "wechat_key_requests_total",
                "Requests whose signature verified under a WeChat key version",
            ),
            &["version"],
        )?;
        let bank_key_signatures = IntCounterVec::new(
            Opts::new(
                "bank_key_signatures_total",
                "Responses signed under a bank key version",
            ),
            &["version"],
        )?;
        let key_last_used = IntGaugeVec::new(
            Opts::new(
                "key_last_used_seconds",
                "Unix time a key version was last used by this process (0: not since start)",
            ),
            &["role", "version"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "1, labelled with the gateway's version, commit, signing engine and database backend",
            ),
            &["version", "commit", "engine", "backend"],
        )?;
        registry.register(Box::new(wechat_key_requests.clone()))?;
        registry.register(Box::new(bank_key_signatures.clone()))?;
        registry.register(Box::new(key_last_used.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        for reason in WECHAT_REASONS {
            verify_failures.with_label_values(&[reason]);
        }
        let process = Registry::new();
        #[cfg(target_os = "linux")]
        let process_cpu = {
            process.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))?;
            // A registry of its own: the name collides with the process collector's, whose
            // family is dropped at render.
            let cpu = Registry::new();
            cpu.register(Box::new(ProcessCpu::new()?))?;
            Some(cpu)
        };
        #[cfg(not(target_os = "linux"))]
        let process_cpu = None;
        Ok(Self {
            registry,
            requests,
            verify_failures,
            verify_seconds,
            sign_seconds,
            signer_failures,
            key_versions,
            keyring_reloads,
            request_duration,
            dependency_up,
            key_staged_since,
            tls_not_after,
            tls_reloads,
            audit_batch_rows,
            audit_witness_failures,
            audit_witness_syslog_failures,
            audit_checkpoint_failures,
            wechat_key_requests,
            bank_key_signatures,
            key_last_used,
            build_info,
            process,
            process_cpu,
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
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
        // Every loaded version is exported at 0 from its load, so the first request under a new
        // version is an increase a rate or an alert can see.
        for k in ring.bank_keys() {
            let v = k.version.to_string();
            self.bank_key_signatures.with_label_values(&[&v]);
            self.key_last_used.with_label_values(&["bank", &v]);
        }
        for k in ring.trusted_wechat_keys() {
            let v = k.version.to_string();
            self.wechat_key_requests.with_label_values(&[&v]);
            self.key_last_used.with_label_values(&["wechat", &v]);
        }
    }

    /// Counts a request whose signature verified under WeChat key `version`, at `now` (unix
    /// seconds).
    pub fn record_wechat_key(&self, version: u32, now: i64) {
        let v = version.to_string();
        self.wechat_key_requests.with_label_values(&[&v]).inc();
        self.key_last_used
            .with_label_values(&["wechat", &v])
            .set(now);
    }

    /// Counts a response signed under bank key `version`, at `now` (unix seconds).
    pub fn record_bank_key(&self, version: u32, now: i64) {
        let v = version.to_string();
        self.bank_key_signatures.with_label_values(&[&v]).inc();
        self.key_last_used.with_label_values(&["bank", &v]).set(now);
    }

    /// Traffic under key `version` of `role` (`wechat`, `bank`): the count since start and the
    /// unix time of the last use (`None`: none since start).
    pub fn key_traffic(&self, role: &str, version: u32) -> (u64, Option<i64>) {
        let v = version.to_string();
        let count = match role {
            "wechat" => self.wechat_key_requests.with_label_values(&[&v]).get(),
            _ => self.bank_key_signatures.with_label_values(&[&v]).get(),
        };
        let last = self.key_last_used.with_label_values(&[role, &v]).get();
        (count, (last > 0).then_some(last))
    }

    /// Unix time these metrics started counting.
    pub fn started_at(&self) -> i64 {
        self.started_at
    }

    /// Publishes `gateway_build_info` (once, at start).
    pub fn record_build_info(&self, engine: &str, backend: &str) {
        self.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), BUILD_COMMIT, engine, backend])
            .set(1);
    }

    /// Exports the answer series of `routes` at 0 (`200 OK`, `500` and `503 SYSTEM_ERROR`, and
    /// the latency histogram), so a dashboard or an alert dividing by the request rate has a
    /// series from the start instead of "no data".
    pub fn export_routes(&self, routes: &[&str]) {
        for route in routes {
            for (status, code) in [
                ("200", "OK"),
                ("500", "SYSTEM_ERROR"),
                ("503", "SYSTEM_ERROR"),
            ] {
                self.requests.with_label_values(&[route, status, code]);
            }
            self.request_duration.with_label_values(&[route]);
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
        let precise_cpu = self.process_cpu.as_ref().map(Registry::gather);
        families.extend(
            self.process
                .gather()
                .into_iter()
                .filter(|f| precise_cpu.is_none() || f.get_name() != "process_cpu_seconds_total"),
        );
        families.extend(precise_cpu.into_iter().flatten());
        let _ = TextEncoder::new().encode(&families, &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
