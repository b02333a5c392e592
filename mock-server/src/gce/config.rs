//! Compute Engine settings: lifecycle and operation durations, the
//! `zoneOperations.wait` cap, authentication and the per-minute throttle
//! model.
//!
//! Every duration is in milliseconds of simulated time; the mock multiplies
//! it by the global time scale (`Ctx::scaled`) when it schedules a change, so
//! a 15 s boot takes 15 ms at scale 0.001.

use serde::{Deserialize, Serialize};

/// Compute Engine settings, as `PUT /_mock/config` and the config file take
/// them under the `gce` key. Missing fields keep their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GceConfig {
    /// How long an instance stays `PROVISIONING` after insert or start.
    pub provisioning_ms: u64,
    /// How long an instance then stays `STAGING` before `RUNNING`.
    pub staging_ms: u64,
    /// How long a stop keeps the instance `STOPPING` before `TERMINATED`.
    pub stopping_ms: u64,
    /// How long a delete keeps the instance `STOPPING` before it is gone.
    pub deleting_ms: u64,
    /// How long a suspend keeps the instance `SUSPENDING` before
    /// `SUSPENDED` (the guest's memory is written out).
    pub suspending_ms: u64,
    /// How long every operation stays `PENDING` before `RUNNING`.
    pub operation_pending_ms: u64,
    /// How long an insert operation runs before `DONE`.
    pub insert_operation_ms: u64,
    /// How long a start operation runs before `DONE`.
    pub start_operation_ms: u64,
    /// How long a stop operation runs before `DONE`.
    pub stop_operation_ms: u64,
    /// How long a delete operation runs before `DONE`.
    pub delete_operation_ms: u64,
    /// How long a suspend operation runs before `DONE`.
    pub suspend_operation_ms: u64,
    /// How long a resume operation runs before `DONE` (the instance is
    /// `STAGING` for `staging_ms`, then `RUNNING`).
    pub resume_operation_ms: u64,
    /// The longest `zoneOperations.wait` holds a request before answering
    /// with a not yet `DONE` operation (Google documents about 2 minutes; 0
    /// makes every wait return at once).
    pub wait_cap_ms: u64,
    /// Eventual consistency of lists: for this long after
    /// `instances.insert` an instance is missing from `instances.list` and
    /// `aggregatedList`, and for this long after it is gone a deleted one is
    /// still listed (`TERMINATED`). `instances.get` is not affected (0:
    /// lists are always current).
    pub consistency_window_ms: u64,
    /// Whether Compute requests need `Authorization: Bearer ...` (401
    /// otherwise). Off lets clients with anonymous credentials in.
    pub require_auth: bool,
    /// `expires_in` of tokens that `POST /token` issues, in seconds.
    pub token_expires_in_s: u64,
    /// The per-minute rate quota model.
    pub throttle: GceThrottle,
    /// The `INSTANCES` quota: the most instances a project keeps (in every
    /// zone together; deleted ones stop counting once gone). An insert
    /// beyond it is accepted and its operation ends with
    /// `QUOTA_EXCEEDED`; a bulk insert gets as many as fit if that is at
    /// least its `minCount`.
    pub instance_limit: u32,
    /// The most operations a project remembers (at least 1); the oldest
    /// (and the `requestId` that created it) are forgotten beyond it, as
    /// Compute forgets old operations.
    pub operation_limit: u32,
    /// The OAuth clients and their users' refresh tokens that `POST /token`
    /// takes with `grant_type=refresh_token` (what `gcloud auth
    /// application-default login` leaves behind); at most
    /// [`MAX_AUTHORIZED_USERS`]. The default is one,
    /// [`AuthorizedUser::default`].
    pub authorized_users: Vec<AuthorizedUser>,
}

/// The most entries `gcp.authorized_users` takes.
pub const MAX_AUTHORIZED_USERS: usize = 1000;

/// A user who authorized an OAuth client: the client's id and secret, and
/// the refresh token the user's consent produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizedUser {
    /// The OAuth client id (`....apps.googleusercontent.com`).
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The refresh token.
    pub refresh_token: String,
}

impl Default for AuthorizedUser {
    /// Client id `mock-client.apps.googleusercontent.com`, secret
    /// `mock-client-secret`, refresh token `mock-refresh-token`.
    fn default() -> Self {
        AuthorizedUser {
            client_id: "mock-client.apps.googleusercontent.com".into(),
            client_secret: "mock-client-secret".into(),
            refresh_token: "mock-refresh-token".into(),
        }
    }
}

impl GceConfig {
    /// Checks values the types do not constrain: `operation_limit` at least
    /// 1, at most [`MAX_AUTHORIZED_USERS`] authorized users, and no empty
    /// client id, secret or refresh token. The error starts with
    /// the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.operation_limit == 0 {
            return Err("operation_limit: must be at least 1, got 0".into());
        }
        if self.authorized_users.len() > MAX_AUTHORIZED_USERS {
            return Err(format!(
                "authorized_users: at most {MAX_AUTHORIZED_USERS} entries, got {}",
                self.authorized_users.len()
            ));
        }
        for (i, u) in self.authorized_users.iter().enumerate() {
            for (name, v) in [
                ("client_id", &u.client_id),
                ("client_secret", &u.client_secret),
                ("refresh_token", &u.refresh_token),
            ] {
                if v.trim().is_empty() {
                    return Err(format!("authorized_users[{i}].{name}: must not be empty"));
                }
            }
        }
        Ok(())
    }
}

impl Default for GceConfig {
    fn default() -> Self {
        GceConfig {
            provisioning_ms: 5_000,
            staging_ms: 10_000,
            stopping_ms: 30_000,
            deleting_ms: 20_000,
            suspending_ms: 20_000,
            operation_pending_ms: 200,
            insert_operation_ms: 15_000,
            start_operation_ms: 15_000,
            stop_operation_ms: 30_000,
            delete_operation_ms: 20_000,
            suspend_operation_ms: 20_000,
            resume_operation_ms: 15_000,
            wait_cap_ms: 120_000,
            consistency_window_ms: 0,
            require_auth: true,
            token_expires_in_s: 3599,
            throttle: GceThrottle::default(),
            authorized_users: vec![AuthorizedUser::default()],
            instance_limit: 10_000,
            operation_limit: 100_000,
        }
    }
}

/// Compute Engine's rate quotas: fixed, synchronized one-minute windows per
/// project and quota group. A request over its group's limit gets 403
/// `rateLimitExceeded` (or 429 `RESOURCE_EXHAUSTED` when `status` is 429).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GceThrottle {
    /// Off by default.
    pub enabled: bool,
    /// The HTTP status of a throttle answer: 403 (what Compute documents) or
    /// 429; any other value answers 403.
    pub status: u16,
    /// Mutations (`insert`, `delete`, `start`, `stop`, `suspend`,
    /// `resume`, `setLabels`): the `Queries` group,
    /// metric `compute.googleapis.com/default`.
    pub queries_per_minute: u64,
    /// `instances.get`: metric `compute.googleapis.com/read_requests`.
    pub read_requests_per_minute: u64,
    /// `instances.list` and `aggregatedList`: the list requests group.
    pub list_requests_per_minute: u64,
    /// `zoneOperations.get` and `wait`: the operation read group.
    pub operation_read_requests_per_minute: u64,
}

impl Default for GceThrottle {
    fn default() -> Self {
        GceThrottle {
            enabled: false,
            status: 403,
            queries_per_minute: 1500,
            read_requests_per_minute: 1500,
            list_requests_per_minute: 1500,
            operation_read_requests_per_minute: 1500,
        }
    }
}
