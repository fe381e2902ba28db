//! The integration tests, built as one test binary (`cargo test --test it`): each module below
//! is an area (a folder, one file per subject), and all of them share the harness in `common`.
//! Run an area or one subject with a name filter, e.g. `cargo test --test it partners::` or
//! `cargo test --test it partners::flows::`.
//!
//! Tests in one process share its environment, working directory and global logger, so none of
//! them changes those: configuration is handed to the loader as data, servers bind port 0, files
//! go to temporary directories, and log captures use thread-local subscribers. The one test
//! that needs the cores to itself lives in the `alone` binary (`tests/alone/`).

mod common;

mod audit;
mod config;
mod crypto;
mod db;
mod fleet;
mod keys;
mod module;
mod mysql;
mod ops;
mod partners;
mod wechat;
