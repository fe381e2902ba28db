//! The one place where the account query's outcome becomes a public answer, for every channel:
//! the use case (`accounts::answer`) runs over a body some channel authenticated, and its
//! refusals map to the public error codes. The WeChat channel signs the reply; the partner
//! channels wrap the same reply in their own envelopes.

use crate::accounts::answer::{QueryOutcome, QueryRefusal};
use crate::accounts::LookupError;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::store::StoreError;

/// What a handler hands back: the result and what the audit row records.
#[derive(Debug)]
pub struct HandlerReply {
    /// The 200 JSON body, or the error.
    pub result: Result<Vec<u8>, ApiError>,
    /// Digest of the ID number, when the body had a valid one.
    pub id_digest: Option<[u8; 32]>,
    /// The answered pension status, on success.
    pub pension_status: Option<i16>,
}

/// Answers the account query in `body` (already authenticated by its channel), with its
/// outcome mapped to the public codes.
pub async fn answer_account(body: &[u8], state: &AppState) -> HandlerReply {
    let outcome = crate::accounts::answer::answer(
        state.accounts(),
        state.rate_limit(),
        body,
        state.clock().now(),
    )
    .await;
    reply(outcome)
}

/// Maps a query outcome to the channel-neutral reply (JSON body or public error).
fn reply(outcome: QueryOutcome) -> HandlerReply {
    let pension_status = outcome.pension_status();
    let result = match outcome.result {
        Ok(reply) => serde_json::to_vec(&reply).map_err(ApiError::internal),
        Err(refusal) => Err(public_error(refusal)),
    };
    HandlerReply {
        result,
        id_digest: outcome.id_digest,
        pension_status,
    }
}

/// The public code of each refusal; the logged cause stays in the error.
fn public_error(refusal: QueryRefusal) -> ApiError {
    match refusal {
        QueryRefusal::InvalidBody(e) => ApiError::new(ErrorCode::InvalidParameters, e.to_string()),
        QueryRefusal::RateLimited => ApiError::new(
            ErrorCode::RuleLimit,
            "too many queries for this user in the last minute; retry later",
        ),
        QueryRefusal::LimitUnavailable(e) => ApiError::unavailable("the rate limit store", e),
        QueryRefusal::Lookup(LookupError::SessionNotFound) => ApiError::new(
            ErrorCode::SessionNotFound,
            "session_id is unknown, expired, or belongs to another user",
        ),
        QueryRefusal::Lookup(LookupError::NameMismatch) => ApiError::new(
            ErrorCode::InvalidUserInfo,
            "user_true_name does not match the account of this ID number",
        ),
        QueryRefusal::Lookup(e @ LookupError::UnknownStatus(_)) => ApiError::internal(e),
        QueryRefusal::Lookup(LookupError::Store(e @ StoreError::Unavailable(_))) => {
            ApiError::unavailable("the account database", e)
        }
        QueryRefusal::Lookup(LookupError::Store(other)) => ApiError::internal(other),
    }
}
