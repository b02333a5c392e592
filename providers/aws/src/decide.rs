//! The second half of a step, pure: what EC2's answer means for the worker.
//!
//! - [`decide`]: from what a DescribeInstances found (or did not find):
//!   `pending` stays requested, `running` is running,
//!   `stopping`/`stopped`/`shutting-down`/`terminated` tear the worker down;
//!   an instance missing right after its launch is EC2's eventual
//!   consistency, tolerated for [`Timings::not_found_grace`].
//! - [`launched`] and [`terminated`]: from the answer of the one mutating
//!   call a [`Plan`] asked for.
//!
//! [`Timings::not_found_grace`]: crate::Timings::not_found_grace

use std::time::Duration;

use skyfleet_core::model::tag;
use skyfleet_core::offering::{Interruption, InterruptionSource};
use skyfleet_core::provider::StepError;
use skyfleet_core::{Error, ErrorKind, Failure, Phase, Result, Step, Worker};
use time::OffsetDateTime;

use crate::client::InstanceView;
use crate::plan::{step, Call, Plan, Rules};
use crate::state::{AwsState, Teardown, TeardownReason};

/// The final step of a teardown that is complete.
fn ended(st: &AwsState) -> Result<Step> {
    let Some(td) = &st.teardown else {
        return step(st, Phase::Stopped, Duration::ZERO);
    };
    let mut s = match td.reason {
        TeardownReason::Removed => return step(st, Phase::Stopped, Duration::ZERO),
        TeardownReason::ProvisioningDeadline => step(st, Phase::Failed, Duration::ZERO)?
            .with_error(
                &Error::new(
                    ErrorKind::Timeout,
                    "the provisioning deadline passed before the instance ran; it was terminated",
                )
                .with_provider("aws"),
            ),
        TeardownReason::InstanceEnded | TeardownReason::LaunchFailed => {
            let phase = if st.seen_running {
                Phase::Stopped
            } else {
                Phase::Failed
            };
            step(st, phase, Duration::ZERO)?
        }
    };
    if let Some(c) = &td.cause {
        s.error = Some(StepError {
            at: None,
            ..c.clone()
        });
    }
    Ok(s)
}

/// Decides a worker's step from what the describe `found`.
pub(crate) fn decide(
    rules: &Rules<'_>,
    worker: &Worker,
    mut st: AwsState,
    found: Option<&InstanceView>,
    now: OffsetDateTime,
) -> Plan {
    let t = rules.timings;
    if let Some(i) = found {
        if st.instance_id.is_none() {
            st.instance_id = Some(i.id.clone());
            st.launched_at.get_or_insert(now);
        }
        st.last_state = i.state.clone();
        if i.private_ip.is_some() {
            st.private_ip = i.private_ip.clone();
        }
    }
    let Some(td) = st.teardown.clone() else {
        return match found {
            Some(i) => decide_live(rules, worker, st, i, now),
            None => decide_missing(rules, st, now),
        };
    };
    // Tearing down.
    match found {
        None => {
            let since = match st.instance_id {
                // The id is known: it may be invisible right after launch.
                Some(_) => st.launched_at,
                // Found by tag: RunInstances may have landed just now.
                None => Some(td.since),
            };
            if rules.within_grace(since, now) {
                // Possibly not visible yet: look again (and, when the
                // terminate has not been accepted, send it again).
                return Plan::Done(step(&st, Phase::Stopping, t.poll_interval));
            }
            Plan::Done(ended(&st))
        }
        Some(i) => match i.state.as_deref() {
            Some("terminated") => Plan::Done(ended(&st)),
            Some("shutting-down") => Plan::Done(step(&st, Phase::Stopping, t.poll_interval)),
            _ => {
                let resend = td
                    .terminate_sent_at
                    .is_none_or(|at| now >= at + t.poll_interval);
                if resend {
                    let id = i.id.clone();
                    Plan::Call(Call::Terminate {
                        st,
                        id,
                        interruption: None,
                    })
                } else {
                    Plan::Done(step(&st, Phase::Stopping, t.poll_interval))
                }
            }
        },
    }
}

/// No teardown, and the describe did not find the instance: eventual
/// consistency right after launch, or gone.
fn decide_missing(rules: &Rules<'_>, mut st: AwsState, now: OffsetDateTime) -> Plan {
    if rules.within_grace(st.launched_at.or(Some(st.token_at)), now) {
        let phase = if st.seen_running {
            Phase::Running
        } else {
            Phase::Requested
        };
        return Plan::Done(step(&st, phase, rules.timings.poll_interval));
    }
    let id = st.instance_id.clone().unwrap_or_default();
    st.teardown = Some(Teardown {
        reason: TeardownReason::InstanceEnded,
        since: now,
        terminate_sent_at: Some(now),
        cause: Some(
            Failure::new(
                ErrorKind::NotFound,
                format!("instance {id} no longer exists"),
            )
            .with_code("InvalidInstanceID.NotFound"),
        ),
    });
    Plan::Done(ended(&st))
}

