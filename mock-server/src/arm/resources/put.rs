//! PUT of a resource: create or update, an operation with the kind's
//! duration, after the kind's own validation (`network`, `compute`).

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::{
    create_duration, group_being_deleted, json_response, live_group, new_op, record, Placed, PutCtx,
};
use crate::arm::compact::Compact;
use crate::arm::config::ArmConfig;
use crate::arm::error::ArmError;
use crate::arm::lro;
use crate::arm::request::Req;
use crate::arm::store::OpError;
use crate::arm::store::{Kind, Links, OpKind, Partition, ResKey, Resource};
use crate::arm::view::resource_json;
use crate::arm::{compute, limits, network, spot};
use crate::ctx::Cloud;

/// PUT of a resource.
pub fn put(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    kind: Kind,
    rg: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let now = req.now;
    let group = live_group(part, rg, now)?;
    if group.deleting.is_some() {
        return Err(group_being_deleted(&group.name));
    }
    let rg_name = group.name.clone();
    let Placed {
        body,
        location,
        tags,
    } = Placed::parse(body)?;
    let key = ResKey::new(kind, rg, name);
    let existing = part.live(&key, now).map(|r| {
        (
            r.busy(now),
            r.id.clone(),
            r.name.clone(),
            r.guid.clone(),
            r.created,
            r.location.clone(),
            r.not_found_reads,
        )
    });
    let (op_kind, id, res_name, guid, created, nf) = match existing {
        Some((true, id, ..)) => return Err(ArmError::another_operation(&id)),
        Some((false, id, n, g, c, loc, nf)) => {
            if !loc.eq_ignore_ascii_case(&location) {
                return Err(ArmError::bad_request(
                    "InvalidResourceLocation",
                    format!(
                        "The resource '{name}' already exists in location '{loc}' in resource group '{rg_name}'. \
                         A resource with the same name cannot be created in location '{location}'."
                    ),
                ));
            }
            (OpKind::Update, id, n, g, c, nf)
        }
        None => (
            OpKind::Create,
            format!(
                "/subscriptions/{}/resourceGroups/{rg_name}/providers/{}/{name}",
                req.sub,
                kind.arm_type()
            ),
            name.to_string(),
            uuid::Uuid::new_v4().to_string(),
            req.wall,
            0,
        ),
    };
    if op_kind == OpKind::Create {
        limits::check_resource(part, &cfg.limits, kind, rg, &location, now)?;
    }
    let mut op = new_op(req, op_kind, create_duration(cfg, kind, op_kind));
    if kind == Kind::VirtualMachine {
        let spot = spot::check(body.get("properties"))?;
        if op_kind == OpKind::Create && op.failure.is_none() {
            // A stockout accepts the create and fails its operation, as an
            // allocation failure does; location rules match lowercased.
            let size = spot::vm_size(body.get("properties"));
            let loc = location.to_ascii_lowercase();
            op.failure = req
                .ctx
                .capacity()
                .stockout(Cloud::Azure, &loc, size, spot)
                .map(|code| {
                    Box::new(OpError {
                        message: spot::allocation_message(&code, size, &location),
                        code,
                    })
                });
        }
    }
    let pc = PutCtx {
        sub: &req.sub,
        rg: &rg_name,
        name: &res_name,
        key: &key,
        id: &id,
        location: &location,
        guid: &guid,
        now,
        wall: req.wall,
        op: op.clone(),
    };
    let prepared = match kind {
        Kind::VirtualNetwork => network::prepare_vnet(part, &pc, body)?,
        Kind::PublicIp => network::prepare_pip(part, &pc, body)?,
        Kind::NetworkInterface => network::prepare_nic(part, &pc, body)?,
        Kind::Disk => compute::prepare_disk(part, &pc, body)?,
        Kind::VirtualMachine => compute::prepare_vm(part, &pc, body)?,
    };
    attach(part, &key, &prepared.links);
    for d in prepared.implicit {
        let dk = ResKey::new(Kind::Disk, &d.rg, &d.name);
        part.resources.insert(dk, Box::new(d));
    }
    let not_found_reads = match (op_kind, req.not_found_reads) {
        (OpKind::Create, Some(n)) => n,
        _ => nf,
    };
    let res = Resource {
        kind,
        rg: rg_name,
        name: res_name,
        id,
        location,
        tags: Compact::object(tags),
        sku: prepared.sku.as_ref().or_else(|| body.get("sku")).map(Compact::of),
        zones: body.get("zones").map(Compact::of),
        props: Compact::object(prepared.props),
        guid,
        created,
        op: op.clone(),
        not_found_reads,
        links: prepared.links,
    };
    let loc = res.location.clone();
    part.resources.insert(key.clone(), Box::new(res));
    record(part, req, &op, Some(key.clone()));
    let r = part.peek(&key, now).ok_or_else(|| {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "lost resource",
        )
    })?;
    let body = resource_json(part, r, now, Default::default());
    let (status, location_header) = match (kind, op_kind) {
        (Kind::Disk, OpKind::Create) => (StatusCode::ACCEPTED, true),
        (_, OpKind::Create) => (StatusCode::CREATED, false),
        _ => (StatusCode::OK, false),
    };
    let mut out = json_response(status, body);
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        kind.namespace(),
        &loc,
        (&op.id, op.ends),
        location_header,
        kind == Kind::Disk,
    );
    Ok(out)
}

/// Sets the back references a resource's links imply.
fn attach(part: &mut Partition, key: &ResKey, links: &Links) {
    match links {
        Links::Nic { pips, .. } => {
            for (pk, _) in pips {
                if let Some(Links::Pip { nic, .. }) =
                    part.resources.get_mut(pk).map(|r| &mut r.links)
                {
                    *nic = Some(key.clone());
                }
            }
        }
        Links::Vm { nics, disks, .. } => {
            for (nk, _) in nics {
                if let Some(Links::Nic { vm, .. }) =
                    part.resources.get_mut(nk).map(|r| &mut r.links)
                {
                    *vm = Some(key.clone());
                }
            }
            for (dk, _) in disks {
                if let Some(Links::Disk { vm }) = part.resources.get_mut(dk).map(|r| &mut r.links) {
                    *vm = Some(key.clone());
                }
            }
        }
        _ => {}
    }
}
