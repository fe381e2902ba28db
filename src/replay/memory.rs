//! In-process nonce store: a few mutex-guarded shards of `nonce → expiry`, purged as they fill.
//! An entry is live up to and including its expiry second.

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
        let idx = (self.hasher.hash_one(nonce) as usize) % SHARDS;
        let shard = self
            .shards
            .get(idx)
            .ok_or(ReplayError::Internal("shard index out of range"))?;
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&expiry) = map.get(nonce) {
            if expiry >= now {
                return Ok(false);
            }
        }
        if map.len() >= self.per_shard_capacity {
            map.retain(|_, &mut expiry| expiry >= now);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_live_up_to_and_including_its_expiry() {
        let s = MemoryReplayStore::new(64);
        assert!(s.check_and_record("n", 1000, 660).unwrap());
        assert!(!s.check_and_record("n", 1000, 660).unwrap());
        assert!(!s.check_and_record("n", 1659, 660).unwrap());
        // Expiry equals now: still remembered.
        assert!(!s.check_and_record("n", 1660, 660).unwrap());
        // One second later it is gone and the nonce counts as new.
        assert!(s.check_and_record("n", 1661, 660).unwrap());
    }

    #[test]
    fn purging_keeps_entries_whose_expiry_is_now() {
        // Capacity one per shard: fill every shard at t = 0 (entries live until t = 10).
        let s = MemoryReplayStore::new(SHARDS);
        let mut i = 0;
        while s.len() < SHARDS {
            let _ = s.check_and_record(&format!("n{i}"), 0, 10);
            i += 1;
            assert!(i < 100_000, "shards never filled");
        }
        // At t = 10 the purge must keep them all: a new nonce finds the store full.
        assert!(matches!(
            s.check_and_record("new", 10, 10),
            Err(ReplayError::Full(_))
        ));
        assert_eq!(s.len(), SHARDS);
        // At t = 11 they have expired and make room.
        assert!(s.check_and_record("new", 11, 10).unwrap());
    }
}
