//! Measurement tools for the performance team: `bench crypto` (engine throughput with OpenSSL
//! as the same-run baseline) and `bench http` (a bounded load generator with pre-signed unique
//! requests and verified responses, with the server's CPU per request against the crypto floor
//! and an optional self-contained HTML report). Figures are reported as ratios against a
//! baseline.

pub mod cpu;
pub mod crypto;
pub mod http;
pub mod latency;
pub mod report;

/// The signing string both engine measurements sign and verify (`bench crypto` and the crypto
/// floor of `bench http`): a real account query's method, path, timestamp, nonce and body.
pub(crate) fn sample_request_message() -> Vec<u8> {
    crate::crypto::signing_string::request_signing_string(
        "POST",
        b"/v1/pension/account",
        "1661776967",
        "5f270f2ff52b0c67dd47cd5c3ee17e91",
        br#"{"user_true_name":"\u5f20\u4e09","user_identify_card_num":"11010519491231002X","corpno":"weibao"}"#,
    )
}

/// Why a measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--url` is not a URI (the message includes the parser's, so it is not also the source).
    #[error("--url: {0}")]
    Url(actix_web::http::uri::InvalidUri),
    /// The latency histogram could not be created.
    #[error(transparent)]
    Histogram(#[from] hdrhistogram::CreationError),
    /// A worker panicked while holding shared results.
    #[error("poisoned")]
    Poisoned,
    /// The engine refused the generated key.
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    /// The engine could not sign.
    #[error(transparent)]
    Sign(#[from] crate::crypto::SignError),
    /// The outbound TLS configuration (`--ca-file`) was refused.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server's `/metrics` could not be read.
    #[error("server CPU: {url}: {reason}")]
    Scrape {
        /// The metrics URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The exposition has no `process_cpu_seconds_total`.
    #[error("server CPU: {0} has no process_cpu_seconds_total (a gateway without the process collector, or not on Linux)")]
    NoCpuMetric(String),
    /// `/proc/<pid>/stat` could not be read.
    #[error("server CPU: /proc/{pid}/stat: {reason}")]
    ProcStat {
        /// The process.
        pid: u32,
        /// What went wrong.
        reason: String,
    },
    /// A chart of the HTML report could not be drawn.
    #[error("report chart: {0}")]
    Chart(String),
    /// The HTML report could not be written.
    #[error("report {path}: {source}")]
    Report {
        /// The report's path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
