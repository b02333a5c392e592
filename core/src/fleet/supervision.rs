//! What the provisioner's pass decides about a pool's registered workers:
//! which to remove (missed heartbeats, expired registration, inactivity,
//! drain deadline), which to drain (idle too long), and which take a
//! scale-in. Pure functions of the records and the time ([`plan`],
//! [`scale_in`]), applied by [`apply`] with the registration as the fence;
//! [`SurplusLeft`] is what a pass leaves for workers that report idle
//! before the next one.
//!
//! The rule that makes scale-in safe: a worker registered through the worker
//! API is never removed by a scale-in. It is asked to drain; only its own
//! `drained`, a missed heartbeat deadline, its drain deadline (when the pool
//! sets one) or its cloud ends it. Scale-in picks, in order: workers not yet
//! running, running ones not registered, ones registered without the
//! worker API (no heartbeats to go by), newest first; then idle registered
//! workers, longest idle first. Busy workers are never picked, nor workers
//! whose lease another replica holds.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::events::{self, ScaleIn, Transition};
use super::lifecycle::{mark_removed, RemovalReason};
use super::worker_api::new_drain;
use super::{Fleet, Shared};
use crate::error::{ErrorKind, Result};
use crate::model::{DesiredState, DrainReason, Phase, PoolConfig, Registration, Worker};

/// One decision about one worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Decision<'a> {
    /// Mark it for removal.
    Remove {
        /// The worker.
        worker: &'a Worker,
        /// Why.
        reason: RemovalReason,
    },
    /// Ask it to drain.
    Drain {
        /// The worker.
        worker: &'a Worker,
        /// Its registration (the fence).
        registration: &'a Registration,
        /// Why.
        reason: DrainReason,
    },
}

impl Decision<'_> {
    /// The capacity of the worker decided about.
    pub(crate) fn capacity(&self) -> u64 {
        match self {
            Decision::Remove { worker, .. } | Decision::Drain { worker, .. } => {
                u64::from(worker.spec.capacity)
            }
        }
    }

    /// The worker decided about.
    pub(crate) fn worker_id(&self) -> &str {
        match self {
            Decision::Remove { worker, .. } | Decision::Drain { worker, .. } => worker.id(),
        }
    }
}

fn live(w: &Worker) -> bool {
    w.desired == DesiredState::Running && !w.phase.is_final()
}

/// Whether the registration says the worker is on its way out.
fn leaving(r: &Registration) -> bool {
    r.drain.is_some() || r.removal.is_some()
}

/// Removals and idle drains due at `now` for `pool`'s workers (`regs`: the
/// pool's registrations by worker id).
pub(crate) fn plan<'a>(
    pool: &PoolConfig,
    workers: &'a [Worker],
    regs: &'a HashMap<&str, &Registration>,
    now: OffsetDateTime,
) -> Vec<Decision<'a>> {
    let mut out = Vec::new();
    let mut idle: Vec<(&Worker, &Registration)> = Vec::new();
    for w in workers.iter().filter(|w| live(w)) {
        let l = &w.spec.lifecycle;
        let Some(r) = regs.get(w.id()).copied() else {
            // Registered without the worker API: inactivity counts from
            // the registration, as before.
            if let (Some(t), Some(d)) = (w.registered_at, l.inactivity_timeout) {
                if now >= t + d {
                    out.push(Decision::Remove {
                        worker: w,
                        reason: RemovalReason::Inactive,
                    });
                }
            }
            continue;
        };
        let reason = if let Some(label) = &r.removal {
            Some(RemovalReason::from_label(label).unwrap_or(RemovalReason::Drained))
        } else if now >= r.last_heartbeat_at + l.heartbeat_timeout {
            Some(RemovalReason::HeartbeatTimeout)
        } else if now >= r.expires {
            Some(RemovalReason::ReregistrationTimeout)
        } else if l
            .inactivity_timeout
            .is_some_and(|d| now >= r.last_heartbeat_at + d)
        {
            Some(RemovalReason::Inactive)
        } else if r
            .drain
            .as_ref()
            .is_some_and(|d| d.drained_at.is_none() && d.deadline.is_some_and(|t| now >= t))
        {
            Some(RemovalReason::DrainTimeout)
        } else {
            None
        };
        match reason {
            Some(reason) => out.push(Decision::Remove { worker: w, reason }),
            None if !leaving(r) && r.is_idle() => idle.push((w, r)),
            None => {}
        }
    }
    // Idle drains, longest idle first, keeping min_idle.
    idle.sort_by_key(|(w, r)| (r.idle_since, w.created_at));
    let mut idle_capacity: u64 = idle.iter().map(|(w, _)| u64::from(w.spec.capacity)).sum();
    for (w, r) in idle {
        let Some(limit) = w.spec.lifecycle.idle_timeout else {
            continue;
        };
        let cap = u64::from(w.spec.capacity);
        let since = r.idle_since.unwrap_or(r.last_heartbeat_at);
        if now >= since + limit && idle_capacity >= u64::from(pool.min_idle) + cap {
            idle_capacity -= cap;
            out.push(Decision::Drain {
                worker: w,
                registration: r,
                reason: DrainReason::IdleTimeout,
            });
        }
    }
    out
}

