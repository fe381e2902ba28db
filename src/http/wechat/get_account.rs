//! 获取用户的个人养老金账户 — get the user's personal pension account (docs/protocol.md §9): the
//! WeChat channel's handler. Verification, audit and signing are the channel adapter's
//! (`http::wechat::serve`); the answer is the one every channel gives (`http::outcome`).

use actix_web::web::{Data, Payload};
use actix_web::{HttpRequest, HttpResponse};

use crate::http::outcome::{answer_account, HandlerReply};
use crate::http::wechat::{self, VerifiedRequest};
use crate::state::AppState;

/// Route label used in metrics and logs (kept as `account_query`, the name dashboards and
/// alerts already use).
pub const ROUTE: &str = "account_query";

/// The actix entry point: every method lands here so that even a GET gets a signed answer.
pub async fn entry(req: HttpRequest, payload: Payload, state: Data<AppState>) -> HttpResponse {
    let state = state.get_ref().clone();
    wechat::serve(req, payload, state, ROUTE, handle).await
}

/// The handler proper: a verified request in, a JSON body or an error out.
pub async fn handle(req: VerifiedRequest, state: AppState) -> HandlerReply {
    answer_account(&req.body, &state).await
}
