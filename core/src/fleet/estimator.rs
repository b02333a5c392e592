//! How many workers a pool needs: Taskcluster's estimator, with its
//! double-counting of requested capacity fixed.
//!
//! Taskcluster (`estimator.js`) computes
//!
//! ```text
//! idle            = max(0, existing - claimed)          // existing includes REQUESTED
//! adjusted        = max(0, pending - idle)
//! non_stopped     = existing + stopping
//! desired         = clamp(adjusted * ratio + non_stopped, min, max)
//! to_spawn        = max(0, desired - non_stopped)
//! return            max(0, to_spawn - requested)        // requested subtracted again
//! ```
//!
//! Requested capacity is already part of `existing`, so it lowers `idle`'s
//! complement once and is subtracted a second time at the end: a pool with
//! workers on their way under-provisions by that much until they start. Here
//! requested capacity counts once, as capacity that will pick up pending work:
//! the final subtraction is gone. And since claimed tasks can only run on
//! running workers, idle capacity is `requested + max(0, running - claimed)`.
//!
//! Scale-down uses the target `clamp((pending + claimed) * ratio, min, max)`:
//! capacity above it, and not busy with claimed work, is surplus.

use serde::{Deserialize, Serialize};

/// The capacity a pool has, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Capacity of workers being provisioned.
    pub requested: u64,
    /// Capacity of running workers.
    pub running: u64,
    /// Capacity of workers being torn down.
    pub stopping: u64,
}

/// Work waiting and work in progress for a pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolDemand {
    /// Tasks waiting for a worker.
    pub pending: u64,
    /// Tasks running on a worker.
    pub claimed: u64,
}

/// Bounds and ratio from the pool config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Capacity kept with no demand.
    pub min: u64,
    /// Capacity never exceeded.
    pub max: u64,
    /// Share of pending work to provision for, in (0, 1].
    pub ratio: f64,
}

/// The estimator's answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    /// Capacity to create now.
    pub to_spawn: u64,
    /// Capacity above target that may be removed (never busy capacity).
    pub surplus: u64,
    /// The desired total capacity.
    pub desired: u64,
    /// Idle capacity: requested, plus running beyond the claimed tasks.
    pub idle: u64,
    /// The scale-down target: capacity above it, and not busy, is surplus.
    pub target: u64,
}

/// Computes what a pool needs. Demand is untrusted input (a pending count
/// near `u64::MAX` from a broken queue): every sum saturates and the result
/// is clamped to `bounds.max`.
pub fn estimate(bounds: Bounds, have: Capacity, demand: PoolDemand) -> Estimate {
    let existing = have.requested.saturating_add(have.running);
    // Claimed tasks run on running workers; requested workers are idle
    // capacity on its way.
    let idle = have
        .requested
        .saturating_add(have.running.saturating_sub(demand.claimed));
    let adjusted = demand.pending.saturating_sub(idle);
    let non_stopped = existing.saturating_add(have.stopping);
    // `as u64` saturates on floats past u64::MAX.
    let wanted = ((adjusted as f64 * bounds.ratio).ceil() as u64).saturating_add(non_stopped);
    let desired = wanted.min(bounds.max).max(bounds.min);
    let to_spawn = desired.saturating_sub(non_stopped);

    let work = demand.pending.saturating_add(demand.claimed);
    let target = ((work as f64 * bounds.ratio).ceil() as u64)
        .min(bounds.max)
        .max(bounds.min);
    // Never count busy (claimed) capacity as surplus.
    let keep = target.max(demand.claimed.min(existing));
    let surplus = existing.saturating_sub(keep);
    Estimate {
        to_spawn,
        surplus,
        desired,
        idle,
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_pending_count_near_u64_max_saturates_and_is_clamped_to_max_capacity() {
        let have = Capacity {
            requested: 3,
            running: 5,
            stopping: 2,
        };
        for (pending, claimed) in [(u64::MAX, 0), (u64::MAX - 1, u64::MAX), (u64::MAX, 7)] {
            let e = estimate(b(0, 40), have, PoolDemand { pending, claimed });
            assert_eq!(e.desired, 40, "{pending} {claimed}");
            assert_eq!(e.target, 40);
            assert_eq!(e.to_spawn, 40 - 10);
        }
    }

    fn b(min: u64, max: u64) -> Bounds {
        Bounds {
            min,
            max,
            ratio: 1.0,
        }
    }

    #[test]
    fn requested_capacity_counts_once() {
        // 10 pending, 4 already requested: spawn 6 more (Taskcluster: 2).
        let e = estimate(
            b(0, 100),
            Capacity {
                requested: 4,
                ..Default::default()
            },
            PoolDemand {
                pending: 10,
                claimed: 0,
            },
        );
        assert_eq!(e.to_spawn, 6);
    }

    #[test]
    fn min_capacity_with_no_demand_and_surplus_when_idle() {
        let e = estimate(b(2, 10), Capacity::default(), PoolDemand::default());
        assert_eq!(e.to_spawn, 2);
        let e = estimate(
            b(2, 10),
            Capacity {
                running: 7,
                ..Default::default()
            },
            PoolDemand {
                pending: 0,
                claimed: 3,
            },
        );
        assert_eq!(e.surplus, 4);
    }

    proptest! {
        #[test]
        fn invariants(
            min in 0u64..50, extra in 0u64..100,
            requested in 0u64..200, running in 0u64..200, stopping in 0u64..50,
            pending in 0u64..500, claimed in 0u64..300,
            ratio in 0.05f64..=1.0,
        ) {
            let max = min + extra;
            let bounds = Bounds { min, max, ratio };
            let have = Capacity { requested, running, stopping };
            let e = estimate(bounds, have, PoolDemand { pending, claimed });
            let non_stopped = requested + running + stopping;
            // Never above max: spawning never takes the total past max.
            prop_assert!(e.to_spawn == 0 || non_stopped + e.to_spawn <= max);
            // Never below min with zero demand.
            let idle = estimate(bounds, have, PoolDemand::default());
            prop_assert!(non_stopped + idle.to_spawn >= min);
            // No spawn when requested capacity already covers the demand.
            if requested >= pending {
                prop_assert!(e.to_spawn == 0 || non_stopped < min);
            }
            // Surplus never cuts into busy capacity.
            prop_assert!(requested + running - e.surplus >= claimed.min(requested + running));
        }
    }
}
