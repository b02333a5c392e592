//! The ARM long-running operation engine.
//!
//! From the initial answer to a PUT or DELETE it builds a persisted core
//! [`Operation`] wrapped in an [`ArmOperation`] that also says *what* is
//! polled, following ARM's rules (reference/azure-arm.md §1-2):
//!
//! 1. `Azure-AsyncOperation` first: a status resource that always answers
//!    200 with `{"status": ...}`;
//! 2. else `Location`: 202 while running, then 200/204 (or the error);
//! 3. else the resource itself, by its `properties.provisioningState`
//!    (PUTs answering 201 with a non-terminal state, and old-style 202s).
//!
//! A PUT whose body already says `Succeeded` is done without a poll (as the
//! Go poller does). The final GET follows `final-state-via`: for PUT the
//! original URL (or `Location` when the spec says `location` and one was
//! sent); DELETE needs none. The chain skips that GET when the resource's id
//! is all it needs: the id is a function of the name.
//!
//! Polls are paced by the server's `Retry-After` (clamped by the
//! [`PollPolicy`]), not by scan passes; the operation is failed at its
//! deadline (10 minutes by default) and after a bounded streak of poll
//! errors. Taskcluster treated a failing poll as "still running" and waited
//! forever. A 404 on a status URL means the operation record expired: the
//! caller asks the resource by name ([`Polled::Gone`]). The ladder itself
//! (not due / poll / gone -> look up) is core's `support::advance`.

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyfleet_core::provider::support::Polled;
use skyfleet_core::transport::ApiClass;
use skyfleet_core::{Error, FinalState, Operation, OperationStatus, PollPolicy, Result};
use time::OffsetDateTime;

use super::{garbled, ArmAnswer, ArmClient, ArmResponse};
use crate::classify;

/// What an [`ArmOperation`] polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// The `Azure-AsyncOperation` status resource.
    AsyncOperation,
    /// The `Location` URL.
    Location,
    /// The resource itself (`provisioningState`; 404 ends a DELETE).
    Resource,
}

/// A persisted ARM operation: the core handle plus what it polls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmOperation {
    /// What is polled.
    pub kind: PollKind,
    /// The resource the operation acts on (to ask it by name).
    pub resource_url: String,
    /// The core handle: poll URL, method, schedule, deadline, error streak.
    pub op: Operation,
}

/// The result of an initial PUT or DELETE answer.
#[derive(Debug)]
pub enum Started {
    /// Finished synchronously.
    Done,
    /// Running; poll the operation.
    Pending(Box<ArmOperation>),
}

/// What one poll made of an operation.
#[derive(Debug)]
#[cfg(feature = "testing")]
pub enum PollOutcome {
    /// Still running (possibly after a poll error within the streak, given
    /// here for the record).
    InProgress(Option<Error>),
    /// Finished successfully.
    Succeeded,
    /// Finished in failure, timed out, or gave up after a poll error streak.
    Failed(Error),
    /// The operation URL answered 404: its record expired. Ask the resource.
    Expired,
}

fn provisioning_state(body: &Value) -> Option<&str> {
    body.get("properties")?.get("provisioningState")?.as_str()
}

