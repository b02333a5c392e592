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
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::startup::NO_PARTITION;
use super::step::step_chunk;
use super::Shared;
use crate::metrics_catalogue as names;
use crate::model::Worker;
use crate::provider::DynProvider;
use crate::store::{Claim, PartitionFilter};
use claim::{claim_limit, idle_sleep, step_or_release};

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
                        metrics::counter!(names::TASK_PANICS,
                            "task" => format!("scanner/{}", provider.id()))
                        .increment(1);
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
                _ = tokio::time::sleep(idle_sleep(cfg.scan_interval)) => {}
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
