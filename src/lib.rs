//! pension-gateway: the bank side of WeChat pension (微信养老金) account queries.
//!
//! Module map (the README's Layout section has the same map with files):
//! - [`crypto`]: SM3/SM2 engines, signing strings, Authorization codec — pure, no I/O.
//! - [`keyring`]: versioned keys and partner credentials, lifecycle, atomic reload.
//! - [`replay`], [`limits`]: nonce store and per-identity / in-flight limits.
//! - [`accounts`]: the account query every channel calls — lookup, disclosure rules, import.
//! - [`audit`]: the audit trail as evidence — `audit prove`, and the tamper-evident log's pure core: leaf encoding, hash chain, SM3
//!   Merkle tree and proofs, signed checkpoints and witness lines, the verifier.
//! - [`store`]: diesel schema, pools, migrations, queries (MySQL, SQLite).
//! - [`partners`]: the partner channels' protocols (signing strings, codes, grant rules) — pure.
//! - [`http`]: the public listener's route table; `http::wechat` and `http::partners` adapt each
//!   channel to the account query.
//! - [`ops`]: health, readiness, metrics and the authenticated key-ring reload.
//! - [`state`], [`metrics`], [`clock`]: what every request shares — state, counters, time.
//! - [`client`]: the signing clients (as WeChat, as the bank outbound, as each partner).
//! - [`config`], [`error`], [`server`]: settings, the HTTP error type, process start-up.
//! - [`tls`]: rustls on the public listener (hot certificate reload, mutual TLS) and for
//!   outbound HTTPS.

pub mod accounts;
pub mod audit;
pub mod client;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod keyring;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod partners;
pub mod replay;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
