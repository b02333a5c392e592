//! The [`Provider`] trait: one cloud (or static machines) behind one interface.
//!
//! A provider does not run loops. The fleet runtime (or any caller) hands it a
//! worker record and asks it to take **one step** toward the record's desired
//! state. A step makes at most one mutating cloud call, reads whatever it needs,
//! and answers with the new provider state, phase and when to look again. The
//! caller persists that answer before the next step. This is what makes every
//! workflow resumable: if the process dies between two steps, the next process
//! reads the last persisted state and repeats at most one idempotent call
//! (ARM PUT by name, EC2 `ClientToken`, GCE `requestId`), whose names and
//! tokens derive from the worker id.
//!
//! Callers that want plain create / check / remove verbs use [`ProviderExt`],
//! which drives steps in a loop.
//!
//! [`support`] holds what every cloud's implementation shares (pagination,
//! batched fan-out, operation polling, secrets, token caching, the request
//! shape), [`names`] the provider type names, and [`identity`] the proofs a
//! machine presents when it registers ([`Provider::verify_identity`]), and
//! [`bootstrap`] the document a provider gives each machine so its agent
//! knows who it is and where its manager is.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::failure::Failure;
use crate::model::{DesiredState, LaunchConfig, OwnedResource, OwnershipScope, Phase, Worker};
use crate::offering::{CapacityType, Interruption, Offering};

pub mod bootstrap;
pub mod identity;
pub mod names;
pub mod support;

pub use bootstrap::{Bootstrap, BootstrapError};
pub use identity::{IdentityProof, VerifiedIdentity};

/// The answer to one [`Provider::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The provider's new resumable state, to persist on the worker.
    pub state: serde_json::Value,
    /// The worker's new phase.
    pub phase: Phase,
    /// How long until the worker should be stepped again (ignored in a final
    /// phase).
    pub next_check_in: Duration,
    /// A failure the step observed and handled (for example a failed cloud
    /// operation whose resources are now being torn down), for the record.
    pub error: Option<StepError>,
    /// An interruption the step saw (the cloud reclaimed a spot or
    /// preemptible worker's capacity, or announced it will): the runtime
    /// marks the worker's offering unavailable and replaces the worker at
    /// once.
    pub interruption: Option<Interruption>,
}

/// An error a step handled, for the worker's record (unstamped until the
/// step is applied; see [`apply_step`]). Its [`ErrorKind`] says whether it
/// came from capacity or quota, so a provisioner can steer away from that
/// launch config.
pub type StepError = Failure;

impl Step {
    /// A step that stays in `phase` with `state`, to be looked at again after
    /// `next_check_in`.
    pub fn new(state: serde_json::Value, phase: Phase, next_check_in: Duration) -> Self {
        Step {
            state,
            phase,
            next_check_in,
            error: None,
            interruption: None,
        }
    }

    /// Records an interruption the step saw.
    pub fn with_interruption(mut self, interruption: Interruption) -> Self {
        self.interruption = Some(interruption);
        self
    }

    /// Records a handled error on the step.
    pub fn with_error(mut self, error: &Error) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// One cloud (or set of static machines) behind one interface.
///
/// Implementations must be object safe (`Arc<dyn Provider>`) and obey:
/// - `step` makes **at most one mutating cloud call**;
/// - every name and idempotency token derives from the worker id and is in
///   the returned state before (or in the same step as) the call that uses it;
/// - an `Err` from `step` means "nothing changed that the state must
///   remember" (the caller keeps the old state and retries later); a step
///   that did mutate something returns `Ok` with a state that records it;
/// - a state the provider cannot parse is an error for that worker only.
#[async_trait]
pub trait Provider: Send + Sync + Debug {
    /// The provider id, unique within a fleet (`aws-us-east-1`, `azure`).
    fn id(&self) -> &str;

    /// The provider type (`aws`, `azure`, `gcp`, `static`, `testing`).
    fn kind(&self) -> &'static str;

    /// Checks a launch config before any worker uses it. Errors are
    /// [`ErrorKind::InvalidConfig`] naming the field; nothing is created.
    fn validate(&self, launch: &serde_json::Value) -> Result<()>;

    /// The scheduling partition of a worker (its region), so the runtime can
    /// run one scanner per region. `None`: one partition for the provider.
    fn partition(&self, _worker: &Worker) -> Option<String> {
        None
    }

    /// The offering a launch config draws on: where its capacity comes from
    /// (region or zone, instance type, on-demand or spot) and the quota it
    /// shares. Called on validated launch configs. The default, for
    /// providers without such notions: the provider, no location, the
    /// launch config's id as the type, on demand, no quota scope.
    fn offering(&self, lc: &LaunchConfig) -> Result<Offering> {
        Ok(Offering {
            provider_id: self.id().to_string(),
            location: String::new(),
            instance_type: lc.id.clone(),
            capacity_type: CapacityType::OnDemand,
            quota_scope: None,
        })
    }

    /// Advances `worker` one step toward its desired state.
    async fn step(&self, worker: &Worker) -> Result<Step>;

    /// How many workers one [`Provider::step_many`] call may take. The
    /// default, 1, means the runtime steps each worker on its own, under its
    /// own timeout, so one hung call costs one worker's step. Providers that
    /// batch reads in `step_many` raise it to their batch size.
    fn batch_limit(&self) -> usize {
        1
    }

    /// Advances several workers of one partition. The default steps them one
    /// by one; providers whose cloud can describe many resources in one call
    /// (EC2 DescribeInstances, GCE instances.list) override it to batch reads,
    /// and [`Provider::batch_limit`] to say how many to hand it at once.
    /// The answer has one entry per input worker, in order.
    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let mut out = Vec::with_capacity(workers.len());
        for w in workers {
            out.push(self.step(w).await);
        }
        out
    }

