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
//! Scale-down uses the target `clamp(pending + claimed + min_idle, min,
//! max)`: capacity above it, and not busy with claimed work, is surplus; a
//! pass that spawns removes nothing. (The ratio is left out of the target on
//! purpose: Taskcluster's `(pending + claimed) * ratio` target sits below
//! what its spawn formula climbs back to, so a pool under constant demand
//! with a ratio below 1 was grown and shrunk on alternate passes.)
//!
//! Two additions serve warm pools and registered workers:
//! - `min_idle` (a pool setting) is idle capacity kept on top of the pending
//!   work: desired grows until `idle - pending >= min_idle` (within max),
//!   and the scale-down target keeps it.
//! - When workers report what they run ([`Capacity::busy`], the sum of the
//!   capacity their heartbeats say is in use), busy capacity is the larger of
//!   that and the queue's claimed count, so a queue that lags behind its
//!   workers never makes busy capacity look idle.

use serde::{Deserialize, Serialize};

/// The capacity a pool has, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Capacity of workers being provisioned.
    pub requested: u64,
    /// Capacity of running workers.
    pub running: u64,
    /// Capacity of workers being torn down (or drained).
    pub stopping: u64,
    /// Capacity in use as reported by heartbeating workers; `None` when no
    /// worker reports (today's formula then uses the queue's claimed count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<u64>,
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
    /// Idle capacity kept on top of pending work (the pool's `min_idle`).
    pub min_idle: u64,
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
    // What workers say they run, when they say, never below the queue's view.
    let claimed = have.busy.map_or(demand.claimed, |b| b.max(demand.claimed));
    // Claimed tasks run on running workers; requested workers are idle
    // capacity on its way.
    let idle = have
        .requested
        .saturating_add(have.running.saturating_sub(claimed));
    let adjusted = demand.pending.saturating_sub(idle);
    // Idle capacity left once pending work is placed, short of min_idle.
    let warm_short = bounds
        .min_idle
        .saturating_sub(idle.saturating_sub(demand.pending));
    let non_stopped = existing.saturating_add(have.stopping);
    // `as u64` saturates on floats past u64::MAX.
    let wanted = ((adjusted as f64 * bounds.ratio).ceil() as u64)
        .saturating_add(warm_short)
        .saturating_add(non_stopped);
    let desired = wanted.min(bounds.max).max(bounds.min);
    let to_spawn = desired.saturating_sub(non_stopped);

    // The ratio slows growth; it does not shrink the scale-down target:
    // a target of `ratio * work` sits below what the spawn formula climbs
    // back to under constant demand, and the pool would oscillate.
    let target = demand
        .pending
        .saturating_add(claimed)
        .saturating_add(bounds.min_idle)
        .min(bounds.max)
        .max(bounds.min);
    // Never count busy (claimed) capacity as surplus.
    let keep = target.max(claimed.min(existing));
    // A pass that grows the pool removes nothing.
    let surplus = if to_spawn > 0 {
        0
    } else {
        existing.saturating_sub(keep)
    };
    Estimate {
        to_spawn,
        surplus,
        desired,
        idle,
        target,
    }
}

