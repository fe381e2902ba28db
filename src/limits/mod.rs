//! `RULE_LIMIT`: a per-identity query rate (keyed by the ID-number digest, never the number)
//! and a cap on requests in flight. The cap is per instance; the rate is per instance
//! ([`IdentityRateLimit`]) or fleet-wide in Redis ([`GlobalRateLimit`]), see docs/decisions.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::replay::RedisLink;

/// The per-identity limit could not be checked (the global count's Redis did not answer).
#[derive(Debug, thiserror::Error)]
#[error("rate limit store unavailable: {0}")]
pub struct LimitError(pub String);

/// The per-identity rate limit in force: counted in this instance or in Redis.
pub enum IdentityLimit {
    /// Per instance, in memory.
    Instance(IdentityRateLimit),
    /// Shared by every instance, in Redis.
    Global(GlobalRateLimit),
}

impl IdentityLimit {
    /// Counts one query for `digest` at `now` (unix seconds). `Ok(false)`: over the limit.
    /// `Err`: the global count could not be reached and `fail_open` is off.
    pub async fn allow(&self, digest: &[u8; 32], now: i64) -> Result<bool, LimitError> {
        match self {
            IdentityLimit::Instance(l) => Ok(l.allow(digest, now)),
            IdentityLimit::Global(g) => g.allow(digest, now).await,
        }
    }
}

/// The Lua script of the global count: one round trip, atomic on the node holding the key.
/// `KEYS[1]` the window's key, `ARGV[1]` its time to live; returns the count after this query.
const COUNT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
";

/// Time to live of a window's key, seconds: the minute itself plus a minute for clocks that
/// disagree a little. Older windows are never read again.
const WINDOW_TTL_SECS: i64 = 120;

/// Fixed one-minute windows per identity digest, counted in Redis for the whole fleet.
///
/// Key: `prefix + "limit:" + hex(digest) + ":" + minute`, where `minute` is the unix minute of
/// the instance's clock. The key holds only the keyed digest of the ID number (never the number)
/// and, with its `:`, never collides with a nonce key (nonces are letters and digits). One key
/// per window, so in a Redis Cluster each query touches one slot.
pub struct GlobalRateLimit {
    per_minute: u32,
    link: Arc<RedisLink>,
    prefix: String,
    fail_open: bool,
    script: redis::Script,
}

impl GlobalRateLimit {
    /// `per_minute` queries per identity per minute across every instance using `link` with
    /// `prefix`; 0 disables the limit. `fail_open`: allow queries when Redis does not answer.
    pub fn new(per_minute: u32, link: Arc<RedisLink>, prefix: &str, fail_open: bool) -> Self {
        Self {
            per_minute,
            link,
            prefix: prefix.to_string(),
            fail_open,
            script: redis::Script::new(COUNT_SCRIPT),
        }
    }

    /// The Redis key counting `digest`'s queries in the minute holding `now`.
    pub fn key(&self, digest: &[u8; 32], now: i64) -> String {
        format!(
            "{}limit:{}:{}",
            self.prefix,
            hex::encode(digest),
            now.div_euclid(60)
        )
    }

    /// See [`IdentityLimit::allow`].
    pub async fn allow(&self, digest: &[u8; 32], now: i64) -> Result<bool, LimitError> {
        if self.per_minute == 0 {
            return Ok(true);
        }
        let key = self.key(digest, now);
        match self
            .link
            .run_script::<i64>(&self.script, &key, &[WINDOW_TTL_SECS], "rate count")
            .await
        {
            Ok(n) => Ok(n <= i64::from(self.per_minute)),
            Err(e) if self.fail_open => {
                tracing::warn!(error = %e, "global rate limit unavailable; FAILING OPEN as configured (replay.fail_open = true)");
                Ok(true)
            }
            Err(e) => Err(LimitError(e.to_string())),
        }
    }
}

/// Fixed one-minute windows per identity digest.
pub struct IdentityRateLimit {
    per_minute: u32,
    windows: Mutex<HashMap<[u8; 32], (i64, u32)>>,
}

impl IdentityRateLimit {
    /// `per_minute` queries per identity per minute; 0 disables the limit.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one query for `digest` at `now` (unix seconds); false when over the limit.
    pub fn allow(&self, digest: &[u8; 32], now: i64) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let minute = now.div_euclid(60);
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (m, _)| *m == minute);
        }
        let entry = map.entry(*digest).or_insert((minute, 0));
        if entry.0 != minute {
            *entry = (minute, 0);
        }
        if entry.1 >= self.per_minute {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// A cap on requests in flight; a permit is released when dropped.
#[derive(Clone)]
pub struct ConcurrencyLimit {
    max: usize,
    in_flight: Arc<AtomicUsize>,
}

/// Held while a request is in flight.
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ConcurrencyLimit {
    /// At most `max` at once; 0 disables the cap.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A permit, or `None` when `max` requests are already in flight.
    pub fn try_acquire(&self) -> Option<Permit> {
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(Arc::clone(&self.in_flight));
        if self.max != 0 && prev >= self.max {
            drop(permit);
            return None;
        }
        Some(permit)
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}
