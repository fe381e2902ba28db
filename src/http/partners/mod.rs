//! What the partner channels' handlers share: query-string parsing, the audit row written
//! before an authenticated request's answer leaves, metrics and the log line (no personal data,
//! no secrets, no query strings — they carry secrets and tokens).
//!
//! A request refused before it is authenticated — unknown partner, wrong secret, token, ticket
//! or signature, stale timestamp, replay — writes nothing to the database: anyone can send
//! those, so a row each would let a flood grow `query_audit` and drain the pool the WeChat
//! channel shares. Such refusals are counted (`verify_failures{reason="<channel>_unauthenticated"}`
//! and `requests{route,status,code}`) and logged sampled: at most one line per second per
//! route, carrying how many were left out since the previous one.

pub mod callback_receive;
pub mod hmac_account;
pub mod op_access_token;
pub mod op_api_ticket;
pub mod op_service;
pub(crate) mod op_shared;

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use crate::partners::Channel;
use crate::state::AppState;
use crate::store::{NewAudit, StoreError};

/// Why a query string was refused (the logged cause; the caller sees the channel's code).
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryStringError {
    /// Not `application/x-www-form-urlencoded`.
    #[error("the query string is not valid URL encoding")]
    Encoding,
    /// A parameter name appears more than once.
    #[error("parameter `{0}` is repeated")]
    Repeated(String),
}

/// The parameters of a query string; a repeated name is refused (which one would count?).
pub(crate) fn query_params(qs: &str) -> Result<BTreeMap<String, String>, QueryStringError> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(qs)
        .map_err(|_| QueryStringError::Encoding)?
        .into_inner();
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if out.insert(k.clone(), v).is_some() {
            return Err(QueryStringError::Repeated(k));
        }
    }
    Ok(out)
}

/// Whether a nonce (or signature) is used for the first time, per the shared replay guard.
pub(crate) enum FirstUse {
    /// First sighting: go ahead.
    Yes,
    /// Seen within the window (counted in `verify_failures{reason}`).
    Replayed,
    /// The replay store did not answer; the request must be refused as "retry".
    Unavailable(crate::replay::ReplayError),
}

/// Records `key` in the replay guard for `window_secs` from `now_secs`.
pub(crate) async fn first_use(
    state: &AppState,
    key: &str,
    now_secs: i64,
    window_secs: i64,
    reason: &'static str,
) -> FirstUse {
    match state
        .replay()
        .check_and_record(key, now_secs, window_secs)
        .await
    {
        Ok(true) => FirstUse::Yes,
        Ok(false) => {
            state
                .metrics()
                .verify_failures
                .with_label_values(&[reason])
                .inc();
            FirstUse::Replayed
        }
        Err(e) => FirstUse::Unavailable(e),
    }
}

/// One partner request being answered.
pub(crate) struct Exchange {
    pub channel: Channel,
    pub route: &'static str,
    pub request_id: String,
    pub received_at_ms: i64,
    started: Instant,
}

/// What the audit row and the log line record about an answer.
pub(crate) struct Answered<'a> {
    /// The channel's public code (`60840000`, `0010`, `401`…).
    pub code: &'a str,
    pub http_status: u16,
    pub id_digest: Option<[u8; 32]>,
    pub pension_status: Option<i16>,
    /// The partner credential version that authenticated the request; `None` for a request
    /// refused before it was authenticated (and fresh), which writes no audit row.
    pub credential_version: Option<u32>,
    /// Private cause for the log.
    pub cause: Option<&'a str>,
}

impl Exchange {
    /// Starts an exchange; the request id doubles as `BizSeqNo` on the open platform.
    pub fn begin(state: &AppState, channel: Channel, route: &'static str) -> Self {
        Self {
            channel,
            route,
            request_id: uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .to_ascii_uppercase(),
            received_at_ms: state.clock().now_ms(),
            started: Instant::now(),
        }
    }