    /// Every resource in the cloud carrying this scope's ownership tags.
    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>>;

    /// Deletes one resource found by [`Provider::list_owned`] (orphan sweep).
    /// Idempotent: a resource already gone is success.
    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()>;

    /// Adds (or overwrites) `tags` on one resource found by
    /// [`Provider::list_owned`], keeping its other tags: how the sweeper
    /// adopts resources made before store ids (see
    /// [`tag::STORE`](crate::model::tag::STORE)). The default refuses with
    /// an [`ErrorKind::InvalidConfig`] error coded `TaggingUnsupported`.
    async fn tag_owned(
        &self,
        resource: &OwnedResource,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        let _ = tags;
        Err(Error::invalid_config(
            format!("providers.{}", self.id()),
            format!(
                "provider `{}` ({}) cannot tag resources; {} was not tagged",
                self.id(),
                self.kind(),
                resource.id
            ),
        )
        .with_code("TaggingUnsupported"))
    }

    /// Checks that `proof` shows the machine presenting it to be `worker`'s:
    /// the proof's signature against the cloud's trust roots, then its
    /// facts against what this provider stored for the worker.
    ///
    /// Every rejection is an [`ErrorKind::IdentityRejected`] error with the
    /// same message whatever failed (see [`identity::rejected`]); other
    /// errors mean the check could not be made (the cloud did not answer).
    /// The default rejects every proof: a provider that issues no identity
    /// verifies none.
    async fn verify_identity(
        &self,
        worker: &Worker,
        proof: &IdentityProof,
    ) -> Result<VerifiedIdentity> {
        let _ = proof;
        Err(identity::rejected(
            self.id(),
            worker,
            identity::WRONG_PROOF_TYPE,
        ))
    }
}

/// Create / check / remove verbs on top of [`Provider::step`], for callers
/// that drive a worker in-process rather than through the fleet runtime.
#[async_trait]
pub trait ProviderExt {
    /// Steps `worker` (applying each answer to it, as a store would) until it
    /// reaches a phase in `until` or a final phase, sleeping between steps as
    /// the provider asks. Gives up with [`ErrorKind::Timeout`] after
    /// `deadline`, and after `max_errors` step errors in a row.
    async fn drive(
        &self,
        worker: &mut Worker,
        until: &[Phase],
        clock: &dyn Clock,
        deadline: Duration,
        max_errors: u32,
    ) -> Result<()>;

    /// Drives a new worker to `Running`.
    async fn create(
        &self,
        worker: &mut Worker,
        clock: &dyn Clock,
        deadline: Duration,
    ) -> Result<()>;

    /// Sets the desired state to removed and drives the worker to a final phase.
    async fn remove(
        &self,
        worker: &mut Worker,
        clock: &dyn Clock,
        deadline: Duration,
    ) -> Result<()>;
}

/// Applies a step's answer to a worker record, as the runtime does before
/// persisting it.
pub fn apply_step(worker: &mut Worker, step: &Step, now: OffsetDateTime) {
    worker.provider_state = step.state.clone();
    if step.phase == Phase::Running && worker.running_at.is_none() {
        worker.running_at = Some(now);
    }
    worker.phase = step.phase;
    worker.next_check_at = now + step.next_check_in;
    if let Some(e) = &step.error {
        let mut e = e.clone();
        e.at.get_or_insert(now);
        worker.last_error = Some(e);
    }
}

#[async_trait]
impl<P: Provider + ?Sized> ProviderExt for P {
    async fn drive(
        &self,
        worker: &mut Worker,
        until: &[Phase],
        clock: &dyn Clock,
        deadline: Duration,
        max_errors: u32,
    ) -> Result<()> {
        let give_up = clock.now() + deadline;
        let mut errors = 0u32;
        loop {
            if until.contains(&worker.phase) || worker.phase.is_final() {
                return Ok(());
            }
            let now = clock.now();
            if now >= give_up {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "worker {} did not reach {until:?} within {} s (phase {:?})",
                        worker.id(),
                        deadline.as_secs(),
                        worker.phase
                    ),
                ));
            }
            let wait = crate::clock::until(now, worker.next_check_at);
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(crate::clock::until(now, give_up))).await;
                continue;
            }
            match self.step(worker).await {
                Ok(step) => {
                    errors = 0;
                    apply_step(worker, &step, clock.now());
                }
                Err(e) => {
                    errors += 1;
                    if errors >= max_errors || !e.is_retryable() {
                        return Err(e);
                    }
                    let backoff = e
                        .retry_after()
                        .unwrap_or(Duration::from_millis(100) * 2u32.pow(errors.min(8)));
                    worker.next_check_at = clock.now() + backoff;
                }
            }
        }
    }

    async fn create(
        &self,
        worker: &mut Worker,
        clock: &dyn Clock,
        deadline: Duration,
    ) -> Result<()> {
        self.drive(worker, &[Phase::Running], clock, deadline, 10)
            .await?;
        match worker.phase {
            Phase::Running => Ok(()),
            p => Err(Error::new(
                ErrorKind::OperationFailed,
                format!("worker {} ended {p:?} instead of running", worker.id()),
            )),
        }
    }

    async fn remove(
        &self,
        worker: &mut Worker,
        clock: &dyn Clock,
        deadline: Duration,
    ) -> Result<()> {
        worker.desired = DesiredState::Removed;
        worker.next_check_at = clock.now();
        if worker.phase.is_final() {
            return Ok(());
        }
        self.drive(worker, &[], clock, deadline, 10).await
    }
}

/// A shared, dynamically chosen provider.
pub type DynProvider = Arc<dyn Provider>;
