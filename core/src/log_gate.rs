//! Rate-limited warnings: at most one line per key per interval, so a storm
//! of throttles or capacity errors writes a few lines instead of thousands.
//!
//! A [`LogGate`] remembers, per key (a provider and region, a pool and
//! launch config), when it last let a line through and how many it held
//! back since; the next line it admits carries that count, so nothing is
//! lost from the totals. Its map is bounded: when full, keys quiet for a
//! whole interval are dropped first, then the one quiet longest.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The default interval between two lines of one key.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// The default number of keys remembered.
pub(crate) const DEFAULT_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    last: Instant,
    held_back: u64,
}

/// Admits one line per key per interval; see the module docs.
#[derive(Debug)]
pub(crate) struct LogGate {
    interval: Duration,
    capacity: usize,
    keys: Mutex<HashMap<String, Entry>>,
}

impl Default for LogGate {
    fn default() -> Self {
        LogGate::new(DEFAULT_INTERVAL, DEFAULT_CAPACITY)
    }
}

impl LogGate {
    /// A gate letting one line per key through every `interval`, remembering
    /// at most `capacity` keys (at least 1).
    pub(crate) fn new(interval: Duration, capacity: usize) -> Self {
        LogGate {
            interval,
            capacity: capacity.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line for `key` may be written now: `Some(n)` with the
    /// number of lines held back since the last one admitted, or `None` to
    /// hold this one back.
    pub(crate) fn admit(&self, key: &str) -> Option<u64> {
        self.admit_at(key, Instant::now())
    }

    /// [`LogGate::admit`] at `now`.
    pub(crate) fn admit_at(&self, key: &str, now: Instant) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = keys.get_mut(key) {
            if now.saturating_duration_since(e.last) < self.interval {
                e.held_back = e.held_back.saturating_add(1);
                return None;
            }
            let held_back = e.held_back;
            *e = Entry {
                last: now,
                held_back: 0,
            };
            return Some(held_back);
        }
        if keys.len() >= self.capacity {
            let interval = self.interval;
            keys.retain(|_, e| now.saturating_duration_since(e.last) < interval);
            if keys.len() >= self.capacity {
                if let Some(oldest) = keys
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
                {
                    keys.remove(&oldest);
                }
            }
        }
        keys.insert(
            key.to_string(),
            Entry {
                last: now,
                held_back: 0,
            },
        );
        Some(0)
    }

    /// How many keys are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_per_interval_with_the_count_held_back() {
        let gate = LogGate::new(Duration::from_secs(10), 8);
        let t = Instant::now();
        assert_eq!(gate.admit_at("aws/us-east-1", t), Some(0));
        for i in 1..=5 {
            assert_eq!(
                gate.admit_at("aws/us-east-1", t + Duration::from_secs(i)),
                None
            );
        }
        // Another key is not held back by the first.
        assert_eq!(gate.admit_at("gcp/europe-west1-b", t), Some(0));
        assert_eq!(
            gate.admit_at("aws/us-east-1", t + Duration::from_secs(10)),
            Some(5),
            "the next line carries the five held back"
        );
        assert_eq!(
            gate.admit_at("aws/us-east-1", t + Duration::from_secs(11)),
            None
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let gate = LogGate::new(Duration::from_secs(10), 4);
        let t = Instant::now();
        for i in 0..100u64 {
            assert_eq!(
                gate.admit_at(&format!("k{i}"), t + Duration::from_millis(i)),
                Some(0),
                "a new key is always admitted"
            );
            assert!(gate.len() <= 4, "at most 4 keys: {}", gate.len());
        }
        // The newest keys survived the evictions; the oldest did not.
        assert_eq!(gate.admit_at("k99", t + Duration::from_millis(100)), None);
        assert_eq!(gate.admit_at("k0", t + Duration::from_millis(100)), Some(0));
    }
}
