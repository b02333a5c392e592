//! [`GceState`]: what the provider persists on each worker, so that any
//! process can resume it.
//!
//! The instance name and zone are written first, in a step of their own,
//! before any call uses them; the `requestId`s derive from the worker id and
//! the attempt counters kept here. Operation handles ([`Operation`]) carry
//! their poll schedule and deadline, so a resumed process polls them on time
//! without resending the request that started them.

use serde::{Deserialize, Serialize};
use skyfleet_core::provider::names::GCP;
use skyfleet_core::{Error, ErrorKind, Failure, Operation, Phase, Result, Worker};

use crate::idempotency::Purpose;

/// Why a worker whose desired state is still `Running` is being torn down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teardown {
    /// The error kind (stored by its stable name: `capacity_or_quota`,
    /// `timeout`, ...).
    pub kind: ErrorKind,
    /// The cloud's code, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// The phase once nothing is left: `Failed` when provisioning failed,
    /// `Stopped` when a running instance died (preempted, stopped).
    pub final_phase: Phase,
}

impl Teardown {
    /// A teardown caused by `err`, ending in `final_phase`.
    pub fn from_error(err: &Error, final_phase: Phase) -> Self {
        Teardown {
            kind: err.kind().clone(),
            code: err.code().map(str::to_string),
            message: err.message().to_string(),
            final_phase,
        }
    }

    /// The failure to record on the final step (core's one failure record,
    /// not yet stamped).
    pub fn step_error(&self) -> Failure {
        Failure {
            code: self.code.clone(),
            ..Failure::new(self.kind.clone(), self.message.clone())
        }
    }
}

/// The provider's resumable state on a worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GceState {
    /// The instance name, derived from the worker id; persisted before the
    /// insert that uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Whether the insert was answered with an operation (it may have been
    /// sent without this being recorded; the `requestId` covers that).
    #[serde(default)]
    pub insert_sent: bool,
    /// The insert's zone operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insert_op: Option<Operation>,
    /// The instance's numeric id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `instances.get` 404s in a row after the insert succeeded.
    #[serde(default)]
    pub not_found: u32,
    /// Why the worker is torn down although it should run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<Teardown>,
    /// The delete attempt (part of the delete `requestId`).
    #[serde(default)]
    pub delete_attempt: u32,
    /// Whether the delete was answered with an operation.
    #[serde(default)]
    pub delete_sent: bool,
    /// The delete's zone operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_op: Option<Operation>,
    /// The name is held by an instance that is not this worker's: never
    /// delete it.
    #[serde(default)]
    pub foreign: bool,
}

impl GceState {
    /// The state on `worker` (empty for a new one). An unreadable state is
    /// an error for that worker only.
    pub fn of(worker: &Worker) -> Result<GceState> {
        if worker.provider_state.is_null() {
            return Ok(GceState::default());
        }
        serde_json::from_value(worker.provider_state.clone()).map_err(|e| {
            Error::internal(format!(
                "worker {}: unreadable gcp provider state: {e}",
                worker.id()
            ))
            .with_code("InvalidProviderState")
            .with_provider(GCP)
        })
    }

    /// Whether the insert's operation is known and still running.
    pub fn insert_pending(&self) -> bool {
        self.insert_op
            .as_ref()
            .is_some_and(|o| !o.status.is_terminal())
    }

    /// The insert's or the delete's operation handle, if any.
    pub(crate) fn operation(&self, purpose: Purpose) -> Option<&Operation> {
        match purpose {
            Purpose::Insert => self.insert_op.as_ref(),
            Purpose::Delete => self.delete_op.as_ref(),
        }
    }

    /// Whether the delete's operation is known and still running.
    pub fn delete_pending(&self) -> bool {
        self.delete_op
            .as_ref()
            .is_some_and(|o| !o.status.is_terminal())
    }
}
