//! AttachVolume and DetachVolume: a volume moves `available -> in-use`
//! (its attachment `attaching -> attached`) and back (`detaching`, then
//! gone), each transition taking `volume_attach_ms`.

use std::time::Instant;

use super::block_devices::{check_device, ROOT_DEVICE};
use super::volumes::{check_id, not_found};
use super::{well_formed, DryRun};
use crate::ec2::config::Ec2Config;
use crate::ec2::error::Ec2Error;
use crate::ec2::instances::{bool_str, State};
use crate::ec2::query::Params;
use crate::ec2::volumes::{Attachment, Volume};
use crate::ec2::xml::Xml;
use crate::ec2::{Caller, Ec2};

fn check_instance_id(id: &str) -> Result<(), Ec2Error> {
    if well_formed(id, "i") {
        Ok(())
    } else {
        Err(Ec2Error::malformed_instance_id(id))
    }
}

/// The answer of both actions: the attachment's fields under the root.
fn write_attachment(action: &str, request_id: &str, v: &Volume, a: &Attachment, status: &str) -> String {
    let mut x = Xml::response(action, request_id, 512);
    x.leaf("volumeId", &v.id);
    x.leaf("instanceId", &a.instance_id);
    x.leaf("device", &a.device);
    x.leaf("status", status);
    x.leaf("attachTime", &a.attach_time);
    x.leaf("deleteOnTermination", bool_str(a.delete_on_termination));
    x.finish_response(action)
}

impl Ec2 {
    /// AttachVolume.
    pub(in crate::ec2) fn attach_volume(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let volume_id = p.require("VolumeId")?;
        check_id(volume_id)?;
        let instance_id = p.require("InstanceId")?;
        check_instance_id(instance_id)?;
        let device = p.require("Device")?;
        check_device(device)?;
        let dry_run = DryRun::parse(p);
        let now = Instant::now();
        let part = self
            .partition(caller)
            .ok_or_else(|| not_found(volume_id))?;
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.settle_volumes(now);
        let v = part.volumes.get(volume_id).ok_or_else(|| not_found(volume_id))?;
        let i = part
            .get(instance_id, now)
            .filter(|i| now >= i.visible_from)
            .ok_or_else(|| Ec2Error::instances_not_found(&[instance_id]))?;
        match i.seen(now).state {
            State::Running | State::Stopped => {}
            other => {
                return Err(Ec2Error::incorrect_state(format!(
                    "Instance '{instance_id}' is not 'running' or 'stopped' (it is '{}').",
                    other.name()
                )))
            }
        }
        if v.zone != i.zone {
            return Err(Ec2Error::new(
                400,
                "InvalidVolume.ZoneMismatch",
                format!(
                    "The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"
                ),
            ));
        }
        if let Some((a, _)) = v.attached(now) {
            return Err(Ec2Error::new(
                400,
                "IncorrectState",
                format!("{volume_id} is already attached to an instance ({}).", a.instance_id),
            ));
        }
        if v.status(now) != "available" {
            return Err(Ec2Error::new(
                400,
                "IncorrectState",
                format!("The volume '{volume_id}' is '{}', not 'available'.", v.status(now)),
            ));
        }
        let taken = part
            .volumes
            .devices(now)
            .get(instance_id)
            .is_some_and(|list| list.iter().any(|(_, a, _)| a.device == device));
        if taken || device == ROOT_DEVICE {
            return Err(Ec2Error::invalid_value(format!(
                "Invalid value '{device}' for unixDevice. Attachment point {device} is already in use"
            )));
        }
        dry_run.answer()?;
        let attachment = Attachment {
            instance_id: instance_id.to_string(),
            device: device.to_string(),
            attach_time: crate::now_rfc3339(),
            attached_at: now + self.scaled_ms(cfg.volume_attach_ms),
            delete_on_termination: false,
            detached_at: None,
        };
        let v = part
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| not_found(volume_id))?;
        v.attachment = Some(attachment);
        let v = &*v;
        let (a, status) = v
            .attached(now)
            .ok_or_else(|| Ec2Error::new(500, "InternalError", "attachment vanished"))?;
        Ok(write_attachment("AttachVolume", request_id, v, a, status))
    }

    /// DetachVolume. `InstanceId` and `Device`, when given, must name the
    /// attachment; `Force` is accepted (the mock's detach never hangs).
    pub(in crate::ec2) fn detach_volume(
        &self,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        let volume_id = p.require("VolumeId")?;
        check_id(volume_id)?;
        let instance_id = p.get("InstanceId");
        if let Some(id) = instance_id {
            check_instance_id(id)?;
        }
        let device = p.get("Device");
        p.bool("Force")?;
        let dry_run = DryRun::parse(p);
        let now = Instant::now();
        let part = self
            .partition(caller)
            .ok_or_else(|| not_found(volume_id))?;
        let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
        part.settle_volumes(now);
        let v = part.volumes.get(volume_id).ok_or_else(|| not_found(volume_id))?;
        let Some((a, status)) = v.attached(now) else {
            return Err(Ec2Error::new(
                400,
                "IncorrectState",
                format!("Volume '{volume_id}' is in the '{}' state.", v.status(now)),
            ));
        };
        let mismatch = instance_id.is_some_and(|id| id != a.instance_id)
            || device.is_some_and(|d| d != a.device);
        if mismatch {
            return Err(Ec2Error::new(
                400,
                "InvalidAttachment.NotFound",
                format!(
                    "The volume {volume_id} is not attached to instance {} as device {}",
                    instance_id.unwrap_or(&a.instance_id),
                    device.unwrap_or(&a.device)
                ),
            ));
        }
        if status == "detaching" {
            return Err(Ec2Error::new(
                400,
                "IncorrectState",
                format!("Volume '{volume_id}' is already detaching."),
            ));
        }
        let owner_state = part.get(&a.instance_id, now).map(|i| i.seen(now).state);
        if a.device == ROOT_DEVICE && owner_state != Some(State::Stopped) {
            return Err(Ec2Error::new(
                400,
                "IncorrectState",
                format!(
                    "Unable to detach root volume '{volume_id}' from instance '{}': the instance must be stopped.",
                    a.instance_id
                ),
            ));
        }
        dry_run.answer()?;
        let done = now + self.scaled_ms(cfg.volume_attach_ms);
        let v = part
            .volumes
            .get_mut(volume_id)
            .ok_or_else(|| not_found(volume_id))?;
        let Some(a) = v.attachment.as_mut() else {
            return Err(Ec2Error::new(500, "InternalError", "attachment vanished"));
        };
        a.detached_at = Some(done);
        let v = &*v;
        let a = v
            .attachment
            .as_ref()
            .ok_or_else(|| Ec2Error::new(500, "InternalError", "attachment vanished"))?;
        Ok(write_attachment("DetachVolume", request_id, v, a, "detaching"))
    }
}
