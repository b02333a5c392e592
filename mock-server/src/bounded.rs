//! Bounds on what callers can make the mock hold or compute: per-caller
//! maps (EC2 partitions per access key and region, throttle buckets) keep
//! at most [`MAX_ENTRIES`] entries, evicting the one idle longest, and
//! simulated durations saturate instead of overflowing.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The most entries of each per-caller map.
pub const MAX_ENTRIES: usize = 10_000;

/// The longest simulated duration (ten years): larger `time_scale` or
/// `*_ms` products saturate here, and `Instant::now() + it` never
/// overflows.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Makes room for one more entry in `map`: while it holds `cap` or more,
/// removes the entry whose `last_used` is oldest.
pub fn make_room<K, V>(map: &mut HashMap<K, V>, cap: usize, last_used: impl Fn(&V) -> Instant)
where
    K: Eq + Hash + Clone,
{
    while map.len() >= cap.max(1) {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, v)| last_used(v))
            .map(|(k, _)| k.clone())
        else {
            return;
        };
        map.remove(&oldest);
    }
}

/// `secs` seconds as a duration: 0 when negative or not a number, at most
/// [`MAX_DURATION`].
pub fn secs_f64(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs)
        .unwrap_or(MAX_DURATION)
        .min(MAX_DURATION)
}

/// `d` times `factor`, saturating at [`MAX_DURATION`] (0 for a negative or
/// non-number factor).
pub fn scale(d: Duration, factor: f64) -> Duration {
    secs_f64(d.as_secs_f64() * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_idle_longest_is_evicted_first() {
        let t0 = Instant::now();
        let mut m: HashMap<&str, Instant> = HashMap::new();
        m.insert("old", t0);
        m.insert("new", t0 + Duration::from_secs(2));
        m.insert("mid", t0 + Duration::from_secs(1));
        make_room(&mut m, 3, |v| *v);
        assert_eq!(m.len(), 2);
        assert!(!m.contains_key("old"));
        make_room(&mut m, 1, |v| *v);
        assert!(m.is_empty());
    }

    #[test]
    fn huge_products_saturate_and_bad_ones_are_zero() {
        let day = Duration::from_secs(86_400);
        assert_eq!(scale(day, 1e300), MAX_DURATION);
        assert_eq!(scale(Duration::MAX, 2.0), MAX_DURATION);
        assert_eq!(scale(day, f64::INFINITY), MAX_DURATION);
        assert_eq!(scale(day, f64::NAN), Duration::ZERO);
        assert_eq!(scale(day, -1.0), Duration::ZERO);
        assert_eq!(scale(day, 0.5), Duration::from_secs(43_200));
        // Adding the cap to now stays representable.
        let _ = Instant::now() + MAX_DURATION;
    }
}
