//! The step machine's second half: pure functions turning the answer of the
//! call a [`Plan`](crate::plan::Plan) asked for into the worker's step.

use std::time::Duration;

use skyfleet_core::clock::until;
use skyfleet_core::model::tag;
use skyfleet_core::offering::{CapacityType, Interruption, InterruptionSource};
use skyfleet_core::provider::names::GCP;
use skyfleet_core::{
    Error, ErrorKind, Failure, FinalState, Operation, OperationStatus, Phase, PollPolicy, Result,
    Step, Worker,
};
use time::OffsetDateTime;

use crate::builder::Settings;
use crate::classify;
use crate::client::{Instance, ZoneOperation};
use crate::idempotency::Purpose;
use crate::labels;
use crate::launch::GceLaunch;
use crate::plan::{finish, retry_delete, step, tear_down};
use crate::state::GceState;

/// Statuses of an instance that is booting.
fn booting(status: &str) -> bool {
    matches!(status, "PROVISIONING" | "STAGING" | "PENDING" | "REPAIRING")
}

/// Statuses of an instance that is dead or dying (preempted, stopped).
fn dead(status: &str) -> bool {
    matches!(
        status,
        "STOPPING" | "TERMINATED" | "STOPPED" | "SUSPENDING" | "SUSPENDED" | "DEPROVISIONING"
    )
}

/// The detail of a GCE preemption.
pub const PREEMPTED: &str = "preempted";

/// Whether `worker` runs on spot capacity (a Spot or preemptible VM).
fn is_spot(worker: &Worker) -> bool {
    GceLaunch::parse(&worker.spec.launch).is_ok_and(|l| l.capacity_type() == CapacityType::Spot)
}

/// The interruption of a preempted worker, as the provider sees it.
fn preempted() -> Interruption {
    Interruption {
        source: InterruptionSource::Provider,
        detail: PREEMPTED.to_string(),
        not_before: None,
    }
}

/// The status an operation's answer tells.
fn status_of(op: &ZoneOperation) -> OperationStatus {
    if !op.is_done() {
        return OperationStatus::InProgress;
    }
    match op.failure() {
        None => OperationStatus::Succeeded,
        Some((code, message)) => OperationStatus::Failed { code, message },
    }
}

/// A handle for a zone operation just answered to a `method` request.
fn handle(op: &ZoneOperation, method: &str, now: OffsetDateTime, poll: &PollPolicy) -> Operation {
    let mut h = Operation::start(op.name.clone(), method, FinalState::None, None, now, poll);
    if op.is_done() {
        h.status = status_of(op);
    }
    h
}

/// Whether `inst` is `worker`'s (by its worker label).
pub(crate) fn owns(worker: &Worker, inst: &Instance) -> bool {
    inst.labels.get(tag::WORKER).map(String::as_str) == Some(&labels::value(worker.id()))
}

/// The insert was answered with `op`.
pub(crate) fn inserted(
    poll: &PollPolicy,
    mut st: GceState,
    op: &ZoneOperation,
    now: OffsetDateTime,
) -> Result<Step> {
    st.insert_sent = true;
    st.instance_id = op.target_id.clone();
    let h = handle(op, "POST", now, poll);
    let next = h.wait(now);
    st.insert_op = Some(h);
    if op.is_done() {
        if let Some((code, message)) = op.failure() {
            let e = classify::operation_error(&code, &message);
            return tear_down(st, &e, Phase::Failed);
        }
        return step(&st, Phase::Requested, Duration::ZERO);
    }
    step(&st, Phase::Requested, next)
}

/// The insert was refused with `e` (other than `AlreadyExists`, see
/// [`name_taken`]).
pub(crate) fn insert_refused(st: &GceState, e: Error) -> Result<Step> {
    match e.kind() {
        // Refused outright: nothing was created (a replay of an accepted
        // request id would have answered its operation).
        ErrorKind::CapacityOrQuota | ErrorKind::InvalidConfig { .. } => {
            Ok(step(st, Phase::Failed, Duration::ZERO)?.with_error(&e))
        }
        _ => Err(e),
    }
}

/// The insert was refused with `AlreadyExists` (`e`) and the name holds
/// `found`: this worker's instance (inserted longer ago than Compute
/// remembers request ids) or a stranger's.
pub(crate) fn name_taken(
    worker: &Worker,
    mut st: GceState,
    e: Error,
    found: Option<Instance>,
) -> Result<Step> {
    match found {
        Some(i) if owns(worker, &i) => {
            st.insert_sent = true;
            st.instance_id = i.id;
            step(&st, Phase::Requested, Duration::ZERO)
        }
        Some(_) => {
            st.foreign = true;
            Ok(step(&st, Phase::Failed, Duration::ZERO)?.with_error(&e))
        }
        None => Err(e),
    }
}