/// Capacity that may drain the moment it finishes its work, until the next
/// pass: what would be surplus once every claimed task finished with no new
/// work, i.e. capacity above `clamp(pending + min_idle, min, max)`, less
/// what the pass itself decided about (`placed`). It is 0 in a pass that
/// spawns, and 0 when the idle capacity left after the pass's decisions is
/// already short of `pending + min_idle`, so the first workers to finish
/// refill the idle capacity before any drains.
///
/// Why: the scale-down target counts claimed work, so after a drop in
/// demand each busy worker becomes surplus only as it finishes. Without this
/// the next pass sees it idle and asks it to drain, and the worker hears it
/// at its next heartbeat: a pass interval and a heartbeat interval of idle
/// capacity per finishing worker, tens of idle workers at once when a large
/// pool winds down. With it, the worker's own report of turning idle is
/// answered `drain`. Taking it one worker at a time never takes the pool's
/// capacity below `existing - placed - finish_surplus`, which is at least
/// the floor above.
pub fn finish_surplus(
    bounds: Bounds,
    have: Capacity,
    demand: PoolDemand,
    est: &Estimate,
    placed: u64,
) -> u64 {
    if est.to_spawn > 0 {
        return 0;
    }
    let keep_idle = demand.pending.saturating_add(bounds.min_idle);
    if est.idle.saturating_sub(placed) < keep_idle {
        return 0;
    }
    let floor = keep_idle.min(bounds.max).max(bounds.min);
    have.requested
        .saturating_add(have.running)
        .saturating_sub(placed)
        .saturating_sub(floor)
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
            busy: None,
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
            min_idle: 0,
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
            let bounds = Bounds { min, max, ratio, min_idle: 0 };
            let have = Capacity { requested, running, stopping, busy: None };
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

    #[test]
    fn finish_surplus_after_a_drop_covers_the_busy_workers_and_keeps_min_idle() {
        // 200 running, 180 busy, the queue empties: the pass drains 15 of the
        // 20 idle; the 180 busy may each drain as they finish.
        let bounds = Bounds {
            min: 0,
            max: 200,
            ratio: 1.0,
            min_idle: 5,
        };
        let have = Capacity {
            running: 200,
            busy: Some(180),
            ..Default::default()
        };
        let demand = PoolDemand {
            pending: 0,
            claimed: 180,
        };
        let e = estimate(bounds, have, demand);
        assert_eq!(e.surplus, 15);
        assert_eq!(finish_surplus(bounds, have, demand, &e, 15), 180);
        // Had the pass placed nothing, the idle capacity still covers
        // min_idle: the budget includes the unplaced surplus too.
        assert_eq!(finish_surplus(bounds, have, demand, &e, 0), 195);
        // Pending work the idle workers cannot cover: nothing drains early.
        let short = PoolDemand {
            pending: 30,
            claimed: 180,
        };
        let e = estimate(bounds, have, short);
        assert_eq!(finish_surplus(bounds, have, short, &e, 0), 0);
    }

    proptest! {
        /// The finish budget never takes the pool below `clamp(pending +
        /// min_idle, min, max)`, is 0 in a pass that spawns or when idle
        /// capacity is short, and is never less than the pass's unplaced
        /// surplus.
        #[test]
        fn finish_surplus_invariants(
            min in 0u64..20, extra in 0u64..100, min_idle in 0u64..30,
            requested in 0u64..100, running in 0u64..100, stopping in 0u64..20,
            pending in 0u64..200, claimed in 0u64..150, busy in proptest::option::of(0u64..150),
            ratio in 0.05f64..=1.0, placed_share in 0.0f64..=1.0,
        ) {
            let max = min + extra;
            let bounds = Bounds { min, max, ratio, min_idle };
            let have = Capacity { requested, running, stopping, busy };
            let demand = PoolDemand { pending, claimed };
            let e = estimate(bounds, have, demand);
            let placed = (e.surplus as f64 * placed_share).round() as u64;
            let f = finish_surplus(bounds, have, demand, &e, placed);
            let existing = requested + running;
            if f > 0 {
                prop_assert_eq!(e.to_spawn, 0);
                prop_assert!(e.idle.saturating_sub(placed) >= pending + min_idle);
                prop_assert!(existing - placed - f >= (pending + min_idle).min(max).max(min));
                prop_assert!(f >= e.surplus - placed, "{f} < {} - {placed}", e.surplus);
            }
            prop_assert!(f <= existing.saturating_sub(placed));
        }

        /// With min_idle: never above max; idle capacity left after the
        /// pending work is placed reaches min_idle unless max stops it; a
        /// pass never both spawns and removes.
        #[test]
        fn warm_pool_invariants(
            min in 0u64..20, extra in 0u64..100, min_idle in 0u64..30,
            requested in 0u64..100, running in 0u64..100, stopping in 0u64..20,
            pending in 0u64..200, claimed in 0u64..150, busy in proptest::option::of(0u64..150),
            ratio in 0.05f64..=1.0,
        ) {
            let max = min + extra;
            let bounds = Bounds { min, max, ratio, min_idle };
            let have = Capacity { requested, running, stopping, busy };
            let e = estimate(bounds, have, PoolDemand { pending, claimed });
            let non_stopped = requested + running + stopping;
            prop_assert!(e.to_spawn == 0 || non_stopped + e.to_spawn <= max);
            prop_assert!(e.to_spawn == 0 || e.surplus == 0);
            if ratio == 1.0 && e.desired < max {
                prop_assert!(e.idle + e.to_spawn >= pending + min_idle);
            }
            let busy_now = busy.map_or(claimed, |b| b.max(claimed));
            prop_assert!(requested + running - e.surplus >= busy_now.min(requested + running));
        }

        /// Under constant demand the pool settles: after a few passes (new
        /// capacity starting between passes) nothing is spawned or removed,
        /// and it stays so.
        #[test]
        fn no_oscillation_under_constant_demand(
            min in 0u64..10, extra in 1u64..80, min_idle in 0u64..10,
            pending in 0u64..60, claimed in 0u64..40, running in 0u64..60,
            ratio in 0.05f64..=1.0,
        ) {
            let max = min + extra;
            let bounds = Bounds { min, max, ratio, min_idle: min_idle.min(max) };
            let mut have = Capacity { running, ..Default::default() };
            let mut quiet_since = None;
            for pass in 0..200 {
                let e = estimate(bounds, have, PoolDemand { pending, claimed });
                if e.to_spawn == 0 && e.surplus == 0 {
                    quiet_since.get_or_insert(pass);
                } else {
                    prop_assert!(quiet_since.is_none(), "moved again at pass {pass} after settling: {e:?}");
                }
                have.running = have.running + have.requested + e.to_spawn - e.surplus;
                have.requested = 0;
            }
            prop_assert!(quiet_since.is_some());
        }
    }
}
