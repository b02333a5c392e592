//! The first half of a step, pure: [`plan`] reads a worker and its
//! [`AwsState`] and says what the step needs: nothing more (the answer),
//! one mutating call, or a look at the instance (batched by the provider
//! into one DescribeInstances per region) to [`decide`](crate::decide) on.
//!
//! One worker is one instance, driven one step at a time:
//!
//! 1. The first step records the region and the `ClientToken` and makes no
//!    call.
//! 2. The next sends RunInstances and records the instance id. If the
//!    process dies before the answer is persisted, the replayed step sends
//!    the same token and EC2 answers with the same instance.
//! 3. Later steps look at the instance.
//! 4. Removal (asked for, or the provisioning deadline passed, or the
//!    instance ended by itself) sends TerminateInstances, then confirms with
//!    the batched describe until the instance is terminated or gone. A
//!    removal that finds no instance id looks the instance up by its worker
//!    tag first.
//!
//! Each step makes at most one mutating call; describes are reads.

use std::time::Duration;

use skyfleet_core::offering::Interruption;
use skyfleet_core::{DesiredState, Error, Phase, Result, Step, Worker};
use time::OffsetDateTime;

use crate::builder::Timings;
use crate::client::RunRequest;
use crate::idempotency::client_token;
use crate::launch::Ec2Launch;
use crate::state::{AwsState, Teardown, TeardownReason};

/// What the pure step functions know of the provider.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// The provider id (named in errors).
    pub(crate) provider_id: &'a str,
    /// The configured regions.
    pub(crate) regions: &'a [String],
    /// The step timings.
    pub(crate) timings: Timings,
    /// The manager's API URL written into each worker's UserData.
    pub(crate) root_url: Option<&'a str>,
}

impl Rules<'_> {
    /// An error unless `region` is one of the provider's.
    pub(crate) fn check_region(&self, region: &str) -> Result<()> {
        if self.regions.iter().any(|r| r == region) {
            return Ok(());
        }
        Err(Error::invalid_config(
            "launch.region",
            format!(
                "region `{region}` is not one of provider `{}`'s regions ({})",
                self.provider_id,
                self.regions.join(", ")
            ),
        )
        .with_provider("aws"))
    }

    /// The worker's launch config, parsed, in one of the provider's regions.
    pub(crate) fn launch(&self, worker: &Worker) -> Result<Ec2Launch> {
        let l = Ec2Launch::parse(&worker.spec.launch)?;
        self.check_region(&l.region)?;
        Ok(l)
    }

    /// The interval before looking at a pending instance again: the poll
    /// interval, or less when the provisioning deadline comes first.
    pub(crate) fn pending_interval(&self, worker: &Worker, now: OffsetDateTime) -> Duration {
        let to_deadline = skyfleet_core::clock::until(now, worker.provisioning_deadline());
        self.timings
            .poll_interval
            .min(to_deadline)
            .max(Duration::from_millis(1))
    }

    /// Whether an instance launched (or possibly launched) at `since` may
    /// still be invisible to DescribeInstances.
    pub(crate) fn within_grace(&self, since: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        since.is_some_and(|t| now < t + self.timings.not_found_grace)
    }
}

/// The mutating call a step makes.
pub(crate) enum Call {
    /// RunInstances, then record the instance.
    Launch {
        /// The state to update with the answer.
        st: AwsState,
        /// The request.
        req: Box<RunRequest>,
    },
    /// TerminateInstances of instance `id`.
    Terminate {
        /// The state to update with the answer.
        st: AwsState,
        /// The instance.
        id: String,
        /// The interruption the look that asked for the call saw, to
        /// report on this step.
        interruption: Option<Interruption>,
    },
}

impl Call {
    /// The region the call goes to.
    pub(crate) fn region(&self) -> &str {
        match self {
            Call::Launch { st, .. } | Call::Terminate { st, .. } => &st.region,
        }
    }
}

/// What a worker's step needs.
pub(crate) enum Plan {
    /// Nothing more: the answer.
    Done(Result<Step>),
    /// One mutating call.
    Call(Call),
    /// A look at the instance (batched), then a decision.
    Look(AwsState, Lookup),
}

/// How to find a worker's instance.
pub(crate) enum Lookup {
    /// By its id.
    Id(String),
    /// By its worker tag (the id is unknown: RunInstances failed or its
    /// answer was lost).
    Tag,
}

/// The step of `st` in `phase`, next in `next`.
pub(crate) fn step(st: &AwsState, phase: Phase, next: Duration) -> Result<Step> {
    Ok(Step::new(st.to_value()?, phase, next))
}

/// A failed step that created nothing (no state to keep).
fn refused(e: &Error) -> Plan {
    Plan::Done(Ok(Step::new(
        serde_json::Value::Null,
        Phase::Failed,
        Duration::ZERO,
    )
    .with_error(e)))
}

/// What `worker`'s step needs at `now`.
pub(crate) fn plan(rules: &Rules<'_>, worker: &Worker, now: OffsetDateTime) -> Plan {
    let st = match AwsState::of(worker) {
        Ok(s) => s,
        Err(e) => return Plan::Done(Err(e)),
    };
    let Some(mut st) = st else {
        if worker.desired == DesiredState::Removed {
            // Nothing was ever asked of EC2.
            return Plan::Done(Ok(Step::new(
                serde_json::Value::Null,
                Phase::Stopped,
                Duration::ZERO,
            )));
        }
        let launch = match rules.launch(worker) {
            Ok(l) => l,
            // Nothing was created; the worker cannot be launched.
            Err(e) => return refused(&e),
        };
        // Record the token before the call that uses it.
        let st = AwsState {
            region: launch.region,
            client_token: client_token(&worker.spec.tags),
            token_at: now,
            instance_id: None,
            launched_at: None,
            last_state: None,
            seen_running: false,
            teardown: None,
            private_ip: None,
        };
        return Plan::Done(step(&st, Phase::Requested, Duration::ZERO));
    };
    if st.teardown.is_none() {
        let reason = if worker.desired == DesiredState::Removed {
            Some(TeardownReason::Removed)
        } else if !st.seen_running && now >= worker.provisioning_deadline() {
            Some(TeardownReason::ProvisioningDeadline)
        } else {
            None
        };
        if let Some(reason) = reason {
            st.teardown = Some(Teardown {
                reason,
                since: now,
                terminate_sent_at: None,
                cause: None,
            });
        }
    }
    match (&st.teardown, st.instance_id.clone()) {
        (None, None) => {
            let launch = match rules.launch(worker) {
                Ok(l) => l,
                Err(e) => return refused(&e),
            };
            let user_data = match launch.user_data(&worker.spec, rules.root_url) {
                Ok(u) => u,
                Err(e) => {
                    return Plan::Done(
                        step(&st, Phase::Failed, Duration::ZERO).map(|s| s.with_error(&e)),
                    )
                }
            };
            let req = RunRequest {
                token: st.client_token.clone(),
                tags: worker.spec.tags.to_map(),
                user_data,
                launch,
            };
            Plan::Call(Call::Launch {
                st,
                req: Box::new(req),
            })
        }
        (None, Some(id)) => Plan::Look(st, Lookup::Id(id)),
        (Some(_), None) => Plan::Look(st, Lookup::Tag),
        (Some(td), Some(id)) => {
            if td.terminate_sent_at.is_none() {
                Plan::Call(Call::Terminate {
                    st,
                    id,
                    interruption: None,
                })
            } else {
                Plan::Look(st, Lookup::Id(id))
            }
        }
    }
}
