//! The worker API as library calls on [`Fleet`]: [`register`](Fleet::register),
//! [`reregister`](Fleet::reregister), [`heartbeat`](Fleet::heartbeat) and
//! [`drained`](Fleet::drained), with the bodies of [`crate::protocol`].
//! Crate `skyfleet-api` serves them over HTTP; an embedder may call them
//! directly.
//!
//! Every refusal of a caller that could not prove who it is (unknown worker,
//! wrong or expired secret, a proof that does not hold, a second
//! registration) is one [`ErrorKind::IdentityRejected`] error with the same
//! outward message; the precise reason goes to a log field and the
//! `skyfleet_identity_rejections_total` metric.
//!
//! An interruption notice in a heartbeat (the agent read its metadata
//! service's) removes the worker and requests its replacement at once (see
//! the fleet's `offering` module).
//!
//! Heartbeats write only the worker's [`Registration`]; decisions about a
//! worker (drain it, remove it) are written to the registration first,
//! conditionally on its version, so they are fenced against a heartbeat
//! that reported busy in the meantime.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::events::{self, Transition};
use super::lifecycle::{mark_removed, RemovalReason};
use super::{step, worker_secret, Fleet};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Drain, DrainReason, Phase, Registration, Worker};
use crate::offering::{Interruption, InterruptionSource};
use crate::protocol::{
    Action, Activity, DrainedResponse, HeartbeatRequest, HeartbeatResponse, InterruptionNotice,
    RegisterRequest, RegisterResponse, ReregisterResponse,
};
use crate::provider::identity::{self, rejected};
use crate::provider::support::Secret;

/// Store round trips a call retries when records change underneath.
const ATTEMPTS: usize = 5;

/// The reasons a caller is refused, beyond the identity module's.
const BAD_SECRET: &str = "bad_secret";
const SECRET_EXPIRED: &str = "secret_expired";
const ALREADY_REGISTERED: &str = "already_registered";
const WRONG_POOL: &str = "wrong_pool";

/// Refuses a caller naming no known worker (logged and counted as the
/// identity module does for known ones).
fn refuse_unknown(worker_id: &str, reason: &'static str) -> Error {
    tracing::warn!(worker = worker_id, reason, "worker API call refused");
    metrics::counter!(
        "skyfleet_identity_rejections_total",
        "provider" => "unknown",
        "reason" => reason
    )
    .increment(1);
    Error::identity_rejected(reason)
}

/// A refusal stripped of everything that differs between causes (the
/// provider's name, which says the worker exists): the reason stays in the
/// error kind for the caller's logs. Other errors pass unchanged.
fn uniform(e: Error) -> Error {
    match e.kind() {
        ErrorKind::IdentityRejected { reason } => Error::identity_rejected(reason),
        _ => e,
    }
}

/// The worker config a registered worker receives: what its bootstrap
/// document carries, `workerConfig` of its launch parameters (AWS, GCP) or
/// `worker_config` (Azure), or `{}`.
fn worker_config(worker: &Worker) -> Value {
    let launch = &worker.spec.launch;
    launch
        .get("workerConfig")
        .or_else(|| launch.get("worker_config"))
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// Whether a refused proof was refused because the worker's record does
/// not know its VM yet.
fn not_known_yet(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::IdentityRejected { reason } if *reason == identity::UNKNOWN_WORKER)
}

impl Fleet {
    /// Registers a worker: the worker must exist in this pool, be requested
    /// or running and meant to run, never have registered, and its proof
    /// must hold for its provider. Returns its worker config and a fresh
    /// secret (kept only as a digest, so shown once).
    ///
    /// A worker that calls before the runtime has seen its VM running (it
    /// booted fast) is stepped at once, then registered: it turns running
    /// without waiting for its next scheduled check. That is one step
    /// (its cloud calls bounded by the fleet's step timeout) under the
    /// worker's lease, taken as a scanner takes it; if the lease is held (a
    /// scanner or another replica is stepping it), the worker's next check
    /// is made due now instead. The answer is the same whether or not the
    /// step reached running. A request cancelled during the step has
    /// registered nothing, so the worker may simply try again. A proof
    /// refused because the record does not know its VM yet (the create's
    /// answer was lost and not yet recovered) is checked again after that
    /// step, against what it learnt; a forged proof still fails there.
    pub async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse> {
        self.register_inner(req).await.map_err(uniform)
    }

