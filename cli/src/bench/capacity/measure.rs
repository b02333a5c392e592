//! What `bench capacity` computes from its samples and records, as pure
//! functions (tested below): coverage of the desired capacity, the spot
//! share, interruption-to-replacement times, and creates sent to offerings
//! already marked unavailable.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use time::OffsetDateTime;

/// One look at a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the run started.
    pub at_s: f64,
    /// Capacity running (and not being removed).
    pub running: u64,
    /// Of it, on spot offerings.
    pub running_spot: u64,
    /// Whether some spot offering was available (not stocked out).
    pub spot_available: bool,
}

/// The mean share of `desired` running over the samples at or after
/// `after_s` (each sample capped at 1); `None` without such samples.
pub fn coverage(samples: &[Sample], desired: u64, after_s: f64) -> Option<f64> {
    let shares: Vec<f64> = samples
        .iter()
        .filter(|s| s.at_s >= after_s)
        .map(|s| (s.running as f64 / desired.max(1) as f64).min(1.0))
        .collect();
    mean(&shares)
}

/// The mean share of running capacity on spot, over the samples at or
/// after `after_s` with a spot offering available and something running.
pub fn spot_share(samples: &[Sample], after_s: f64) -> Option<f64> {
    let shares: Vec<f64> = samples
        .iter()
        .filter(|s| s.at_s >= after_s && s.spot_available && s.running > 0)
        .map(|s| s.running_spot as f64 / s.running as f64)
        .collect();
    mean(&shares)
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// An interruption the mock made, matched to its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    /// The worker's pool.
    pub pool: String,
    /// The interrupted worker.
    pub worker: String,
    /// When the notice was posted.
    pub notice_at: OffsetDateTime,
    /// When the cloud took the VM.
    pub ends_at: OffsetDateTime,
}

/// A worker the runtime launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// Its pool.
    pub pool: String,
    /// Its id.
    pub worker: String,
    /// Its launch config.
    pub launch_config: String,
    /// When the runtime created its record (before any cloud call).
    pub created_at: OffsetDateTime,
    /// When it was first seen running.
    pub running_at: Option<OffsetDateTime>,
    /// When its create failed on capacity or quota, if it did.
    pub capacity_error_at: Option<OffsetDateTime>,
}

/// One interruption's replacement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Replacement {
    /// Seconds from the notice to the replacement running.
    pub notice_to_running_s: f64,
    /// Whether it was running before the interrupted VM was gone.
    pub before_gone: bool,
}

/// Each interruption's replacement: in notice order per pool, the first
/// worker of the pool created at or after the notice that reached running
/// and no earlier interruption took; `None` when there was none.
pub fn replacements(interrupted: &[Interrupted], launches: &[Launch]) -> Vec<Option<Replacement>> {
    let mut order: Vec<usize> = (0..interrupted.len()).collect();
    order.sort_by_key(|&i| interrupted[i].notice_at);
    let mut by_pool: BTreeMap<&str, Vec<&Launch>> = BTreeMap::new();
    for l in launches.iter().filter(|l| l.running_at.is_some()) {
        by_pool.entry(l.pool.as_str()).or_default().push(l);
    }
    for ls in by_pool.values_mut() {
        ls.sort_by_key(|l| l.created_at);
    }
    let mut taken: HashSet<&str> = HashSet::new();
    let mut out = vec![None; interrupted.len()];
    for i in order {
        let it = &interrupted[i];
        let Some(candidates) = by_pool.get(it.pool.as_str()) else {
            continue;
        };
        let found = candidates.iter().find(|l| {
            l.created_at >= it.notice_at
                && l.worker != it.worker
                && !taken.contains(l.worker.as_str())
        });
        if let Some(l) = found {
            taken.insert(l.worker.as_str());
            // Filtered on `running_at.is_some()` above.
            let running = l.running_at.unwrap_or(l.created_at);
            out[i] = Some(Replacement {
                notice_to_running_s: (running - it.notice_at).as_seconds_f64().max(0.0),
                before_gone: running <= it.ends_at,
            });
        }
    }
    out
}

/// Workers created for a launch config within `ttl` after its first
/// capacity error: creates sent to an offering already marked unavailable
/// (the mark is made when that error is handled, so the target is 0).
pub fn creates_to_marked(launches: &[Launch], ttl: Duration) -> u64 {
    let mut first: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
    for l in launches {
        if let Some(at) = l.capacity_error_at {
            let e = first.entry(l.launch_config.as_str()).or_insert(at);
            *e = (*e).min(at);
        }
    }
    launches
        .iter()
        .filter(|l| {
            first
                .get(l.launch_config.as_str())
                .is_some_and(|&at| l.created_at > at && l.created_at < at + ttl)
        })
        .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s)
    }

    fn launch(worker: &str, created: i64, running: Option<i64>) -> Launch {
        Launch {
            pool: "p".into(),
            worker: worker.into(),
            launch_config: "spot-a".into(),
            created_at: t(created),
            running_at: running.map(t),
            capacity_error_at: None,
        }
    }

    #[test]
    fn coverage_and_spot_share_skip_the_ramp_and_cap_at_one() {
        let s = |at_s, running, running_spot, spot_available| Sample {
            at_s,
            running,
            running_spot,
            spot_available,
        };
        let samples = [
            s(10.0, 0, 0, true),
            s(61.0, 100, 90, true),
            s(62.0, 250, 200, false),
        ];
        assert_eq!(coverage(&samples, 200, 60.0), Some(0.75));
        assert_eq!(spot_share(&samples, 60.0), Some(0.9));
        assert_eq!(coverage(&samples, 200, 100.0), None);
    }

    #[test]
    fn each_interruption_gets_its_own_replacement_created_after_its_notice() {
        let it = |w: &str, notice, ends| Interrupted {
            pool: "p".into(),
            worker: w.into(),
            notice_at: t(notice),
            ends_at: t(ends),
        };
        let ints = [it("a", 100, 120), it("b", 101, 121)];
        let launches = [
            launch("old", 50, Some(60)),
            launch("x", 102, Some(110)),
            launch("failed", 103, None),
            launch("y", 104, Some(125)),
        ];
        let r = replacements(&ints, &launches);
        assert_eq!(r[0].map(|r| r.notice_to_running_s), Some(10.0));
        assert_eq!(r[0].map(|r| r.before_gone), Some(true));
        assert_eq!(r[1].map(|r| r.notice_to_running_s), Some(24.0));
        assert_eq!(r[1].map(|r| r.before_gone), Some(false));
        assert_eq!(replacements(&[it("c", 200, 220)], &launches), vec![None]);
    }

    #[test]
    fn creates_after_the_first_capacity_error_within_the_ttl_count() {
        let mut first = launch("f", 10, None);
        first.capacity_error_at = Some(t(12));
        let mut other = launch("g", 11, None);
        other.launch_config = "od".into();
        let ls = [
            first,
            other,
            launch("in-flight", 11, None),
            launch("bad", 20, None),
            launch("after-ttl", 200, Some(210)),
        ];
        assert_eq!(creates_to_marked(&ls, Duration::from_secs(180)), 1);
    }
}
