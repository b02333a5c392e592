//! The provisioner: turns demand into worker records, and surplus into
//! removals.
//!
//! Per pool, while this replica holds the pool's lease in the store (so
//! replicas never double-provision): count capacity by state, ask the
//! [`Demand`](super::Demand) source, run the [estimator](super::estimator),
//! create the missing workers and step each new worker **immediately**, so
//! the first cloud request goes out at once rather than on the next scan.
//! Surplus capacity is removed newest first.
//!
//! Launch configs are chosen by offering: each pass reads the shared
//! offering cache (marks of every replica) once, and each new worker takes
//! a launch config from the lowest [`tier`](LaunchConfig::tier) that has
//! one whose offering is not marked (by its key, or by its quota scope for
//! a quota mark), by weight inside that tier. When a mark expires, its tier
//! is chosen again. When every offering of a pool is marked, the pass
//! launches nothing for it and records the pool error "no available
//! offering" (logged at most once per pool per minute). The new worker
//! carries its offering ([`Worker::offering`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::Rng;

use super::estimator::{estimate, finish_surplus, Bounds, Capacity, Estimate};
use super::events::{self, ScaleIn, Transition};
use super::lifecycle::RemovalReason;
use super::{offering, step, supervision, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics_catalogue as names;
use crate::model::{DesiredState, LaunchConfig, Phase, PoolConfig, Registration, Worker};
use crate::store::{PoolDecision, PoolError, WorkerFilter};

/// What one provisioning pass did for a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolReport {
    /// The estimator's answer.
    pub estimate: Estimate,
    /// Workers created.
    pub created: u64,
    /// Workers marked for removal.
    pub removed: u64,
    /// Registered workers asked to drain.
    pub drained: u64,
    /// Whether another replica holds the pool (nothing was done).
    pub skipped: bool,
}

/// A worker id for `pool_id`: a slug of the pool and 10 random characters,
/// within the 38 characters every provider's names allow.
pub fn new_worker_id(pool_id: &str) -> String {
    let mut slug: String = pool_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.truncate(24);
    let slug = slug.trim_matches('-').to_string();
    let slug = if slug.starts_with(|c: char| c.is_ascii_lowercase()) {
        slug
    } else {
        format!("w{slug}")
    };
    let mut rng = rand::rng();
    let suffix: String = (0..10)
        .map(|_| {
            let n = rng.random_range(0..36u32);
            char::from_digit(n, 36).unwrap_or('x')
        })
        .collect();
    format!("{slug}-{suffix}")
}

/// Chooses a launch config: from the lowest [`tier`](LaunchConfig::tier)
/// that has a launch config for which `available(index, config)` holds, by
/// weight inside that tier. `None` when no launch config is available.
pub fn choose_launch_config(
    pool: &PoolConfig,
    available: impl Fn(usize, &LaunchConfig) -> bool,
) -> Option<&LaunchConfig> {
    let open: Vec<&LaunchConfig> = pool
        .launch_configs
        .iter()
        .enumerate()
        .filter(|(i, lc)| available(*i, lc))
        .map(|(_, lc)| lc)
        .collect();
    let tier = open.iter().map(|lc| lc.tier).min()?;
    let candidates: Vec<&LaunchConfig> = open.into_iter().filter(|lc| lc.tier == tier).collect();
    let total: f64 = candidates.iter().map(|lc| lc.weight).sum();
    let mut x = rand::rng().random_range(0.0..total.max(f64::MIN_POSITIVE));
    for lc in &candidates {
        if x < lc.weight {
            return Some(lc);
        }
        x -= lc.weight;
    }
    // Float rounding can leave x just past the last weight.
    candidates.last().copied()
}

/// One provisioning pass for `pool`, returning once the new workers' first
/// steps have finished ([`Fleet::provision_once`](super::Fleet::provision_once)).
pub(super) async fn provision_pool(shared: &Arc<Shared>, pool: &PoolConfig) -> Result<PoolReport> {
    let mut first_steps = tokio::task::JoinSet::new();
    let report = provision_pass(shared, pool, &mut first_steps).await;
    while first_steps.join_next().await.is_some() {}
    report
}

