//! The Operation resource: what every mutation returns and clients poll.
//!
//! Its status derives from three instants (inserted, started, done). A
//! failed operation is `DONE` with `error.errors[]` **and**
//! `httpErrorStatusCode` / `httpErrorMessage`: google-cloud-compute raises
//! only when both are set, and reads a failure without them as success.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use super::links::{rfc3339, Base};

/// The kind of change an operation makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) enum OpType {
    /// `instances.insert`.
    Insert,
    /// `instances.bulkInsert` (its target is the zone).
    BulkInsert,
    /// `instances.delete`.
    Delete,
    /// `instances.start`.
    Start,
    /// `instances.stop`.
    Stop,
    /// `instances.suspend`.
    Suspend,
    /// `instances.resume`.
    Resume,
    /// `instances.setLabels`.
    SetLabels,
    /// A spot or preemptible instance preempted by Compute itself.
    Preempted,
}

impl OpType {
    /// The wire name of `operationType`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OpType::Insert => "insert",
            OpType::BulkInsert => "bulkInsert",
            OpType::Delete => "delete",
            OpType::Start => "start",
            OpType::Stop => "stop",
            OpType::Suspend => "suspend",
            OpType::Resume => "resume",
            OpType::SetLabels => "setLabels",
            OpType::Preempted => "compute.instances.preempted",
        }
    }
}

/// Why an operation failed, as the operation reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Failure {
    /// `error.errors[0].code`, e.g. `ZONE_RESOURCE_POOL_EXHAUSTED`.
    pub code: String,
    /// `error.errors[0].message`.
    pub message: String,
    /// `httpErrorStatusCode`.
    pub http_status: u16,
    /// `httpErrorMessage`.
    pub http_message: &'static str,
    /// For an `INSTANCES` quota failure, its limit (reported in
    /// `errorDetails[].quotaInfo`).
    pub instance_quota: Option<u32>,
}

impl Failure {
    /// The failure for `code`, with the HTTP status Compute pairs it with and
    /// a default message when `message` is empty.
    pub(crate) fn new(code: &str, message: &str, project: &str, zone: &str) -> Self {
        let (http_status, http_message, default) = match code {
            "ZONE_RESOURCE_POOL_EXHAUSTED" | "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS" => (
                503,
                "SERVICE UNAVAILABLE",
                format!(
                    "The zone 'projects/{project}/zones/{zone}' does not have enough resources \
                     available to fulfill the request.  Try a different zone, or try again later."
                ),
            ),
            "VM_MIN_COUNT_NOT_REACHED" => (
                503,
                "SERVICE UNAVAILABLE",
                "Requested minimum count of VMs was not reached.".to_string(),
            ),
            "QUOTA_EXCEEDED" => (
                403,
                "FORBIDDEN",
                format!(
                    "Quota 'CPUS' exceeded.  Limit: 24.0 in region {}.",
                    region(zone)
                ),
            ),
            "RESOURCE_OPERATION_RATE_EXCEEDED" => (
                403,
                "FORBIDDEN",
                "Operation rate exceeded for resource. Too frequent operations from the source \
                 resource."
                    .to_string(),
            ),
            "RESOURCE_NOT_FOUND" => (404, "NOT FOUND", "The resource was not found.".to_string()),
            "RESOURCE_ALREADY_EXISTS" => {
                (409, "CONFLICT", "The resource already exists.".to_string())
            }
            "INTERNAL_ERROR" => (
                500,
                "INTERNAL SERVER ERROR",
                "Internal error. Please try again or contact Google Support.".to_string(),
            ),
            _ => (400, "BAD REQUEST", format!("Operation failed: {code}.")),
        };
        Failure {
            code: code.to_string(),
            message: if message.is_empty() {
                default
            } else {
                message.to_string()
            },
            http_status,
            http_message,
            instance_quota: None,
        }
    }

    /// The failure of an insert beyond the `INSTANCES` quota of `limit`.
    pub(crate) fn instance_quota(limit: u32, zone: &str) -> Self {
        Failure {
            code: "QUOTA_EXCEEDED".to_string(),
            message: format!(
                "Quota 'INSTANCES' exceeded.  Limit: {limit}.0 in region {}.",
                region(zone)
            ),
            http_status: 403,
            http_message: "FORBIDDEN",
            instance_quota: Some(limit),
        }
    }
}

/// `us-central1` of `us-central1-a`.
fn region(zone: &str) -> &str {
    zone.rsplit_once('-').map(|(r, _)| r).unwrap_or(zone)
}

/// The principal an operation records (`user`): one of the mock's
/// constants, so operations carry no copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Principal(pub &'static str);

impl Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Principal {
    /// From a snapshot: one of the principals the mock records.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        [super::methods::instances::USER, super::spot::SYSTEM]
            .into_iter()
            .find(|k| *k == s)
            .map(Principal)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown operation user {s:?}")))
    }
}

