//! The account query use case, the same for every channel: parse the authenticated body,
//! apply the per-identity limit, look the account up. Channels only authenticate before it and
//! wrap its outcome in their own envelope afterwards (see `http::outcome`).

use super::message::{AccountQuery, AccountReply, InvalidBody};
use super::{AccountDirectory, LookupError};
use crate::limits::{IdentityLimit, LimitError};

/// Why a query got no account data.
#[derive(Debug, thiserror::Error)]
pub enum QueryRefusal {
    /// The body is not a valid query of this API (the message names the field, never its value).
    #[error(transparent)]
    InvalidBody(#[from] InvalidBody),
    /// Too many queries for this identity in the current minute.
    #[error("per-identity limit reached")]
    RateLimited,
    /// The fleet-wide per-identity count could not be reached (fail closed).
    #[error(transparent)]
    LimitUnavailable(#[from] LimitError),
    /// The lookup refused or failed.
    #[error(transparent)]
    Lookup(#[from] LookupError),
}

/// The outcome of one query and what the audit row records about it.
#[derive(Debug)]
pub struct QueryOutcome {
    /// The reply, or why there is none.
    pub result: Result<AccountReply, QueryRefusal>,
    /// Keyed digest of the ID number, when the body carried a valid one.
    pub id_digest: Option<[u8; 32]>,
}

impl QueryOutcome {
    /// The answered pension status, on success.
    pub fn pension_status(&self) -> Option<i16> {
        self.result
            .as_ref()
            .ok()
            .and_then(|r| i16::try_from(r.pension_status).ok())
    }
}

/// Answers one authenticated account query at `now` (unix seconds).
pub async fn answer(
    dir: &AccountDirectory,
    limit: &IdentityLimit,
    body: &[u8],
    now: i64,
) -> QueryOutcome {
    let query = match AccountQuery::parse(body) {
        Ok(q) => q,
        Err(e) => {
            return QueryOutcome {
                result: Err(e.into()),
                id_digest: None,
            }
        }
    };
    let digest = dir.digest(&query.id_number);
    match limit.allow(&digest, now).await {
        Ok(true) => {}
        Ok(false) => {
            return QueryOutcome {
                result: Err(QueryRefusal::RateLimited),
                id_digest: Some(digest),
            }
        }
        Err(e) => {
            return QueryOutcome {
                result: Err(e.into()),
                id_digest: Some(digest),
            }
        }
    }
    let result = dir
        .lookup(&query, digest, now)
        .await
        .map(|found| found.reply)
        .map_err(QueryRefusal::from);
    QueryOutcome {
        result,
        id_digest: Some(digest),
    }
}