/// One provisioning pass of `pool` whose first steps of new workers are
/// spawned into `first_steps` rather than awaited, so a hung cloud does not
/// hold up the caller's next pass.
pub(super) async fn provision_pass(
    shared: &Arc<Shared>,
    pool: &PoolConfig,
    first_steps: &mut tokio::task::JoinSet<()>,
) -> Result<PoolReport> {
    let now = shared.clock.now();
    let lease = shared.config.pool_lease;
    let Some(pool_lease) = shared
        .store
        .acquire_pool_lease(&pool.pool_id, &shared.owner, now, lease)
        .await?
    else {
        // The holder reports this pool; zeros here keep `max` and `sum`
        // over replicas true after a lease moves.
        record_worker_gauges(pool, &[], now);
        metrics::gauge!(names::POOL_DESIRED, "pool" => pool.pool_id.clone()).set(0.0);
        metrics::gauge!(names::POOL_PENDING, "pool" => pool.pool_id.clone()).set(0.0);
        return Ok(PoolReport {
            skipped: true,
            ..Default::default()
        });
    };
    let workers = shared
        .store
        .list_workers(&WorkerFilter::pool(pool.pool_id.clone()).with_phases(&[
            Phase::Requested,
            Phase::Running,
            Phase::Stopping,
        ]))
        .await?;
    let registrations = shared.store.list_registrations(&pool.pool_id).await?;
    let regs: HashMap<&str, &Registration> = registrations
        .iter()
        .map(|r| (r.worker_id.as_str(), r))
        .collect();
    let have = count_capacity(&workers, &regs);
    record_worker_gauges(pool, &workers, now);
    let demand = shared.demand.demand(&pool.pool_id).await?;
    let bounds = Bounds {
        min: pool.min_capacity as u64,
        max: pool.max_capacity as u64,
        ratio: pool.scaling_ratio,
        min_idle: pool.min_idle as u64,
    };
    let est = estimate(bounds, have, demand);
    metrics::gauge!(names::POOL_DESIRED, "pool" => pool.pool_id.clone()).set(est.desired as f64);
    metrics::gauge!(names::POOL_PENDING, "pool" => pool.pool_id.clone()).set(demand.pending as f64);
    let mut report = PoolReport {
        estimate: est,
        ..Default::default()
    };
    let provider = shared
        .providers
        .get(&pool.provider_id)
        .ok_or_else(|| {
            Error::invalid_config(
                "provider_id",
                format!("unknown provider `{}`", pool.provider_id),
            )
        })?
        .clone();

    // The shared offering cache, read once per pass: every replica's
    // capacity, quota and interruption marks.
    let marks = shared.store.live_offering_marks(now).await?;
    shared.record_mark_gauges(&marks);
    let offerings = shared.offerings.get(&pool.pool_id);
    let mut to_spawn = est.to_spawn;
    let mut fresh = Vec::new();
    while to_spawn > 0 {
        let chosen = choose_launch_config(pool, |i, _| {
            offerings
                .and_then(|o| o.get(i))
                .is_none_or(|o| !offering::is_marked(o, &marks))
        });
        let Some(lc) = chosen.cloned() else {
            no_available_offering(shared, pool, to_spawn, now).await;
            break;
        };
        let index = pool
            .launch_configs
            .iter()
            .position(|c| c.id == lc.id)
            .unwrap_or_default();
        let mut spec =
            pool.worker_spec(&lc, new_worker_id(&pool.pool_id), &shared.config.manager_id);
        // Every resource carries the store's id: the sweeper deletes only
        // its own store's resources.
        spec.tags.store_id = Some(shared.store_id().await?.to_string());
        let mut w = Worker::new(spec, now);
        w.partition = provider.partition(&w);
        w.offering = offerings.and_then(|o| o.get(index)).cloned();
        // Created already leased to us: we step it right away, and the
        // scanner must not pick it up meanwhile.
        w.lease_owner = Some(shared.owner.clone());
        w.lease_expires_at = Some(now + shared.config.lease);
        to_spawn = to_spawn.saturating_sub(lc.capacity_per_worker.max(1) as u64);
        fresh.push(w);
    }
    if !fresh.is_empty() {
        // All or none, and only while our pool lease is the latest: a pass
        // that outlived its lease (another replica took the pool and counted
        // capacity without these) fails here with `LeaseLost` instead of
        // pushing the pool past `max_capacity`.
        fresh = shared
            .store
            .create_workers(&pool_lease, &fresh, shared.config.lease)
            .await?;
        for w in &fresh {
            events::emit(w, &Transition::Requested);
        }
        report.created = fresh.len() as u64;
    }
    if !fresh.is_empty() {
        // A scanner for a partition new to this provider starts now, not at
        // the supervisor's next periodic look.
        shared.partitions_changed.notify_waiters();
        // First cloud request at once, in batches of the provider's batch
        // size, each batch within one partition (as scanners hand them).
        let size = shared.config.batch_size.min(provider.batch_limit()).max(1);
        let mut by_partition: BTreeMap<Option<String>, Vec<Worker>> = BTreeMap::new();
        for w in fresh {
            by_partition.entry(w.partition.clone()).or_default().push(w);
        }
        for workers in by_partition.into_values() {
            for chunk in workers.chunks(size) {
                let (s, p, c) = (shared.clone(), provider.clone(), chunk.to_vec());
                first_steps.spawn(async move { step::step_chunk(&s, &p, c).await });
            }
        }
    }

    // Lifecycle decisions about registered workers, then the scale-in.
    let mut decisions = supervision::plan(pool, &workers, &regs, now);
    let cooled = shared
        .last_scale_in
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&pool.pool_id)
        .is_none_or(|t| now >= *t + pool.scale_in_cooldown);
    let mut left = 0;
    if est.surplus > 0 && cooled {
        let decided: Vec<&str> = decisions.iter().map(|d| d.worker_id()).collect();
        let picked =
            supervision::scale_in(&workers, &regs, est.surplus, &shared.owner, &decided, now);
        let placed: u64 = picked.iter().map(|d| d.capacity()).sum();
        left = est.surplus.saturating_sub(placed);
        if !picked.is_empty() {
            shared
                .last_scale_in
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(pool.pool_id.clone(), now);
        }
        decisions.extend(picked);
    }
    let scale = ScaleIn {
        demand,
        have,
        estimate: est,
    };
    // What workers turning idle before the next pass may take at once: the
    // unplaced surplus, and (without a cooldown, whose pools scale in only
    // at passes) the surplus that appears as busy workers finish.
    let placed_all: u64 = decisions.iter().map(|d| d.capacity()).sum();
    let on_finish = if pool.scale_in_cooldown.is_zero() {
        finish_surplus(bounds, have, demand, &est, placed_all)
    } else {
        0
    };
    let (removed, drained) = supervision::apply(shared, &decisions, &regs, Some(scale)).await?;
    shared
        .surplus_left
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            pool.pool_id.clone(),
            supervision::SurplusLeft {
                unplaced: left,
                on_finish,
            },
        );
    report.removed = removed;
    report.drained = drained;
    let changed = {
        let mut last = shared
            .last_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        last.insert(pool.pool_id.clone(), (est.desired, est.target))
            != Some((est.desired, est.target))
    };
    if changed || report.created > 0 || report.removed > 0 {
        events::pool_target(pool, demand, have, est, report.created, report.removed);
    }
    let decision = PoolDecision {
        pool_id: pool.pool_id.clone(),
        provider_id: pool.provider_id.clone(),
        min_capacity: pool.min_capacity.into(),
        max_capacity: pool.max_capacity.into(),
        demand,
        have,
        estimate: est,
        created: report.created,
        removed: report.removed,
        owner: shared.owner.clone(),
        decided_at: now,
        offerings: offerings.cloned().unwrap_or_default(),
    };
    if let Err(e) = shared.store.put_pool_decision(&decision).await {
        tracing::debug!(pool = %pool.pool_id, error = %e, "could not record the pool decision");
    }
    Ok(report)
}

