//! Scanners: one task per provider and partition, stepping due workers.
//!
//! Taskcluster's single scanner served every cloud in one loop, so a slow
//! Azure starved AWS and GCP and a pass took 50 minutes at 1,200 workers.
//! Here isolation is structural:
//! - each provider has a supervisor task that asks the store which
//!   partitions (regions, zones: [`Provider::partition`]) its live workers
//!   are in, and runs **one scanner task per partition**; a scanner claims
//!   only its own partition's due workers (`next_check_at`, lease free), so a
//!   hung region holds its own leases, step slots and in-flight bound and
//!   nothing of its neighbours';
//! - every step runs under a timeout and is cancelled when it fires, so a
//!   hung cloud call costs one step, not the loop; workers are stepped one
//!   per task unless the provider batches reads (`Provider::batch_limit`),
//!   so a hang never cancels its neighbours' steps;
//! - a scanner never waits for a pass to finish: it keeps claiming while
//!   steps are in flight, and the store's leases keep workers from being
//!   stepped twice.
//!
//! Partitions come and go with the workers: the provisioner (and a step that
//! moves a worker) wakes the supervisors when a new one may have appeared,
//! and a periodic look (`FleetConfig::partition_interval`) is the safety net.
//! A scanner whose partition has no live worker left is retired: it stops
//! claiming and finishes what it has in flight.
//!
//! [`Provider::partition`]: crate::Provider::partition

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::events::{self, Transition};
use super::startup::NO_PARTITION;
use super::{lifecycle, FleetConfig, Shared};
use crate::error::{Error, ErrorKind};
use crate::metrics_catalogue as names;
use crate::model::{DesiredState, Phase, Worker, WorkerError};
use crate::provider::{apply_step, DynProvider, Step};
use crate::store::{Claim, PartitionFilter, PoolError};
use claim::{claim_limit, step_or_release};

mod claim;

/// Runs the scanners of one provider, one per partition, until `cancel`
/// fires.
pub(super) async fn run(shared: Arc<Shared>, provider: DynProvider, cancel: CancellationToken) {
    // Partition -> its live scanner's task id and retire signal.
    let mut scanners: HashMap<Option<String>, (tokio::task::Id, CancellationToken)> =
        HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        // Armed before the look, so a wake-up during it is not lost.
        let woken = shared.partitions_changed.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        // Forget scanners that ended on their own (a panic): the look below
        // starts them again if their partition is still live.
        while let Some(done) = tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    if e.is_panic() {
                        tracing::error!(provider = provider.id(), "a scanner panicked: {e}");
                    }
                    e.id()
                }
            };
            scanners.retain(|_, (task, _)| *task != id);
        }
        match shared.store.partitions(provider.id()).await {
            Ok(live) => {
                scanners.retain(|p, (_, retire)| {
                    let keep = live.contains(p);
                    if !keep {
                        tracing::debug!(provider = provider.id(), partition = ?p, "retiring scanner");
                        retire.cancel();
                    }
                    keep
                });
                for p in live {
                    if scanners.contains_key(&p) {
                        continue;
                    }
                    tracing::debug!(provider = provider.id(), partition = ?p, "starting scanner");
                    let retire = CancellationToken::new();
                    let handle = tasks.spawn(scan_partition(
                        shared.clone(),
                        provider.clone(),
                        p.clone(),
                        retire.clone(),
                        cancel.clone(),
                    ));
                    scanners.insert(p, (handle.id(), retire));
                }
            }
            Err(e) => {
                tracing::warn!(provider = provider.id(), error = %e, "listing partitions failed")
            }
        }
        metrics::gauge!(names::SCANNERS, "provider" => provider.id().to_string())
            .set(scanners.len() as f64);
        tokio::select! {
            _ = tokio::time::sleep(shared.config.partition_interval) => {}
            _ = &mut woken => {}
            _ = cancel.cancelled() => break,
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// The scanner of one partition: claims that partition's due workers and
/// steps them, until retired (finishes what is in flight) or cancelled
/// (stops at once; leases are released by the fleet or expire).
async fn scan_partition(
    shared: Arc<Shared>,
    provider: DynProvider,
    partition: Option<String>,
    retire: CancellationToken,
    cancel: CancellationToken,
) {
    let cfg = shared.config.clone();
    let slots = Arc::new(Semaphore::new(cfg.concurrency_per_partition));
    let mut inflight = JoinSet::new();
    let mut claim = Claim {
        provider_id: provider.id().to_string(),
        partition: PartitionFilter::Only(partition.clone()),
        owner: shared.owner.clone(),
        lease: cfg.lease,
        limit: cfg.claim_batch,
    };
    let size = cfg.batch_size.min(provider.batch_limit()).max(1);
    loop {
        while inflight.try_join_next().is_some() {}
        if cancel.is_cancelled() || retire.is_cancelled() {
            break;
        }
        // Claim only what the free step slots start at once: a claimed
        // worker waiting for a slot would spend its lease waiting. With no
        // slot free (or too many chunks in flight), wait for one chunk.
        let free_slots = cfg.concurrency_per_partition.saturating_sub(inflight.len());
        claim.limit = claim_limit(cfg.claim_batch, free_slots, size);
        if claim.limit == 0 || inflight.len() >= cfg.max_inflight_chunks {
            tokio::select! {
                _ = inflight.join_next() => {}
                _ = cancel.cancelled() => break,
            }
            continue;
        }
        let claimed_at = Instant::now();
        let claimed = match shared.store.claim_due(&claim, shared.clock.now()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(provider = provider.id(), partition = ?partition, error = %e, "claim failed");
                Vec::new()
            }
        };
        record_lag(&provider, &partition, &claimed, shared.clock.now());
        if claimed.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(cfg.scan_interval) => {}
                _ = retire.cancelled() => {}
                _ = cancel.cancelled() => break,
            }
            continue;
        }
        let mut rest = claimed;
        while !rest.is_empty() {
            let chunk: Vec<Worker> = rest.drain(..rest.len().min(size)).collect();
            let (shared, provider, slots) = (shared.clone(), provider.clone(), slots.clone());
            let cancel = cancel.clone();
            inflight.spawn(async move {
                let Ok(_permit) = slots.acquire_owned().await else {
                    return;
                };
                tokio::select! {
                    _ = step_or_release(&shared, &provider, chunk, claimed_at) => {}
                    _ = cancel.cancelled() => {}
                }
            });
        }
    }
    if cancel.is_cancelled() {
        // Stop in-flight steps; their leases are released by the fleet or expire.
        inflight.abort_all();
    }
    while inflight.join_next().await.is_some() {}
}

