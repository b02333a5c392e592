//! The power methods of `compute.instances.*`: delete, start, stop,
//! suspend and resume. Each answers with a zone operation and rewrites the
//! instance's timeline:
//! - stop: RUNNING (or PROVISIONING, STAGING, SUSPENDING, SUSPENDED) ->
//!   STOPPING -> TERMINATED;
//! - start: TERMINATED (or STOPPING) -> PROVISIONING -> STAGING -> RUNNING;
//! - suspend: RUNNING -> SUSPENDING -> SUSPENDED;
//! - resume: SUSPENDED -> STAGING -> RUNNING;
//! - delete: any -> STOPPING -> gone.
//!
//! A call that finds the instance where it would take it (stop of a
//! TERMINATED instance, start of a RUNNING one, suspend of a SUSPENDED one)
//! changes nothing and its operation still completes, as Compute does. A
//! call the status rules out answers 400 before anything changes:
//! `resourceNotReady` while the instance is between states (suspend while
//! STAGING, resume while SUSPENDING, anything but delete while it is being
//! deleted), `invalidResourceUsage` when the status forbids it (resume of a
//! RUNNING or TERMINATED instance, start of a SUSPENDED one, suspend of a
//! TERMINATED one).

use std::time::Duration;

use crate::gce::error::GceError;
use crate::gce::lifecycle::Status;
use crate::gce::operations::OpType;
use crate::gce::request::{Call, Reply};
use crate::gce::Gce;

use super::instances::{boot, failure_of, ms, replay, request_id, start_operation, NewOp};

/// What a power method does to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Delete,
    Start,
    Stop,
    Suspend,
    Resume,
}

/// A new timeline: the status from now, then `(time in the previous
/// status, next status)` steps.
type Plan = (Status, Vec<(Duration, Status)>);

fn not_ready(resource: &str) -> GceError {
    GceError::api(
        400,
        "resourceNotReady",
        &format!("The resource '{resource}' is not ready"),
    )
}

fn wrong_state(status: Status, why: &str) -> GceError {
    GceError::api(
        400,
        "invalidResourceUsage",
        &format!(
            "Invalid resource usage: 'Instance is in state {}; {why}'.",
            status.as_str()
        ),
    )
}

/// The timeline `what` sets from `status` (`None`: it changes nothing), or
/// the error Compute answers with from that status.
fn plan(
    gce: &Gce,
    call: &Call,
    what: Change,
    status: Status,
    being_deleted: bool,
    resource: &str,
) -> Result<Option<Plan>, GceError> {
    let cfg = &call.config;
    if being_deleted {
        // A deleted instance is gone already; one being deleted takes no
        // other change (a repeated delete or stop is a no-op).
        return match what {
            Change::Delete | Change::Stop => Ok(None),
            Change::Start | Change::Suspend | Change::Resume => Err(not_ready(resource)),
        };
    }
    use Status::*;
    Ok(match what {
        Change::Delete => Some((Stopping, vec![(ms(gce, cfg.deleting_ms), Gone)])),
        Change::Stop => match status {
            Terminated | Stopping => None,
            _ => Some((Stopping, vec![(ms(gce, cfg.stopping_ms), Terminated)])),
        },
        Change::Start => match status {
            Terminated | Stopping => Some((Provisioning, boot(gce, call).to_vec())),
            Suspending | Suspended => {
                return Err(wrong_state(
                    status,
                    "a suspended instance is resumed with instances.resume",
                ))
            }
            _ => None,
        },
        Change::Suspend => match status {
            Running => Some((Suspending, vec![(ms(gce, cfg.suspending_ms), Suspended)])),
            Suspending | Suspended => None,
            Provisioning | Staging => return Err(not_ready(resource)),
            Stopping | Terminated | Gone => {
                return Err(wrong_state(status, "only a RUNNING instance can be suspended"))
            }
        },
        Change::Resume => match status {
            Suspended => Some((Staging, vec![(ms(gce, cfg.staging_ms), Running)])),
            Suspending => return Err(not_ready(resource)),
            _ => {
                return Err(wrong_state(
                    status,
                    "only a SUSPENDED instance can be resumed",
                ))
            }
        },
    })
}

fn change(gce: &Gce, call: &Call, what: Change) -> Result<Reply, GceError> {
    let rid = request_id(call)?;
    let failure = failure_of(call);
    gce.store.write(&call.project, |p| {
        if let Some(reply) = replay(call, p, &rid) {
            return Ok(reply);
        }
        let now = call.now;
        let resource = format!("{}/instances/{}", call.zone_path(), call.target);
        let inst = p
            .instance_mut(&call.zone, &call.target, now)
            .ok_or_else(|| GceError::not_found(&resource))?;
        let status = inst.status(now);
        let cfg = &call.config;
        let (op_type, op_ms) = match what {
            Change::Delete => (OpType::Delete, cfg.delete_operation_ms),
            Change::Start => (OpType::Start, cfg.start_operation_ms),
            Change::Stop => (OpType::Stop, cfg.stop_operation_ms),
            Change::Suspend => (OpType::Suspend, cfg.suspend_operation_ms),
            Change::Resume => (OpType::Resume, cfg.resume_operation_ms),
        };
        let being_deleted = inst.timeline.final_status() == Status::Gone;
        // Validated before anything changes: a refused call leaves the
        // instance (and its pending preemption) as it was.
        let plan = plan(gce, call, what, status, being_deleted, &resource)?;
        // A stop, suspend or delete during a preemption notice, or a start
        // after the preemption, ends it: the pending preemption is dropped.
        let mut dropped_preemption = None;
        if failure.is_none() {
            let ended = inst.preempted.as_deref().is_some_and(|(n, _)| n.ended(now));
            let ends_it = match what {
                Change::Start => status == Status::Terminated || status == Status::Stopping,
                Change::Delete | Change::Stop | Change::Suspend => !ended,
                Change::Resume => false,
            };
            if ends_it {
                if let Some(op) = inst.preempted.take().map(|p| p.1) {
                    if !ended {
                        dropped_preemption = Some(op);
                    }
                }
            }
            if let Some((first, steps)) = plan {
                // A stuck operation holds the instance in its first status.
                let stuck = matches!(call.fault, Some(crate::ctx::FaultEffect::Stuck));
                inst.timeline
                    .change(now, first, if stuck { &[] } else { &steps });
            }
        }
        let target = (inst.spec.name.clone(), inst.id);
        if let Some(op) = dropped_preemption {
            p.operations.remove(op.as_str());
        }
        let new = NewOp {
            op_type,
            target: (&target.0, target.1),
            duration_ms: op_ms,
            failure,
        };
        Ok(start_operation(gce, call, p, rid, new))
    })
}

/// `compute.instances.delete`.
pub(crate) fn delete(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    change(gce, call, Change::Delete)
}

/// `compute.instances.start`.
pub(crate) fn start(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    change(gce, call, Change::Start)
}

/// `compute.instances.stop`.
pub(crate) fn stop(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    change(gce, call, Change::Stop)
}

/// `compute.instances.suspend`.
pub(crate) fn suspend(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    change(gce, call, Change::Suspend)
}

/// `compute.instances.resume`.
pub(crate) fn resume(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    change(gce, call, Change::Resume)
}
