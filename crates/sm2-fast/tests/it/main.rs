//! The engine's integration tests, one test binary (`cargo test -p sm2-fast`): known-answer
//! vectors, edge cases, property tests, the arithmetic and inversion against a big-integer
//! reference, and the differential run against RustCrypto `sm2` and libsm. Run one area with a
//! name filter, e.g. `cargo test -p sm2-fast --test it differential::`.

mod common;

mod arith;
mod differential;
mod edge;
mod inversion;
mod props;
mod vectors;
