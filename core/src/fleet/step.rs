//! Stepping claimed workers: one chunk's steps under the step timeout,
//! panics turned into step errors, and the chunk's answers persisted in one
//! batched write (the leases released in it), keeping what was written to a
//! record
//! under our lease by writers that do not take it (registration, removal).
//! Also a single worker stepped at once, outside the scan loop
//! ([`step_now`]), and the pool errors a failed step reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::events::{self, Transition};
use super::startup::NO_PARTITION;
use super::supervise_task::{step_panicked, CatchPanic};
use super::{lifecycle, FleetConfig, Shared};
use crate::error::{Error, ErrorKind};
use crate::metrics_catalogue as names;
use crate::model::{DesiredState, Phase, Worker, WorkerError};
use crate::offering::CapacityClass;
use crate::provider::{apply_step, DynProvider, Step};
use crate::store::PoolError;

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
        CatchPanic::new(provider.step_many(&workers)),
    )
    .await
    {
        Ok(Ok(r)) if r.len() == workers.len() => r,
        // A failed step: retried with backoff, leases released by the write.
        Ok(Err(panic)) => {
            let msg = step_panicked(provider.id(), workers.len(), &panic);
            workers
                .iter()
                .map(|_| Err(Error::internal(msg.clone())))
                .collect()
        }
        Ok(Ok(r)) => {
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
    // Each worker's answer applied, then all of them written at once.
    let mut stepped = Vec::with_capacity(workers.len());
    let mut after = Vec::with_capacity(workers.len());
    for ((mut w, r), mut seen) in workers.into_iter().zip(results).zip(transitions) {
        let before = w.phase;
        let mut interruption = None;
        let outcome = match r {
            Ok(step) => {
                interruption = step.interruption.clone();
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
        stepped.push(w);
        after.push((seen, interruption, lease));
    }
    let written = persist_batch(shared, &stepped).await;
    for ((w, (seen, interruption, lease)), first) in stepped.into_iter().zip(after).zip(written) {
        let persisted = match first {
            Written::Stored(stored) => Ok(*stored),
            Written::Conflict => persist_step(shared, w, &lease, true).await,
            Written::Failed(e) => Err((w.id().to_string(), e)),
            Written::Retry => persist_step(shared, w, &lease, false).await,
        };
        match persisted {
            Ok(stored) => {
                for t in &seen {
                    events::emit(&stored, t);
                }
                if let Some(i) = interruption {
                    // Removed, its offering marked and the replacement
                    // requested now (once, whoever saw it first).
                    if let Err(e) = shared.interrupt(stored.id(), &i).await {
                        tracing::warn!(worker = stored.id(), error = %e,
                            "could not record an interruption");
                    }
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

/// What the batched write of a chunk's stepped workers did with one of them.
enum Written {
    /// Stored as stepped (boxed: a record is some 800 bytes, the other
    /// answers under 120).
    Stored(Box<Worker>),
    /// Its version moved: [`persist_step`] re-reads it.
    Conflict,
    /// Failed for good (the worker is gone).
    Failed(Error),
    /// Not written (the batch failed): [`persist_step`] writes it alone.
    Retry,
}

/// Writes a chunk's stepped workers (their leases released) with one
/// [`update_workers`](crate::store::WorkerStore::update_workers): one
/// transaction instead of one per worker. A batch that failed as a whole
/// (nothing written) leaves each worker to [`persist_step`], so no step is
/// lost to one bad transaction.
async fn persist_batch(shared: &Shared, stepped: &[Worker]) -> Vec<Written> {
    let retry = || stepped.iter().map(|_| Written::Retry).collect();
    let answers = match shared.store.update_workers(stepped).await {
        Ok(a) if a.len() == stepped.len() => a,
        Ok(a) => {
            tracing::error!(
                answers = a.len(),
                workers = stepped.len(),
                "the store answered a batched update for the wrong number of workers; \
                 writing them one by one"
            );
            return retry();
        }
        Err(e) => {
            tracing::warn!(workers = stepped.len(), error = %e,
                "could not write a chunk's steps in one transaction; writing them one by one");
            return retry();
        }
    };
    answers
        .into_iter()
        .map(|a| match a {
            Ok(stored) => Written::Stored(Box::new(stored)),
            Err(e) if e.kind() == &ErrorKind::Conflict => Written::Conflict,
            Err(e) if e.kind() == &ErrorKind::NotFound => Written::Failed(e),
            // A part of the batch the store could not write: alone, again.
            Err(_) => Written::Retry,
        })
        .collect()
}

/// Writes a stepped worker (its lease released). The record may have
/// changed under the lease, written by someone who does not take it: a
/// registration (`registered_at`), a removal (`desired`, the reason). Then
/// the step is applied again on the fresh record, keeping those changes,
/// as long as the fresh record still carries our `lease`; otherwise the
/// worker went to another replica (a `Conflict`). Bounded attempts: 3
/// writes, the first of them the batch's when `conflicted` (the batched
/// write of [`persist_batch`] already met a `Conflict`).
async fn persist_step(
    shared: &Shared,
    mut w: Worker,
    lease: &(Option<String>, Option<OffsetDateTime>),
    conflicted: bool,
) -> std::result::Result<Worker, (String, Error)> {
    const ATTEMPTS: usize = 3;
    let id = w.id().to_string();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 || !conflicted {
            match shared.store.update_worker(&w).await {
                Ok(stored) => return Ok(stored),
                Err(e) if e.kind() == &ErrorKind::Conflict => {}
                Err(e) => return Err((id, e)),
            }
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
    /// Records an error against the worker's pool (and its launch config);
    /// a capacity or quota error also marks the worker's offering
    /// unavailable in the shared cache and wakes the pool's provisioner.
    pub(super) async fn report(&self, w: &Worker, e: &Error, title: &str) {
        if e.kind() == &ErrorKind::CapacityOrQuota {
            let class = CapacityClass::of_code(e.code());
            self.mark_offering(w, class, e.code(), e.message()).await;
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

    /// A provider whose step writes to the store behind the lease, as
    /// others would meanwhile: registers `w-reg`, lets another replica take
    /// `w-stolen`, deletes `w-gone`; every worker steps to running.
    #[derive(Debug)]
    struct Meddler(Arc<dyn crate::store::WorkerStore>);

    #[async_trait::async_trait]
    impl crate::provider::Provider for Meddler {
        fn id(&self) -> &str {
            "meddler"
        }
        fn kind(&self) -> &'static str {
            "meddler"
        }
        fn validate(&self, _: &serde_json::Value) -> crate::Result<()> {
            Ok(())
        }
        async fn step(&self, w: &Worker) -> crate::Result<Step> {
            let now = OffsetDateTime::now_utc();
            let fresh = self.0.get_worker(w.id()).await?;
            match (w.id(), fresh) {
                ("w-reg", Some(mut f)) => {
                    f.registered_at = Some(now);
                    self.0.update_worker(&f).await?;
                }
                ("w-stolen", Some(mut f)) => {
                    f.lease_owner = Some("other".into());
                    self.0.update_worker(&f).await?;
                }
                ("w-gone", Some(_)) => self.0.delete_worker(w.id()).await?,
                _ => {}
            }
            let state = serde_json::json!({"stepped": true});
            Ok(Step::new(state, Phase::Running, Duration::from_secs(30)))
        }
        async fn list_owned(
            &self,
            _: &crate::model::OwnershipScope,
        ) -> crate::Result<Vec<crate::model::OwnedResource>> {
            Ok(Vec::new())
        }
        async fn delete_owned(&self, _: &crate::model::OwnedResource) -> crate::Result<()> {
            Ok(())
        }
    }

    /// A chunk's steps are written in one transaction; a worker changed
    /// under its lease (registered) is written again keeping the change,
    /// one taken by another replica or deleted is left alone.
    // Current-thread: the statement counters are this thread's.
    #[tokio::test(flavor = "current_thread")]
    async fn a_chunk_is_written_in_one_transaction_and_conflicts_are_retried_alone() {
        use crate::metrics_catalogue::{STORE_STATEMENTS, STORE_TRANSACTIONS};
        use crate::store::{Claim, PartitionFilter, SqliteStore, WorkerStore};
        let counters = crate::store::test_counters::Counters::default();
        let _local = metrics::set_default_local_recorder(&counters);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("step.db");
        let sqlite = SqliteStore::open(path.to_str().expect("utf-8")).await;
        let store: Arc<dyn WorkerStore> = Arc::new(sqlite.expect("open"));
        let provider: DynProvider = Arc::new(Meddler(store.clone()));
        let pool = serde_json::json!({"pool_id": "p", "provider_id": "meddler",
            "max_capacity": 10, "launch_configs": [{"id": "small", "launch": {}}]});
        let fleet = crate::fleet::Fleet::builder()
            .owner("me")
            .store(store.clone())
            .provider(provider.clone())
            .pool(serde_json::from_value(pool).expect("pool"))
            .demand(Arc::new(crate::fleet::FixedDemand::new()))
            .build()
            .expect("fleet");
        let now = OffsetDateTime::now_utc();
        for id in ["w-plain", "w-reg", "w-stolen", "w-gone"] {
            let w = fixtures::worker(id).pool("p").provider("meddler");
            store.create_worker(&w.build(now)).await.expect("create");
        }
        let claim = Claim {
            provider_id: "meddler".into(),
            partition: PartitionFilter::Any,
            owner: "me".into(),
            lease: Duration::from_secs(60),
            limit: 10,
        };
        let claimed = store
            .claim_due(&claim, now + Duration::from_secs(1))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 4);
        step_chunk(&fleet.shared, &provider, claimed).await;

        // 4 updates and a look-up for each of the 3 that missed.
        assert_eq!(counters.get(STORE_TRANSACTIONS, "update_workers"), 1);
        assert_eq!(counters.get(STORE_STATEMENTS, "update_workers"), 4 + 3);
        // The meddler's 2, and w-reg written again alone.
        assert_eq!(counters.get(STORE_TRANSACTIONS, "update_worker"), 3);
        let get = |id: &'static str| {
            let store = store.clone();
            async move { store.get_worker(id).await.expect("get") }
        };
        let plain = get("w-plain").await.expect("w-plain");
        assert_eq!((plain.phase, plain.version), (Phase::Running, 3));
        assert_eq!(plain.lease_owner, None, "the write released the lease");
        let reg = get("w-reg").await.expect("w-reg");
        assert_eq!(reg.phase, Phase::Running);
        assert!(reg.registered_at.is_some(), "the registration was kept");
        assert_eq!((reg.lease_owner, reg.version), (None, 4));
        let stolen = get("w-stolen").await.expect("w-stolen");
        assert_eq!(stolen.lease_owner.as_deref(), Some("other"));
        assert_ne!(stolen.phase, Phase::Running, "the other replica's record");
        assert!(get("w-gone").await.is_none(), "a deleted worker stays gone");
    }
}
