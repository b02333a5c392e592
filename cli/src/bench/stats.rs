//! The statistics every benchmark reports: percentiles of a sample, call
//! counts between two readings, calls per worker.

use std::collections::BTreeMap;

/// A sample sorted once, read at percentiles.
#[derive(Debug, Clone, Default)]
pub struct Distribution(Vec<f64>);

impl Distribution {
    /// Sorts `values` (total order: NaN last).
    pub fn new(mut values: Vec<f64>) -> Self {
        values.sort_by(|a, b| a.total_cmp(b));
        Distribution(values)
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The value at rank `round((n - 1) * p)` (nearest rank), `None` when
    /// empty. `p` = 0.5 is the upper median for an even count.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let last = self.0.len().checked_sub(1)?;
        let i = (last as f64 * p).round() as usize;
        self.0.get(i.min(last)).copied()
    }

    /// [`Self::percentile`] at 0.5.
    pub fn median(&self) -> Option<f64> {
        self.percentile(0.5)
    }
}

/// Calls by operation, as the mock counts them.
pub type Calls = BTreeMap<String, u64>;

/// The calls made between two readings (`after` minus `before`), operations
/// with no new call left out.
pub fn diff(after: &Calls, before: &Calls) -> Calls {
    after
        .iter()
        .map(|(k, v)| {
            let b = before.get(k).copied().unwrap_or(0);
            (k.clone(), v.saturating_sub(b))
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// All calls of a reading.
pub fn total(calls: &Calls) -> u64 {
    calls.values().sum()
}

/// `calls / divisor`, rounded to 4 decimals.
pub fn per(calls: u64, divisor: f64) -> f64 {
    (calls as f64 / divisor * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_upper_middle_and_matches_the_half_percentile() {
        assert_eq!(Distribution::new(vec![]).median(), None);
        assert_eq!(Distribution::new(vec![3.0, 1.0]).median(), Some(3.0));
        assert_eq!(Distribution::new(vec![3.0, 1.0, 2.0]).median(), Some(2.0));
        let d = Distribution::new((1..=20).map(f64::from).collect());
        assert_eq!(d.percentile(0.95), Some(19.0));
        assert_eq!(d.percentile(1.0), Some(20.0));
        assert_eq!(d.len(), 20);
    }

    #[test]
    fn diff_keeps_only_new_calls() {
        let before: Calls = [("a".into(), 2), ("b".into(), 5)].into();
        let after: Calls = [("a".into(), 2), ("b".into(), 7), ("c".into(), 1)].into();
        let d = diff(&after, &before);
        assert_eq!(d, [("b".into(), 2), ("c".into(), 1)].into());
        assert_eq!(total(&d), 3);
        assert_eq!(per(1, 3.0), 0.3333);
    }
}