/// The pool's capacity by state. Workers asked to drain (or being removed)
/// count as stopping, so a scale-in never picks more for the same surplus;
/// what registered workers report in use is [`Capacity::busy`].
///
/// Workers removed for an interruption are not counted at all: the cloud is
/// taking their capacity whatever we do, and their replacement must not
/// wait for them to be gone (for up to AWS's two minutes the pool may hold
/// more than `max_capacity` VMs, the extra ones on their way out).
fn count_capacity(workers: &[Worker], regs: &HashMap<&str, &Registration>) -> Capacity {
    let interrupted = Some(RemovalReason::Interrupted.as_str());
    let mut have = Capacity::default();
    for w in workers {
        if w.desired == DesiredState::Removed && w.removal_reason.as_deref() == interrupted {
            continue;
        }
        let c = u64::from(w.spec.capacity);
        let reg = regs.get(w.id()).copied();
        let leaving = reg.is_some_and(|r| r.drain.is_some() || r.removal.is_some());
        match (w.desired, w.phase) {
            (DesiredState::Removed, _) | (_, Phase::Stopping) => have.stopping += c,
            _ if leaving => have.stopping += c,
            (_, Phase::Requested) => have.requested += c,
            (_, Phase::Running) => have.running += c,
            _ => {}
        }
        if let Some(r) = reg.filter(|_| w.desired == DesiredState::Running && !leaving) {
            let used = u64::from(r.capacity_used.min(w.spec.capacity));
            have.busy = Some(have.busy.unwrap_or(0) + used);
        }
    }
    have
}

