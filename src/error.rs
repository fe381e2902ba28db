//! The one error type of the HTTP layer: a stable public code and plain message for the caller,
//! and a private cause for the logs. Nothing in `cause` is ever sent on the wire.
//!
//! Which error lives where: `crypto::*Error` (wire codecs, engines), `keyring::KeyRingError`,
//! `store::StoreError`, `replay::ReplayError`, `accounts::LookupError`; each converts into
//! [`ApiError`] at the HTTP edge, choosing the code WeChat sees.

use std::borrow::Cow;

use actix_web::http::StatusCode;

/// The public error codes of the WeChat channel (docs/protocol.md §6, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: a header is missing or malformed, or the body is too large.
    ParamError,
    /// 400: the JSON body is invalid.
    InvalidParameters,
    /// 401: the signature does not verify (and, by default, stale timestamps and replays).
    SignError,
    /// 401: timestamp outside the allowed skew (only with `extended_auth_codes`).
    TimestampExpired,
    /// 401: nonce already used (only with `extended_auth_codes`).
    NonceReplayed,
    /// 403: rate limit.
    RuleLimit,
    /// 405: the route accepts POST only.
    MethodNotAllowed,
    /// 412: the name does not match the account of that ID number.
    InvalidUserInfo,
    /// 412: unknown or expired session_id.
    SessionNotFound,
    /// 500 / 503: our failure.
    SystemError,
}

impl ErrorCode {
    /// The code string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ParamError => "PARAM_ERROR",
            ErrorCode::InvalidParameters => "INVALID_PARAMETERS",
            ErrorCode::SignError => "SIGN_ERROR",
            ErrorCode::TimestampExpired => "TIMESTAMP_EXPIRED",
            ErrorCode::NonceReplayed => "NONCE_REPLAYED",
            ErrorCode::RuleLimit => "RULE_LIMIT",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::InvalidUserInfo => "INVALID_USER_INFO",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::SystemError => "SYSTEM_ERROR",
        }
    }

    /// The default HTTP status of the code.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::ParamError | ErrorCode::InvalidParameters => StatusCode::BAD_REQUEST,
            ErrorCode::SignError | ErrorCode::TimestampExpired | ErrorCode::NonceReplayed => {
                StatusCode::UNAUTHORIZED
            }
            ErrorCode::RuleLimit => StatusCode::FORBIDDEN,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidUserInfo | ErrorCode::SessionNotFound => {
                StatusCode::PRECONDITION_FAILED
            }
            ErrorCode::SystemError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Public code.
    pub code: ErrorCode,
    /// HTTP status (usually `code.status()`; 503 for unavailable dependencies).
    pub status: StatusCode,
    /// Public message: plain, actionable, no personal data, no internals.
    pub message: Cow<'static, str>,
    /// Private cause for the log only.
    pub cause: Option<String>,
}

impl ApiError {
    /// An error with the code's default status.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            cause: None,
        }
    }

    /// Attaches a private cause (logged, never sent).
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// Overrides the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A 503 SYSTEM_ERROR: a dependency is unavailable; WeChat may retry.
    pub fn unavailable(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::SystemError,
            format!("{what} is temporarily unavailable; please retry"),
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .with_cause(cause)
    }

    /// A 500 SYSTEM_ERROR with a private cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(
            ErrorCode::SystemError,
            "internal error; the bank has been alerted",
        )
        .with_cause(cause)
    }

    /// The JSON body `{"code": "...", "message": "..."}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"code": self.code.as_str(), "message": self.message}),
        )
        .unwrap_or_else(|_| br#"{"code":"SYSTEM_ERROR","message":"internal error"}"#.to_vec())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}
