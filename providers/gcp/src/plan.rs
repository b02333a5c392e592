//! The step machine's first half: [`plan`], a pure function of a worker, its
//! state and the time, says what one step must do.
//!
//! A worker's life, each line one step with at most one mutating call:
//!
//! 1. persist the instance name (`{worker id}-vm`) and zone;
//! 2. `instances.insert` with a `requestId` derived from the worker id,
//!    ownership labels, scheduling (spot, preemptible), service account and
//!    metadata (with the worker's bootstrap document as item `taskcluster`,
//!    see [`skyfleet_core::Bootstrap`]); keep the zone operation as an [`Operation`] handle;
//! 3. poll the operation (`zoneOperations.get`) on the handle's backoff
//!    schedule, Compute giving no `Retry-After`; a failed operation is
//!    classified by its error code and leads to teardown;
//! 4. check the instance: `PROVISIONING`/`STAGING` booting, `RUNNING`
//!    running, `STOPPING`/`TERMINATED`/`STOPPED`/`SUSPENDED` dead (torn down,
//!    ending `Stopped`); `step_many` answers this with one `instances.list`
//!    per zone, filtered by the manager label, instead of one
//!    `instances.get` per worker;
//! 5. teardown: `instances.delete` with its own `requestId` (404 = gone),
//!    poll its operation, confirm the instance is gone.
//!
//! A worker still provisioning at its provisioning deadline is torn down
//! and ends `Failed`. What the answers mean is [`crate::decide`]'s.
//!
//! [`Operation`]: skyfleet_core::Operation

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use skyfleet_core::provider::bootstrap::GCE_METADATA_KEY;
use skyfleet_core::{DesiredState, Error, ErrorKind, OperationStatus, Phase, Result, Step, Worker};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::classify;
use crate::idempotency::{instance_name, request_id, Purpose};
use crate::labels;
use crate::launch::GceLaunch;
use crate::state::{GceState, Teardown};

/// What one step of a worker must do.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Nothing to call: the answer.
    Done(Result<Step>),
    /// Send `instances.insert`.
    Insert {
        /// The state to advance.
        st: GceState,
        /// The zone.
        zone: String,
        /// The instance name.
        name: String,
        /// The request body.
        body: Value,
        /// The insert's `requestId`.
        request_id: Uuid,
    },
    /// Send `instances.delete`.
    Delete {
        /// The state to advance.
        st: GceState,
        /// The zone.
        zone: String,
        /// The instance name.
        name: String,
        /// The delete's `requestId`.
        request_id: Uuid,
    },
    /// Poll the insert's or the delete's zone operation once.
    Poll {
        /// The state to advance.
        st: GceState,
        /// The zone.
        zone: String,
        /// Which operation.
        purpose: Purpose,
    },
    /// Read the instance (one list may answer many workers), then decide.
    Look {
        /// The state to advance.
        st: GceState,
        /// The zone.
        zone: String,
        /// The instance name.
        name: String,
        /// Why it is read.
        why: Look,
    },
}

/// Why a step reads the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// The worker should run: is it booting, running or dead?
    Check,
    /// The delete is done: is the instance gone?
    Confirm,
}

impl Plan {
    /// The zone the step works in, which the provider remembers for
    /// `list_owned` (a resumed process learns the zones from its workers).
    pub(crate) fn zone(&self) -> Option<&str> {
        match self {
            Plan::Done(Ok(s)) => s.state.get("zone").and_then(Value::as_str),
            Plan::Done(Err(_)) => None,
            Plan::Insert { zone, .. }
            | Plan::Delete { zone, .. }
            | Plan::Poll { zone, .. }
            | Plan::Look { zone, .. } => Some(zone),
        }
    }
}

/// The step that persists `st` in `phase`, next stepped after `next`.
pub(crate) fn step(st: &GceState, phase: Phase, next: Duration) -> Result<Step> {
    Ok(Step::new(serde_json::to_value(st)?, phase, next))
}

/// The step that ends a teardown: its recorded phase and error, or
/// `Stopped` for a plain removal.
pub(crate) fn finish(st: &GceState) -> Result<Step> {
    match &st.teardown {
        Some(t) => {
            let mut s = step(st, t.final_phase, Duration::ZERO)?;
            s.error = Some(t.step_error());
            Ok(s)
        }
        None => step(st, Phase::Stopped, Duration::ZERO),
    }
}

/// `st` torn down because of `e`, ending `final_phase`: the step.
pub(crate) fn tear_down(mut st: GceState, e: &Error, final_phase: Phase) -> Result<Step> {
    st.teardown = Some(Teardown::from_error(e, final_phase));
    Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(e))
}