/// Claims every provider's due workers once and steps them, in sequence
/// ([`Fleet::scan_once`](super::Fleet::scan_once)). Returns how many were
/// stepped.
pub(super) async fn scan_once(shared: &Shared) -> crate::Result<usize> {
    let mut stepped = 0;
    for provider in shared.providers.values() {
        let claim = Claim {
            provider_id: provider.id().to_string(),
            partition: PartitionFilter::Any,
            owner: shared.owner.clone(),
            lease: shared.config.lease,
            limit: shared.config.claim_batch,
        };
        let claimed_at = Instant::now();
        let claimed = shared.store.claim_due(&claim, shared.clock.now()).await?;
        let size = shared.config.batch_size.min(provider.batch_limit()).max(1);
        let mut rest = claimed;
        while !rest.is_empty() {
            let chunk: Vec<Worker> = rest.drain(..rest.len().min(size)).collect();
            // Chunks run one after another here: the later ones may find
            // their lease too short, and are released instead.
            stepped += step_or_release(shared, provider, chunk, claimed_at).await;
        }
    }
    Ok(stepped)
}

/// Steps one worker now, outside the scan loop, as a scanner would (for a
/// worker that calls the worker API before any scanner saw its VM running),
/// if it is still in `phase`.
///
/// Its lease is taken the way a claim takes it, in one write conditional on
/// the record's version: only if it is in no final phase and its lease is
/// free or expired, so neither a scanner nor another replica steps it at the
/// same time. The step is [`step_chunk`]'s: its cloud calls are cancelled
/// at the step timeout, and its write releases the lease. It runs in a task
/// of its own, so a caller that gives up (a dropped request) does not
/// abandon the step, and its lease, midway.
///
/// Whether it was stepped: `false` (nothing done) when the worker is gone,
/// no longer in `phase`, final, leased, or changed under us.
pub(super) async fn step_now(
    shared: &Arc<Shared>,
    worker_id: &str,
    phase: Phase,
) -> crate::Result<bool> {
    let Some(mut worker) = shared.store.get_worker(worker_id).await? else {
        return Ok(false);
    };
    let now = shared.clock.now();
    let held = worker.lease_owner.is_some() && worker.lease_expires_at.is_some_and(|t| t > now);
    if held || worker.phase != phase || worker.phase.is_final() {
        return Ok(false);
    }
    let Some(provider) = shared.providers.get(&worker.spec.provider_id).cloned() else {
        return Ok(false);
    };
    worker.lease_owner = Some(shared.owner.clone());
    worker.lease_expires_at = Some(now + shared.config.lease);
    let claimed = match shared.store.update_worker(&worker).await {
        Ok(stored) => stored,
        Err(e) if e.kind() == &ErrorKind::Conflict => return Ok(false),
        Err(e) => return Err(e),
    };
    let task_shared = shared.clone();
    tokio::spawn(async move { step_chunk(&task_shared, &provider, vec![claimed]).await })
        .await
        .map_err(|e| {
            Error::internal(format!(
                "the step of worker {worker_id} ended abnormally: {e}"
            ))
        })?;
    Ok(true)
}

