//! The step logic, as pure functions of the worker, its state and the time:
//! [`decide`] (a step) and [`register`] (a machine calling in). The
//! provider carries out what they say about the secret shown once.

use std::time::Duration;

use skyfleet_core::clock::until;
use skyfleet_core::{DesiredState, Error, ErrorKind, Phase, Result, Step, Worker};
use time::OffsetDateTime;

use skyfleet_core::provider::support::Secret;

use crate::credential::{self, verify};
use crate::state::StaticState;

/// What happens to the secret waiting to be taken for a worker.
#[derive(Debug)]
pub(crate) enum Outbox {
    /// Nothing.
    Keep,
    /// A new secret, to hand out once (after the step is persisted).
    Issue(Secret),
    /// Forget any secret not taken: the worker is removed or failed.
    Revoke,
}

fn answer(st: &StaticState, phase: Phase, next: Duration) -> Result<Step> {
    Ok(Step::new(serde_json::to_value(st)?, phase, next))
}

/// One step of `worker` at `now`: the step and what happens to its secret.
pub(crate) fn decide(
    worker: &Worker,
    check_interval: Duration,
    now: OffsetDateTime,
) -> Result<(Step, Outbox)> {
    let mut st = StaticState::of(worker)?;
    if worker.desired == DesiredState::Removed {
        // Revoke: the machine can no longer register as this worker.
        st.secret_sha256 = None;
        return Ok((answer(&st, Phase::Stopped, Duration::ZERO)?, Outbox::Revoke));
    }
    let mut outbox = Outbox::Keep;
    if st.secret_sha256.is_none() {
        let secret = credential::generate();
        st.secret_sha256 = Some(credential::stored_digest(&secret, worker.id()));
        outbox = Outbox::Issue(secret);
    }
    if st.registered_at.is_some() {
        return Ok((answer(&st, Phase::Running, check_interval)?, outbox));
    }
    let deadline = worker.provisioning_deadline();
    if now >= deadline {
        st.secret_sha256 = None;
        let e = Error::new(
            ErrorKind::Timeout,
            format!(
                "static worker {} did not register within its provisioning deadline",
                worker.id()
            ),
        )
        .with_code("RegistrationTimeout");
        let s = answer(&st, Phase::Failed, Duration::ZERO)?.with_error(&e);
        return Ok((s, Outbox::Revoke));
    }
    let next = until(now, deadline).min(check_interval);
    Ok((answer(&st, Phase::Requested, next)?, outbox))
}

/// The machine of `worker` presents `secret` at `now`: the step recording
/// the registration (phase `Running`). A wrong secret is `Unauthenticated`;
/// a worker being or already removed is `PermissionDenied`.
pub(crate) fn register(
    worker: &Worker,
    secret: &str,
    check_interval: Duration,
    now: OffsetDateTime,
) -> Result<Step> {
    let mut st = StaticState::of(worker)?;
    if worker.desired == DesiredState::Removed || worker.phase.is_final() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("worker {} is removed; it cannot register", worker.id()),
        )
        .with_code("WorkerRemoved"));
    }
    if !verify(worker.id(), secret, st.secret_sha256.as_deref()) {
        return Err(Error::new(
            ErrorKind::Unauthenticated,
            format!("worker {}: secret validation failed", worker.id()),
        )
        .with_code("InvalidSecret"));
    }
    st.registered_at = Some(now);
    st.registrations = st.registrations.saturating_add(1);
    answer(&st, Phase::Running, check_interval)
}