/// Sets the pool's worker gauges from its live workers: counts by phase,
/// the oldest requested worker's wait, and how many requested workers are
/// past half their provisioning deadline.
fn record_worker_gauges(pool: &PoolConfig, workers: &[Worker], now: time::OffsetDateTime) {
    let id = &pool.pool_id;
    for phase in Phase::ALL {
        let n = workers.iter().filter(|w| w.phase == phase).count();
        metrics::gauge!(names::WORKERS, "pool" => id.clone(), "phase" => phase.as_str())
            .set(n as f64);
    }
    let requested: Vec<&Worker> = workers
        .iter()
        .filter(|w| w.phase == Phase::Requested && w.desired == DesiredState::Running)
        .collect();
    let oldest = requested
        .iter()
        .map(|w| (now - w.created_at).as_seconds_f64().max(0.0))
        .fold(0.0, f64::max);
    let stuck = requested
        .iter()
        .filter(|w| now - w.created_at >= w.spec.lifecycle.provisioning_deadline / 2)
        .count();
    metrics::gauge!(names::OLDEST_REQUESTED, "pool" => id.clone()).set(oldest);
    metrics::gauge!(names::REQUESTED_PAST_HALF_DEADLINE, "pool" => id.clone()).set(stuck as f64);
}

/// Every offering of `pool` is marked unavailable: nothing is launched
/// for it; a pool error "no available offering" is recorded and logged at
/// most once per pool per minute.
async fn no_available_offering(
    shared: &Shared,
    pool: &PoolConfig,
    wanted: u64,
    now: time::OffsetDateTime,
) {
    let Some(held_back) = shared
        .warnings
        .admit(&format!("no-offering/{}", pool.pool_id))
    else {
        return;
    };
    tracing::warn!(
        target: events::TARGET, event = "pool.no_available_offering",
        pool = pool.pool_id.as_str(), wanted, held_back,
        "every offering of the pool is marked unavailable: launching nothing until a mark \
         expires (one line per pool per minute)"
    );
    let pe = PoolError {
        pool_id: pool.pool_id.clone(),
        kind: ErrorKind::CapacityOrQuota,
        title: "no available offering".into(),
        message: format!(
            "every offering of pool {} is marked unavailable; {wanted} capacity not launched",
            pool.pool_id
        ),
        launch_config_id: None,
        reported_at: now,
    };
    if let Err(e) = shared.store.record_pool_error(&pe).await {
        tracing::warn!(error = %e, "could not record a pool error");
    }
}
