//! Measurement tools for the performance team, behind the gateway's `bench` command: signature
//! throughput per engine with `openssl speed sm2` as the same-run baseline ([`crypto`]), and a
//! bounded HTTP load generator with pre-built unique requests and checked answers, the server's
//! CPU per request against the crypto floor and an optional self-contained HTML report
//! ([`http`], [`cpu`], [`latency`], [`report`], [`scrape`]). Figures are reported as ratios against a
//! baseline.
//!
//! The crate knows nothing of the gateway: what a request is, how an answer is checked and what
//! is signed are the caller's ([`http::Workload`], [`crypto::Subject`]), so the gateway's
//! `src/cli/bench.rs` supplies them and this crate does not depend on the gateway.

pub mod cpu;
pub mod crypto;
pub mod http;
pub mod latency;
pub mod report;
pub mod scrape;

/// Why a measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// `--url` is not a URI (the message includes the parser's, so it is not also the source).
    #[error("--url: {0}")]
    Url(awc::http::uri::InvalidUri),
    /// The latency histogram could not be created.
    #[error(transparent)]
    Histogram(#[from] hdrhistogram::CreationError),
    /// A worker panicked while holding shared results.
    #[error("poisoned")]
    Poisoned,
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
    Chart(plotters::drawing::DrawingAreaErrorKind<std::io::Error>),
    /// The HTML report could not be written.
    #[error("report {path}: {source}")]
    Report {
        /// The report's path.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