/// Steps a chunk of claimed workers of one partition and persists the answers.
pub(super) async fn step_chunk(shared: &Shared, provider: &DynProvider, mut workers: Vec<Worker>) {
    let now = shared.clock.now();
    // The transitions of each worker, logged once the store accepts them.
    let mut transitions: Vec<Vec<Transition>> = vec![Vec::new(); workers.len()];
    for (w, seen) in workers.iter_mut().zip(transitions.iter_mut()) {
        if let Some(reason) = lifecycle::expired(w, now) {
            lifecycle::mark_removed(w, reason, now);
            seen.push(Transition::Removed {
                reason,
                scale: None,
            });
            if reason == lifecycle::RemovalReason::ProvisioningDeadline {
                shared
                    .report(
                        w,
                        &Error::new(ErrorKind::Timeout, reason.as_str()),
                        "worker missed its provisioning deadline",
                    )
                    .await;
            }
        }
    }
    let started = Instant::now();
    let results: Vec<crate::Result<Step>> = match tokio::time::timeout(
        shared.config.step_timeout,
        provider.step_many(&workers),
    )
    .await
    {
        Ok(r) if r.len() == workers.len() => r,
        Ok(r) => {
            let msg = format!(
                "provider {} answered {} steps for {} workers",
                provider.id(),
                r.len(),
                workers.len()
            );
            workers
                .iter()
                .map(|_| Err(Error::internal(msg.clone())))
                .collect()
        }
        Err(_) => workers
            .iter()
            .map(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "step did not finish within {} s and was cancelled",
                        shared.config.step_timeout.as_secs_f64()
                    ),
                ))
            })
            .collect(),
    };
    let per_step = started.elapsed().as_secs_f64() / workers.len().max(1) as f64;
    let now = shared.clock.now();
    for ((mut w, r), mut seen) in workers.into_iter().zip(results).zip(transitions) {
        let before = w.phase;
        let outcome = match r {
            Ok(step) => {
                apply_step(&mut w, &step, now);
                if let Some(t) = Transition::after_step(before, &w) {
                    w.transitioned_at = Some(now);
                    seen.push(t);
                }
                w.step_errors = 0;
                // The answer may place the worker (a zone chosen at create).
                let partition = provider.partition(&w);
                if partition != w.partition {
                    w.partition = partition;
                    shared.partitions_changed.notify_waiters();
                }
                if let Some(e) = &step.error {
                    let err = e.to_error();
                    shared.report(&w, &err, "cloud operation failed").await;
                }
                if w.phase.is_final() {
                    // Nothing more to do; keep it out of claims.
                    w.next_check_at = now + Duration::from_secs(365 * 24 * 3600);
                } else if let Some(limit) = lifecycle::next_limit(&w) {
                    // Back when its next lifecycle limit passes, not later.
                    w.next_check_at = w.next_check_at.min(limit.max(now));
                }
                "ok"
            }
            Err(e) => {
                w.step_errors = w.step_errors.saturating_add(1);
                w.last_error = Some(WorkerError::from_error(&e, now));
                let backoff = error_backoff(&shared.config, &e, w.step_errors);
                w.next_check_at = later(now, backoff);
                if !e.is_retryable() || w.step_errors == 1 {
                    shared.report(&w, &e, "step failed").await;
                }
                if matches!(e.kind(), ErrorKind::Throttled { .. }) {
                    let partition = w.partition.as_deref().unwrap_or(NO_PARTITION);
                    let key = format!("throttled/{}/{partition}", provider.id());
                    if let Some(held_back) = shared.warnings.admit(&key) {
                        tracing::warn!(
                            target: events::TARGET, event = "step.throttled",
                            provider = provider.id(), partition, worker = w.id(),
                            retry_in_s = backoff.as_secs_f64(), held_back,
                            "steps throttled by the cloud (one line per provider and partition \
                             per minute)"
                        );
                    }
                }
                tracing::debug!(worker = w.id(), error = %e, "step failed");
                e.kind().name()
            }
        };
        metrics::counter!(names::STEPS, "provider" => provider.id().to_string(), "outcome" => outcome).increment(1);
        metrics::histogram!(names::STEP_SECONDS, "provider" => provider.id().to_string())
            .record(per_step);
        let lease = (w.lease_owner.take(), w.lease_expires_at.take());
        match persist_step(shared, w, &lease).await {
            Ok(stored) => {
                for t in &seen {
                    events::emit(&stored, t);
                }
            }
            Err((id, e)) if e.kind() == &ErrorKind::Conflict => {
                // Our lease expired and another replica took the worker: its
                // answer wins; ours was an idempotent step.
                tracing::warn!(worker = %id, "lost the worker to another replica");
            }
            Err((id, e)) => tracing::error!(worker = %id, error = %e, "could not persist a step"),
        }
    }
}

