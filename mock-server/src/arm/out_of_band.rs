//! Out-of-band changes of an ARM virtual machine
//! (`POST /_mock/resources/{id}/actions`, `{id}` its ARM id), made as the
//! portal makes them: `delete` deletes the VM as a DELETE does (what its
//! `deleteOption`s name goes with it, the rest stays), `stop` powers it off
//! (`PowerState/stopping` -> `PowerState/stopped`: still allocated),
//! `deallocate` deallocates it (`PowerState/deallocating` ->
//! `PowerState/deallocated`), `start` starts it again
//! (`PowerState/starting` -> `PowerState/running`) and `set_tags` replaces
//! its tags (names without `<>%&\?/`, as ARM requires). Each power change
//! takes the configured VM update time.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::compact::Compact;
use super::config::secs;
use super::store::{Kind, Op, OpKind, Partition, ResKey, Resource};
use super::Arm;
use crate::out_of_band::{Action, ActionError};

/// Where an out-of-band power change left a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Power {
    /// Powered off, still allocated.
    Stopped,
    /// Deallocated.
    Deallocated,
    /// Started again (running once it settles).
    Running,
}

/// An out-of-band power change of one VM.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PowerChange {
    /// The VM's `vmId`: a VM made later under the same name is not affected.
    pub vm_id: String,
    /// Where it goes.
    pub to: Power,
    /// When it gets there.
    #[serde(with = "crate::snapshot::clock::at")]
    pub settles: Instant,
}

/// The `PowerState/...` code and display status of VM `r` that an
/// out-of-band power change sets at `now`, if one does.
pub fn power_state(
    part: &Partition,
    r: &Resource,
    now: Instant,
) -> Option<(&'static str, &'static str)> {
    let key = ResKey::new(r.kind, &r.rg, &r.name);
    let c = part.power.get(&key).filter(|c| c.vm_id == r.guid)?;
    let settled = now >= c.settles;
    Some(match (c.to, settled) {
        (Power::Stopped, false) => ("stopping", "VM stopping"),
        (Power::Stopped, true) => ("stopped", "VM stopped"),
        (Power::Deallocated, false) => ("deallocating", "VM deallocating"),
        (Power::Deallocated, true) => ("deallocated", "VM deallocated"),
        (Power::Running, false) => ("starting", "VM starting"),
        (Power::Running, true) => ("running", "VM running"),
    })
}

/// Whether VM `r` is off or going off at `now` (a power change other than
/// to running, or a spot eviction that deallocated it).
pub fn is_off(part: &Partition, r: &Resource, now: Instant) -> bool {
    power_state(part, r, now).is_some_and(|(c, _)| c != "running" && c != "starting")
        || super::spot::deallocated(part, r, now)
}

/// Whether VM `r` is deallocated or being deallocated at `now`.
pub fn is_deallocated(part: &Partition, r: &Resource, now: Instant) -> bool {
    power_state(part, r, now).is_some_and(|(c, _)| c.starts_with("dealloc"))
        || super::spot::deallocated(part, r, now)
}

/// Records that VM `key` (whose `vmId` is `vm_id`) goes `to`, getting there
/// at `settles`: what the out-of-band control call and the ARM power
/// actions both change. Forgets the changes of VMs that no longer exist.
pub fn set_power(
    part: &mut Partition,
    (key, vm_id): (ResKey, String),
    to: Power,
    now: Instant,
    settles: Instant,
) {
    part.power.insert(key, PowerChange { vm_id, to, settles });
    forget_stale(part, now);
}

/// Forgets power changes of VMs that no longer exist, so the map stays as
/// small as the VMs.
fn forget_stale(part: &mut Partition, now: Instant) {
    let stale: Vec<ResKey> = part
        .power
        .iter()
        .filter(|(k, c)| part.peek(k, now).is_none_or(|r| r.guid != c.vm_id))
        .map(|(k, _)| k.clone())
        .collect();
    for k in stale {
        part.power.remove(&k);
    }
}

/// Characters ARM refuses in tag names.
const BAD_TAG_CHARS: [char; 7] = ['<', '>', '%', '&', '\\', '?', '/'];

