//! The integration tests, built as one test binary (`cargo test --test it`): each module below
//! is one former test file, and all of them share the harness in `common`. Run one area with a
//! name filter, e.g. `cargo test --test it partners::`.
//!
//! Tests in one process share its environment, working directory and global logger, so none of
//! them changes those: configuration is handed to the loader as data, servers bind port 0, files
//! go to temporary directories, and log captures use thread-local subscribers. The one test
//! that needs the cores to itself lives in the `alone` binary (`tests/alone/`).

mod common;

mod accounts;
mod audit_batch;
mod audit_chain;
mod audit_evidence;
mod audit_kill;
mod audit_log;
mod bench_reports;
mod cli_demo;
mod config;
mod config_doc;
mod crypto_engines;
mod crypto_vectors;
mod crypto_wire;
mod db_fault;
mod deploy_artefacts;
mod drain;
mod gateway;
mod hostile;
mod import;
mod key_files;
mod keyring;
mod keyring_admin;
mod limits_and_replay;
mod log_scan;
mod multi_instance;
mod mysql_pool;
mod mysql_privileges;
mod mysql_tls;
mod openapi;
mod ops;
mod outbound;
mod partners;
mod partners_flood;
mod partners_hostile;
mod partners_review;
mod partners_vectors;
mod redis_scale;
mod replay_edges;
mod rotation;
mod sdf_conformance;
mod start_modes;
mod store;
mod tls;
