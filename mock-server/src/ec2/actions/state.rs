//! TerminateInstances, StopInstances and StartInstances: which states each
//! accepts, the transition it starts, and the state-change XML.

use std::time::Instant;

use super::{instance_ids, DryRun};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::instances::{Instance, Phase, State};
use crate::ec2::query::Params;
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2, Injected};

/// The parameters of a state change, checked.
struct ChangeInput<'p> {
    /// `InstanceId.N`, at least one, well formed.
    ids: Vec<&'p str>,
    dry_run: DryRun,
}

impl<'p> ChangeInput<'p> {
    fn parse(p: &'p Params) -> Result<ChangeInput<'p>, Ec2Error> {
        let ids = instance_ids(p)?;
        if ids.is_empty() {
            return Err(Ec2Error::missing("InstanceId"));
        }
        Ok(ChangeInput {
            ids,
            dry_run: DryRun::parse(p),
        })
    }
}

impl Ec2 {
    /// Looks up every id (all must exist) under the partition lock and
    /// applies `change` to each; answers the state-change XML.
    fn change_states(
        &self,
        caller: &Caller,
        p: &Params,
        action: &str,
        request_id: &str,
        check: impl Fn(&Instance, State) -> Result<(), Ec2Error>,
        change: impl Fn(&mut Instance, State, Instant),
    ) -> Result<String, Ec2Error> {
        let ChangeInput { ids, dry_run } = ChangeInput::parse(p)?;
        let now = Instant::now();
        let Some(part) = self.partition(caller) else {
            return Err(Ec2Error::instances_not_found(&ids));
        };
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.sweep(now);
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| part.get(id, now).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(Ec2Error::instances_not_found(&missing));
        }
        for id in &ids {
            if let Some(i) = part.get(id, now) {
                check(i, i.seen(now).state)?;
            }
        }
        dry_run.answer()?;
        let mut x = Xml::response(action, request_id, 256 + ids.len() * 256);
        x.open("instancesSet");
        for id in &ids {
            if let Some(i) = part.get_mut(id, now) {
                let previous = i.seen(now).state;
                change(i, previous, now);
                let current = i.seen(now).state;
                write_change(&mut x, id, current, previous);
            }
        }
        x.close("instancesSet");
        Ok(x.finish_response(action))
    }

    /// TerminateInstances.
    pub(in crate::ec2) fn terminate_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let shut = self.scaled_ms(cfg.terminate_ms);
        let visible = self.scaled_ms(cfg.terminated_visible_ms);
        self.change_states(
            caller,
            p,
            "TerminateInstances",
            request_id,
            |_, _| Ok(()),
            |i, state, now| {
                if !matches!(state, State::ShuttingDown | State::Terminated) {
                    i.transition(Phase::Terminating, now, shut);
                    i.failure = None;
                    i.gone_at = Some(i.ready_at + visible);
                }
            },
        )
    }

    /// StopInstances.
    pub(in crate::ec2) fn stop_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let stop = self.scaled_ms(cfg.stop_ms);
        self.change_states(
            caller,
            p,
            "StopInstances",
            request_id,
            |i, state| match state {
                State::Running | State::Stopping | State::Stopped => {
                    match &i.spot {
                        Some(s) if s.kind == "one-time" => Err(Ec2Error::new(
                            400,
                            "UnsupportedOperation",
                            format!(
                                "You can't stop the Spot Instance '{}' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.",
                                i.id
                            ),
                        )),
                        _ => Ok(()),
                    }
                }
                State::Pending if i.phase == Phase::Launching => Err(Ec2Error::incorrect_state(format!(
                    "The instance '{}' cannot be stopped as it has never reached the 'running' state.",
                    i.id
                ))),
                _ => Err(Ec2Error::incorrect_state(format!(
                    "This instance '{}' is not in a state from which it can be stopped.",
                    i.id
                ))),
            },
            |i, state, now| {
                if state == State::Running {
                    i.transition(Phase::Stopping, now, stop);
                    i.failure = None;
                }
            },
        )
    }

    /// StartInstances.
    pub(in crate::ec2) fn start_instances(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        injected: &Injected,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let launch = self.scaled_ms(cfg.launch_ms);
        self.change_states(
            caller,
            p,
            "StartInstances",
            request_id,
            |i, state| match state {
                State::Stopped | State::Running | State::Pending => Ok(()),
                _ => Err(Ec2Error::incorrect_state(format!(
                    "The instance '{}' is not in a state from which it can be started.",
                    i.id
                ))),
            },
            |i, state, now| {
                if state == State::Stopped {
                    i.transition(Phase::Starting, now, launch);
                    i.failure = injected.fail.clone();
                }
            },
        )
    }
}

/// Writes one instance-state change item (Terminate/Stop/Start).
fn write_change(x: &mut Xml, id: &str, current: State, previous: State) {
    x.open("item");
    x.leaf("instanceId", id);
    current.write(x, "currentState");
    previous.write(x, "previousState");
    x.close("item");
}
