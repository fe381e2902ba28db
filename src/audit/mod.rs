//! The audit trail as evidence: what an audit row proves and how to check it again later.

pub mod prove;