    async fn register_inner(&self, req: RegisterRequest) -> Result<RegisterResponse> {
        let Some(worker) = self.shared.store.get_worker(&req.worker_id).await? else {
            return Err(refuse_unknown(&req.worker_id, identity::UNKNOWN_WORKER));
        };
        let provider_id = worker.spec.provider_id.clone();
        let provider_id = provider_id.as_str();
        if worker.spec.pool_id != req.worker_pool_id {
            return Err(rejected(provider_id, &worker, WRONG_POOL));
        }
        if !identity::may_register(&worker) {
            return Err(rejected(provider_id, &worker, identity::NOT_REGISTRABLE));
        }
        let Some(provider) = self.shared.providers.get(provider_id) else {
            return Err(rejected(provider_id, &worker, identity::UNKNOWN_WORKER));
        };
        // Before the (costly) proof check: registration happens once.
        if self
            .shared
            .store
            .get_registration(worker.id())
            .await?
            .is_some()
        {
            return Err(rejected(provider_id, &worker, ALREADY_REGISTERED));
        }
        let requested = worker.phase == Phase::Requested;
        let (worker, stepped) = match provider.verify_identity(&worker, &req.proof).await {
            Ok(_) => {
                let stepped = requested && self.step_requested(worker.id()).await;
                (worker, stepped)
            }
            // The record cannot say yet what the proof must match (EC2's
            // instance id arrives with the create's answer, which may have
            // been lost to a fault and not yet recovered): a VM that booted
            // first is stepped now, then checked against what was learnt.
            Err(e) if requested && not_known_yet(&e) => {
                if !self.step_requested(worker.id()).await {
                    return Err(e);
                }
                let Some(fresh) = self.shared.store.get_worker(worker.id()).await? else {
                    return Err(e);
                };
                provider.verify_identity(&fresh, &req.proof).await?;
                (fresh, true)
            }
            Err(e) => return Err(e),
        };

        let now = self.shared.clock.now();
        let lifecycle = &worker.spec.lifecycle;
        let expires = now + lifecycle.reregistration_timeout;
        // The worker record first: if the registration below fails, the
        // worker is merely marked registered early and may try again.
        self.mark_registered(worker.id(), now, !stepped).await?;
        let secret = worker_secret::generate();
        let digest = worker_secret::digest(worker.id(), &secret);
        let reg = Registration::new(worker.id(), &worker.spec.pool_id, digest, now, expires);
        match self.shared.store.create_registration(&reg).await {
            Ok(_) => {}
            Err(e) if e.kind() == &ErrorKind::AlreadyExists => {
                // Another replica registered it between our check and now.
                return Err(rejected(provider_id, &worker, ALREADY_REGISTERED));
            }
            Err(e) => return Err(e),
        }
        Ok(RegisterResponse {
            worker_config: worker_config(&worker),
            secret,
            expires,
            heartbeat_interval_secs: lifecycle.heartbeat_interval().as_secs(),
        })
    }

    /// Steps a still requested worker whose proof held, once, now (see
    /// [`register`](Fleet::register)); whether it was stepped. Never fails
    /// the registration: a step not taken leaves the worker to the scanners.
    async fn step_requested(&self, worker_id: &str) -> bool {
        match step::step_now(&self.shared, worker_id, Phase::Requested).await {
            Ok(stepped) => {
                tracing::debug!(
                    worker = worker_id,
                    stepped,
                    "registering worker stepped at once"
                );
                stepped
            }
            Err(e) => {
                tracing::debug!(worker = worker_id, error = %e, "registering worker not stepped");
                false
            }
        }
    }

