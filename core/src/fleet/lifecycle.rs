//! Lifecycle limits: the reasons the runtime removes a worker on its own.
//!
//! Checked before every step, so a worker whose provider is slow or stuck
//! is still removed on time: Taskcluster had no deadline for the stages
//! before a VM existed (#7422), and workers sat in `requested` for days.

use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};
use crate::model::{DesiredState, Phase, Worker};
use crate::store::WorkerStore;

/// Why a worker is being removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovalReason {
    /// It was not running by its provisioning deadline.
    ProvisioningDeadline,
    /// It ran but never registered within the registration timeout.
    RegistrationTimeout,
    /// Its registration was not renewed within the reregistration timeout.
    ReregistrationTimeout,
    /// It was inactive longer than the inactivity timeout.
    Inactive,
    /// The pool shrank.
    ScaleDown,
    /// An operator asked for it (`skyfleet remove`, [`request_removal`]).
    Operator,
    /// Its agent sent no heartbeat within the heartbeat timeout.
    HeartbeatTimeout,
    /// It was asked to drain and still reported work at the drain deadline.
    DrainTimeout,
    /// It was asked to drain and confirmed it holds no work.
    Drained,
    /// The cloud reclaimed its capacity (spot reclaimed, preempted,
    /// evicted), as its provider or its agent noticed.
    Interrupted,
}

impl RemovalReason {
    /// Every reason, in a fixed order (metrics register each at zero).
    pub const ALL: [RemovalReason; 10] = [
        RemovalReason::ProvisioningDeadline,
        RemovalReason::RegistrationTimeout,
        RemovalReason::ReregistrationTimeout,
        RemovalReason::Inactive,
        RemovalReason::ScaleDown,
        RemovalReason::Operator,
        RemovalReason::HeartbeatTimeout,
        RemovalReason::DrainTimeout,
        RemovalReason::Drained,
        RemovalReason::Interrupted,
    ];

    /// The reason whose [`label`](Self::label) is `label`.
    pub fn from_label(label: &str) -> Option<RemovalReason> {
        Self::ALL.into_iter().find(|r| r.label() == label)
    }

    /// A stable description recorded on the worker and in pool errors.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::ProvisioningDeadline => "provisioning deadline exceeded",
            RemovalReason::RegistrationTimeout => "registration timeout",
            RemovalReason::ReregistrationTimeout => "reregistration timeout",
            RemovalReason::Inactive => "inactivity timeout",
            RemovalReason::ScaleDown => "scale down",
            RemovalReason::Operator => "operator",
            RemovalReason::HeartbeatTimeout => "heartbeat timeout",
            RemovalReason::DrainTimeout => "drain timeout",
            RemovalReason::Drained => "drained",
            RemovalReason::Interrupted => "interruption",
        }
    }

    /// A short stable identifier (`registration_timeout`), the `reason`
    /// label of `skyfleet_worker_removals_total`.
    pub fn label(self) -> &'static str {
        match self {
            RemovalReason::ProvisioningDeadline => "provisioning_deadline",
            RemovalReason::RegistrationTimeout => "registration_timeout",
            RemovalReason::ReregistrationTimeout => "reregistration_timeout",
            RemovalReason::Inactive => "inactivity_timeout",
            RemovalReason::ScaleDown => "scale_down",
            RemovalReason::Operator => "operator",
            RemovalReason::HeartbeatTimeout => "heartbeat_timeout",
            RemovalReason::DrainTimeout => "drain_timeout",
            RemovalReason::Drained => "drained",
            RemovalReason::Interrupted => "interruption",
        }
    }
}

/// The limit `worker` has passed at `now`, if any (only for workers still
/// meant to run).
pub fn expired(worker: &Worker, now: OffsetDateTime) -> Option<RemovalReason> {
    if worker.desired != DesiredState::Running {
        return None;
    }
    let l = &worker.spec.lifecycle;
    match worker.phase {
        Phase::Requested if now >= worker.provisioning_deadline() => {
            Some(RemovalReason::ProvisioningDeadline)
        }
        Phase::Running => {
            let running_at = worker.running_at.unwrap_or(worker.created_at);
            match worker.registered_at {
                None if now >= running_at + l.registration_timeout => {
                    Some(RemovalReason::RegistrationTimeout)
                }
                Some(t) if now >= t + l.reregistration_timeout => {
                    Some(RemovalReason::ReregistrationTimeout)
                }
                // The inactivity timeout counts from the last heartbeat,
                // which lives in the registration: the provisioner's pass
                // checks it (`supervision`).
                _ => None,
            }
        }
        _ => None,
    }
}

/// When the next limit of `worker` expires, if it is still meant to run: the
/// runtime looks at the worker again by then at the latest, so a limit is
/// acted on when it passes rather than at the provider's next check (a
/// running worker may otherwise be looked at only every minute or so).
pub fn next_limit(worker: &Worker) -> Option<OffsetDateTime> {
    if worker.desired != DesiredState::Running {
        return None;
    }
    let l = &worker.spec.lifecycle;
    match worker.phase {
        Phase::Requested => Some(worker.provisioning_deadline()),
        Phase::Running => {
            let running_at = worker.running_at.unwrap_or(worker.created_at);
            match worker.registered_at {
                None => Some(running_at + l.registration_timeout),
                Some(t) => Some(t + l.reregistration_timeout),
            }
        }
        _ => None,
    }
}

/// Marks `worker` for removal for `reason` (its last transition is now).
pub fn mark_removed(worker: &mut Worker, reason: RemovalReason, now: OffsetDateTime) {
    worker.desired = DesiredState::Removed;
    worker.removal_reason = Some(reason.as_str().to_string());
    worker.next_check_at = now;
    worker.transitioned_at = Some(now);
}

