//! 获取用户的个人养老金账户 — get the user's personal pension account (DESIGN.md §1.4).

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use crate::accounts::{AccountQuery, LookupError};
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::http::wechat::{self, HandlerReply, VerifiedRequest};

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

/// The account query over an authenticated body, whatever channel authenticated it: parse,
/// per-identity limit, lookup. The partner channels wrap the same answer in their envelopes.
pub async fn answer(body: &[u8], state: &AppState) -> HandlerReply {
    let query = match AccountQuery::parse(body) {
        Ok(q) => q,
        Err(e) => {
            return HandlerReply {
                result: Err(ApiError::new(ErrorCode::InvalidParameters, e.to_string())),
                id_digest: None,
                pension_status: None,
            }
        }
    };
    let dir = state.accounts();
    let digest = dir.digest(&query.id_number);
    if !state.rate_limit().allow(&digest, state.clock().now()) {
        return HandlerReply {
            result: Err(ApiError::new(
                ErrorCode::RuleLimit,
                "too many queries for this user in the last minute; retry later",
            )),
            id_digest: Some(digest),
            pension_status: None,
        };
    }
    match dir.lookup(&query, digest, state.clock().now()).await {
        Ok(found) => {
            let status = found.reply.pension_status as i16;
            let result = serde_json::to_vec(&found.reply).map_err(ApiError::internal);
            HandlerReply {
                result,
                id_digest: Some(found.digest),
                pension_status: Some(status),
            }
        }
        Err(e) => {
            let err = match e {
                LookupError::SessionNotFound => ApiError::new(
                    ErrorCode::SessionNotFound,
                    "session_id is unknown, expired, or belongs to another user",
                ),
                LookupError::NameMismatch => ApiError::new(
                    ErrorCode::InvalidUserInfo,
                    "user_true_name does not match the account of this ID number",
                ),
                LookupError::Corrupt(c) => ApiError::internal(c),
                LookupError::Store(s) => store_error(s),
            };
            HandlerReply {
                result: Err(err),
                id_digest: Some(digest),
                pension_status: None,
            }
        }
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    match e {
        crate::store::StoreError::Unavailable(_) => {
            ApiError::unavailable("the account database", e)
        }
        other => ApiError::internal(other),
    }
}
