//! The orphan sweeper: deletes cloud resources carrying our ownership tags
//! that no live worker accounts for.
//!
//! Resumable steps leak nothing by construction, but resources can still
//! appear behind the fleet's back: a worker record deleted by hand, a
//! database restored from backup, another tool using our tags. The sweeper
//! lists what each provider holds with our manager id (`list_owned`), and
//! deletes what is older than a grace period and belongs to no live worker.
//! The grace period covers the window between a create call landing and its
//! worker record being readable.
//!
//! A store that does not know the fleet sees every resource as an orphan
//! (a replica started on a new, empty store; two deployments sharing a
//! manager id). Three guards bound what such a mistake can delete, decided
//! by the pure [`plan`]:
//! - a store younger than the grace period ([`StoreIdentity::created_at`])
//!   deletes nothing;
//! - one sweep deletes at most [`FleetConfig::sweep_max_delete`] resources
//!   (default 10 % of the store's live workers, at least 1), oldest first;
//!   the rest are held back, logged and counted;
//! - [`FleetConfig::sweep_dry_run`] lists what would go without deleting.
//!
//! [`StoreIdentity::created_at`]: crate::store::StoreIdentity::created_at
//! [`FleetConfig::sweep_max_delete`]: super::FleetConfig::sweep_max_delete
//! [`FleetConfig::sweep_dry_run`]: super::FleetConfig::sweep_dry_run

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{events, Shared};
use crate::error::Result;
use crate::metrics_catalogue as names;
use crate::model::{OwnedResource, OwnershipScope, Phase};
use crate::provider::DynProvider;
use crate::store::WorkerFilter;

/// What one sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Resources with our tags seen.
    pub seen: u64,
    /// Orphans deleted.
    pub deleted: u64,
    /// Orphans younger than the grace period, left for a later sweep.
    pub waiting: u64,
    /// Deletions that failed (retried next sweep).
    pub failed: u64,
    /// Orphans old enough to delete that were held back: the store is
    /// younger than the grace period, or the sweep reached its cap.
    pub held_back: u64,
    /// Orphans a dry run would have deleted (listed, not deleted).
    pub would_delete: u64,
}

/// What [`plan`] decides for one orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delete it now.
    Delete,
    /// Younger than the grace period: look again next sweep.
    Wait,
    /// Old enough, but held back (store too young, or over the cap).
    HoldBack(HoldReason),
}

/// Why an orphan old enough to delete was held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// The store is younger than the grace period: it may not know the fleet.
    StoreTooYoung,
    /// This sweep already deleted its cap.
    OverCap,
}

impl HoldReason {
    /// Every reason (metrics are registered at zero for each).
    pub const ALL: [HoldReason; 2] = [HoldReason::StoreTooYoung, HoldReason::OverCap];

    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::StoreTooYoung => "store_too_young",
            HoldReason::OverCap => "over_cap",
        }
    }
}

/// The default cap of one sweep: 10 % of the store's live (non-final)
/// workers, at least 1.
pub fn default_cap(live_workers: usize) -> usize {
    (live_workers / 10).max(1)
}

/// Decides, for orphans born at `born` (one entry per orphan), which to
/// delete now: none while the store (created at `store_created_at`) is
/// younger than `grace`; none younger than `grace`; of the rest at most
/// `cap`, oldest first (ties in input order). Pure: the sweeper lists,
/// calls this, then acts.
pub fn plan(
    born: &[OffsetDateTime],
    now: OffsetDateTime,
    grace: Duration,
    store_created_at: OffsetDateTime,
    cap: usize,
) -> Vec<Decision> {
    let store_young = now - store_created_at < grace;
    let mut order: Vec<usize> = (0..born.len()).collect();
    order.sort_by_key(|&i| born[i]);
    let mut decisions = vec![Decision::Wait; born.len()];
    let mut deleting = 0usize;
    for i in order {
        decisions[i] = if now - born[i] < grace {
            Decision::Wait
        } else if store_young {
            Decision::HoldBack(HoldReason::StoreTooYoung)
        } else if deleting < cap {
            deleting += 1;
            Decision::Delete
        } else {
            Decision::HoldBack(HoldReason::OverCap)
        };
    }
    decisions
}

/// An orphan found by a sweep: its provider, the resource and its birth.
struct Orphan {
    provider: DynProvider,
    resource: OwnedResource,
    born: OffsetDateTime,
}

/// Sweeps every provider once.
pub(super) async fn sweep(
    shared: &Arc<Shared>,
    first_seen: &mut HashMap<String, OffsetDateTime>,
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let now = shared.clock.now();
    let config = &shared.config;
    let identity = shared.store.store_identity().await?;
    let mut still_there = std::collections::HashSet::new();
    let mut orphans = Vec::new();
    for provider in shared.providers.values() {
        let scope = OwnershipScope {
            manager_id: config.manager_id.clone(),
            provider_id: provider.id().to_string(),
        };
        let owned = match provider.list_owned(&scope).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(provider = provider.id(), error = %e, "orphan sweep: list failed");
                continue;
            }
        };
        for r in owned {
            report.seen += 1;
            let live = match &r.worker_id {
                Some(id) => shared
                    .store
                    .get_worker(id)
                    .await?
                    .is_some_and(|w| !w.phase.is_final()),
                None => false,
            };
            if live {
                continue;
            }
            let key = format!("{}/{}", provider.id(), r.id);
            still_there.insert(key.clone());
            let seen_at = *first_seen.entry(key).or_insert(now);
            let born = r.created_at.map_or(seen_at, |c| c.min(seen_at));
            orphans.push(Orphan {
                provider: provider.clone(),
                resource: r,
                born,
            });
        }
    }
    first_seen.retain(|k, _| still_there.contains(k));
    let cap = match config.sweep_max_delete {
        Some(n) => n,
        // Counting live workers reads the store: only when there is
        // something to cap.
        None if orphans.is_empty() => 0,
        None => default_cap(live_workers(shared).await?),
    };
    let born: Vec<_> = orphans.iter().map(|o| o.born).collect();
    let decisions = plan(&born, now, config.sweep_grace, identity.created_at, cap);
    for (o, d) in orphans.iter().zip(decisions) {
        act(o, d, config.sweep_dry_run, &identity.id, &mut report).await;
    }
    events::sweep(&report);
    Ok(report)
}