    /// Counts and logs the answer; for an authenticated request (`credential_version` set)
    /// first writes the audit row (before the answer leaves). An error means the audit row could
    /// not be written: the caller must answer with a system error.
    pub async fn finish(&self, state: &AppState, a: Answered<'_>) -> Result<(), StoreError> {
        let status = a.http_status.to_string();
        let elapsed = self.started.elapsed();
        state
            .metrics()
            .record_answer(self.route, &status, a.code, elapsed);
        let latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let Some(version) = a.credential_version else {
            state
                .metrics()
                .verify_failures
                .with_label_values(&[unauthenticated_reason(self.channel)])
                .inc();
            if let Some(left_out) = REFUSAL_LOG.admit(self.route) {
                tracing::warn!(
                    request_id = %self.request_id,
                    channel = self.channel.as_str(),
                    route = self.route,
                    status = a.http_status,
                    code = a.code,
                    latency_us,
                    cause = a.cause.unwrap_or(""),
                    left_out,
                    "partner request refused before authentication (sampled: one line per second per route)"
                );
            }
            return Ok(());
        };
        let row = NewAudit {
            request_id: self.request_id.clone(),
            received_at_ms: self.received_at_ms,
            outcome: a.code.chars().take(32).collect(),
            http_status: i16::try_from(a.http_status).unwrap_or(i16::MAX),
            bank_key_version: 0,
            wechat_key_version: Some(i32::try_from(version).unwrap_or(i32::MAX)),
            id_digest: a.id_digest,
            pension_status: a.pension_status,
            channel: self.channel.as_str(),
            // Symmetric MACs prove nothing the bank could not have made (docs/audit.md).
            evidence: crate::store::AuditEvidence::default(),
        };
        let audited = state.accounts().store().insert_audit(&row).await;
        match (a.cause, &audited) {
            (_, Err(e)) => tracing::warn!(
                request_id = %self.request_id,
                channel = self.channel.as_str(),
                route = self.route,
                status = a.http_status,
                code = a.code,
                latency_us,
                cause = %e,
                "partner request not audited; answering with a system error"
            ),
            (Some(cause), Ok(())) => tracing::warn!(
                request_id = %self.request_id,
                channel = self.channel.as_str(),
                route = self.route,
                status = a.http_status,
                code = a.code,
                credential_version = version,
                latency_us,
                cause,
                "partner request refused"
            ),
            (None, Ok(())) => tracing::info!(
                request_id = %self.request_id,
                channel = self.channel.as_str(),
                route = self.route,
                status = a.http_status,
                code = a.code,
                credential_version = version,
                latency_us,
                "partner request"
            ),
        }
        audited
    }
}

/// The `tracing` target of the events that mark a partner handler's database statements.
pub const DB_STATEMENT_TARGET: &str = "pension_gateway::partners::db";

/// Marks one database statement a partner handler is about to run (a TRACE event on
/// [`DB_STATEMENT_TARGET`]): the hook by which tests count the statements a request costs — a
/// forged request must cost as few as the protocol allows, and none before every check that
/// needs no database has passed.
pub(crate) fn db_statement(route: &'static str, statement: &'static str) {
    tracing::trace!(target: DB_STATEMENT_TARGET, route, statement, "partner database statement");
}

/// The `verify_failures{reason}` label of a refusal before authentication on `channel`.
pub(crate) fn unauthenticated_reason(channel: Channel) -> &'static str {
    match channel {
        Channel::OpenPlatform => "op_unauthenticated",
        Channel::Callback => "callback_unauthenticated",
        Channel::Hmac => "hmac_unauthenticated",
    }
}

/// Lets through at most one log line per second per key; counts the ones it holds back.
pub(crate) struct LogSampler {
    slots: Mutex<BTreeMap<&'static str, (u64, u64)>>,
    origin: OnceLock<Instant>,
}

/// The sampler of "refused before authentication" lines.
static REFUSAL_LOG: LogSampler = LogSampler::new();

impl LogSampler {
    /// A sampler with no history.
    pub(crate) const fn new() -> Self {
        Self {
            slots: Mutex::new(BTreeMap::new()),
            origin: OnceLock::new(),
        }
    }

    /// `Some(left_out)` if a line for `key` may be written now — `left_out` lines were held
    /// back since the previous one — or `None` if one was already written this second.
    pub(crate) fn admit(&self, key: &'static str) -> Option<u64> {
        let second = self.origin.get_or_init(Instant::now).elapsed().as_secs();
        self.admit_at(key, second)
    }

    fn admit_at(&self, key: &'static str, second: u64) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        match slots.get_mut(key) {
            Some((last, held)) if *last == second => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                *last = second;
                Some(std::mem::take(held))
            }
            None => {
                slots.insert(key, (second, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_per_key_with_the_count_held_back() {
        let s = LogSampler::new();
        assert_eq!(s.admit_at("a", 5), Some(0));
        assert_eq!(s.admit_at("a", 5), None);
        assert_eq!(s.admit_at("a", 5), None);
        assert_eq!(s.admit_at("b", 5), Some(0));
        assert_eq!(s.admit_at("a", 6), Some(2));
        assert_eq!(s.admit_at("a", 6), None);
        assert_eq!(s.admit_at("a", 9), Some(1));
    }
}
