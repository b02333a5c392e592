//! [`AwsState`]: what the provider persists on each worker between steps.
//!
//! The state is written by the caller after every step, so it always records
//! what a new process needs to carry on: the region and `ClientToken` are
//! recorded *before* the RunInstances that uses them (so a replay sends the
//! same token), the instance id as soon as EC2 names it, and the teardown
//! (its reason and whether TerminateInstances was sent) as soon as it starts.

use serde::{Deserialize, Serialize};
use skyfleet_core::{Error, Failure, Result, Worker};
use time::OffsetDateTime;

/// Why a worker's instance is being torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeardownReason {
    /// The worker's desired state is removed.
    Removed,
    /// The provisioning deadline passed before the instance ran.
    ProvisioningDeadline,
    /// The instance stopped, or terminated, without skyfleet asking
    /// (spot interruption, shutdown from inside, a failed launch).
    InstanceEnded,
    /// RunInstances failed in a way that may have left an instance
    /// (`IdempotentParameterMismatch`): find it by tag and terminate it.
    LaunchFailed,
}

/// A teardown in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teardown {
    /// Why.
    pub reason: TeardownReason,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// When TerminateInstances was sent (it may or may not have landed).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub terminate_sent_at: Option<OffsetDateTime>,
    /// The error to record when the teardown ends (a failed launch's
    /// reason), as kind name, code and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Failure>,
}

/// The AWS provider's resumable state of one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsState {
    /// The region the instance is (to be) launched in.
    pub region: String,
    /// The RunInstances `ClientToken`, recorded before the first call.
    pub client_token: String,
    /// When the token was recorded: RunInstances may have been sent any
    /// time after this.
    #[serde(with = "time::serde::rfc3339")]
    pub token_at: OffsetDateTime,
    /// The instance id, once EC2 named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// When RunInstances answered.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub launched_at: Option<OffsetDateTime>,
    /// The instance state last seen (`pending`, `running`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<String>,
    /// Whether the instance has been seen running.
    #[serde(default)]
    pub seen_running: bool,
    /// The teardown in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<Teardown>,
    /// The instance's primary private IPv4 address, as the last describe
    /// (or RunInstances) gave it; instance identity documents must name it.
    /// Absent in states persisted before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
}

impl AwsState {
    /// Reads a worker's state: `None` for a worker never stepped, an error
    /// (for that worker only) for a state this provider cannot read.
    pub fn of(worker: &Worker) -> Result<Option<AwsState>> {
        if worker.provider_state.is_null() {
            return Ok(None);
        }
        serde_json::from_value(worker.provider_state.clone())
            .map(Some)
            .map_err(|e| {
                Error::internal(format!(
                    "worker {}: unreadable AWS provider state: {e}",
                    worker.id()
                ))
                .with_code("InvalidProviderState")
                .with_provider("aws")
            })
    }

    /// The state as JSON, to persist.
    pub fn to_value(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let s = AwsState {
            region: "us-east-1".into(),
            client_token: "sf-w-1-0011223344556677".into(),
            token_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            instance_id: Some("i-0abc".into()),
            launched_at: None,
            last_state: Some("pending".into()),
            seen_running: false,
            teardown: Some(Teardown {
                reason: TeardownReason::Removed,
                since: OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap(),
                terminate_sent_at: None,
                cause: None,
            }),
            private_ip: Some("10.0.0.7".into()),
        };
        let back: AwsState = serde_json::from_value(s.to_value().unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// A state persisted before `private_ip` existed reads as unknown, and
    /// an unknown address is not written.
    #[test]
    fn private_ip_is_optional() {
        let old = serde_json::json!({
            "region": "us-east-1",
            "client_token": "sf-w-1",
            "token_at": "2024-01-01T00:00:00Z",
            "instance_id": "i-0abc",
            "seen_running": true
        });
        let st: AwsState = serde_json::from_value(old).unwrap();
        assert_eq!(st.private_ip, None);
        assert!(st.to_value().unwrap().get("private_ip").is_none());
    }
}
