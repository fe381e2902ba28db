//! `RULE_LIMIT`: a per-identity query rate (keyed by the ID-number digest, never the number)
//! and a global cap on requests in flight. Both per instance; see docs/decisions.md.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