/// Writes a stepped worker (its lease released). The record may have
/// changed under the lease, written by someone who does not take it: a
/// registration (`registered_at`), a removal (`desired`, the reason). Then
/// the step is applied again on the fresh record, keeping those changes,
/// as long as the fresh record still carries our `lease`; otherwise the
/// worker went to another replica (a `Conflict`). Bounded attempts.
async fn persist_step(
    shared: &Shared,
    mut w: Worker,
    lease: &(Option<String>, Option<OffsetDateTime>),
) -> std::result::Result<Worker, (String, Error)> {
    const ATTEMPTS: usize = 3;
    let id = w.id().to_string();
    for _ in 0..ATTEMPTS {
        match shared.store.update_worker(&w).await {
            Ok(stored) => return Ok(stored),
            Err(e) if e.kind() == &ErrorKind::Conflict => {}
            Err(e) => return Err((id, e)),
        }
        let fresh = match shared.store.get_worker(&id).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err((id.clone(), Error::not_found(format!("worker {id} is gone")))),
            Err(e) => return Err((id, e)),
        };
        if (&fresh.lease_owner, &fresh.lease_expires_at) != (&lease.0, &lease.1) {
            break;
        }
        keep_unleased_changes(&mut w, &fresh);
    }
    Err((
        id.clone(),
        Error::new(
            ErrorKind::Conflict,
            format!("worker {id} changed under its lease"),
        ),
    ))
}

/// Carries into a stepped worker `ours` what was written to `fresh` while
/// we held the lease, by writers that do not take it: registration
/// (`registered_at`), removal (`desired`, `removal_reason`), and the
/// earliest next check and latest transition of the two; and takes the
/// fresh record's version.
pub(super) fn keep_unleased_changes(ours: &mut Worker, fresh: &Worker) {
    ours.version = fresh.version;
    if ours.registered_at.is_none() {
        ours.registered_at = fresh.registered_at;
    }
    if fresh.desired == DesiredState::Removed && ours.desired != DesiredState::Removed {
        ours.desired = fresh.desired;
        ours.removal_reason = fresh.removal_reason.clone();
    }
    ours.next_check_at = ours.next_check_at.min(fresh.next_check_at);
    ours.transitioned_at = ours.transitioned_at.max(fresh.transitioned_at);
}