/// The store's workers not in a final phase.
async fn live_workers(shared: &Shared) -> Result<usize> {
    let live: Vec<Phase> = Phase::ALL.into_iter().filter(|p| !p.is_final()).collect();
    let filter = WorkerFilter::default().with_phases(&live);
    Ok(shared.store.list_workers(&filter).await?.len())
}

/// Carries out one decision, counting it in `report`.
async fn act(o: &Orphan, d: Decision, dry_run: bool, store_id: &str, report: &mut SweepReport) {
    let (provider, r) = (o.provider.id(), &o.resource);
    let worker = r.worker_id.as_deref().unwrap_or("-");
    match d {
        Decision::Wait => report.waiting += 1,
        Decision::HoldBack(why) => {
            report.held_back += 1;
            metrics::counter!(names::ORPHANS_HELD_BACK, "provider" => provider.to_string(),
                "reason" => why.as_str())
            .increment(1);
            tracing::warn!(
                target: events::TARGET, event = "sweep.held_back", provider, resource = %r.id,
                kind = %r.kind, worker, reason = why.as_str(), store = store_id,
                "orphan held back, not deleted"
            );
        }
        Decision::Delete if dry_run => {
            report.would_delete += 1;
            tracing::info!(
                target: events::TARGET, event = "sweep.would_delete", provider, resource = %r.id,
                kind = %r.kind, worker, "dry run: would delete orphan"
            );
        }
        Decision::Delete => match o.provider.delete_owned(r).await {
            Ok(()) => {
                report.deleted += 1;
                metrics::counter!(names::ORPHANS_DELETED, "provider" => provider.to_string())
                    .increment(1);
                tracing::info!(
                    target: events::TARGET, event = "sweep.deleted", provider, resource = %r.id,
                    kind = %r.kind, worker, "deleted orphan"
                );
            }
            Err(e) => {
                report.failed += 1;
                tracing::warn!(provider, resource = %r.id, error = %e, "orphan delete failed");
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GRACE: Duration = Duration::from_secs(900);

    fn t(secs: i64) -> OffsetDateTime {
        crate::clock::from_millis(1_750_000_000_000 + secs * 1000)
    }

    fn count(ds: &[Decision], d: Decision) -> usize {
        ds.iter().filter(|x| **x == d).count()
    }

    #[test]
    fn a_young_store_deletes_nothing() {
        let now = t(100_000);
        let born = vec![t(0); 50];
        // Created 14 minutes ago: younger than the 15-minute grace.
        let ds = plan(&born, now, GRACE, now - Duration::from_secs(840), 1000);
        assert_eq!(
            count(&ds, Decision::HoldBack(HoldReason::StoreTooYoung)),
            50
        );
        // Once it is as old as the grace period, it deletes.
        let ds = plan(&born, now, GRACE, now - GRACE, 1000);
        assert_eq!(count(&ds, Decision::Delete), 50);
    }

    #[test]
    fn the_cap_takes_the_oldest_and_holds_back_the_rest() {
        let now = t(100_000);
        let born = vec![t(30), t(10), now, t(20), t(40)];
        let ds = plan(&born, now, GRACE, t(0), 2);
        assert_eq!(
            ds,
            vec![
                Decision::HoldBack(HoldReason::OverCap),
                Decision::Delete,
                Decision::Wait,
                Decision::Delete,
                Decision::HoldBack(HoldReason::OverCap),
            ]
        );
    }

    #[test]
    fn default_cap_is_a_tenth_of_live_workers_at_least_one() {
        assert_eq!(default_cap(0), 1);
        assert_eq!(default_cap(9), 1);
        assert_eq!(default_cap(10), 1);
        assert_eq!(default_cap(25), 2);
        assert_eq!(default_cap(1000), 100);
    }

    proptest! {
        #[test]
        fn plan_never_exceeds_its_bounds(
            ages in proptest::collection::vec(0i64..4000, 0..60),
            store_age in 0i64..4000,
            cap in 0usize..20,
        ) {
            let now = t(10_000);
            let born: Vec<_> = ages.iter().map(|a| now - Duration::from_secs(*a as u64)).collect();
            let store = now - Duration::from_secs(store_age as u64);
            let ds = plan(&born, now, GRACE, store, cap);
            prop_assert_eq!(ds.len(), born.len());
            let deleted = count(&ds, Decision::Delete);
            prop_assert!(deleted <= cap);
            if store_age < 900 {
                prop_assert_eq!(deleted, 0);
            }
            for (d, a) in ds.iter().zip(&ages) {
                // Nothing younger than the grace period goes, or is held back.
                prop_assert_eq!(*a < 900, *d == Decision::Wait);
                // Every old orphan not deleted is held back, and none is
                // older than a deleted one unless it was deleted too.
                if *d == Decision::Delete {
                    for (d2, a2) in ds.iter().zip(&ages) {
                        if a2 > a {
                            prop_assert_eq!(*d2, Decision::Delete);
                        }
                    }
                }
            }
            let old = ages.iter().filter(|a| **a >= 900).count();
            let expect = if store_age < 900 { 0 } else { old.min(cap) };
            prop_assert_eq!(deleted, expect);
        }
    }
}