/// No teardown, and the describe found instance `i`.
fn decide_live(
    rules: &Rules<'_>,
    worker: &Worker,
    mut st: AwsState,
    i: &InstanceView,
    now: OffsetDateTime,
) -> Plan {
    let t = rules.timings;
    let Some(state) = i.state.as_deref() else {
        return Plan::Done(Err(crate::classify::malformed(
            "DescribeInstances",
            &format!("instance {} has no state", i.id),
        )));
    };
    match state {
        "pending" => Plan::Done(step(
            &st,
            Phase::Requested,
            rules.pending_interval(worker, now),
        )),
        "running" => {
            st.seen_running = true;
            Plan::Done(step(&st, Phase::Running, t.check_interval))
        }
        other => {
            // Ended without us: spot interruption, shutdown from inside, a
            // failed launch. Tear down what is left.
            let code = i.state_reason_code.clone();
            let kind = code
                .as_deref()
                .and_then(crate::classify::kind_for_code)
                .filter(|k| *k == ErrorKind::CapacityOrQuota)
                .unwrap_or(ErrorKind::OperationFailed);
            let message = format!(
                "instance {} is {other}{}",
                i.id,
                i.state_reason_message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            let interruption = interruption_of(i);
            let ending = matches!(other, "shutting-down" | "terminated");
            st.teardown = Some(Teardown {
                reason: TeardownReason::InstanceEnded,
                since: now,
                terminate_sent_at: ending.then_some(now),
                cause: Some(Failure {
                    kind,
                    code,
                    message,
                    at: None,
                }),
            });
            let seen = |s: Result<Step>| match &interruption {
                Some(int) => s.map(|s| s.with_interruption(int.clone())),
                None => s,
            };
            if other == "terminated" {
                Plan::Done(seen(ended(&st)))
            } else if ending {
                Plan::Done(seen(step(&st, Phase::Stopping, t.poll_interval)))
            } else {
                let id = i.id.clone();
                Plan::Call(Call::Terminate {
                    st,
                    id,
                    interruption,
                })
            }
        }
    }
}

/// The state reason of a spot instance EC2 reclaimed.
pub const SPOT_TERMINATION: &str = "Server.SpotInstanceTermination";

/// The interruption instance `i` shows, if any: it ended with the state
/// reason [`SPOT_TERMINATION`] (EC2 reclaimed the spot capacity).
pub(crate) fn interruption_of(i: &InstanceView) -> Option<Interruption> {
    (i.state_reason_code.as_deref() == Some(SPOT_TERMINATION)).then(|| Interruption {
        source: InterruptionSource::Provider,
        detail: SPOT_TERMINATION.to_string(),
        not_before: None,
    })
}

/// The step after RunInstances answered `answer`; `pending` is the
/// interval before looking at a pending instance.
pub(crate) fn launched(
    mut st: AwsState,
    answer: Result<InstanceView>,
    pending: Duration,
    now: OffsetDateTime,
) -> Result<Step> {
    match answer {
        Ok(i) => {
            st.instance_id = Some(i.id);
            st.launched_at = Some(now);
            st.last_state = i.state;
            if i.private_ip.is_some() {
                st.private_ip = i.private_ip;
            }
            step(&st, Phase::Requested, pending)
        }
        // Throttles, timeouts, 5xx and unreadable answers: the instance may
        // exist. Keep the state; the replay sends the same token and gets
        // the same instance.
        Err(e) if e.is_retryable() || e.kind() == &ErrorKind::Internal => Err(e),
        Err(e) if e.kind() == &ErrorKind::AlreadyExists => {
            // IdempotentParameterMismatch: an instance with this token
            // exists. Find it by tag and tear it down.
            st.teardown = Some(Teardown {
                reason: TeardownReason::LaunchFailed,
                since: now,
                terminate_sent_at: None,
                cause: Some(Failure::from(&e)),
            });
            Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(&e))
        }
        // EC2 refused the launch: nothing exists. The error's kind
        // (capacity_or_quota, invalid_config, ...) tells the provisioner
        // whether to try another launch config.
        Err(e) => Ok(step(&st, Phase::Failed, Duration::ZERO)?.with_error(&e)),
    }
}

/// The step after TerminateInstances answered `answer`.
pub(crate) fn terminated(
    rules: &Rules<'_>,
    mut st: AwsState,
    answer: Result<()>,
    now: OffsetDateTime,
) -> Result<Step> {
    let timings = rules.timings;
    match answer {
        Ok(()) => {
            if let Some(td) = st.teardown.as_mut() {
                td.terminate_sent_at = Some(now);
            }
            step(&st, Phase::Stopping, timings.poll_interval)
        }
        Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {
            if rules.within_grace(st.launched_at, now) {
                // Not visible yet: try again after a poll interval.
                step(&st, Phase::Stopping, timings.poll_interval)
            } else {
                // Already gone; the describe confirms.
                if let Some(td) = st.teardown.as_mut() {
                    td.terminate_sent_at = Some(now);
                }
                step(&st, Phase::Stopping, Duration::ZERO)
            }
        }
        Err(e) => Err(e),
    }
}

