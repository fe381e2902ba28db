//! pension-gateway: the bank side of WeChat pension (微信养老金) account queries.
//!
//! Module map (DESIGN.md §2):
//! - [`crypto`]: SM3/SM2 engines, signing strings, Authorization codec — pure, no I/O.
//! - [`keyring`]: versioned keys, lifecycle, atomic reload.
//! - [`replay`]: nonce store.
//! - [`accounts`]: the domain — lookup and disclosure rules.
//! - [`store`]: diesel schema, pools, migrations, queries (MySQL, SQLite).
//! - [`http`]: actix app, WeChat channel adapter, handlers, health, metrics.
//! - [`client`]: the WeChat-side signer/verifier used by the CLI and tests.
//! - [`config`], [`error`], [`server`]: settings, the HTTP error type, process start-up.

pub mod accounts;
pub mod bench;
pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod keyring;
pub mod limits;
pub mod partners;
pub mod replay;
pub mod server;
pub mod store;
