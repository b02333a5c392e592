//! The chain: public IP -> NIC -> data disks -> VM, and its teardown, as a
//! resumable state machine persisted in the worker's provider state.
//!
//! - [`state`]: what is persisted, the creation and teardown orders;
//! - [`advance`]: one function moving one resource forward, either way;
//! - [`create`] and [`teardown`]: the two directions over the whole chain;
//! - [`health`]: the instance view of a running worker;
//! - [`status_list`]: the power-state snapshot that answers many running
//!   workers' health checks with one listing.
//!
//! # Creation
//!
//! The first step derives every name from the worker id
//! ([`Names`](crate::idempotency::Names)) and, in the same step, PUTs the
//! first resource; the names are in the state that step returns. Each later
//! step looks at the first resource not yet created: if its operation is due
//! it polls it (a read); when the poll says `Succeeded` the same step PUTs
//! the next resource (the step's one mutating call), so a chain advances as
//! soon as ARM allows, paced by `Retry-After` rather than by scan passes.
//! When the VM's operation succeeds the worker is `Running`.
//!
//! # Crashes
//!
//! A step's answer may be lost (the process dies after sending a request and
//! before the state is persisted). The next process steps from the previous
//! state and repeats at most that one request, which is safe because ARM
//! creates by name: the PUT lands on the resource the lost request created
//! (or answers 409 while it is still being created, in which case the chain
//! watches the resource itself). A resource is only PUT once every resource
//! before it is confirmed, so at any time at most the first unconfirmed
//! resource and the one after it (a lost step may have confirmed the first
//! and PUT the next) may exist unrecorded: teardown deletes (by name)
//! everything up to those, and a DELETE answered 404 counts as done.
//!
//! # Teardown
//!
//! VM -> NIC -> public IP -> data disks -> OS disk, each a DELETE and its
//! operation. When every dependent was created with `deleteOption: Delete`
//! and the VM was created, one VM delete removes them all. `NicInUse`,
//! `AnotherOperationInProgress` and other "busy" answers mean "again
//! later", never failure. The worker is `Stopped` (or `Failed`, when
//! teardown followed a failure) only once every resource is gone.
//!
//! # Failure and deadlines
//!
//! A failed operation (with its ARM code, capacity codes classified as
//! `CapacityOrQuota`), a refused PUT, a missed provisioning deadline (the
//! whole chain has one: Taskcluster #7422), a stopped or vanished VM: each
//! records the error and tears down what was created. A spot VM found
//! deallocated or gone while running was evicted: the step that sees it
//! carries the [`Interruption`](skyfleet_core::offering::Interruption).

mod advance;
mod create;
mod health;
pub(crate) mod state;
mod status_list;
mod teardown;

use std::time::Duration;

use skyfleet_core::clock::Clock;
use skyfleet_core::provider::StepError;
use skyfleet_core::{DesiredState, Error, ErrorKind, Phase, Result, Step, Worker};
use time::OffsetDateTime;

pub use state::ChainState;
pub(crate) use status_list::{PowerStates, Snapshot, DEFAULT_MAX_AGE};

use crate::builder::Settings;
use crate::client::ArmClient;
use crate::launch::AzureLaunch;

/// What a step needs of the provider: the ARM client, the settings and the
/// clock.
pub(crate) struct Ctx<'a> {
    /// ARM requests.
    pub client: &'a ArmClient,
    /// Polling, pacing and health settings.
    pub config: &'a Settings,
    /// The clock of deadlines and schedules.
    pub clock: &'a dyn Clock,
}

impl Ctx<'_> {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

/// A step's answer: the state, the phase, when to step again, what to report.
fn out(st: &ChainState, phase: Phase, next: Duration, err: Option<StepError>) -> Result<Step> {
    Ok(Step {
        state: serde_json::to_value(st)?,
        phase,
        next_check_in: next,
        error: err,
        interruption: None,
    })
}

