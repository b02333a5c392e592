//! The subnet endpoints: GET, and PUT (an update of its virtual network).

use axum::response::Response;
use http::StatusCode;
use serde_json::Value;

use super::{json_response, live_group, new_op, ok_json, record, type_and_name};
use crate::arm::config::{secs, ArmConfig};
use crate::arm::error::ArmError;
use crate::arm::lro;
use crate::arm::network;
use crate::arm::request::Req;
use crate::arm::store::{Kind, Links, OpKind, Partition, ResKey, Resource, Subnet};

fn vnet_parts<'a>(
    part: &'a mut Partition,
    req: &Req,
    rg: &str,
    vnet: &str,
) -> Result<(ResKey, &'a mut Resource), ArmError> {
    live_group(part, rg, req.now)?;
    let key = ResKey::new(Kind::VirtualNetwork, rg, vnet);
    let v = part.live(&key, req.now).ok_or_else(|| {
        ArmError::resource_not_found(&type_and_name(Kind::VirtualNetwork, vnet), rg)
    })?;
    Ok((key, v))
}

/// GET of a subnet.
pub fn get(
    part: &mut Partition,
    req: &Req,
    rg: &str,
    vnet: &str,
    name: &str,
) -> Result<Response, ArmError> {
    let (_, v) = vnet_parts(part, req, rg, vnet)?;
    let Links::Vnet { subnets } = &v.links else {
        return Err(ArmError::resource_not_found(vnet, rg));
    };
    let s = subnets
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}"),
                rg,
            )
        })?;
    let body = network::subnet_json(v, s, v.state(req.now));
    Ok(ok_json(serde_json::to_vec(&body).unwrap_or_default()))
}

/// PUT of a subnet: an update of its virtual network.
pub fn put(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    rg: &str,
    vnet: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let now = req.now;
    let (key, v) = vnet_parts(part, req, rg, vnet).map_err(|e| {
        if e.code == "ResourceNotFound" {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "ParentResourceNotFound",
                format!("Can not perform requested operation on nested resource. Parent resource '{vnet}' not found."),
            )
        } else {
            e
        }
    })?;
    if v.busy(now) {
        return Err(ArmError::another_operation(&v.id));
    }
    let sub = network::parse_subnet(body, Some(name))?;
    let loc = v.location.clone();
    let op = new_op(req, OpKind::Update, secs(cfg.durations.virtual_network_s));
    v.op = op.clone();
    let Links::Vnet { subnets } = &mut v.links else {
        return Err(ArmError::resource_not_found(vnet, rg));
    };
    let created = match subnets
        .iter_mut()
        .find(|s| s.name.eq_ignore_ascii_case(name))
    {
        Some(s) => {
            s.props = sub.props;
            false
        }
        None => {
            subnets.push(Subnet { ..sub });
            true
        }
    };
    let v = part
        .peek(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(vnet, rg))?;
    let s = match &v.links {
        Links::Vnet { subnets } => subnets.iter().find(|s| s.name.eq_ignore_ascii_case(name)),
        _ => None,
    }
    .ok_or_else(|| ArmError::resource_not_found(name, rg))?;
    let body = network::subnet_json(v, s, v.state(now));
    record(part, req, &op, Some(key));
    let mut out = json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        "Microsoft.Network",
        &loc,
        (&op.id, op.ends),
        false,
        false,
    );
    Ok(out)
}
