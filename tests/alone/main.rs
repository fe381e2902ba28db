//! The second integration-test binary (`cargo test --test alone`): tests that must not share the
//! machine's cores with the CPU-heavy tests of `it`, because what they check depends on the
//! server answering a burst of connections promptly. Cargo runs test binaries one after the
//! other, so these run with no other test beside them.
//!
//! `hostile_slow` opens 1,200 connections whose deadlines all fall at the same moment and checks
//! that a signed query is answered within a second meanwhile; it runs alone so that the second is
//! the server's, not the other tests'.
//!
//! `fleet` runs two gateway processes behind HAProxy through rolling restarts and the loss of an
//! instance and counts failed requests; its health-check and drain timings should not compete
//! with `it` for the cores either.

#[path = "../it/common/mod.rs"]
mod common;

mod fleet;
mod hostile_slow;

/// The tests of this binary must not overlap either: the `hostile_slow` tests share it (read),
/// `fleet` takes it alone (write).
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());
