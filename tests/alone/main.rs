//! The second integration-test binary (`cargo test --test alone`): tests that must not share the
//! machine's cores with the CPU-heavy tests of `it`, because what they check depends on the
//! server answering a burst of connections promptly. Cargo runs test binaries one after the
//! other, so these run with no other test beside them.
//!
//! `hostile_slow` opens 1,200 connections whose deadlines all fall at the same moment. When the
//! server closes a trickled connection while a byte the client sent is still unread, the kernel
//! resets the connection, and a client that has not read the answer yet loses it. With other
//! tests busy on the same cores that happens often enough to fail the count of answers.

#[path = "../it/common/mod.rs"]
mod common;

mod hostile_slow;
