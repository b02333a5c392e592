//! Out-of-band changes of an EC2 instance (`POST /_mock/resources/{id}/actions`),
//! made as the console makes them, through the transitions
//! TerminateInstances, StopInstances and StartInstances start: `delete`
//! terminates (`shutting-down` -> `terminated`, state reason
//! `Client.UserInitiatedShutdown`), `stop` stops, `start` starts and
//! `set_tags` replaces the tags (`aws:` keys are AWS's own and refused).
//! A one-time Spot Instance cannot be stopped. EC2 has no `deallocate`.

use std::time::Instant;

use super::instances::{Phase, State};
use super::Ec2;
use crate::ctx::Cloud;
use crate::out_of_band::{Action, ActionError};

impl Ec2 {
    /// Carries `action` out on instance `id`, in whichever account and
    /// region holds it (instance ids are unique across them).
    pub fn out_of_band(&self, id: &str, action: &Action) -> Result<(), ActionError> {
        if *action == Action::Deallocate {
            return Err(ActionError::Unsupported {
                action: action.name(),
                cloud: Cloud::Aws,
            });
        }
        if let Action::SetTags(tags) = action {
            if let Some(k) = tags.keys().find(|k| k.to_ascii_lowercase().starts_with("aws:")) {
                return Err(ActionError::Invalid(format!(
                    "tags: key `{k}`: the aws: prefix is reserved for AWS's own tags"
                )));
            }
        }
        let now = Instant::now();
        let cfg = self.config();
        for (_, part) in self.store.all() {
            let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = part.get_mut(id, now) else {
                continue;
            };
            let state = i.seen(now).state;
            match action {
                Action::Delete => {
                    if !matches!(state, State::ShuttingDown | State::Terminated) {
                        i.transition(Phase::Terminating, now, self.scaled_ms(cfg.terminate_ms));
                        i.failure = None;
                        i.gone_at = Some(i.ready_at + self.scaled_ms(cfg.terminated_visible_ms));
                    }
                }
                Action::Stop => match state {
                    State::Running if i.spot.as_ref().is_some_and(|s| s.kind == "one-time") => {
                        return Err(ActionError::Conflict(format!(
                            "instance {id} is a one-time Spot Instance: it cannot be stopped"
                        )))
                    }
                    State::Running => {
                        i.transition(Phase::Stopping, now, self.scaled_ms(cfg.stop_ms));
                        i.failure = None;
                    }
                    State::Stopping | State::Stopped => {}
                    _ => {
                        return Err(ActionError::Conflict(format!(
                            "instance {id} is {}: only a running instance can be stopped",
                            state.name()
                        )))
                    }
                },
                Action::Start => match state {
                    State::Stopped => {
                        i.transition(Phase::Starting, now, self.scaled_ms(cfg.launch_ms));
                        i.failure = None;
                    }
                    State::Pending | State::Running => {}
                    _ => {
                        return Err(ActionError::Conflict(format!(
                            "instance {id} is {}: only a stopped instance can be started",
                            state.name()
                        )))
                    }
                },
                Action::SetTags(tags) => {
                    if state == State::Terminated {
                        return Err(ActionError::Conflict(format!(
                            "instance {id} is terminated: its tags cannot change"
                        )));
                    }
                    i.tags = tags.clone();
                }
                // Answered above.
                Action::Deallocate => {}
            }
            return Ok(());
        }
        Err(ActionError::NotFound(id.to_string()))
    }
}
