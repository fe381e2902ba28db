//! The nonce store that refuses replays (DESIGN.md §1.1 check 4).
//!
//! A nonce is recorded only after its request's signature verified, so forged requests cannot
//! fill the store. Recording is atomic: of two concurrent requests with one nonce exactly one
//! wins. The in-memory store serves a single instance; several instances share Redis
//! (`SET key NX EX`, issue 8).

mod memory;
mod redis_store;

pub use memory::MemoryReplayStore;
pub use redis_store::RedisReplayStore;

/// Why the replay check could not be answered. The gateway fails closed on it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store is full of live nonces (a flood of *validly signed* requests).
    #[error("replay store is at capacity ({0} live nonces)")]
    Full(usize),
    /// The backing store could not be reached.
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
}

/// Where nonces are remembered.
pub enum ReplayGuard {
    /// One process.
    Memory(MemoryReplayStore),
    /// Several instances.
    Redis {
        /// The store.
        store: RedisReplayStore,
        /// Accept requests when Redis is down (explicit, loudly logged; default false).
        fail_open: bool,
    },
}

impl ReplayGuard {
    /// Records `nonce` for `window_secs` from `now`. `Ok(true)`: first sighting, go ahead.
    /// `Ok(false)`: seen within the window, refuse as a replay.
    pub async fn check_and_record(
        &self,
        nonce: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<bool, ReplayError> {
        match self {
            ReplayGuard::Memory(m) => m.check_and_record(nonce, now, window_secs),
            ReplayGuard::Redis { store, fail_open } => {
                match store.check_and_record(nonce, window_secs).await {
                    Err(e) if *fail_open => {
                        tracing::warn!(error = %e, "replay store unavailable; FAILING OPEN as configured (replay.fail_open = true)");
                        Ok(true)
                    }
                    other => other,
                }
            }
        }
    }
}