/// The workers a scale-in of `surplus` capacity takes, in the order of the
/// module's rule; `exclude` names workers already decided about.
pub(crate) fn scale_in<'a>(
    workers: &'a [Worker],
    regs: &'a HashMap<&str, &Registration>,
    surplus: u64,
    owner: &str,
    exclude: &[&str],
    now: OffsetDateTime,
) -> Vec<Decision<'a>> {
    let leased_elsewhere = |w: &Worker| {
        w.lease_owner.as_deref().is_some_and(|o| o != owner)
            && w.lease_expires_at.is_some_and(|t| t > now)
    };
    let leased =
        |w: &Worker| w.lease_owner.is_some() && w.lease_expires_at.is_some_and(|t| t > now);
    // (tier, order key) per candidate; lower first.
    let mut candidates: Vec<(u8, i128, &Worker, Option<&Registration>)> = Vec::new();
    for w in workers
        .iter()
        .filter(|w| live(w) && !exclude.contains(&w.id()))
    {
        let newest_first = -w.created_at.unix_timestamp_nanos();
        match regs.get(w.id()).copied() {
            None if leased(w) => {}
            None if w.phase == Phase::Requested => candidates.push((0, newest_first, w, None)),
            None if w.registered_at.is_none() => candidates.push((1, newest_first, w, None)),
            None => candidates.push((2, newest_first, w, None)),
            Some(r) if !leaving(r) && r.is_idle() && !leased_elsewhere(w) => {
                let since = r.idle_since.unwrap_or(r.last_heartbeat_at);
                candidates.push((3, since.unix_timestamp_nanos(), w, Some(r)));
            }
            Some(_) => {}
        }
    }
    candidates.sort_by_key(|(tier, key, w, _)| (*tier, *key, w.id().to_string()));
    let mut left = surplus;
    let mut out = Vec::new();
    for (_, _, w, r) in candidates {
        let cap = u64::from(w.spec.capacity);
        if left == 0 {
            break;
        }
        if cap > left {
            continue;
        }
        left -= cap;
        out.push(match r {
            Some(registration) => Decision::Drain {
                worker: w,
                registration,
                reason: DrainReason::ScaleIn,
            },
            None => Decision::Remove {
                worker: w,
                reason: RemovalReason::ScaleDown,
            },
        });
    }
    out
}

/// What a pool's last pass left for workers that report idle before its
/// next pass (each such worker is asked to drain in that heartbeat's
/// answer rather than a pass and a heartbeat later). Replaced by every pass,
/// so it is never older than one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SurplusLeft {
    /// Scale-in surplus the pass could not place (too few idle workers
    /// then): any worker reporting idle may take it.
    pub(crate) unplaced: u64,
    /// Surplus that appears as busy workers finish with no work waiting
    /// ([`finish_surplus`](super::estimator::finish_surplus)): only a
    /// worker that turns idle in the report may take it. Gone once an idle
    /// worker turns busy (the idle capacity it was computed on shrank).
    pub(crate) on_finish: u64,
}

impl SurplusLeft {
    /// Takes `capacity` for a worker reporting idle (`finished`: it was
    /// busy before this report); whether it should drain.
    pub(crate) fn take(&mut self, capacity: u64, finished: bool) -> bool {
        if self.unplaced >= capacity {
            self.unplaced -= capacity;
            true
        } else if finished && self.on_finish >= capacity {
            self.on_finish -= capacity;
            true
        } else {
            false
        }
    }

    /// An idle worker turned busy: nothing more drains on finishing until
    /// the next pass has looked.
    pub(crate) fn idle_turned_busy(&mut self) {
        self.on_finish = 0;
    }
}

