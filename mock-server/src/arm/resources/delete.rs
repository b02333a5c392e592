//! DELETE of a resource: the in-use checks of each kind, the cascade of a
//! VM's implicit resources, and the operation it starts. A DELETE of a VM
//! whose create or update still runs preempts it, as ARM does: that
//! operation ends `Canceled` with `OperationPreempted` and the delete goes
//! on (other kinds answer 409 `AnotherOperationInProgress`).

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::{create_duration, live_group, new_op, record};
use crate::arm::config::ArmConfig;
use crate::arm::error::ArmError;
use crate::arm::lro;
use crate::arm::request::Req;
use crate::arm::store::{Kind, OpError, OpKind, Partition, ResKey};
use crate::arm::{compute, network};

/// DELETE of a resource.
pub fn delete(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    kind: Kind,
    rg: &str,
    name: &str,
) -> Result<Response, ArmError> {
    let now = req.now;
    live_group(part, rg, now)?;
    let key = ResKey::new(kind, rg, name);
    let preempts = part.peek(&key, now).is_some_and(|r| {
        kind == Kind::VirtualMachine && r.busy(now) && r.op.kind != OpKind::Delete
    });
    if preempts {
        preempt(part, &key, now);
    }
    let Some(r) = part.peek(&key, now) else {
        part.live(&key, now);
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let loc = r.location.clone();
    if r.busy(now) {
        if r.op.kind == OpKind::Delete {
            let mut out = StatusCode::ACCEPTED.into_response();
            lro::accepted_headers(
                &mut out,
                req,
                cfg,
                kind.namespace(),
                &loc,
                (&r.op.id, r.op.ends),
                true,
                kind == Kind::Disk,
            );
            return Ok(out);
        }
        return Err(ArmError::another_operation(&r.id));
    }
    match kind {
        Kind::NetworkInterface => {
            if let Some(vm) = network::nic_user(part, r, now) {
                return Err(ArmError::bad_request(
                    "NicInUse",
                    format!(
                        "Network Interface {} is used by existing resource {}. In order to delete the network \
                         interface, it must be dissociated from the resource.",
                        r.id, vm.id
                    ),
                ));
            }
        }
        Kind::PublicIp => {
            if let Some(nic) = network::pip_user(part, r, now) {
                return Err(ArmError::bad_request(
                    "PublicIPAddressCannotBeDeleted",
                    format!(
                        "Public IP address {} can not be deleted since it is still allocated to resource {}/ipConfigurations.",
                        r.id, nic.id
                    ),
                ));
            }
        }
        Kind::Disk => {
            if let Some(vm) = compute::disk_user(part, r, now) {
                return Err(ArmError::conflict(
                    "OperationNotAllowed",
                    format!("Disk {} is attached to VM {}.", r.name, vm.id),
                ));
            }
        }
        Kind::VirtualNetwork => {
            if let Some(nic) = network::subnet_user(part, &key, "", now) {
                return Err(network::in_use_subnet(
                    &format!("{}/subnets", r.id),
                    &nic.id,
                ));
            }
        }
        Kind::VirtualMachine => {}
    }
    let op = new_op(
        req,
        OpKind::Delete,
        create_duration(cfg, kind, OpKind::Delete),
    );
    let cascade = if kind == Kind::VirtualMachine && op.failure.is_none() {
        compute::cascade(part, r, now)
    } else {
        Vec::new()
    };
    for k in cascade.iter().chain(std::iter::once(&key)) {
        if let Some(c) = part.resources.get_mut(k) {
            c.op = op.clone();
        }
    }
    record(part, req, &op, Some(key));
    let mut out = StatusCode::ACCEPTED.into_response();
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        kind.namespace(),
        &loc,
        (&op.id, op.ends),
        true,
        kind == Kind::Disk,
    );
    Ok(out)
}

/// The error a preempted operation ends with (ARM's words).
pub const PREEMPTED: &str = "OperationPreempted";

/// Ends the running operation on `key` now, preempted by a DELETE.
fn preempt(part: &mut Partition, key: &ResKey, now: std::time::Instant) {
    let failure = OpError {
        code: PREEMPTED.to_string(),
        message: "Operation execution has been preempted by a more recent operation.".to_string(),
    };
    let Some(r) = part.resources.get_mut(key) else {
        return;
    };
    r.op.ends = now;
    r.op.failure = Some(Box::new(failure.clone()));
    let id = r.op.id.clone();
    if let Some(rec) = part.ops.get_mut(&id) {
        rec.ends = now;
        rec.failure = Some(Box::new(failure));
    }
}
