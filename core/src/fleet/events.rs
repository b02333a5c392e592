//! The runtime's decision log: why it did what it did.
//!
//! Every decision is one `info` line under the target `skyfleet::fleet`
//! (a `skyfleet::fleet=info` filter selects exactly these), with an `event`
//! field naming it and the same fields in text and JSON output:
//!
//! | `event` | fields |
//! |---|---|
//! | `worker.requested` | `pool`, `worker`, `provider`, `partition`, `launch_config`, `capacity` |
//! | `worker.running` | the worker fields, `after_s` (seconds since requested) |
//! | `worker.registered` | the worker fields |
//! | `worker.removed` | the worker fields, `reason`; for a scale-in also the estimator's inputs `pending`, `claimed`, `existing`, `idle`, `scale_in_target`, `surplus` |
//! | `worker.stopping` (debug) | the worker fields, `reason` |
//! | `worker.stopped` | the worker fields, `reason` |
//! | `worker.failed` | the worker fields, `reason` (the error kind and message) |
//! | `pool.target` | `pool`, `pending`, `claimed`, `existing`, `idle`, `requested`, `running`, `stopping`, `min`, `max`, `desired`, `scale_in_target`, `to_spawn`, `surplus`, `created`, `removed` |
//! | `sweep` | `seen`, `orphans`, `deleted`, `waiting`, `failed`, `held_back`, `would_delete` |
//!
//! The worker fields are `pool`, `worker`, `provider`, `partition` (`-` for
//! a provider without partitions) and `launch_config`. `desired` is the
//! capacity the pool grows to; `scale_in_target` the capacity above which
//! idle workers are removed (not `target`: JSON lines already have a
//! `target`, the tracing target). A transition is
//! logged once the store has accepted it, so a line never reports a change
//! that another replica's answer overrode. Each also counts in
//! `skyfleet_worker_transitions_total` (and removals in
//! `skyfleet_worker_removals_total` by reason).

use super::estimator::{Capacity, Estimate, PoolDemand};
use super::lifecycle::RemovalReason;
use super::sweeper::SweepReport;
use crate::metrics_catalogue as m;
use crate::model::{Phase, PoolConfig, Worker};

/// The tracing target of every decision line.
pub const TARGET: &str = "skyfleet::fleet";

/// The estimator's view of a pool when it removed a worker to scale in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScaleIn {
    /// The demand it saw.
    pub demand: PoolDemand,
    /// The capacity it counted.
    pub have: Capacity,
    /// Its answer.
    pub estimate: Estimate,
}

/// One change in a worker's life, as logged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Transition {
    /// The record was created.
    Requested,
    /// The cloud reports it running.
    Running,
    /// It registered for the first time.
    Registered,
    /// It was marked for removal.
    Removed {
        /// Why.
        reason: RemovalReason,
        /// The estimator's inputs, for a scale-in.
        scale: Option<ScaleIn>,
    },
    /// Its teardown started.
    Stopping,
    /// It is gone.
    Stopped,
    /// It failed.
    Failed,
}

impl Transition {
    /// The `transition` label and the `event` field's suffix.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Transition::Requested => "requested",
            Transition::Running => "running",
            Transition::Registered => "registered",
            Transition::Removed { .. } => "removed",
            Transition::Stopping => "stopping",
            Transition::Stopped => "stopped",
            Transition::Failed => "failed",
        }
    }

    /// Every label, in life order (metrics register each at zero).
    pub(crate) const LABELS: [&'static str; 7] = [
        "requested",
        "running",
        "registered",
        "removed",
        "stopping",
        "stopped",
        "failed",
    ];

    /// The transition a step caused, if its phase changed from `before`.
    pub(crate) fn after_step(before: Phase, w: &Worker) -> Option<Transition> {
        if before == w.phase {
            return None;
        }
        match w.phase {
            Phase::Running => Some(Transition::Running),
            Phase::Stopping => Some(Transition::Stopping),
            Phase::Stopped => Some(Transition::Stopped),
            Phase::Failed => Some(Transition::Failed),
            Phase::Requested => None,
        }
    }
}

/// Why a worker stopped or is stopping: its removal reason, else its last
/// error, else the cloud's doing.
fn stop_reason(w: &Worker) -> String {
    if let Some(r) = &w.removal_reason {
        return r.clone();
    }
    match &w.last_error {
        Some(e) => format!("{}: {}", e.kind.name(), e.message),
        None => "stopped outside skyfleet (by the cloud or by hand)".into(),
    }
}

