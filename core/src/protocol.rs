//! The worker protocol: what a worker's agent and the manager say to each
//! other, as JSON over HTTP.
//!
//! A worker registers once with the proof its cloud gave it
//! ([`RegisterRequest`]) and receives its pool's worker config and a worker
//! secret ([`RegisterResponse`]). From then on it authenticates with that
//! secret (`Authorization: Bearer <secret>`) to heartbeat
//! ([`HeartbeatRequest`] -> [`HeartbeatResponse`]), to renew the secret
//! before it expires ([`ReregisterRequest`]), and to confirm that it holds no
//! work once told to drain ([`DrainedRequest`]).
//!
//! Scale-in never races with job pickup because the manager never removes a
//! heartbeating worker on its own: it answers a heartbeat with
//! [`Action::Drain`], the agent stops taking work, and only its
//! [`DrainedRequest`] (or a missed heartbeat deadline) lets the worker go.
//!
//! The same types are the library API of [`Fleet`](crate::fleet::Fleet)
//! (`register`, `reregister`, `heartbeat`, `drained`) and the bodies of the
//! HTTP API (crate `skyfleet-api`), so an embedder and the HTTP server agree
//! by construction. Field names are camelCase on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::provider::support::Secret;
use crate::provider::IdentityProof;

/// The HTTP paths of the worker API, relative to the manager's root URL
/// (the bootstrap document's `rootUrl`).
pub mod paths {
    /// `POST`: [`RegisterRequest`](super::RegisterRequest).
    pub const REGISTER: &str = "/api/skyfleet/v1/worker/register";
    /// `POST`: [`ReregisterRequest`](super::ReregisterRequest).
    pub const REREGISTER: &str = "/api/skyfleet/v1/worker/reregister";
    /// `POST`: [`HeartbeatRequest`](super::HeartbeatRequest).
    pub const HEARTBEAT: &str = "/api/skyfleet/v1/worker/heartbeat";
    /// `POST`: [`DrainedRequest`](super::DrainedRequest).
    pub const DRAINED: &str = "/api/skyfleet/v1/worker/drained";
}

/// The largest request body the worker API accepts (an Azure attested
/// document is about 6 KiB; a GCE token about 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A worker's first call: who it claims to be and its cloud's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// The pool it was created for (the bootstrap document's `workerPoolId`).
    pub worker_pool_id: String,
    /// Its worker id (the bootstrap document's `workerId`).
    pub worker_id: String,
    /// The proof its cloud's metadata service issued.
    pub proof: IdentityProof,
}

/// What a registered worker receives, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterResponse {
    /// The worker config of its pool and launch config (`worker_config` in
    /// the launch parameters; `{}` when none is set).
    pub worker_config: serde_json::Value,
    /// The worker secret: 256 random bits, hex. The manager keeps only a
    /// digest, so it is shown once.
    #[serde(serialize_with = "crate::provider::support::secret::serialize_exposed")]
    pub secret: Secret,
    /// When the secret stops being accepted unless renewed.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// How often to heartbeat.
    pub heartbeat_interval_secs: u64,
}

/// A renewal of the worker secret (the current secret in the
/// `Authorization` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReregisterRequest {
    /// The worker id.
    pub worker_id: String,
}

/// The renewed secret. The previous one stops being accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReregisterResponse {
    /// The new secret.
    #[serde(serialize_with = "crate::provider::support::secret::serialize_exposed")]
    pub secret: Secret,
    /// When it expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// What the worker is doing, as it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    /// Holds no work and takes new work.
    Idle,
    /// Runs work.
    Busy,
    /// Was told to drain: takes no new work, may still finish what it runs.
    Draining,
}

impl Activity {
    /// The stable name (`idle`, `busy`, `draining`).
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Idle => "idle",
            Activity::Busy => "busy",
            Activity::Draining => "draining",
        }
    }
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A heartbeat (the secret in the `Authorization` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The worker id.
    pub worker_id: String,
    /// What it is doing.
    pub state: Activity,
    /// Tasks running now.
    #[serde(default)]
    pub running: u32,
    /// Capacity units in use now (at most the worker's capacity).
    #[serde(default)]
    pub capacity_used: u32,
    /// Tasks completed since the worker started (a running total).
    #[serde(default)]
    pub tasks_completed: u64,
    /// An interruption notice the agent read from its metadata service
    /// (AWS `spot/instance-action`, GCE `instance/preempted`, an Azure
    /// `Preempt` scheduled event); the agent drains its work at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<InterruptionNotice>,
}

