//! Measurement tools for the performance team: `bench crypto` (engine throughput with OpenSSL
//! as the same-run baseline) and `bench http` (a bounded load generator with pre-signed unique
//! requests and verified responses). Figures are reported as ratios against a baseline.

pub mod crypto;
pub mod http;

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
}
