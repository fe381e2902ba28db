//! Measurement tools for the performance team: `bench crypto` (engine throughput with OpenSSL
//! as the same-run baseline) and `bench http` (a bounded load generator with pre-signed unique
//! requests and verified responses). Figures are reported as ratios against a baseline.

pub mod crypto;
pub mod http;
