//! The orphan sweeper: deletes cloud resources carrying our ownership tags
//! that no live worker of this store accounts for.
//!
//! Resumable steps leak nothing by construction, but resources can still
//! appear behind the fleet's back: a worker record deleted by hand, a
//! database restored from backup, another tool using our tags. The sweeper
//! lists what each provider holds with our manager id (`list_owned`), and
//! deletes what is older than a grace period and belongs to no live worker.
//! The grace period covers the window between a create call landing and its
//! worker record being readable.
//!
//! A store that does not know the fleet would see every resource as an
//! orphan (a replica started on a new, empty store; two deployments sharing
//! a manager id). So every store has a random id
//! ([`StoreIdentity::id`](crate::store::StoreIdentity::id)), every resource
//! carries its store's id ([`tag::STORE`]), and a sweep sorts what it
//! lists by that tag:
//! - another store's id: [`Verdict::Foreign`], counted, never touched;
//! - no store id (made before store ids): [`Verdict::Unclaimed`], listed
//!   (once per process), never deleted; an adopting sweep
//!   ([`SweepOptions::adopt`]) tags those whose worker is live in this
//!   store with its id;
//! - this store's id: an orphan unless its worker is live here.
//!
//! Three more guards bound what a sweep deletes of its own store's
//! orphans, decided by the pure [`plan`]:
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use time::OffsetDateTime;

use super::{events, Shared};
use crate::error::Result;
use crate::metrics_catalogue as names;
use crate::model::{tag, OwnedResource, OwnershipScope, Phase, Worker};
use crate::provider::DynProvider;
use crate::store::WorkerFilter;

mod plan;
mod report;

pub use plan::{default_cap, plan, Decision, HoldReason};
pub use report::{SweepReport, SweptResource, Verdict};

impl Shared {
    /// The store's random id, which every new worker's resources carry
    /// ([`tag::STORE`]): read from the store once, then cached (it never
    /// changes).
    pub(crate) async fn store_id(&self) -> Result<&str> {
        self.store_id
            .get_or_try_init(|| async { Ok(self.store.store_identity().await?.id) })
            .await
            .map(String::as_str)
    }
}

/// How one sweep runs (the periodic sweeps use the default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOptions {
    /// Change nothing: report what would be deleted (and, with
    /// [`adopt`](SweepOptions::adopt), adopted). A sweep is also dry when
    /// [`FleetConfig::sweep_dry_run`](super::FleetConfig::sweep_dry_run)
    /// is set.
    pub dry_run: bool,
    /// Adopt instead of deleting: tag every unclaimed resource (no store
    /// id) whose worker is live in this store with this store's id, and
    /// delete nothing (orphans are reported as a dry run reports them).
    pub adopt: bool,
}

/// What the periodic sweeps of one process remember between sweeps.
#[derive(Debug, Default)]
pub(super) struct Memory {
    /// When each orphan (`provider/resource`) was first seen: the grace
    /// period of a resource whose cloud reports no creation time.
    first_seen: HashMap<String, OffsetDateTime>,
    /// Unclaimed resources already logged (each is logged once).
    unclaimed_logged: HashSet<String>,
}

/// An orphan found by a sweep: its provider, the resource and its birth.
struct Orphan {
    provider: DynProvider,
    resource: OwnedResource,
    born: OffsetDateTime,
}

/// The report line of resource `r` of `provider`.
fn swept(provider: &str, r: &OwnedResource, verdict: Verdict) -> SweptResource {
    SweptResource {
        provider: provider.to_string(),
        kind: r.kind.clone(),
        id: r.id.clone(),
        worker: r.worker_id.clone(),
        store: r.store_id.clone(),
        verdict,
    }
}

/// Sweeps every provider once.
pub(super) async fn sweep(
    shared: &Arc<Shared>,
    memory: &mut Memory,
    opts: SweepOptions,
) -> Result<SweepReport> {
    let mut report = SweepReport::default();
    let now = shared.clock.now();
    let config = &shared.config;
    let identity = shared.store.store_identity().await?;
    let dry_run = opts.dry_run || config.sweep_dry_run;
    let mut still_there = HashSet::new();
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
                report
                    .list_errors
                    .push((provider.id().to_string(), e.to_string()));
                continue;
            }
        };
        for r in owned {
            report.seen += 1;
            let key = format!("{}/{}", provider.id(), r.id);
            match r.store_id.as_deref() {
                Some(s) if s != identity.id => {
                    tracing::debug!(
                        provider = provider.id(), resource = %r.id, store = s,
                        "orphan sweep: another store's resource, left alone"
                    );
                    report.record(swept(provider.id(), &r, Verdict::Foreign));
                    continue;
                }
                None => {
                    let adopt = Adoption {
                        store_id: &identity.id,
                        adopt: opts.adopt,
                        dry_run: opts.dry_run,
                    };
                    let verdict = unclaimed(shared, provider, &r, adopt).await?;
                    if verdict == Verdict::Unclaimed && memory.unclaimed_logged.insert(key.clone())
                    {
                        tracing::info!(
                            target: events::TARGET, event = "sweep.unclaimed",
                            provider = provider.id(), resource = %r.id, kind = %r.kind,
                            worker = r.worker_id.as_deref().unwrap_or("-"),
                            "resource without a store id: never deleted (`skyfleet sweep --adopt` \
                             claims those of live workers)"
                        );
                    }
                    still_there.insert(key);
                    report.record(swept(provider.id(), &r, verdict));
                    continue;
                }
                Some(_) => {}
            }
            if live_worker(shared, &r).await?.is_some() {
                report.record(swept(provider.id(), &r, Verdict::Live));
                continue;
            }
            still_there.insert(key.clone());
            let seen_at = *memory.first_seen.entry(key).or_insert(now);
            let born = r.created_at.map_or(seen_at, |c| c.min(seen_at));
            orphans.push(Orphan {
                provider: provider.clone(),
                resource: r,
                born,
            });
        }
    }
    memory.first_seen.retain(|k, _| still_there.contains(k));
    memory.unclaimed_logged.retain(|k| still_there.contains(k));
    let cap = match config.sweep_max_delete {
        Some(n) => n,
        // Counting live workers reads the store: only when there is
        // something to cap.
        None if orphans.is_empty() => 0,
        None => default_cap(live_workers(shared).await?),
    };
    let born: Vec<_> = orphans.iter().map(|o| o.born).collect();
    let decisions = plan(&born, now, config.sweep_grace, identity.created_at, cap);
    let no_delete = dry_run || opts.adopt;
    for (o, d) in orphans.iter().zip(decisions) {
        let verdict = act(o, d, no_delete, &identity.id).await;
        report.record(swept(o.provider.id(), &o.resource, verdict));
    }
    events::sweep(&report);
    Ok(report)
}

