//! The audit trail: group commit, evidence, kill -9 safety, the tamper-evident log (its core, the
//! chain in the writer, `audit verify` against every tamper kind).

mod batch;
mod chain;
mod evidence;
mod kill;
mod log;
mod syslog;
