//! 获取用户的个人养老金账户 — get the user's personal pension account (docs/protocol.md §9), and
//! the one mapping of the account query's outcome to public error codes that every channel uses.

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use crate::accounts::answer::{QueryOutcome, QueryRefusal};
use crate::accounts::LookupError;
use crate::error::{ApiError, ErrorCode};
use crate::http::wechat::{self, HandlerReply, VerifiedRequest};
use crate::state::AppState;

/// Route label used in metrics.
pub const ROUTE: &str = "account_query";

/// The actix entry point: every method lands here so that even a GET gets a signed answer.
pub async fn entry(req: HttpRequest, payload: Payload, state: Data<AppState>) -> HttpResponse {
    let state = state.get_ref().clone();
    wechat::serve(req, payload, state, ROUTE, handle).await
}

/// The handler proper: a verified request in, a JSON body or an error out.
pub async fn handle(req: VerifiedRequest, state: AppState) -> HandlerReply {
    answer(&req.body, &state).await
}

/// The account query (`accounts::answer`) over an authenticated body, whatever channel
/// authenticated it, with its outcome mapped to the public codes. The partner channels wrap
/// the same reply in their envelopes.
pub async fn answer(body: &[u8], state: &AppState) -> HandlerReply {
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
        QueryRefusal::Lookup(LookupError::Corrupt(c)) => ApiError::internal(c),
        QueryRefusal::Lookup(LookupError::Store(e @ crate::store::StoreError::Unavailable(_))) => {
            ApiError::unavailable("the account database", e)
        }
        QueryRefusal::Lookup(LookupError::Store(other)) => ApiError::internal(other),
    }
}