/// Records `e`, starts the teardown, and answers `Stopping` at once.
fn fail(st: &mut ChainState, e: &Error) -> Result<Step> {
    st.fail(e);
    out(st, Phase::Stopping, Duration::ZERO, Some(e.into()))
}

/// A running worker whose next step is its health check: its state and
/// whether its VM is spot.
pub(crate) struct HealthDue {
    st: ChainState,
    spot: bool,
}

/// The health check `worker`'s step would make, if that is what it would
/// do: the worker is running, not being removed, its chain created and no
/// teardown begun (the branches of [`step`] that lead to [`health::step`]).
pub(crate) fn health_due(worker: &Worker) -> Option<HealthDue> {
    if worker.phase != Phase::Running || worker.desired == DesiredState::Removed {
        return None;
    }
    // A state that does not parse is [`step`]'s to report.
    let st = ChainState::from_worker(worker).ok().flatten()?;
    if st.teardown.is_some() || !st.create.iter().all(|l| l.done) {
        return None;
    }
    let spot = AzureLaunch::parse(&worker.spec.launch).is_ok_and(|l| l.is_spot());
    Some(HealthDue { st, spot })
}

/// The health check of `due` (for `worker`): healthy without a call when
/// `snapshot` shows its VM running for the worker's manager, else the VM's
/// own instance view.
pub(crate) async fn check(
    cx: &Ctx<'_>,
    worker: &Worker,
    mut due: HealthDue,
    snapshot: Option<&Snapshot>,
) -> Result<Step> {
    let tags = &worker.spec.tags;
    let good = snapshot.is_some_and(|s| {
        s.healthy(
            &due.st.resource_group,
            &due.st.names.vm,
            &tags.manager_id,
            &tags.provider_id,
        )
    });
    if good {
        // The VM exists and runs: as a good instance view, the 404 streak ends.
        due.st.instance_view_404s = 0;
        return out(&due.st, Phase::Running, cx.config.health_interval, None);
    }
    health::step(cx, due.st, due.spot).await
}

/// One step of a worker (see the module doc).
pub(crate) async fn step(cx: &Ctx<'_>, worker: &Worker) -> Result<Step> {
    if let Some(due) = health_due(worker) {
        return check(cx, worker, due, None).await;
    }
    let now = cx.now();
    let mut st = match ChainState::from_worker(worker)? {
        Some(st) => st,
        None => {
            if worker.desired == DesiredState::Removed {
                // Nothing was ever requested.
                return Ok(Step::new(
                    serde_json::Value::Null,
                    Phase::Stopped,
                    Duration::ZERO,
                ));
            }
            let launch = match AzureLaunch::parse(&worker.spec.launch) {
                Ok(l) => l,
                Err(e) => {
                    return Ok(
                        Step::new(serde_json::Value::Null, Phase::Failed, Duration::ZERO)
                            .with_error(&e),
                    )
                }
            };
            let rg = cx.config.resource_group_for(&launch)?;
            ChainState::new(worker.id(), &launch, rg)
        }
    };
    if st.teardown.is_none() {
        if worker.desired == DesiredState::Removed {
            st.begin_teardown("removal requested");
        } else if worker.phase == Phase::Requested && now >= worker.provisioning_deadline() {
            let e = Error::new(
                ErrorKind::Timeout,
                format!(
                    "worker {} was not running within its provisioning deadline ({} s)",
                    worker.id(),
                    worker.spec.lifecycle.provisioning_deadline.as_secs()
                ),
            )
            .with_code("ProvisioningDeadlineExceeded")
            .with_provider("azure");
            return fail(&mut st, &e);
        }
    }
    if st.teardown.is_some() {
        return teardown::step(cx, worker, st).await;
    }
    if st.create.iter().all(|l| l.done) && worker.phase == Phase::Running {
        // Not reached for workers [`health_due`] takes; kept for any it
        // might miss.
        let spot = AzureLaunch::parse(&worker.spec.launch).is_ok_and(|l| l.is_spot());
        return health::step(cx, st, spot).await;
    }
    create::step(cx, worker, st).await
}