/// The instance that belongs to a worker among those tagged with its id.
pub(crate) fn pick_by_tag<'a>(
    worker: &Worker,
    st: &AwsState,
    candidates: &'a [InstanceView],
) -> Option<&'a InstanceView> {
    let mine = |i: &&InstanceView| {
        i.tags.get(tag::WORKER).map(String::as_str) == Some(worker.id())
            && match &i.client_token {
                Some(t) => *t == st.client_token,
                None => {
                    i.tags.get(tag::MANAGER).map(String::as_str)
                        == Some(worker.spec.tags.manager_id.as_str())
                }
            }
    };
    candidates
        .iter()
        .filter(mine)
        .find(|i| i.state.as_deref() != Some("terminated"))
        .or_else(|| candidates.iter().find(mine))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::Timings;
    use std::collections::BTreeMap;

    fn rules(regions: &[String]) -> Rules<'_> {
        Rules {
            provider_id: "aws",
            regions,
            timings: Timings::default(),
            root_url: None,
        }
    }

    fn running_state(now: OffsetDateTime) -> AwsState {
        AwsState {
            region: "us-east-1".into(),
            client_token: "sf-w-1-00".into(),
            token_at: now - time::Duration::minutes(10),
            instance_id: Some("i-0abc".into()),
            launched_at: Some(now - time::Duration::minutes(10)),
            last_state: Some("running".into()),
            seen_running: true,
            teardown: None,
            private_ip: None,
        }
    }

    fn view(state: &str, reason: Option<&str>) -> InstanceView {
        InstanceView {
            id: "i-0abc".into(),
            state: Some(state.into()),
            state_reason_code: reason.map(str::to_string),
            state_reason_message: reason.map(|r| format!("{r}: gone")),
            client_token: None,
            tags: BTreeMap::new(),
            launch_time: None,
            owner_id: None,
            private_ip: None,
        }
    }

    fn done(p: Plan) -> Step {
        match p {
            Plan::Done(s) => s.expect("a step"),
            _ => panic!("expected a finished step"),
        }
    }

    #[test]
    fn a_spot_termination_is_an_interruption_seen_once() {
        let regions = vec!["us-east-1".to_string()];
        let r = rules(&regions);
        let w = skyfleet_core::testing::fixtures::worker("w-1").build_now();
        let now = OffsetDateTime::now_utc();
        for (state, phase) in [
            ("terminated", Phase::Stopped),
            ("shutting-down", Phase::Stopping),
        ] {
            let s = done(decide(
                &r,
                &w,
                running_state(now),
                Some(&view(state, Some(SPOT_TERMINATION))),
                now,
            ));
            assert_eq!(s.phase, phase, "{state}");
            let i = s.interruption.expect("an interruption");
            assert_eq!(i.source, InterruptionSource::Provider);
            assert_eq!(i.detail, SPOT_TERMINATION);
            assert_eq!(i.not_before, None);
            // The next look, tearing down, does not report it again.
            let st: AwsState = serde_json::from_value(s.state).unwrap();
            let again = decide(
                &r,
                &w,
                st,
                Some(&view("terminated", Some(SPOT_TERMINATION))),
                now,
            );
            assert!(done(again).interruption.is_none(), "{state}");
        }
        // Stopped by a spot interruption: the terminate call carries it.
        match decide(
            &r,
            &w,
            running_state(now),
            Some(&view("stopped", Some(SPOT_TERMINATION))),
            now,
        ) {
            Plan::Call(Call::Terminate { interruption, .. }) => {
                assert_eq!(
                    interruption.map(|i| i.detail).as_deref(),
                    Some(SPOT_TERMINATION)
                )
            }
            _ => panic!("expected a terminate"),
        }
    }

    #[test]
    fn other_endings_are_no_interruption() {
        let regions = vec!["us-east-1".to_string()];
        let r = rules(&regions);
        let w = skyfleet_core::testing::fixtures::worker("w-1").build_now();
        let now = OffsetDateTime::now_utc();
        for reason in [
            Some("Client.UserInitiatedShutdown"),
            Some("Server.InsufficientInstanceCapacity"),
            None,
        ] {
            let s = done(decide(
                &r,
                &w,
                running_state(now),
                Some(&view("terminated", reason)),
                now,
            ));
            assert!(s.interruption.is_none(), "{reason:?}");
            assert_eq!(s.phase, Phase::Stopped);
        }
        // A launch that ended on capacity before running: failed, with the
        // capacity error kept.
        let mut st = running_state(now);
        st.seen_running = false;
        let s = done(decide(
            &r,
            &w,
            st,
            Some(&view(
                "terminated",
                Some("Server.InsufficientInstanceCapacity"),
            )),
            now,
        ));
        assert_eq!(s.phase, Phase::Failed);
        let e = s.error.expect("the error");
        assert_eq!(e.kind, ErrorKind::CapacityOrQuota);
        assert_eq!(
            e.code.as_deref(),
            Some("Server.InsufficientInstanceCapacity")
        );
    }
}