/// An interruption notice as an agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterruptionNotice {
    /// The cloud's word for it (`terminate`, `stop`, `preempted`,
    /// `Preempt`).
    pub action: String,
    /// When the capacity goes, if the notice said.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub not_before: Option<OffsetDateTime>,
}

/// What the manager wants the worker to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Carry on.
    Continue,
    /// Take no new work, finish (or stop) what runs, then send
    /// [`DrainedRequest`].
    Drain,
    /// The worker is being removed: stop now and shut down.
    Terminate,
}

impl Action {
    /// The stable name (`continue`, `drain`, `terminate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Continue => "continue",
            Action::Drain => "drain",
            Action::Terminate => "terminate",
        }
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    /// What to do.
    pub action: Action,
    /// When to heartbeat next, at the latest.
    pub heartbeat_interval_secs: u64,
    /// When the current secret expires (reregister before).
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
}

/// The worker's confirmation that it holds no work and may be removed (the
/// secret in the `Authorization` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainedRequest {
    /// The worker id.
    pub worker_id: String,
}

/// The answer to [`DrainedRequest`]: always [`Action::Terminate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainedResponse {
    /// [`Action::Terminate`].
    pub action: Action,
}

/// An error's stable code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Unknown worker, wrong or expired secret, or a proof that did not
    /// hold: one answer for all, so a caller learns nothing about which.
    Unauthorized,
    /// The request was malformed (the message names what).
    BadRequest,
    /// Too many requests from this source; retry after a pause.
    RateLimited,
    /// The worker cannot do this now (registered already, being removed).
    Conflict,
    /// The manager could not decide now (store or cloud unavailable); retry.
    Unavailable,
    /// A bug on the manager's side.
    Internal,
}

impl ErrorCode {
    /// The HTTP status that carries this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthorized => 401,
            ErrorCode::BadRequest => 400,
            ErrorCode::RateLimited => 429,
            ErrorCode::Conflict => 409,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable message (never secret material, never which identity
    /// check failed).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_camel_case_and_strict() {
        let r: HeartbeatRequest = serde_json::from_value(json!({
            "workerId": "w-1", "state": "busy", "running": 2, "capacityUsed": 2, "tasksCompleted": 7
        }))
        .unwrap();
        assert_eq!(r.state, Activity::Busy);
        assert_eq!(r.tasks_completed, 7);
        let e = serde_json::from_value::<HeartbeatRequest>(json!({
            "workerId": "w-1", "state": "busy", "runing": 2
        }))
        .unwrap_err();
        assert!(e.to_string().contains("runing"), "{e}");
        let e =
            serde_json::from_value::<HeartbeatRequest>(json!({"workerId": "w", "state": "asleep"}))
                .unwrap_err();
        assert!(e.to_string().contains("asleep"), "{e}");
    }

    #[test]
    fn a_registration_round_trips_with_its_proof_and_secret() {
        let req = RegisterRequest {
            worker_pool_id: "ci/linux".into(),
            worker_id: "w-1".into(),
            proof: IdentityProof::GcpToken {
                jwt: "a.b.c".into(),
            },
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["proof"]["kind"], "gcp_token");
        assert_eq!(serde_json::from_value::<RegisterRequest>(v).unwrap(), req);
        let resp = RegisterResponse {
            worker_config: json!({"x": 1}),
            secret: Secret::new("s3cret"),
            expires: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            heartbeat_interval_secs: 30,
        };
        let text = serde_json::to_string(&resp).unwrap();
        assert!(text.contains("\"secret\":\"s3cret\""), "{text}");
        assert!(!format!("{resp:?}").contains("s3cret"));
        assert_eq!(
            serde_json::from_str::<RegisterResponse>(&text).unwrap(),
            resp
        );
    }

    #[test]
    fn error_codes_map_to_statuses() {
        assert_eq!(ErrorCode::Unauthorized.status(), 401);
        assert_eq!(ErrorCode::RateLimited.status(), 429);
        let b: ErrorBody =
            serde_json::from_str(r#"{"code":"rate_limited","message":"slow down"}"#).unwrap();
        assert_eq!(b.code, ErrorCode::RateLimited);
    }
}