/// One zonal operation.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(crate) struct Operation {
    /// Numeric id.
    pub id: u64,
    /// `operation-...` name (shared with the store's indexes).
    pub name: Arc<str>,
    /// The zone.
    pub zone: String,
    /// What it does.
    pub op_type: OpType,
    /// The target instance's name (empty when the target is the zone, as
    /// for a bulk insert).
    pub target: String,
    /// The target instance's id (unused when the target is the zone).
    pub target_id: u64,
    /// The principal that asked.
    pub user: Principal,
    /// When it was accepted (wall clock, for the timestamps).
    pub inserted_wall: OffsetDateTime,
    /// When it was accepted.
    #[serde(with = "crate::snapshot::clock::at")]
    pub inserted: Instant,
    /// When it goes `RUNNING`.
    #[serde(with = "crate::snapshot::clock::at")]
    pub started: Instant,
    /// When it goes `DONE`.
    #[serde(with = "crate::snapshot::clock::at")]
    pub done: Instant,
    /// Set when it ends in failure.
    #[serde(deserialize_with = "crate::snapshot::gce::failure")]
    pub failure: Option<Failure>,
}

/// `error` of a failed operation.
#[derive(Serialize)]
struct ErrorView<'a> {
    errors: [ErrorItem<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorItem<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_details: Option<[QuotaDetail<'a>; 1]>,
}

/// `errorDetails[]` of a quota failure.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuotaDetail<'a> {
    quota_info: QuotaInfo<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QuotaInfo<'a> {
    metric_name: &'static str,
    limit_name: &'static str,
    dimensions: Dimensions<'a>,
    limit: f64,
}

#[derive(Serialize)]
struct Dimensions<'a> {
    region: &'a str,
}

/// The wire shape of an operation.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperationView<'a> {
    kind: &'static str,
    id: String,
    name: &'a str,
    zone: String,
    operation_type: &'static str,
    target_link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_id: Option<String>,
    status: &'static str,
    user: &'a str,
    progress: u8,
    insert_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_error_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_error_message: Option<&'static str>,
    self_link: String,
}

impl Operation {
    /// `PENDING`, `RUNNING` or `DONE` at `now`.
    pub(crate) fn status(&self, now: Instant) -> &'static str {
        if now >= self.done {
            "DONE"
        } else if now >= self.started {
            "RUNNING"
        } else {
            "PENDING"
        }
    }

    fn wall(&self, at: Instant) -> String {
        let offset = at.saturating_duration_since(self.inserted);
        rfc3339(self.inserted_wall + offset)
    }

    /// The operation as JSON, at `now`, with links against `base`.
    pub(crate) fn render(&self, base: &Base, project: &str, now: Instant) -> Vec<u8> {
        let status = self.status(now);
        let progress = match status {
            "DONE" => 100,
            "PENDING" => 0,
            _ => {
                let total = self.done.saturating_duration_since(self.started);
                let gone = now.saturating_duration_since(self.started);
                if total.is_zero() {
                    0
                } else {
                    ((gone.as_secs_f64() / total.as_secs_f64()) * 100.0).clamp(0.0, 99.0) as u8
                }
            }
        };
        let zone_rel = format!("projects/{project}/zones/{}", self.zone);
        let done = status == "DONE";
        let failure = self.failure.as_ref().filter(|_| done);
        let view = OperationView {
            kind: "compute#operation",
            id: self.id.to_string(),
            name: &self.name,
            zone: base.link(&zone_rel),
            operation_type: self.op_type.as_str(),
            target_link: if self.target.is_empty() {
                base.link(&zone_rel)
            } else {
                base.link(&format!("{zone_rel}/instances/{}", self.target))
            },
            target_id: (!self.target.is_empty()).then(|| self.target_id.to_string()),
            status,
            user: self.user.0,
            progress,
            insert_time: self.wall(self.inserted),
            start_time: (status != "PENDING").then(|| self.wall(self.started)),
            end_time: done.then(|| self.wall(self.done)),
            error: failure.map(|f| ErrorView {
                errors: [ErrorItem {
                    code: &f.code,
                    message: &f.message,
                    error_details: f.instance_quota.map(|limit| {
                        [QuotaDetail {
                            quota_info: QuotaInfo {
                                metric_name: "compute.googleapis.com/instances",
                                limit_name: "INSTANCES-per-project-region",
                                dimensions: Dimensions {
                                    region: region(&self.zone),
                                },
                                limit: f64::from(limit),
                            },
                        }]
                    }),
                }],
            }),
            http_error_status_code: failure.map(|f| f.http_status),
            http_error_message: failure.map(|f| f.http_message),
            self_link: base.link(&format!("{zone_rel}/operations/{}", self.name)),
        };
        // Serializing a struct of strings and numbers cannot fail.
        serde_json::to_vec(&view).unwrap_or_default()
    }

    /// The operation as a JSON value (for lists).
    pub(crate) fn to_value(&self, base: &Base, project: &str, now: Instant) -> serde_json::Value {
        serde_json::from_slice(&self.render(base, project, now)).unwrap_or_default()
    }

    /// Whether the operation exists yet at `now` (a preemption is recorded
    /// ahead, when its notice is given, and appears when it happens).
    pub(crate) fn visible(&self, now: Instant) -> bool {
        now >= self.inserted
    }

    /// How long until the operation is `DONE` (zero if it is).
    pub(crate) fn remaining(&self, now: Instant) -> Duration {
        self.done.saturating_duration_since(now)
    }
}
