//! Lifecycle limits: the reasons the runtime removes a worker on its own.
//!
//! Checked before every step, so a worker whose provider is slow or stuck
//! is still removed on time: Taskcluster had no deadline for the stages
//! before a VM existed (#7422), and workers sat in `requested` for days.

use time::OffsetDateTime;

use crate::model::{DesiredState, Phase, Worker};

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
}

impl RemovalReason {
    /// A stable description recorded on the worker and in pool errors.
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::ProvisioningDeadline => "provisioning deadline exceeded",
            RemovalReason::RegistrationTimeout => "registration timeout",
            RemovalReason::ReregistrationTimeout => "reregistration timeout",
            RemovalReason::Inactive => "inactivity timeout",
            RemovalReason::ScaleDown => "scale down",
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
                Some(t) if l.inactivity_timeout.is_some_and(|d| now >= t + d) => {
                    Some(RemovalReason::Inactive)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Marks `worker` for removal for `reason`.
pub fn mark_removed(worker: &mut Worker, reason: RemovalReason, now: OffsetDateTime) {
    worker.desired = DesiredState::Removed;
    worker.removal_reason = Some(reason.as_str().to_string());
    worker.next_check_at = now;
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
        w.spec.lifecycle.inactivity_timeout = Some(Duration::from_secs(100));
        assert_eq!(expired(&w, t + Duration::from_secs(61)), None);
        assert_eq!(
            expired(&w, t + Duration::from_secs(131)),
            Some(RemovalReason::Inactive)
        );
        mark_removed(&mut w, RemovalReason::ScaleDown, t);
        assert_eq!(expired(&w, t + Duration::from_secs(1000)), None);
    }
}
