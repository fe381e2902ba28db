//! Retrying a whole write transaction that lost a lock conflict.
//!
//! Two imports (or an import and demo seeding, or two instances seeding) writing overlapping
//! accounts at the same time on MySQL can make InnoDB pick one transaction as a deadlock victim
//! (error 1213) or let it time out waiting for a row lock (1205), and the transaction is rolled
//! back; SQLite gives up with `SQLITE_BUSY` once its busy timeout has run out. The import's
//! read-back check ("changed concurrently") is the same situation seen from a REPEATABLE READ
//! snapshot. Each arrives as a [`StoreError::Conflict`] (classified where the driver's error
//! becomes a `StoreError`, see `error`), and only that variant is retried. Each is
//! safe to run again from the start: the upsert is idempotent. Attempts are bounded and spaced by
//! an exponential backoff with full jitter, so two writers that collided do not collide again
//! in lock step.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::StoreError;

/// Attempts in all (the first one included).
pub(crate) const MAX_ATTEMPTS: u32 = 6;
/// Backoff before the second attempt; doubled each time, capped at [`MAX_BACKOFF`].
const BASE_BACKOFF: Duration = Duration::from_millis(20);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(800);

/// Whether `e` is a lost lock conflict after which the whole transaction can simply run again.
pub(crate) fn is_retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict(_))
}

/// The wait before attempt `attempt + 1` (`attempt` ≥ 1): uniform in `[0, min(cap, base·2^(n-1))]`.
pub(crate) fn backoff(attempt: u32, rng: &mut impl Rng) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(MAX_BACKOFF);
    let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rng.gen_range(0..=ms))
}

/// Runs `attempt` until it succeeds, fails with an error that is not a lost lock conflict, or
/// [`MAX_ATTEMPTS`] attempts have failed (then the last error is returned). `what` names the
/// operation in the log line of each retry.
pub(crate) async fn on_conflict<T, F, Fut>(what: &str, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if n < MAX_ATTEMPTS && is_retryable(&e) => {
                let wait = backoff(n, &mut rand::thread_rng());
                tracing::warn!(
                    operation = what,
                    attempt = n,
                    max_attempts = MAX_ATTEMPTS,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %e,
                    "transaction lost a lock conflict; running it again"
                );
                tokio::time::sleep(wait).await;
                n += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn lock_conflicts_are_retryable_and_other_errors_are_not() {
        use crate::store::{Conflict, StatementError, Unavailable};
        for c in [
            Conflict::Deadlock,
            Conflict::LockWaitTimeout,
            Conflict::Busy,
            Conflict::ChangedConcurrently,
        ] {
            assert!(is_retryable(&StoreError::Conflict(c)), "{c}");
        }
        assert!(!is_retryable(&StoreError::Statement(
            StatementError::Duplicate {
                constraint: Some("x".into())
            }
        )));
        assert!(!is_retryable(&StoreError::Unavailable(
            Unavailable::BrokenTransaction
        )));
        // The text of a server error decides nothing once it is typed: a failed statement that
        // quotes "try restarting transaction" (a trigger's message, a value) is not retried.
        let quoted = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("poisoned row 'x; try restarting transaction'".to_owned()),
        );
        assert!(!is_retryable(&StoreError::from(quoted)));
    }

    #[test]
    fn backoff_is_bounded_and_grows() {
        let mut rng = rand::thread_rng();
        for attempt in 1..40 {
            for _ in 0..50 {
                assert!(backoff(attempt, &mut rng) <= MAX_BACKOFF);
            }
        }
        for _ in 0..50 {
            assert!(backoff(1, &mut rng) <= BASE_BACKOFF);
            assert!(backoff(3, &mut rng) <= BASE_BACKOFF * 4);
        }
    }

    #[tokio::test]
    async fn retries_a_bounded_number_of_times() {
        let calls = AtomicU32::new(0);
        let r: Result<(), StoreError> = on_conflict("test", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::Conflict(crate::store::Conflict::Deadlock))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), MAX_ATTEMPTS);

        let calls = AtomicU32::new(0);
        let r = on_conflict("test", || async {
            if calls.fetch_add(1, Ordering::Relaxed) < 2 {
                Err(StoreError::Conflict(
                    crate::store::Conflict::ChangedConcurrently,
                ))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        let calls = AtomicU32::new(0);
        let r: Result<(), StoreError> = on_conflict("test", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(StoreError::Statement(
                crate::store::StatementError::Duplicate { constraint: None },
            ))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