/// Applies decisions; returns how many workers were marked for removal and
/// how many asked to drain. A decision whose record changed underneath is
/// dropped (the next pass decides again on fresh facts).
pub(crate) async fn apply(
    shared: &std::sync::Arc<Shared>,
    decisions: &[Decision<'_>],
    regs: &HashMap<&str, &Registration>,
    scale: Option<ScaleIn>,
) -> Result<(u64, u64)> {
    let fleet = Fleet {
        shared: shared.clone(),
    };
    let now = shared.clock.now();
    let (mut removed, mut drained) = (0, 0);
    for d in decisions {
        match *d {
            Decision::Drain {
                worker,
                registration,
                reason,
            } => {
                let mut r = registration.clone();
                r.drain = Some(new_drain(reason, worker, now));
                match shared.store.update_registration(&r).await {
                    Ok(_) => {
                        drained += 1;
                        events::drain_requested(worker, reason);
                    }
                    Err(e) if e.kind() == &ErrorKind::Conflict => {}
                    Err(e) => return Err(e),
                }
            }
            Decision::Remove { worker, reason } => {
                if let Some(r) = regs.get(worker.id()).copied() {
                    // The fence first: from here on its heartbeats are
                    // answered `terminate`, and a heartbeat that came in
                    // since we read makes this fail.
                    if r.removal.is_none() {
                        let mut fenced = r.clone();
                        fenced.removal = Some(reason.label().to_string());
                        match shared.store.update_registration(&fenced).await {
                            Ok(_) => {}
                            Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                            Err(e) => return Err(e),
                        }
                    }
                    if fleet.remove_registered(worker.id(), reason).await.is_ok() {
                        removed += 1;
                    }
                    continue;
                }
                let mut w = worker.clone();
                mark_removed(&mut w, reason, now);
                match shared.store.update_worker(&w).await {
                    Ok(stored) => {
                        removed += 1;
                        let scale = if reason == RemovalReason::ScaleDown {
                            scale
                        } else {
                            None
                        };
                        events::emit(&stored, &Transition::Removed { reason, scale });
                    }
                    Err(e) if e.kind() == &ErrorKind::Conflict => {
                        tracing::debug!(worker = w.id(), "removal skipped: the record changed");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok((removed, drained))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::{scale_in, Decision, SurplusLeft};
    use crate::model::{Phase, Registration, Worker};
    use crate::testing::fixtures;

    fn t(secs: i64) -> time::OffsetDateTime {
        crate::clock::from_millis(1_750_000_000_000 + secs * 1000)
    }

    /// A running worker created at `t(created)`; leased by `owner` until
    /// `t(100)` when given.
    fn running(id: &str, created: i64, lease: Option<&str>, registered: bool) -> Worker {
        let mut w = fixtures::worker(id).build(t(created));
        w.phase = Phase::Running;
        w.registered_at = registered.then(|| t(created + 1));
        w.lease_owner = lease.map(str::to_string);
        w.lease_expires_at = lease.map(|_| t(100));
        w
    }

    fn picked(ds: &[Decision<'_>]) -> Vec<String> {
        ds.iter().map(|d| d.worker_id().to_string()).collect()
    }

    #[test]
    fn scale_in_never_picks_a_worker_whose_lease_another_replica_holds() {
        let now = t(50);
        // Newest first would pick b, then a; idle longest first picks the
        // registered ones. Every worker but `free-*` is leased by r2.
        let workers = vec![
            running("a", 1, Some("r2"), false),
            running("b", 2, Some("r2"), true),
            running("idle-leased", 3, Some("r2"), true),
            running("free-unregistered", 4, None, false),
            running("free-idle", 5, None, true),
        ];
        let idle = |id: &str| {
            Registration::new(
                id,
                "pool",
                String::new(),
                t(10),
                t(10) + Duration::from_secs(3600),
            )
        };
        let (r1, r2) = (idle("idle-leased"), idle("free-idle"));
        let regs: HashMap<&str, &Registration> = [("idle-leased", &r1), ("free-idle", &r2)]
            .into_iter()
            .collect();
        let ds = scale_in(&workers, &regs, 10, "r1", &[], now);
        assert_eq!(picked(&ds), vec!["free-unregistered", "free-idle"]);
        // Once r2's leases have expired, all of them may go.
        let later = t(101);
        let ds = scale_in(&workers, &regs, 10, "r1", &[], later);
        assert_eq!(ds.len(), 5, "{:?}", picked(&ds));
        // This replica's own lease on a registered idle worker does not
        // hold it back from a drain.
        let mut own = workers.clone();
        own[2].lease_owner = Some("r1".into());
        let ds = scale_in(&own, &regs, 10, "r1", &[], now);
        assert!(picked(&ds).contains(&"idle-leased".to_string()));
    }

    #[test]
    fn unplaced_surplus_goes_to_any_idle_worker_the_finish_budget_only_to_finishers() {
        let mut left = SurplusLeft {
            unplaced: 1,
            on_finish: 2,
        };
        assert!(left.take(1, false), "unplaced surplus: any idle worker");
        assert!(
            !left.take(1, false),
            "a worker idle all along takes no finish budget"
        );
        assert!(left.take(1, true));
        assert!(!left.take(2, true), "capacity 2 does not fit in 1");
        left.idle_turned_busy();
        assert!(!left.take(1, true), "gone once an idle worker turned busy");
        assert_eq!(left, SurplusLeft::default());
    }
}
