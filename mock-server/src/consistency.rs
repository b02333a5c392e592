//! Eventual consistency: a configurable window (per cloud, scaled by the
//! time scale like every duration) in which reads lag behind writes.
//!
//! - EC2 (`aws.consistency_window_ms`): after RunInstances,
//!   DescribeInstances and DescribeInstanceStatus naming the instance
//!   answer `InvalidInstanceID.NotFound`, and unnamed (filtered) describes
//!   leave it out. A terminated instance stays describable for
//!   `terminated_visible_ms` anyway, as on EC2.
//! - ARM (`azure.consistency_window_s`): after the PUT that creates a
//!   resource, list calls leave it out, and after its delete finishes they
//!   still list it; a GET by name answers the truth (ARM reads a resource
//!   from its resource provider, lists lag).
//! - Compute Engine (`gcp.consistency_window_ms`): after
//!   `instances.insert`, `instances.list` and `aggregatedList` leave the
//!   instance out; after it is gone, they still list it (`TERMINATED`).
//!   `instances.get` answers the truth.
//!
//! A window of 0 (the default) turns the lag off.

use std::time::{Duration, Instant};

/// Whether a resource made at `made` is still missing from lagging reads
/// at `now`.
pub fn pending(made: Instant, window: Duration, now: Instant) -> bool {
    made.checked_add(window).is_some_and(|t| now < t)
}

/// Whether a resource gone since `gone` is still shown by lagging lists at
/// `now`.
pub fn lingering(gone: Instant, window: Duration, now: Instant) -> bool {
    pending(gone, window, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_starts_at_the_change_and_ends_after_it() {
        let t = Instant::now();
        let w = Duration::from_millis(100);
        assert!(pending(t, w, t));
        assert!(pending(t, w, t + Duration::from_millis(99)));
        assert!(!pending(t, w, t + w));
        assert!(!pending(t, Duration::ZERO, t), "no window, no lag");
        assert!(lingering(t, w, t + Duration::from_millis(50)));
    }
}