impl Shared {
    /// Records an error against the worker's pool (and its launch config).
    pub(super) async fn report(&self, w: &Worker, e: &Error, title: &str) {
        if e.kind() == &ErrorKind::CapacityOrQuota {
            self.capacity_errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    (w.spec.pool_id.clone(), w.spec.launch_config_id.clone()),
                    self.clock.now(),
                );
        }
        let pe = PoolError {
            pool_id: w.spec.pool_id.clone(),
            kind: e.kind().clone(),
            title: title.to_string(),
            message: crate::failure::truncate_message(&format!("worker {}: {e}", w.id())),
            launch_config_id: Some(w.spec.launch_config_id.clone()),
            reported_at: self.clock.now(),
        };
        if let Err(err) = self.store.record_pool_error(&pe).await {
            tracing::warn!(error = %err, "could not record a pool error");
        }
        metrics::counter!(names::ERRORS, "pool" => w.spec.pool_id.clone(), "kind" => e.kind().name()).increment(1);
        if e.kind() == &ErrorKind::CapacityOrQuota {
            let key = format!("capacity/{}/{}", w.spec.pool_id, w.spec.launch_config_id);
            if let Some(held_back) = self.warnings.admit(&key) {
                tracing::warn!(
                    target: events::TARGET, event = "pool.capacity",
                    pool = w.spec.pool_id.as_str(), launch_config = w.spec.launch_config_id.as_str(),
                    worker = w.id(), error = %e, held_back,
                    "capacity or quota exhausted: launch config avoided for the cooldown \
                     (one line per pool and launch config per minute)"
                );
            }
        }
    }
}

/// Records how late each claimed worker is: the time from falling due to
/// being claimed.
fn record_lag(
    provider: &DynProvider,
    partition: &Option<String>,
    claimed: &[Worker],
    now: time::OffsetDateTime,
) {
    if claimed.is_empty() {
        return;
    }
    let h = metrics::histogram!(
        names::SCANNER_LAG,
        "provider" => provider.id().to_string(),
        "partition" => partition.clone().unwrap_or_else(|| NO_PARTITION.to_string())
    );
    for w in claimed {
        h.record((now - w.next_check_at).as_seconds_f64().max(0.0));
    }
}

/// How long a worker whose step failed (for the `errors`th time in a row)
/// waits: the cloud's requested delay or the exponential backoff, never
/// more than `error_backoff_max` (a server asking for a day must not park
/// a worker past it). Saturating: no overflow on any configuration.
fn error_backoff(config: &FleetConfig, e: &crate::Error, errors: u32) -> Duration {
    let max = config.error_backoff_max;
    e.retry_after()
        .unwrap_or_else(|| {
            config
                .error_backoff_min
                .checked_mul(2u32.saturating_pow(errors.min(16)))
                .unwrap_or(max)
        })
        .min(max)
}

/// `now + d`, or the latest representable time when that is out of range.
fn later(now: OffsetDateTime, d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| now.checked_add(d))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures;

    #[test]
    fn a_step_keeps_what_registration_and_removal_wrote_under_its_lease() {
        let t0 = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let base = fixtures::worker("w1").build(t0);
        // What the step made of the record it claimed at version 3.
        let mut ours = base.clone();
        ours.version = 3;
        ours.phase = Phase::Running;
        ours.running_at = Some(at(5));
        ours.transitioned_at = Some(at(5));
        ours.next_check_at = at(60);
        // Meanwhile: registered (version 4), then marked for removal (5).
        let mut fresh = base.clone();
        fresh.version = 5;
        fresh.registered_at = Some(at(3));
        fresh.transitioned_at = Some(at(4));
        fresh.desired = DesiredState::Removed;
        fresh.removal_reason = Some("drained".into());
        fresh.next_check_at = at(4);
        keep_unleased_changes(&mut ours, &fresh);
        assert_eq!(ours.version, 5);
        assert_eq!(ours.phase, Phase::Running, "the step's result stays");
        assert_eq!(ours.running_at, Some(at(5)));
        assert_eq!(ours.registered_at, Some(at(3)));
        assert_eq!(ours.desired, DesiredState::Removed);
        assert_eq!(ours.removal_reason.as_deref(), Some("drained"));
        assert_eq!(ours.next_check_at, at(4), "the earlier check wins");
        assert_eq!(
            ours.transitioned_at,
            Some(at(5)),
            "the later transition wins"
        );

        // Nothing written meanwhile but a version bump: only the version moves.
        let mut ours2 = base.clone();
        ours2.next_check_at = at(9);
        let mut fresh2 = base.clone();
        fresh2.version = 8;
        fresh2.next_check_at = at(30);
        keep_unleased_changes(&mut ours2, &fresh2);
        assert_eq!(ours2.version, 8);
        assert_eq!(ours2.desired, base.desired);
        assert_eq!(ours2.next_check_at, at(9));
    }
}