/// The delete was answered with `op`, or `None` (404: nothing to delete).
pub(crate) fn deleted(
    poll: &PollPolicy,
    mut st: GceState,
    op: Option<&ZoneOperation>,
    now: OffsetDateTime,
) -> Result<Step> {
    let Some(op) = op else {
        return finish(&st);
    };
    st.delete_sent = true;
    let h = handle(op, "DELETE", now, poll);
    let next = if h.status.is_terminal() {
        Duration::ZERO
    } else {
        h.wait(now)
    };
    st.delete_op = Some(h);
    step(&st, Phase::Stopping, next)
}

/// What one poll of an operation concluded.
enum Polled {
    /// Still running: poll again after this long (with the poll error seen,
    /// if any).
    Pending(Duration, Option<Failure>),
    /// Succeeded (or no longer known, or given up); the target id if the
    /// answer had one.
    Done(Option<String>),
    /// Failed (or past its deadline), classified.
    Failed(Error),
}

/// Records one poll's `answer` on the operation handle in `slot`.
fn record(
    poll: &PollPolicy,
    slot: &mut Option<Operation>,
    answer: Result<Option<ZoneOperation>>,
    now: OffsetDateTime,
) -> Polled {
    let Some(h) = slot.as_mut() else {
        return Polled::Done(None);
    };
    match answer {
        Ok(Some(op)) => {
            let failure = op.failure();
            match h.record_status(status_of(&op), None, now, poll) {
                Ok(()) if h.status.is_terminal() => Polled::Done(op.target_id),
                Ok(()) => Polled::Pending(h.wait(now), None),
                Err(e) => Polled::Failed(match failure {
                    Some((code, message)) => classify::operation_error(&code, &message),
                    None => e.with_provider(GCP),
                }),
            }
        }
        Ok(None) => {
            // Compute no longer knows the operation: the resource itself
            // tells what happened.
            *slot = None;
            Polled::Done(None)
        }
        Err(e) => {
            let seen = Failure::from(&e);
            match h.record_poll_error(e, now, poll) {
                Ok(()) => Polled::Pending(h.wait(now), Some(seen)),
                Err(_) => {
                    // Too many poll errors: stop polling; the instance
                    // (bounded by the provisioning deadline) decides.
                    *slot = None;
                    Polled::Done(None)
                }
            }
        }
    }
}

/// The insert's or delete's operation was polled, with `answer` (`None`:
/// Compute no longer knows it).
pub(crate) fn polled(
    poll: &PollPolicy,
    worker: &Worker,
    mut st: GceState,
    purpose: Purpose,
    answer: Result<Option<ZoneOperation>>,
    now: OffsetDateTime,
) -> Result<Step> {
    let (slot, phase) = match purpose {
        Purpose::Insert => (&mut st.insert_op, Phase::Requested),
        Purpose::Delete => (&mut st.delete_op, Phase::Stopping),
    };
    match (record(poll, slot, answer, now), purpose) {
        (Polled::Pending(next, seen), _) => {
            let mut s = step(&st, phase, next)?;
            s.error = seen;
            Ok(s)
        }
        (Polled::Failed(e), Purpose::Insert) => tear_down(st, &e, Phase::Failed),
        (Polled::Failed(e), Purpose::Delete) => {
            let st = retry_delete(st);
            Ok(step(&st, Phase::Stopping, poll.min_interval)?.with_error(&e))
        }
        (Polled::Done(target), Purpose::Insert) => {
            if st.instance_id.is_none() {
                st.instance_id = target;
            }
            // The instance is read by the next step, which a batched check
            // answers with one list for many workers.
            step(&st, worker.phase, Duration::ZERO)
        }
        // Confirmed by the next step (batched in `step_many`).
        (Polled::Done(_), Purpose::Delete) => step(&st, Phase::Stopping, Duration::ZERO),
    }
}