/// Logs `t` for `w` (as stored) and counts it.
pub(crate) fn emit(w: &Worker, t: &Transition) {
    let pool = w.spec.pool_id.as_str();
    let worker = w.id();
    let provider = w.spec.provider_id.as_str();
    let partition = w.partition.as_deref().unwrap_or("-");
    let launch_config = w.spec.launch_config_id.as_str();
    metrics::counter!(m::WORKER_TRANSITIONS, "pool" => pool.to_string(), "transition" => t.label())
        .increment(1);
    match t {
        Transition::Requested => {
            let offering = w.offering.as_ref().map_or("-".to_string(), |o| o.key());
            tracing::info!(
                target: TARGET, event = "worker.requested", pool, worker, provider, partition,
                launch_config, offering = offering.as_str(), capacity = w.spec.capacity,
                "worker requested"
            )
        }
        Transition::Running => {
            let after_s = (w.running_at.unwrap_or(w.created_at) - w.created_at)
                .as_seconds_f64()
                .max(0.0);
            tracing::info!(
                target: TARGET, event = "worker.running", pool, worker, provider, partition,
                launch_config, after_s, "worker running"
            )
        }
        Transition::Registered => tracing::info!(
            target: TARGET, event = "worker.registered", pool, worker, provider, partition,
            launch_config, "worker registered"
        ),
        Transition::Removed { reason, scale } => {
            metrics::counter!(m::WORKER_REMOVALS, "pool" => pool.to_string(), "reason" => reason.label())
                .increment(1);
            let reason = reason.as_str();
            match scale {
                Some(s) => tracing::info!(
                    target: TARGET, event = "worker.removed", pool, worker, provider, partition,
                    launch_config, reason, pending = s.demand.pending, claimed = s.demand.claimed,
                    existing = s.have.requested + s.have.running, idle = s.estimate.idle,
                    scale_in_target = s.estimate.target, surplus = s.estimate.surplus,
                    "worker removed"
                ),
                None => tracing::info!(
                    target: TARGET, event = "worker.removed", pool, worker, provider, partition,
                    launch_config, reason, "worker removed"
                ),
            }
        }
        Transition::Stopping => tracing::debug!(
            target: TARGET, event = "worker.stopping", pool, worker, provider, partition,
            launch_config, reason = stop_reason(w), "worker stopping"
        ),
        Transition::Stopped => tracing::info!(
            target: TARGET, event = "worker.stopped", pool, worker, provider, partition,
            launch_config, reason = stop_reason(w), "worker stopped"
        ),
        Transition::Failed => {
            let reason = match &w.last_error {
                Some(e) => format!("{}: {}", e.kind.name(), e.message),
                None => "failed without an error recorded".into(),
            };
            tracing::info!(
                target: TARGET, event = "worker.failed", pool, worker, provider, partition,
                launch_config, reason, "worker failed"
            )
        }
    }
}

/// Logs that `w` was asked to drain, and counts it.
pub(crate) fn drain_requested(w: &Worker, reason: crate::model::DrainReason) {
    let pool = w.spec.pool_id.as_str();
    metrics::counter!(m::WORKER_DRAINS, "pool" => pool.to_string(), "reason" => reason.as_str())
        .increment(1);
    tracing::info!(
        target: TARGET, event = "worker.draining", pool, worker = w.id(),
        provider = w.spec.provider_id.as_str(), reason = reason.as_str(), "worker asked to drain"
    );
}

/// Logs an estimator decision for `pool`: what it saw and what was done.
pub(crate) fn pool_target(
    pool: &PoolConfig,
    demand: PoolDemand,
    have: Capacity,
    est: Estimate,
    created: u64,
    removed: u64,
) {
    tracing::info!(
        target: TARGET,
        event = "pool.target",
        pool = pool.pool_id.as_str(),
        pending = demand.pending,
        claimed = demand.claimed,
        existing = have.requested + have.running,
        idle = est.idle,
        requested = have.requested,
        running = have.running,
        stopping = have.stopping,
        min = pool.min_capacity,
        max = pool.max_capacity,
        desired = est.desired,
        scale_in_target = est.target,
        to_spawn = est.to_spawn,
        surplus = est.surplus,
        created,
        removed,
        "estimator decision"
    );
}

/// Logs one orphan sweep.
pub(crate) fn sweep(r: &SweepReport) {
    tracing::info!(
        target: TARGET,
        event = "sweep",
        seen = r.seen,
        foreign = r.foreign,
        unclaimed = r.unclaimed,
        adopted = r.adopted,
        list_errors = r.list_errors.len(),
        orphans = r.deleted + r.waiting + r.failed + r.held_back + r.would_delete,
        deleted = r.deleted,
        waiting = r.waiting,
        failed = r.failed,
        held_back = r.held_back,
        would_delete = r.would_delete,
        "orphan sweep"
    );
}
