//! Reading a request body on the public listener, and admission after it.
//!
//! Every route reads its body through [`read_body`]: a size cap (from `Content-Length` when
//! given, and while streaming) and a deadline for the whole body. Only then does a request ask
//! for an in-flight permit ([`admit`]), so a caller that trickles its body ties up one
//! connection and nothing scarce: no permit, no database connection, no row.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut, Data, Payload};
use actix_web::HttpRequest;
use futures_util::StreamExt;

use crate::error::{ApiError, ErrorCode};
use crate::limits::Permit;
use crate::state::AppState;

/// The whole-body deadline when the application state does not set one (tests that mount a
/// handler alone).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the whole body, at most `limit` bytes, within the listener's body deadline.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let deadline = req
        .app_data::<Data<AppState>>()
        .map_or(DEFAULT_BODY_TIMEOUT, |s| s.body_timeout());
    match tokio::time::timeout(deadline, read_capped(req, payload, limit)).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            ErrorCode::ParamError,
            format!(
                "the request body did not arrive within {} ms",
                deadline.as_millis()
            ),
        )),
    }
}

async fn read_capped(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::ParamError,
            format!("body exceeds the {limit}-byte limit"),
        )
    };
    let mut expected = None;
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: usize = len
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ApiError::new(ErrorCode::ParamError, "Content-Length is invalid"))?;
        if len > limit {
            return Err(too_large());
        }
        expected = Some(len);
    }
    let mut buf = BytesMut::with_capacity(expected.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(ErrorCode::ParamError, "body could not be read").with_cause(e)
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// An in-flight permit for a request whose body has arrived, or `RULE_LIMIT`.
pub(crate) fn admit(state: &AppState) -> Result<Permit, ApiError> {
    state.concurrency().try_acquire().ok_or_else(|| {
        ApiError::new(
            ErrorCode::RuleLimit,
            "too many requests in flight at the bank; retry shortly",
        )
    })
}