/// The instance of a worker that should run was read: `found`.
pub(crate) fn checked(
    cfg: &Settings,
    worker: &Worker,
    mut st: GceState,
    name: &str,
    found: Option<Instance>,
    now: OffsetDateTime,
) -> Result<Step> {
    let Some(inst) = found else {
        st.not_found += 1;
        if st.not_found <= cfg.not_found_grace {
            return step(&st, worker.phase, cfg.boot_check_interval);
        }
        // Gone without our delete: nothing is left to remove.
        let (phase, msg) = if worker.phase == Phase::Running {
            (Phase::Stopped, format!("instance {name} disappeared"))
        } else {
            (
                Phase::Failed,
                format!("instance {name} was never found after its insert"),
            )
        };
        let e = Error::new(ErrorKind::NotFound, msg)
            .with_code("InstanceGone")
            .with_provider(GCP);
        let s = step(&st, phase, Duration::ZERO)?.with_error(&e);
        // A Spot VM is deleted by Compute when preempted.
        return Ok(if worker.phase == Phase::Running && is_spot(worker) {
            s.with_interruption(preempted())
        } else {
            s
        });
    };
    st.not_found = 0;
    if st.instance_id.is_none() {
        st.instance_id = inst.id.clone();
    }
    if inst.status == "RUNNING" {
        return step(&st, Phase::Running, cfg.check_interval);
    }
    if booting(&inst.status) {
        let phase = if worker.phase == Phase::Running {
            Phase::Running
        } else {
            Phase::Requested
        };
        let left = until(now, worker.provisioning_deadline());
        let next = cfg
            .boot_check_interval
            .min(left)
            .max(Duration::from_millis(1));
        return step(&st, phase, next);
    }
    if dead(&inst.status) {
        let e = Error::new(
            ErrorKind::OperationFailed,
            format!("instance {name} is {} (preempted or stopped)", inst.status),
        )
        .with_code(inst.status.clone())
        .with_provider(GCP);
        let s = tear_down(st, &e, Phase::Stopped)?;
        // Skyfleet never stops its VMs: a spot one stopping or stopped was
        // preempted (Compute stops it, then deletes it).
        return Ok(if is_spot(worker) {
            s.with_interruption(preempted())
        } else {
            s
        });
    }
    // An unknown status: look again later.
    step(&st, worker.phase, cfg.boot_check_interval)
}

/// The instance of a worker whose delete is done was read: `found`.
pub(crate) fn confirmed(cfg: &Settings, st: GceState, found: Option<Instance>) -> Result<Step> {
    match found {
        None => finish(&st),
        Some(i) if i.status == "STOPPING" || i.status == "DEPROVISIONING" => {
            step(&st, Phase::Stopping, cfg.boot_check_interval)
        }
        // Still there and not going: the delete was lost.
        Some(_) => step(&retry_delete(st), Phase::Stopping, Duration::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use serde_json::json;
    use skyfleet_core::clock::SystemClock;

    use super::*;

    fn settings() -> Settings {
        Settings {
            id: "gce".into(),
            poll: PollPolicy {
                min_interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(10),
                default_interval: Duration::from_secs(2),
                deadline: Duration::from_secs(600),
                max_consecutive_errors: 5,
            },
            check_interval: Duration::from_secs(60),
            boot_check_interval: Duration::from_secs(5),
            not_found_grace: 0,
            clock: Arc::new(SystemClock),
            root_url: None,
        }
    }

    fn worker(spot: bool, phase: Phase) -> Worker {
        let mut launch = json!({"zone": "us-central1-a", "machineType": "e2-small",
                                "disks": [{"initializeParams": {"sourceImage": "x"}}]});
        if spot {
            launch["scheduling"] = json!({"provisioningModel": "SPOT"});
        }
        let mut w = skyfleet_core::testing::fixtures::worker("w-1")
            .launch(launch)
            .build_now();
        w.phase = phase;
        w
    }

    fn instance(status: &str) -> Instance {
        Instance {
            name: "w-1-vm".into(),
            id: Some("42".into()),
            status: status.into(),
            labels: BTreeMap::new(),
            label_fingerprint: None,
            creation_timestamp: None,
            zone: None,
        }
    }

    fn check(w: &Worker, found: Option<Instance>) -> Step {
        let now = OffsetDateTime::now_utc();
        checked(&settings(), w, GceState::default(), "w-1-vm", found, now).expect("a step")
    }

    #[test]
    fn a_preempted_spot_vm_is_an_interruption() {
        for status in ["TERMINATED", "STOPPING"] {
            let s = check(&worker(true, Phase::Running), Some(instance(status)));
            assert_eq!(s.phase, Phase::Stopping, "torn down");
            let i = s.interruption.expect("an interruption");
            assert_eq!(i.source, InterruptionSource::Provider);
            assert_eq!(i.detail, PREEMPTED);
            assert_eq!(i.not_before, None);
        }
        // Deleted by Compute while running (instanceTerminationAction
        // DELETE): gone, with nothing left to delete.
        let s = check(&worker(true, Phase::Running), None);
        assert_eq!(s.phase, Phase::Stopped);
        assert_eq!(s.interruption.map(|i| i.detail).as_deref(), Some(PREEMPTED));
    }

    #[test]
    fn on_demand_vms_and_booting_spot_vms_are_no_interruption() {
        let s = check(&worker(false, Phase::Running), Some(instance("TERMINATED")));
        assert_eq!(s.phase, Phase::Stopping);
        assert!(s.interruption.is_none());
        assert!(check(&worker(false, Phase::Running), None)
            .interruption
            .is_none());
        // Never found after its insert: a failed create, not a preemption.
        let s = check(&worker(true, Phase::Requested), None);
        assert_eq!(s.phase, Phase::Failed);
        assert!(s.interruption.is_none());
        let s = check(&worker(true, Phase::Running), Some(instance("RUNNING")));
        assert_eq!(s.phase, Phase::Running);
        assert!(s.interruption.is_none());
    }
}