/// Checks tags as ARM does: no name holds `<>%&\?/`.
fn check_tags(tags: &std::collections::BTreeMap<String, String>) -> Result<(), ActionError> {
    match tags.keys().find(|k| k.contains(BAD_TAG_CHARS)) {
        Some(k) => Err(ActionError::Invalid(format!(
            "tags: name `{k}`: Azure tag names cannot hold any of < > % & \\ ? /"
        ))),
        None => Ok(()),
    }
}

/// Splits `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Compute/virtualMachines/{n}`
/// (any case) into subscription, group and name.
fn parse_vm_id(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [s, sub, g, rg, p, ns, t, name]
            if s.eq_ignore_ascii_case("subscriptions")
                && g.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Compute")
                && t.eq_ignore_ascii_case("virtualMachines")
                && !name.is_empty() =>
        {
            Some((sub, rg, name))
        }
        _ => None,
    }
}

impl Arm {
    /// Carries `action` out on the VM whose ARM id is `id`.
    pub fn out_of_band(&self, id: &str, action: &Action) -> Result<(), ActionError> {
        let not_found = || ActionError::NotFound(id.to_string());
        if let Action::SetTags(tags) = action {
            check_tags(tags)?;
        }
        let (sub, rg, name) = parse_vm_id(id).ok_or_else(not_found)?;
        let part = self.store.existing(sub).ok_or_else(not_found)?;
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        super::spot::apply_evictions(&mut part, now);
        let key = ResKey::new(Kind::VirtualMachine, rg, name);
        let cfg = self.cfg();
        let scale = self.ctx.time_scale();
        let update = crate::bounded::scale(secs(cfg.durations.vm_update_s), scale);
        let r = part.peek(&key, now).ok_or_else(not_found)?;
        let busy = r.busy(now);
        if busy && r.op.kind == OpKind::Delete {
            // Deleting already: a second delete changes nothing.
            return match action {
                Action::Delete => Ok(()),
                _ => Err(ActionError::Conflict(format!("VM {id} is being deleted"))),
            };
        }
        if busy && *action != Action::Delete {
            return Err(ActionError::Conflict(format!(
                "VM {id} is {}: another operation is in progress",
                r.state(now)
            )));
        }
        let vm_id = r.guid.clone();
        match action {
            Action::Delete => {
                let cascade = super::compute::cascade(&part, r, now);
                let op = Op {
                    id: Arc::from(uuid::Uuid::new_v4().to_string()),
                    kind: OpKind::Delete,
                    ends: now + crate::bounded::scale(secs(cfg.durations.vm_delete_s), scale),
                    failure: None,
                };
                for k in cascade.iter().chain(std::iter::once(&key)) {
                    if let Some(c) = part.resources.get_mut(k) {
                        c.op = op.clone();
                    }
                }
                part.power.remove(&key);
            }
            Action::Stop | Action::Deallocate => {
                let to = if *action == Action::Stop {
                    Power::Stopped
                } else {
                    Power::Deallocated
                };
                set_power(&mut part, (key.clone(), vm_id), to, now, now + update);
            }
            Action::Start => {
                if is_off(&part, r, now) {
                    part.evictions.remove(&key);
                    set_power(
                        &mut part,
                        (key.clone(), vm_id),
                        Power::Running,
                        now,
                        now + update,
                    );
                }
            }
            Action::SetTags(tags) => {
                if let Some(r) = part.resources.get_mut(&key) {
                    r.tags = Compact::object(
                        tags.iter()
                            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                            .collect(),
                    );
                }
            }
        }
        forget_stale(&mut part, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_ids_are_split_and_others_refused() {
        assert_eq!(
            parse_vm_id(
                "/subscriptions/s/resourceGroups/G/providers/microsoft.compute/virtualmachines/v"
            ),
            Some(("s", "G", "v"))
        );
        assert_eq!(
            parse_vm_id(
                "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n"
            ),
            None
        );
        assert_eq!(parse_vm_id("/subscriptions/s"), None);
    }
}