/// `r`'s worker, if it is live (not in a final phase) in this store.
async fn live_worker(shared: &Shared, r: &OwnedResource) -> Result<Option<Worker>> {
    let Some(id) = &r.worker_id else {
        return Ok(None);
    };
    Ok(shared
        .store
        .get_worker(id)
        .await?
        .filter(|w| !w.phase.is_final()))
}

/// What an unclaimed resource may have done to it.
#[derive(Clone, Copy)]
struct Adoption<'a> {
    store_id: &'a str,
    adopt: bool,
    dry_run: bool,
}

/// The verdict on an unclaimed resource: adopted when asked to and its
/// worker is live in this store; otherwise left unclaimed.
async fn unclaimed(
    shared: &Shared,
    provider: &DynProvider,
    r: &OwnedResource,
    a: Adoption<'_>,
) -> Result<Verdict> {
    if !a.adopt {
        return Ok(Verdict::Unclaimed);
    }
    // Only a worker of this store on this very provider vouches for it.
    let ours = live_worker(shared, r)
        .await?
        .is_some_and(|w| w.spec.provider_id == provider.id());
    if !ours {
        return Ok(Verdict::Unclaimed);
    }
    if a.dry_run {
        return Ok(Verdict::WouldAdopt);
    }
    let tags = BTreeMap::from([(tag::STORE.to_string(), a.store_id.to_string())]);
    let worker = r.worker_id.as_deref().unwrap_or("-");
    Ok(match provider.tag_owned(r, &tags).await {
        Ok(()) => {
            tracing::info!(
                target: events::TARGET, event = "sweep.adopted", provider = provider.id(),
                resource = %r.id, kind = %r.kind, worker, store = a.store_id,
                "adopted: tagged with this store's id"
            );
            Verdict::Adopted
        }
        Err(e) => {
            tracing::warn!(provider = provider.id(), resource = %r.id, error = %e, "adoption failed");
            Verdict::Failed
        }
    })
}

/// The store's workers not in a final phase.
async fn live_workers(shared: &Shared) -> Result<usize> {
    let live: Vec<Phase> = Phase::ALL.into_iter().filter(|p| !p.is_final()).collect();
    let filter = WorkerFilter::default().with_phases(&live);
    Ok(shared.store.list_workers(&filter).await?.len())
}

/// Carries out one decision (deleting nothing when `no_delete`), and says
/// what became of the orphan.
async fn act(o: &Orphan, d: Decision, no_delete: bool, store_id: &str) -> Verdict {
    let (provider, r) = (o.provider.id(), &o.resource);
    let worker = r.worker_id.as_deref().unwrap_or("-");
    match d {
        Decision::Wait => Verdict::Waiting,
        Decision::HoldBack(why) => {
            metrics::counter!(names::ORPHANS_HELD_BACK, "provider" => provider.to_string(),
                "reason" => why.as_str())
            .increment(1);
            tracing::warn!(
                target: events::TARGET, event = "sweep.held_back", provider, resource = %r.id,
                kind = %r.kind, worker, reason = why.as_str(), store = store_id,
                "orphan held back, not deleted"
            );
            Verdict::HeldBack(why)
        }
        Decision::Delete if no_delete => {
            tracing::info!(
                target: events::TARGET, event = "sweep.would_delete", provider, resource = %r.id,
                kind = %r.kind, worker, "dry run: would delete orphan"
            );
            Verdict::WouldDelete
        }
        Decision::Delete => match o.provider.delete_owned(r).await {
            Ok(()) => {
                metrics::counter!(names::ORPHANS_DELETED, "provider" => provider.to_string())
                    .increment(1);
                tracing::info!(
                    target: events::TARGET, event = "sweep.deleted", provider, resource = %r.id,
                    kind = %r.kind, worker, "deleted orphan"
                );
                Verdict::Deleted
            }
            Err(e) => {
                tracing::warn!(provider, resource = %r.id, error = %e, "orphan delete failed");
                Verdict::Failed
            }
        },
    }
}