/// `st` with its delete to be sent again under a new `requestId` (the old
/// one would answer the failed or lost operation).
pub(crate) fn retry_delete(mut st: GceState) -> GceState {
    st.delete_attempt += 1;
    st.delete_sent = false;
    st.delete_op = None;
    st
}

/// What one step of `worker` must do at `now`, in `project`; a delete whose
/// operation failed is sent again after `poll_min`; an insert carries the
/// worker's bootstrap document pointing at `root_url`.
pub(crate) fn plan(
    project: &str,
    poll_min: Duration,
    root_url: Option<&str>,
    worker: &Worker,
    now: OffsetDateTime,
) -> Plan {
    let mut st = match GceState::of(worker) {
        Ok(s) => s,
        Err(e) => return Plan::Done(Err(e)),
    };
    let Some(name) = st.name.clone() else {
        if worker.desired == DesiredState::Removed {
            // Nothing was ever sent.
            return Plan::Done(step(&st, Phase::Stopped, Duration::ZERO));
        }
        return Plan::Done(match GceLaunch::parse(&worker.spec.launch) {
            // It will never become valid: nothing was created.
            Err(e) => step(&st, Phase::Failed, Duration::ZERO).map(|s| s.with_error(&e)),
            Ok(launch) => {
                // Persisted before the insert that uses them.
                st.name = Some(instance_name(worker.id()));
                st.zone = Some(launch.zone);
                step(&st, Phase::Requested, Duration::ZERO)
            }
        });
    };
    let Some(zone) = st.zone.clone() else {
        return Plan::Done(Err(Error::internal("gcp state has a name but no zone")));
    };
    if worker.phase == Phase::Requested
        && now >= worker.provisioning_deadline()
        && st.teardown.is_none()
        && worker.desired == DesiredState::Running
    {
        let e = Error::new(
            ErrorKind::Timeout,
            format!(
                "instance {name} was not running within the provisioning deadline ({} s)",
                worker.spec.lifecycle.provisioning_deadline.as_secs()
            ),
        )
        .with_code("ProvisioningDeadline");
        return Plan::Done(tear_down(st, &e, Phase::Failed));
    }
    if worker.desired == DesiredState::Removed || st.teardown.is_some() {
        return plan_teardown(project, poll_min, worker, st, zone, name);
    }
    if !st.insert_sent {
        let launch = match GceLaunch::parse(&worker.spec.launch) {
            Ok(l) => l,
            Err(e) => {
                return Plan::Done(
                    step(&st, Phase::Failed, Duration::ZERO).map(|s| s.with_error(&e)),
                )
            }
        };
        let owner = labels::ownership(&worker.spec.tags);
        let metadata = BTreeMap::from([
            ("skyfleet-worker-id".to_string(), worker.id().to_string()),
            ("skyfleet-pool-id".to_string(), worker.spec.pool_id.clone()),
            (
                GCE_METADATA_KEY.to_string(),
                launch.bootstrap(&worker.spec, root_url).to_json_string(),
            ),
        ]);
        let body = launch.instance_body(&name, &owner, &metadata);
        // One insert per worker: a worker whose instance is lost is
        // replaced by a new worker, never re-inserted.
        let request_id = request_id(project, worker.id(), Purpose::Insert, 0);
        return Plan::Insert {
            st,
            zone,
            name,
            body,
            request_id,
        };
    }
    if st.insert_pending() {
        return Plan::Poll {
            st,
            zone,
            purpose: Purpose::Insert,
        };
    }
    Plan::Look {
        st,
        zone,
        name,
        why: Look::Check,
    }
}

/// What a step of a worker being torn down must do.
fn plan_teardown(
    project: &str,
    poll_min: Duration,
    worker: &Worker,
    st: GceState,
    zone: String,
    name: String,
) -> Plan {
    if st.foreign {
        // The name is held by a stranger's instance: never delete it.
        return Plan::Done(finish(&st));
    }
    if !st.delete_sent {
        // Sent even when no insert was recorded: the insert may have
        // landed just before a crash.
        let request_id = request_id(project, worker.id(), Purpose::Delete, st.delete_attempt);
        return Plan::Delete {
            st,
            zone,
            name,
            request_id,
        };
    }
    if st.delete_pending() {
        return Plan::Poll {
            st,
            zone,
            purpose: Purpose::Delete,
        };
    }
    if let Some(OperationStatus::Failed { code, message }) =
        st.delete_op.as_ref().map(|o| o.status.clone())
    {
        let e = classify::operation_error(&code, &message);
        let st = retry_delete(st);
        return Plan::Done(step(&st, Phase::Stopping, poll_min).map(|s| s.with_error(&e)));
    }
    Plan::Look {
        st,
        zone,
        name,
        why: Look::Confirm,
    }
}
