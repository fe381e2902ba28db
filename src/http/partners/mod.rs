//! What the partner channels' handlers share: query-string parsing, the audit row written
//! before every answer leaves, metrics and the one log line per request (no personal data, no
//! secrets, no query strings — they carry secrets and tokens).

pub mod callback_receive;
pub mod hmac_account;
pub mod op_access_token;
pub mod op_api_ticket;
pub mod op_service;
pub(crate) mod open_platform;

use std::collections::BTreeMap;
use std::time::Instant;

use crate::partners::Channel;
use crate::state::AppState;
use crate::store::{NewAudit, StoreError};

/// The parameters of a query string; a repeated name is refused (which one would count?).
pub(crate) fn query_params(qs: &str) -> Result<BTreeMap<String, String>, String> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(qs)
        .map_err(|_| "the query string is not valid URL encoding".to_string())?
        .into_inner();
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if out.insert(k.clone(), v).is_some() {
            return Err(format!("parameter `{k}` is repeated"));
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
    Unavailable(String),
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
        Err(e) => FirstUse::Unavailable(e.to_string()),
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
    /// The partner credential version that authenticated the request, if any.
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

    /// Writes the audit row (before the answer leaves), counts and logs the answer. An error
    /// means the audit row could not be written: the caller must answer with a system error.
    pub async fn finish(&self, state: &AppState, a: Answered<'_>) -> Result<(), StoreError> {
        let row = NewAudit {
            request_id: self.request_id.clone(),
            received_at_ms: self.received_at_ms,
            outcome: a.code.chars().take(32).collect(),
            http_status: i16::try_from(a.http_status).unwrap_or(i16::MAX),
            bank_key_version: 0,
            wechat_key_version: a.credential_version.map(|v| v as i32),
            id_digest: a.id_digest,
            pension_status: a.pension_status,
            channel: self.channel.as_str(),
        };
        let audited = state.accounts().store().insert_audit(&row).await;
        let status = a.http_status.to_string();
        state
            .metrics()
            .requests
            .with_label_values(&[self.route, &status, a.code])
            .inc();
        let latency_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
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
                credential_version = a.credential_version,
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
                credential_version = a.credential_version,
                latency_us,
                "partner request"
            ),
        }
        audited
    }
}