/// What [`request_removal`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum RemovalRequest {
    /// The worker is now marked for removal (the record as stored).
    Marked(Box<Worker>),
    /// It was already being removed or gone: nothing was written. The
    /// record as found.
    AlreadyRemoving(Box<Worker>),
}

/// Marks a worker for removal in `store` for `reason`, outside the runtime
/// (an operator's command): the runtime that steps it tears it down and
/// logs its stopping and stopped transitions with this reason. Retries a
/// bounded number of times when the record changes underneath; `NotFound`
/// if there is no such worker.
pub async fn request_removal(
    store: &dyn WorkerStore,
    worker_id: &str,
    reason: RemovalReason,
    now: OffsetDateTime,
) -> Result<RemovalRequest> {
    const ATTEMPTS: usize = 5;
    for _ in 0..ATTEMPTS {
        let Some(mut w) = store.get_worker(worker_id).await? else {
            return Err(Error::not_found(format!("worker {worker_id} not found")));
        };
        if w.desired == DesiredState::Removed || w.phase.is_final() {
            return Ok(RemovalRequest::AlreadyRemoving(Box::new(w)));
        }
        mark_removed(&mut w, reason, now);
        match store.update_worker(&w).await {
            Ok(stored) => {
                super::events::emit(
                    &stored,
                    &super::events::Transition::Removed {
                        reason,
                        scale: None,
                    },
                );
                return Ok(RemovalRequest::Marked(Box::new(stored)));
            }
            Err(e) if e.kind() == &ErrorKind::Conflict => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorKind::Conflict,
        format!("worker {worker_id} kept changing; removal not recorded (try again)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::worker;
    use std::time::Duration;

    #[test]
    fn limits() {
        let t = OffsetDateTime::now_utc();
        let mut w = worker("w-1", "p", "x", t);
        w.spec.lifecycle.provisioning_deadline = Duration::from_secs(10);
        assert_eq!(expired(&w, t + Duration::from_secs(9)), None);
        assert_eq!(
            expired(&w, t + Duration::from_secs(10)),
            Some(RemovalReason::ProvisioningDeadline)
        );
        w.phase = Phase::Running;
        w.running_at = Some(t);
        w.spec.lifecycle.registration_timeout = Duration::from_secs(60);
        assert_eq!(
            expired(&w, t + Duration::from_secs(61)),
            Some(RemovalReason::RegistrationTimeout)
        );
        w.registered_at = Some(t + Duration::from_secs(30));
        w.spec.lifecycle.reregistration_timeout = Duration::from_secs(100);
        assert_eq!(expired(&w, t + Duration::from_secs(61)), None);
        assert_eq!(
            expired(&w, t + Duration::from_secs(131)),
            Some(RemovalReason::ReregistrationTimeout)
        );
        mark_removed(&mut w, RemovalReason::ScaleDown, t);
        assert_eq!(expired(&w, t + Duration::from_secs(1000)), None);
        assert_eq!(w.transitioned_at, Some(t), "a removal is a transition");
    }

    #[test]
    fn the_next_limit_is_the_one_expired_answers_next() {
        let t = OffsetDateTime::now_utc();
        let mut w = worker("w-1", "p", "x", t);
        w.spec.lifecycle.provisioning_deadline = Duration::from_secs(10);
        w.spec.lifecycle.registration_timeout = Duration::from_secs(60);
        assert_eq!(next_limit(&w), Some(t + Duration::from_secs(10)));
        w.phase = Phase::Running;
        w.running_at = Some(t + Duration::from_secs(5));
        let at = next_limit(&w).unwrap();
        assert_eq!(at, t + Duration::from_secs(65));
        assert_eq!(expired(&w, at - Duration::from_millis(1)), None);
        assert_eq!(expired(&w, at), Some(RemovalReason::RegistrationTimeout));
        w.registered_at = Some(t + Duration::from_secs(30));
        w.spec.lifecycle.reregistration_timeout = Duration::from_secs(100);
        assert_eq!(next_limit(&w), Some(t + Duration::from_secs(130)));
        w.phase = Phase::Stopping;
        assert_eq!(next_limit(&w), None);
    }

    #[tokio::test]
    async fn an_operator_removal_is_recorded_once_with_its_reason() {
        use crate::store::{MemoryStore, WorkerStore};
        let t = OffsetDateTime::now_utc();
        let store = MemoryStore::new();
        store
            .create_worker(&worker("w-1", "p", "x", t))
            .await
            .unwrap();
        let later = t + Duration::from_secs(7);
        let RemovalRequest::Marked(w) =
            request_removal(&store, "w-1", RemovalReason::Operator, later)
                .await
                .unwrap()
        else {
            panic!("expected the worker to be marked");
        };
        assert_eq!(w.desired, DesiredState::Removed);
        assert_eq!(w.removal_reason.as_deref(), Some("operator"));
        assert_eq!(w.transitioned_at, Some(later));
        let stored = store.get_worker("w-1").await.unwrap().unwrap();
        assert_eq!(stored.removal_reason.as_deref(), Some("operator"));
        // A second request writes nothing.
        assert!(matches!(
            request_removal(&store, "w-1", RemovalReason::Operator, later).await,
            Ok(RemovalRequest::AlreadyRemoving(_))
        ));
        assert_eq!(
            store.get_worker("w-1").await.unwrap().unwrap().version,
            stored.version
        );
        let e = request_removal(&store, "nope", RemovalReason::Operator, later)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::NotFound);
    }
}
