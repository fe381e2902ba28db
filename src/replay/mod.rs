//! The nonce store that refuses replays (docs/protocol.md §6, step 11).
//!
//! A nonce is recorded only after its request's signature verified, so forged requests cannot
//! fill the store. Recording is atomic: of two concurrent requests with one nonce exactly one
//! wins. The in-memory store serves a single instance; several instances share Redis
//! (`SET key NX EX`): a single node or a Cluster, plain or over TLS.
//!
//! How long a nonce is remembered: a request is accepted while |now − timestamp| ≤ skew, both
//! edges included. Its first use can come as early as `timestamp − skew` and a replay as late
//! as `timestamp + skew`, 2 × skew later, so a nonce must outlive its first use by more than
//! 2 × skew. [`nonce_memory_secs`] adds [`REPLAY_MARGIN_SECS`] on top: instances behind one
//! balancer disagree on the time by a little, and Redis expires keys by its own clock.

mod memory;
mod redis_store;

pub use memory::MemoryReplayStore;
pub use redis_store::{read_ca_file, RedisLink, RedisReplayStore, RedisTarget};

/// Margin, seconds, by which a nonce outlives the window in which its request is accepted:
/// covers clock differences between instances (and Redis) and whole-second rounding.
pub const REPLAY_MARGIN_SECS: i64 = 60;

/// How long to remember a nonce whose request is accepted for |now − timestamp| ≤ `skew_secs`:
/// `2 × skew_secs + REPLAY_MARGIN_SECS`.
pub const fn nonce_memory_secs(skew_secs: i64) -> i64 {
    skew_secs
        .saturating_mul(2)
        .saturating_add(REPLAY_MARGIN_SECS)
}

/// Why the replay check could not be answered. The gateway fails closed on it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store is full of live nonces (a flood of *validly signed* requests).
    #[error("replay store is at capacity ({0} live nonces)")]
    Full(usize),
    /// A Redis call (`what`: connect, SET, PING, …) did not finish within the deadline.
    #[error("replay store unavailable: redis {what} timed out")]
    TimedOut {
        /// The call.
        what: &'static str,
    },
    /// A Redis call failed (connection refused or lost, an error reply, …).
    #[error("replay store unavailable: redis {what}: {cause}")]
    Redis {
        /// The call.
        what: &'static str,
        /// The client's error (in the message; not also reported as the source).
        cause: Box<redis::RedisError>,
    },
    /// `PING` was answered with something else than `PONG` (not a Redis server?).
    #[error("replay store unavailable: redis PING answered {0:?}")]
    NotPong(String),
    /// The Redis server's TLS certificate was refused (wrong CA, wrong name, expired).
    #[error("the Redis server's TLS certificate was refused: {0}")]
    Untrusted(Box<redis::RedisError>),
    /// A Redis setting cannot be used; `setting` names it.
    #[error("{setting}: {cause}")]
    Setting {
        /// The setting (`replay.redis_url`, `replay.redis_cluster_nodes`).
        setting: &'static str,
        /// What the client said of it.
        cause: Box<redis::RedisError>,
    },
    /// `replay.redis_ca_file` cannot be used.
    #[error("replay.redis_ca_file: {0}")]
    CaFile(Box<crate::tls::TlsError>),
    /// An internal invariant did not hold (a bug; the request is refused, never answered).
    #[error("replay store: internal error: {0}")]
    Internal(&'static str),
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
    /// The Redis connection, when nonces live in Redis (the global limit shares it).
    pub fn redis_link(&self) -> Option<&std::sync::Arc<RedisLink>> {
        match self {
            ReplayGuard::Memory(_) => None,
            ReplayGuard::Redis { store, .. } => Some(store.link()),
        }
    }

    /// Records `nonce` for `window_secs` from `now`. `Ok(true)`: first sighting, go ahead.
    /// `Ok(false)`: seen within the window — up to and including `now + window_secs` — refuse
    /// as a replay.
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

    /// Whether the shared store answers a ping; `None` for the in-memory store.
    pub async fn ping(&self) -> Option<Result<(), ReplayError>> {
        match self {
            ReplayGuard::Memory(_) => None,
            ReplayGuard::Redis { store, .. } => Some(store.ping().await),
        }
    }
}
