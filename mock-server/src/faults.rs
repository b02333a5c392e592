//! Fault rules, as `PUT /_mock/faults` takes them: which requests a rule
//! matches and what it does to them ([`FaultEffect`]). The rules in force
//! and their matching live in [`crate::Ctx`].

use serde::{Deserialize, Serialize};

use crate::ctx::Cloud;

/// What a matching fault rule does to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultEffect {
    /// Delay the answer by `ms` milliseconds, then answer normally.
    Latency {
        /// Added delay in milliseconds.
        ms: u64,
    },
    /// Never answer (until the client gives up, or the mock's hang cap).
    Hang,
    /// Answer with an error in the cloud's own error format.
    Error {
        /// HTTP status.
        status: u16,
        /// The cloud's error code.
        code: String,
        /// The error message.
        #[serde(default)]
        message: String,
    },
    /// The cloud's native throttle answer.
    Throttle {
        /// Seconds the client is asked to wait, before the time scale (the
        /// answer announces `retry_after_s` times `time_scale`, at least 10 ms).
        retry_after_s: u64,
    },
    /// Accept the request, but make its asynchronous operation end Failed.
    FailOperation {
        /// The error code the operation reports.
        code: String,
        /// The error message the operation reports.
        #[serde(default)]
        message: String,
    },
    /// Drop the connection without an answer.
    Reset,
    /// Carry the request out, then never answer (until the client gives up,
    /// or the mock's hang cap): the call landed and its answer is lost, as
    /// when a process dies with a mutating call in flight. On requests that
    /// change nothing it is a `hang`.
    LoseAnswer,
    /// Eventual consistency: the next `count` reads of the resource this
    /// request creates answer 404.
    NotFoundReads {
        /// How many reads answer 404.
        count: u32,
    },
    /// Accept the request, but never finish what it starts: its ARM
    /// operation stays `InProgress` (the resource `Creating`, `Updating` or
    /// `Deleting`), its Compute operation `RUNNING` (a new instance
    /// `PROVISIONING`), its new EC2 instances `pending`. Only the client's
    /// own deadline ends the wait.
    Stuck,
}

/// One fault rule, as `PUT /_mock/faults` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The cloud the rule applies to.
    pub cloud: Cloud,
    /// The cloud's own operation name (EC2 Action, ARM operationId, Compute
    /// discovery method id), or `"*"` for any.
    pub operation: String,
    /// A glob (`*`, `?`) on the resource name or id; absent matches any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Fire on the next `count` matches only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Fire on this share of matches (seeded RNG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// What to do.
    pub effect: FaultEffect,
}

impl FaultRule {
    /// Checks the rule's own consistency; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) || p.is_nan() {
                return Err(format!("probability must be within [0, 1], got {p}"));
            }
        }
        if self.count.is_some() && self.probability.is_some() {
            return Err("give either count or probability, not both".into());
        }
        if self.operation.is_empty() {
            return Err("operation must not be empty (use \"*\" for any)".into());
        }
        if let FaultEffect::Error { status, .. } = &self.effect {
            if !(400..=599).contains(status) {
                return Err(format!(
                    "effect.status must be within 400..=599, got {status}"
                ));
            }
        }
        Ok(())
    }
}
