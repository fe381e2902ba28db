//! The audit trail: group commit, evidence, kill -9 safety, the tamper-evident log's core.

mod batch;
mod evidence;
mod kill;
mod log;
