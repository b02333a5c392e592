//! VM power actions as ARM serves them:
//! `POST .../virtualMachines/{vm}/{powerOff|deallocate|start|restart|redeploy}`.
//! Each is a long-running operation (202 with `Azure-AsyncOperation`,
//! `Location` and the scaled polling hint); while it runs the VM's
//! `provisioningState` is `Updating` and its instance view shows the
//! transition (`PowerState/stopping` -> `stopped`, `deallocating` ->
//! `deallocated`, `starting` -> `running`), through the same power-change
//! record the out-of-band control call uses (`out_of_band`).

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::config::{secs, ArmConfig};
use super::error::ArmError;
use super::lro;
use super::out_of_band::{is_deallocated, is_off, set_power, Power};
use super::request::Req;
use super::resources::{group_being_deleted, live_group, new_op, record, type_and_name};
use super::store::{Kind, OpKind, Partition, ResKey};

/// One VM power action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    /// `powerOff`: stopped, still allocated (billed).
    PowerOff,
    /// `deallocate`: stopped and its compute released.
    Deallocate,
    /// `start`.
    Start,
    /// `restart` of a running VM.
    Restart,
    /// `redeploy` to another host (ends running).
    Redeploy,
}

impl PowerAction {
    /// The action named by a path segment (case-insensitive, as ARM matches).
    pub fn parse(segment: &str) -> Option<PowerAction> {
        [
            PowerAction::PowerOff,
            PowerAction::Deallocate,
            PowerAction::Start,
            PowerAction::Restart,
            PowerAction::Redeploy,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(segment))
    }

    /// The path segment (`powerOff`).
    pub fn name(self) -> &'static str {
        match self {
            PowerAction::PowerOff => "powerOff",
            PowerAction::Deallocate => "deallocate",
            PowerAction::Start => "start",
            PowerAction::Restart => "restart",
            PowerAction::Redeploy => "redeploy",
        }
    }

    /// The operationId of Azure's REST specs.
    pub fn operation_id(self) -> &'static str {
        match self {
            PowerAction::PowerOff => "VirtualMachines_PowerOff",
            PowerAction::Deallocate => "VirtualMachines_Deallocate",
            PowerAction::Start => "VirtualMachines_Start",
            PowerAction::Restart => "VirtualMachines_Restart",
            PowerAction::Redeploy => "VirtualMachines_Redeploy",
        }
    }
}

/// `skipShutdown` of a `powerOff`: absent or `false` is off, `true` on
/// (case-insensitive); anything else is a 400 `InvalidParameter` naming it.
pub fn skip_shutdown(v: Option<&str>) -> Result<bool, ArmError> {
    match v {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => {
            let shown: String = v.chars().take(64).collect();
            Err(ArmError::invalid_parameter(
                "skipShutdown",
                format!(
                    "The value '{shown}' of query parameter 'skipShutdown' is not valid. Allowed values are 'true', 'false'."
                ),
            ))
        }
    }
}

/// `POST .../virtualMachines/{name}/{action}`.
pub fn act(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    rg: &str,
    name: &str,
    action: PowerAction,
) -> Result<Response, ArmError> {
    let now = req.now;
    let group = live_group(part, rg, now)?;
    if group.deleting.is_some() {
        return Err(group_being_deleted(&group.name));
    }
    let skip = skip_shutdown(req.skip_shutdown.as_deref())?;
    let key = ResKey::new(Kind::VirtualMachine, rg, name);
    let not_found = || ArmError::resource_not_found(&type_and_name(Kind::VirtualMachine, name), rg);
    part.live(&key, now).ok_or_else(not_found)?;
    let r = part.peek(&key, now).ok_or_else(not_found)?;
    if r.busy(now) {
        if r.op.kind == OpKind::Delete {
            return Err(ArmError::conflict(
                "OperationNotAllowed",
                format!(
                    "Operation '{}' is not allowed on VM '{}' since the VM is marked for deletion. \
                     You can only retry the Delete operation (or wait for an ongoing one to complete).",
                    action.name(),
                    r.name
                ),
            ));
        }
        return Err(ArmError::conflict(
            "Conflict",
            format!(
                "The request failed due to conflict with a concurrent request: operation '{}' on VM '{}' \
                 cannot run while the VM is {}.",
                action.name(),
                r.name,
                r.state(now)
            ),
        ));
    }
    if action == PowerAction::Restart && is_deallocated(part, r, now) {
        return Err(ArmError::conflict(
            "OperationNotAllowed",
            format!(
                "Operation 'restart' is not allowed on VM '{}' since the VM is deallocated or marked to be deallocated.",
                r.name
            ),
        ));
    }
    let p = &cfg.power;
    let dur = secs(match action {
        PowerAction::PowerOff if skip => p.power_off_skip_shutdown_s,
        PowerAction::PowerOff => p.power_off_s,
        PowerAction::Deallocate => p.deallocate_s,
        PowerAction::Start => p.start_s,
        PowerAction::Restart => p.restart_s,
        PowerAction::Redeploy => p.redeploy_s,
    });
    // Where the VM ends up; `None`: it is there already (a start of a
    // running VM, a powerOff of a deallocated one) and only the operation runs.
    let to = match action {
        PowerAction::PowerOff if is_off(part, r, now) => None,
        PowerAction::PowerOff => Some(Power::Stopped),
        PowerAction::Deallocate if is_deallocated(part, r, now) => None,
        PowerAction::Deallocate => Some(Power::Deallocated),
        PowerAction::Start if !is_off(part, r, now) => None,
        PowerAction::Start | PowerAction::Restart | PowerAction::Redeploy => Some(Power::Running),
    };
    let (loc, vm_id) = (r.location.clone(), r.guid.clone());
    let op = new_op(req, OpKind::Update, dur);
    if let Some(vm) = part.resources.get_mut(&key) {
        vm.op = op.clone();
    }
    // A failed operation leaves the VM where it was.
    if let (Some(to), None) = (to, &op.failure) {
        if to == Power::Running || action == PowerAction::Deallocate {
            // Started or deallocated on purpose: a spot eviction's
            // deallocation no longer speaks for the VM.
            part.evictions.remove(&key);
        }
        set_power(part, (key, vm_id), to, now, op.ends);
    }
    record(part, req, &op, None);
    let mut out = StatusCode::ACCEPTED.into_response();
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        Kind::VirtualMachine.namespace(),
        &loc,
        (&op.id, op.ends),
        true,
        false,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_case_insensitively_and_others_do_not() {
        assert_eq!(PowerAction::parse("poweroff"), Some(PowerAction::PowerOff));
        assert_eq!(
            PowerAction::parse("Deallocate"),
            Some(PowerAction::Deallocate)
        );
        assert_eq!(PowerAction::parse("reimage"), None);
        assert_eq!(
            PowerAction::Redeploy.operation_id(),
            "VirtualMachines_Redeploy"
        );
    }

    #[test]
    fn skip_shutdown_values() {
        assert_eq!(skip_shutdown(None).ok(), Some(false));
        assert_eq!(skip_shutdown(Some("TRUE")).ok(), Some(true));
        assert!(skip_shutdown(Some("1")).is_err());
    }
}
