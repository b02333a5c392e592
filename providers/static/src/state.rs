//! [`StaticState`]: what the provider keeps on a worker's record.

use serde::{Deserialize, Serialize};
use skyfleet_core::{Error, Result, Worker};
use time::OffsetDateTime;

/// What the provider keeps on a worker's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticState {
    /// SHA-256 of the secret (bound to the worker id), hex; `None` once
    /// revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// When the machine last registered.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub registered_at: Option<OffsetDateTime>,
    /// How many times it registered.
    #[serde(default)]
    pub registrations: u32,
}

impl StaticState {
    /// The state on `worker` (empty for a new one). An unreadable state is
    /// an error for that worker only.
    pub fn of(worker: &Worker) -> Result<StaticState> {
        if worker.provider_state.is_null() {
            return Ok(StaticState::default());
        }
        serde_json::from_value(worker.provider_state.clone()).map_err(|e| {
            Error::internal(format!(
                "worker {}: unreadable static provider state: {e}",
                worker.id()
            ))
            .with_code("InvalidProviderState")
        })
    }
}
