//! In-process nonce store: a few mutex-guarded shards of `nonce → expiry`, purged as they fill.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use super::ReplayError;

const SHARDS: usize = 16;

/// Remembers nonces in memory, bounded by `capacity` live entries.
pub struct MemoryReplayStore {
    shards: Vec<Mutex<HashMap<String, i64>>>,
    hasher: std::collections::hash_map::RandomState,
    per_shard_capacity: usize,
}

impl MemoryReplayStore {
    /// A store holding at most about `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            per_shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// See [`super::ReplayGuard::check_and_record`].
    pub fn check_and_record(
        &self,
        nonce: &str,
        now: i64,
        window_secs: i64,
    ) -> Result<bool, ReplayError> {
        let idx = (self.hasher.hash_one(&nonce) as usize) % SHARDS;
        let shard = self
            .shards
            .get(idx)
            .ok_or(ReplayError::Unavailable("shard index".into()))?;
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&expiry) = map.get(nonce) {
            if expiry > now {
                return Ok(false);
            }
        }
        if map.len() >= self.per_shard_capacity {
            map.retain(|_, &mut expiry| expiry > now);
            if map.len() >= self.per_shard_capacity {
                return Err(ReplayError::Full(self.per_shard_capacity * SHARDS));
            }
        }
        map.insert(nonce.to_owned(), now.saturating_add(window_secs));
        Ok(true)
    }

    /// Live entries (for metrics and tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum()
    }

    /// True when no nonce is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