    /// Rotates a registered worker's secret and extends its registration by
    /// the reregistration timeout. The previous secret stops working.
    pub async fn reregister(&self, worker_id: &str, secret: &Secret) -> Result<ReregisterResponse> {
        for _ in 0..ATTEMPTS {
            let (reg, worker) = self.authenticate(worker_id, secret).await?;
            let Some(worker) = worker.filter(|w| reg.removal.is_none() && live(w)) else {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("worker {worker_id} is being removed; it cannot reregister"),
                ));
            };
            let now = self.shared.clock.now();
            let expires = now + worker.spec.lifecycle.reregistration_timeout;
            // The worker record first, so the scanner's reregistration
            // limit never falls before the registration's own expiry.
            self.mark_registered(worker_id, now, true).await?;
            let fresh = worker_secret::generate();
            let mut next = reg;
            next.secret_sha256 = worker_secret::digest(worker_id, &fresh);
            next.expires = expires;
            match self.shared.store.update_registration(&next).await {
                Ok(_) => {
                    return Ok(ReregisterResponse {
                        secret: fresh,
                        expires,
                    })
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(busy(worker_id))
    }

    /// Records a heartbeat and answers what the worker should do:
    /// `drain` once it has been asked to (scale-in, idle timeout, its task
    /// or lifetime limit), `terminate` once it is being removed. A
    /// heartbeat carrying an interruption notice is answered `drain` at
    /// once: the worker is removed for `interruption`, its offering marked
    /// unavailable and its replacement requested now (recorded once, even
    /// when the provider saw the interruption too).
    pub async fn heartbeat(
        &self,
        secret: &Secret,
        report: HeartbeatRequest,
    ) -> Result<HeartbeatResponse> {
        let worker_id = report.worker_id.as_str();
        let mut took_surplus = false;
        for _ in 0..ATTEMPTS {
            let (mut reg, worker) = self.authenticate(worker_id, secret).await?;
            if let (Some(notice), Some(w)) = (&report.interruption, &worker) {
                if !w.phase.is_final() {
                    return self.interrupted(w, notice, reg.expires).await;
                }
            }
            let Some(worker) = worker.filter(|w| reg.removal.is_none() && live(w)) else {
                return Ok(HeartbeatResponse {
                    action: Action::Terminate,
                    heartbeat_interval_secs: 0,
                    expires: reg.expires,
                });
            };
            let now = self.shared.clock.now();
            let was_idle = reg.is_idle();
            apply_report(&mut reg, &report, worker.spec.capacity, now);
            let asked = reg.drain.is_none();
            if asked {
                reg.drain = due_drain(&reg, &worker, now);
                // Idle now, and its pool's last pass left surplus for it:
                // drain in this answer rather than after the next pass and
                // the next heartbeat.
                if reg.drain.is_none() && reg.is_idle() {
                    took_surplus = took_surplus || self.take_surplus(&worker, !was_idle);
                    if took_surplus {
                        reg.drain = Some(new_drain(DrainReason::ScaleIn, &worker, now));
                    }
                } else if was_idle && !reg.is_idle() {
                    self.idle_turned_busy(&worker);
                }
            }
            match self.shared.store.update_registration(&reg).await {
                Ok(stored) => {
                    if let (true, Some(d)) = (asked, &stored.drain) {
                        events::drain_requested(&worker, d.reason);
                    }
                    return Ok(HeartbeatResponse {
                        action: if stored.drain.is_some() {
                            Action::Drain
                        } else {
                            Action::Continue
                        },
                        heartbeat_interval_secs: worker
                            .spec
                            .lifecycle
                            .heartbeat_interval()
                            .as_secs(),
                        expires: stored.expires,
                    });
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(busy(worker_id))
    }

    /// The agent reports an interruption notice: the worker is removed
    /// (once, whether or not the provider saw it first), its offering
    /// marked and its replacement requested now; the answer is `drain`, so
    /// the agent stops taking work at once.
    async fn interrupted(
        &self,
        worker: &Worker,
        notice: &InterruptionNotice,
        expires: OffsetDateTime,
    ) -> Result<HeartbeatResponse> {
        let interruption = Interruption {
            source: InterruptionSource::Agent,
            detail: notice.action.clone(),
            not_before: notice.not_before,
        };
        self.shared.interrupt(worker.id(), &interruption).await?;
        Ok(HeartbeatResponse {
            action: Action::Drain,
            heartbeat_interval_secs: worker.spec.lifecycle.heartbeat_interval().as_secs(),
            expires,
        })
    }

    /// Takes `worker`'s capacity from what its pool's last pass left
    /// (`finished`: it turned idle in this report), if there is that much.
    fn take_surplus(&self, worker: &Worker, finished: bool) -> bool {
        let mut left = self
            .shared
            .surplus_left
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        left.get_mut(&worker.spec.pool_id)
            .is_some_and(|l| l.take(u64::from(worker.spec.capacity), finished))
    }

    /// `worker` was idle and reports busy: its pool's idle capacity shrank
    /// since the last pass.
    fn idle_turned_busy(&self, worker: &Worker) {
        let mut left = self
            .shared
            .surplus_left
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(l) = left.get_mut(&worker.spec.pool_id) {
            l.idle_turned_busy();
        }
    }

    /// The worker confirms that, asked to drain, it holds no work: it is
    /// removed now. `Conflict` if it was not asked to drain.
    pub async fn drained(&self, worker_id: &str, secret: &Secret) -> Result<DrainedResponse> {
        let terminate = DrainedResponse {
            action: Action::Terminate,
        };
        for _ in 0..ATTEMPTS {
            let (mut reg, _) = self.authenticate(worker_id, secret).await?;
            if reg.removal.is_some() {
                return Ok(terminate);
            }
            let Some(drain) = reg.drain.as_mut() else {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("worker {worker_id} was not asked to drain"),
                ));
            };
            let now = self.shared.clock.now();
            drain.drained_at = Some(now);
            reg.activity = Activity::Draining;
            reg.running = 0;
            reg.capacity_used = 0;
            reg.removal = Some(RemovalReason::Drained.label().to_string());
            match self.shared.store.update_registration(&reg).await {
                Ok(_) => {
                    // The fence is written; the worker record follows (and
                    // the provisioner's pass completes it if this fails).
                    if let Err(e) = self
                        .remove_registered(worker_id, RemovalReason::Drained)
                        .await
                    {
                        tracing::debug!(worker = worker_id, error = %e, "drained worker not marked yet");
                    }
                    return Ok(terminate);
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(busy(worker_id))
    }

    /// The worker's registration and record, if `secret` is its current,
    /// unexpired secret; the one refusal otherwise.
    async fn authenticate(
        &self,
        worker_id: &str,
        secret: &Secret,
    ) -> Result<(Registration, Option<Worker>)> {
        let Some(reg) = self.shared.store.get_registration(worker_id).await? else {
            return Err(refuse_unknown(worker_id, identity::UNKNOWN_WORKER));
        };
        if !worker_secret::matches(worker_id, secret, &reg.secret_sha256) {
            return Err(refuse_unknown(worker_id, BAD_SECRET));
        }
        if self.shared.clock.now() >= reg.expires {
            return Err(refuse_unknown(worker_id, SECRET_EXPIRED));
        }
        let worker = self.shared.store.get_worker(worker_id).await?;
        Ok((reg, worker))
    }

    /// Sets `registered_at` on the worker record (and, with `due_now`, makes
    /// a still requested worker due now), retrying a bounded number of
    /// times.
    async fn mark_registered(
        &self,
        worker_id: &str,
        now: OffsetDateTime,
        due_now: bool,
    ) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let Some(mut w) = self.shared.store.get_worker(worker_id).await? else {
                return Err(refuse_unknown(worker_id, identity::UNKNOWN_WORKER));
            };
            let first = w.registered_at.is_none();
            w.registered_at = Some(now);
            if first {
                w.transitioned_at = Some(now);
            }
            if due_now && w.phase == Phase::Requested {
                w.next_check_at = w.next_check_at.min(now);
            }
            match self.shared.store.update_worker(&w).await {
                Ok(stored) => {
                    if first {
                        events::emit(&stored, &Transition::Registered);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(busy(worker_id))
    }

    /// Marks a worker whose registration already carries the removal fence
    /// for removal, retrying a bounded number of times.
    pub(super) async fn remove_registered(
        &self,
        worker_id: &str,
        reason: RemovalReason,
    ) -> Result<()> {
        for _ in 0..ATTEMPTS {
            let Some(mut w) = self.shared.store.get_worker(worker_id).await? else {
                return Ok(());
            };
            if !live(&w) {
                return Ok(());
            }
            mark_removed(&mut w, reason, self.shared.clock.now());
            match self.shared.store.update_worker(&w).await {
                Ok(stored) => {
                    events::emit(
                        &stored,
                        &Transition::Removed {
                            reason,
                            scale: None,
                        },
                    );
                    return Ok(());
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(busy(worker_id))
    }
}

/// Whether a worker is still meant to run.
fn live(w: &Worker) -> bool {
    w.desired == crate::model::DesiredState::Running && !w.phase.is_final()
}

fn busy(worker_id: &str) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("worker {worker_id} kept changing; try again"),
    )
}

/// Folds a heartbeat's report into the registration.
pub(crate) fn apply_report(
    reg: &mut Registration,
    report: &HeartbeatRequest,
    capacity: u32,
    now: OffsetDateTime,
) {
    reg.last_heartbeat_at = now;
    reg.activity = report.state;
    reg.running = report.running;
    reg.capacity_used = report.capacity_used.min(capacity);
    reg.tasks_completed = report.tasks_completed;
    let working = report.state == Activity::Busy || report.running > 0 || report.capacity_used > 0;
    if working {
        reg.last_busy_at = Some(now);
        reg.idle_since = None;
    } else if reg.idle_since.is_none() {
        reg.idle_since = Some(now);
    }
}

/// A drain the worker's own limits call for now: its task count or its
/// lifetime.
pub(crate) fn due_drain(reg: &Registration, worker: &Worker, now: OffsetDateTime) -> Option<Drain> {
    let l = &worker.spec.lifecycle;
    let reason = if l.max_tasks.is_some_and(|n| reg.tasks_completed >= n) {
        DrainReason::MaxTasks
    } else if l
        .max_lifetime
        .is_some_and(|d| now >= worker.running_at.unwrap_or(worker.created_at) + d)
    {
        DrainReason::MaxLifetime
    } else {
        return None;
    };
    Some(new_drain(reason, worker, now))
}

/// A drain for `reason` asked at `now`, with the pool's drain deadline.
pub(crate) fn new_drain(reason: DrainReason, worker: &Worker, now: OffsetDateTime) -> Drain {
    Drain {
        reason,
        requested_at: now,
        deadline: worker.spec.lifecycle.drain_timeout.map(|d| now + d),
        drained_at: None,
    }
}