fn is_terminal_success(s: &str) -> bool {
    ["succeeded", "completed", "deduped"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
}

fn is_terminal_failure(s: &str) -> bool {
    ["failed", "canceled", "cancelled", "undefined"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
}

fn status_of(state: &str, error: Option<&Value>) -> OperationStatus {
    if is_terminal_success(state) {
        OperationStatus::Succeeded
    } else if state.eq_ignore_ascii_case("canceled") || state.eq_ignore_ascii_case("cancelled") {
        OperationStatus::Canceled
    } else if is_terminal_failure(state) {
        let field = |k: &str| {
            error
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let code = field("code");
        OperationStatus::Failed {
            code: if code.is_empty() {
                "ProvisioningFailed".into()
            } else {
                code
            },
            message: field("message"),
        }
    } else {
        OperationStatus::InProgress
    }
}

impl ArmOperation {
    /// Interprets the (successful) initial answer `resp` to `method` on
    /// `resource_url`. `final_state` is the spec's `final-state-via`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        client: &ArmClient,
        resp: &ArmResponse,
        method: &Method,
        resource_url: &str,
        final_state: FinalState,
        now: OffsetDateTime,
        policy: &PollPolicy,
        what: &str,
    ) -> Result<Started> {
        let is_delete = method == Method::DELETE;
        let body: Option<Value> = serde_json::from_slice(&resp.body).ok();
        let state = body.as_ref().and_then(provisioning_state);
        if !is_delete {
            if let Some(s) = state {
                if is_terminal_success(s) && resp.status != 202 {
                    return Ok(Started::Done);
                }
                if is_terminal_failure(s) {
                    return Err(classify::operation_failed(
                        "ProvisioningFailed",
                        &format!("resource answered provisioningState {s}"),
                        what,
                    ));
                }
            }
        }
        let make = |kind: PollKind, url: &str| -> Result<Started> {
            client.check_url(url)?;
            let fs = if is_delete {
                FinalState::None
            } else {
                final_state
            };
            let mut op =
                Operation::start(url, method.as_str(), fs, resp.retry_after(), now, policy);
            if !is_delete {
                let final_url = match (fs, resp.header("location")) {
                    (FinalState::Location, Some(l)) => l.to_string(),
                    _ => resource_url.to_string(),
                };
                op = op.with_final_url(final_url);
            }
            Ok(Started::Pending(Box::new(ArmOperation {
                kind,
                resource_url: resource_url.to_string(),
                op,
            })))
        };
        if let Some(url) = resp.header("azure-asyncoperation") {
            return make(PollKind::AsyncOperation, url);
        }
        if let Some(url) = resp.header("location") {
            return make(PollKind::Location, url);
        }
        if is_delete {
            return match resp.status {
                202 => make(PollKind::Resource, resource_url),
                _ => Ok(Started::Done),
            };
        }
        match (state, body.is_some()) {
            (Some(_), _) => make(PollKind::Resource, resource_url),
            (None, true) if resp.status == 201 || resp.status == 202 => {
                make(PollKind::Resource, resource_url)
            }
            (None, true) => Ok(Started::Done),
            (None, false) if resp.status == 204 => Ok(Started::Done),
            (None, false) => Err(garbled(
                what,
                resp.status,
                "no operation header and a body that is not JSON",
            )),
        }
    }

    /// Whether a poll is due at `now`.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.op.is_due(now)
    }

    /// How long until the next poll.
    pub fn wait(&self, now: OffsetDateTime) -> Duration {
        self.op.wait(now)
    }

    /// Polls once (one GET, never a mutation) and records the answer on the
    /// handle, whether or not a poll is due: the ARM polling under test. The
    /// chain goes through core's ladder
    /// ([`advance`](skyfleet_core::provider::support::advance)) instead.
    #[cfg(feature = "testing")]
    pub async fn poll(
        &mut self,
        client: &ArmClient,
        region: &str,
        what: &str,
        now: impl Fn() -> OffsetDateTime,
        policy: &PollPolicy,
    ) -> PollOutcome {
        let answer = poll_status(client, self.kind, &self.op, region, what).await;
        let at = now();
        match answer {
            Ok(Polled::Gone) => PollOutcome::Expired,
            Ok(Polled::Status(status, retry_after)) => {
                match self.op.record_status(status, retry_after, at, policy) {
                    Ok(()) if self.op.status == OperationStatus::Succeeded => {
                        PollOutcome::Succeeded
                    }
                    Ok(()) => PollOutcome::InProgress(None),
                    Err(e) => PollOutcome::Failed(reclassify(e, what)),
                }
            }
            Err(e) => {
                let shown = shown_poll_error(&e);
                match self.op.record_poll_error(e, at, policy) {
                    Ok(()) => PollOutcome::InProgress(Some(shown)),
                    Err(e) => PollOutcome::Failed(e),
                }
            }
        }
    }
}

/// One GET of `op`'s status, polled as `kind`, as core's ladder
/// ([`advance`](skyfleet_core::provider::support::advance)) reads it:
/// [`Polled::Gone`] when the operation (or, for a PUT polled by its
/// resource, the resource) is not found.
pub(crate) async fn poll_status(
    client: &ArmClient,
    kind: PollKind,
    op: &Operation,
    region: &str,
    what: &str,
) -> Result<Polled> {
    Ok(match fetch(client, kind, op, region, what).await? {
        Some((status, retry_after)) => Polled::Status(status, retry_after),
        None => Polled::Gone,
    })
}

/// One poll's answer: `None` when the operation (or, for a PUT polled by
/// its resource, the resource) is not found.
async fn fetch(
    client: &ArmClient,
    kind: PollKind,
    op: &Operation,
    region: &str,
    what: &str,
) -> Result<Option<(OperationStatus, Option<Duration>)>> {
    let resp = client
        .request(Method::GET, &op.poll_url)
        .class(ApiClass::Poll)
        .region(region)
        .operation(format!("{what}.poll"))
        .send()
        .await?;
    let ra = resp.retry_after();
    let is_delete = op.method == "DELETE";
    match (kind, resp.status) {
        (PollKind::Resource, 404) if is_delete => Ok(Some((OperationStatus::Succeeded, ra))),
        (_, 404) => Ok(None),
        (_, 429) | (_, 500..=599) => Err(resp.error(&format!("{what} poll"))),
        (PollKind::AsyncOperation, 200..=299) => {
            let body: Value = resp.arm_json(&format!("{what} operation status"))?;
            let status = body.get("status").and_then(Value::as_str).ok_or_else(|| {
                garbled(
                    &format!("{what} operation status"),
                    resp.status,
                    "no `status` field",
                )
            })?;
            Ok(Some((status_of(status, body.get("error")), ra)))
        }
        (PollKind::Location, 202) => Ok(Some((OperationStatus::InProgress, ra))),
        (PollKind::Location, 200..=299) => Ok(Some((OperationStatus::Succeeded, ra))),
        (PollKind::Location, _) => {
            // A Location URL answers the operation's own error when it failed.
            let (code, message) = classify::parse_error_body(&resp.body)
                .unwrap_or_else(|| (format!("HTTP{}", resp.status), String::new()));
            Ok(Some((OperationStatus::Failed { code, message }, ra)))
        }
        (PollKind::Resource, 200..=299) => {
            let body: Value = resp.arm_json(&format!("{what} resource"))?;
            let state = provisioning_state(&body).unwrap_or("Succeeded");
            let st = if is_delete && !is_terminal_failure(state) {
                OperationStatus::InProgress
            } else {
                status_of(state, None)
            };
            Ok(Some((st, ra)))
        }
        (_, _) => Err(resp.error(&format!("{what} poll"))),
    }
}

/// A poll error tolerated within the streak, as reported on the step.
pub(crate) fn shown_poll_error(e: &Error) -> Error {
    Error::new(e.kind().clone(), e.message().to_string())
        .with_code(e.code().unwrap_or("PollError").to_string())
        .with_provider("azure")
}

/// Failed operations with capacity codes become `CapacityOrQuota`.
pub(crate) fn reclassify(e: Error, what: &str) -> Error {
    match e.code() {
        Some(code) if classify::is_capacity_error(code, e.message()) => {
            classify::operation_failed(code, e.message(), what)
        }
        _ => e.with_provider("azure"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_strings() {
        assert_eq!(status_of("Succeeded", None), OperationStatus::Succeeded);
        assert_eq!(status_of("inprogress", None), OperationStatus::InProgress);
        assert_eq!(status_of("Cancelled", None), OperationStatus::Canceled);
        let err = serde_json::json!({"code": "AllocationFailed", "message": "none left"});
        assert_eq!(
            status_of("Failed", Some(&err)),
            OperationStatus::Failed {
                code: "AllocationFailed".into(),
                message: "none left".into()
            }
        );
        assert!(matches!(
            status_of("failed", None),
            OperationStatus::Failed { code, .. } if code == "ProvisioningFailed"
        ));
    }
}
