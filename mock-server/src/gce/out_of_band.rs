//! Out-of-band changes of a Compute Engine instance
//! (`POST /_mock/resources/{id}/actions`, `{id}` its numeric id), made as
//! the console makes them, on the timelines `instances.delete`, `stop` and
//! `start` write: `delete` (STOPPING, then gone: reads answer 404),
//! `stop` (STOPPING -> TERMINATED), `start` (PROVISIONING -> STAGING ->
//! RUNNING) and `set_tags`, which replaces the labels (under Compute's
//! label rules). Compute has no `deallocate`. No zone operation is
//! recorded: the change is someone else's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::lifecycle::Status;
use super::Gce;
use crate::ctx::Cloud;
use crate::out_of_band::{Action, ActionError};

/// The longest label key or value Compute takes.
const MAX_LABEL: usize = 63;

/// Checks labels as Compute does: keys start with a lowercase letter,
/// keys and values hold lowercase letters, digits, `-` and `_`, at most 63
/// characters each.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ActionError> {
    let ok_chars =
        |s: &str| s.chars().all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    for (k, v) in labels {
        let key_ok = k.chars().next().is_some_and(char::is_lowercase)
            && k.chars().count() <= MAX_LABEL
            && ok_chars(k);
        if !key_ok {
            return Err(ActionError::Invalid(format!(
                "tags: label key `{k}`: Compute label keys start with a lowercase letter and hold at most {MAX_LABEL} lowercase letters, digits, '-' or '_'"
            )));
        }
        if v.chars().count() > MAX_LABEL || !ok_chars(v) {
            return Err(ActionError::Invalid(format!(
                "tags: value of label `{k}`: Compute label values hold at most {MAX_LABEL} lowercase letters, digits, '-' or '_'"
            )));
        }
    }
    Ok(())
}

impl Gce {
    /// Carries `action` out on the instance whose numeric id is `id`, in
    /// whichever project and zone holds it.
    pub fn out_of_band(&self, id: &str, action: &Action) -> Result<(), ActionError> {
        if *action == Action::Deallocate {
            return Err(ActionError::Unsupported {
                action: action.name(),
                cloud: Cloud::Gcp,
            });
        }
        if let Action::SetTags(labels) = action {
            check_labels(labels)?;
        }
        let not_found = || ActionError::NotFound(id.to_string());
        let numeric: u64 = id.parse().map_err(|_| not_found())?;
        let now = Instant::now();
        let cfg = self.config();
        let ms = |v: u64| self.ctx.scaled(Duration::from_millis(v));
        let projects: Vec<String> = self.store.each(|(p, _)| p.clone());
        for project in projects {
            let done = self.store.write(&project, |p| {
                let inst = p
                    .zones
                    .values_mut()
                    .flat_map(|z| z.values_mut())
                    .find(|i| i.id == numeric && i.live(now))?;
                let status = inst.status(now);
                let name = inst.spec.name.clone();
                let being_deleted = inst.timeline.final_status() == Status::Gone;
                let plan: Option<(Status, Vec<(Duration, Status)>)> = match action {
                    Action::Delete if being_deleted => None,
                    Action::Delete => Some((Status::Stopping, vec![(ms(cfg.deleting_ms), Status::Gone)])),
                    _ if being_deleted => {
                        return Some(Err(ActionError::Conflict(format!(
                            "instance {name} ({id}) is being deleted"
                        ))))
                    }
                    Action::Stop => match status {
                        Status::Terminated | Status::Stopping => None,
                        _ => Some((
                            Status::Stopping,
                            vec![(ms(cfg.stopping_ms), Status::Terminated)],
                        )),
                    },
                    Action::Start => match status {
                        Status::Terminated | Status::Stopping => Some((
                            Status::Provisioning,
                            vec![
                                (ms(cfg.provisioning_ms), Status::Staging),
                                (ms(cfg.staging_ms), Status::Running),
                            ],
                        )),
                        Status::Suspending | Status::Suspended => {
                            return Some(Err(ActionError::Conflict(format!(
                                "instance {name} ({id}) is {}: a suspended instance is resumed, not started",
                                status.as_str()
                            ))))
                        }
                        _ => None,
                    },
                    Action::SetTags(labels) => {
                        inst.set_labels(labels.clone());
                        None
                    }
                    // Answered above.
                    Action::Deallocate => None,
                };
                let mut dropped = None;
                if let Some((first, steps)) = plan {
                    // A stop or delete during a preemption notice ends it
                    // (its operation goes); so does a start after it.
                    match inst.preempted.as_deref().map(|(n, _)| n.ended(now)) {
                        Some(false) => dropped = inst.preempted.take().map(|p| p.1),
                        Some(true) if *action == Action::Start => inst.preempted = None,
                        _ => {}
                    }
                    inst.timeline.change(now, first, &steps);
                }
                if let Some(op) = dropped {
                    p.operations.remove(op.as_str());
                }
                Some(Ok(()))
            });
            if let Some(r) = done {
                return r;
            }
        }
        Err(not_found())
    }
}
