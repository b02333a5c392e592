//! The resource group endpoints: PUT (synchronous, as ARM does it), GET or
//! HEAD, and DELETE of the group and everything in it.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

use super::{group_being_deleted, json_response, live_group, new_op, ok_json, record, Placed};
use crate::arm::config::{secs, ArmConfig};
use crate::arm::error::ArmError;
use crate::arm::request::Req;
use crate::arm::store::{Group, OpKind, Partition};
use crate::arm::{limits, lro};

/// A resource group on the wire.
pub fn group_json(req: &Req, g: &Group) -> Vec<u8> {
    let state = if g.deleting.is_some() {
        "Deleting"
    } else {
        "Succeeded"
    };
    let mut v = json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}", req.sub, g.name),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "properties": {"provisioningState": state},
    });
    if !g.tags.is_empty() {
        v["tags"] = Value::Object(g.tags.clone());
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// PUT of a resource group (synchronous, as ARM does it).
pub fn put(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    rg: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let Placed { location, tags, .. } = Placed::parse(body)?;
    let now = req.now;
    let status = match part.group(rg, now) {
        Some(g) => {
            if g.deleting.is_some() {
                return Err(group_being_deleted(&g.name));
            }
            if !g.location.eq_ignore_ascii_case(&location) {
                return Err(ArmError::conflict(
                    "InvalidResourceGroupLocation",
                    format!(
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                        g.location
                    ),
                ));
            }
            g.tags = tags;
            StatusCode::OK
        }
        None => {
            limits::check_group(part, &cfg.limits, rg, now)?;
            part.groups.insert(
                rg.to_ascii_lowercase(),
                Group {
                    name: rg.to_string(),
                    location,
                    tags,
                    created: req.wall,
                    deleting: None,
                },
            );
            StatusCode::CREATED
        }
    };
    let g = part
        .group(rg, now)
        .ok_or_else(|| ArmError::group_not_found(rg))?;
    Ok(json_response(status, group_json(req, g)))
}

/// GET (or HEAD) of a resource group.
pub fn get(part: &mut Partition, req: &Req, rg: &str, head: bool) -> Result<Response, ArmError> {
    let g = live_group(part, rg, req.now)?;
    if head {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(ok_json(group_json(req, g)))
}

/// DELETE of a resource group and everything in it.
pub fn delete(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    rg: &str,
) -> Result<Response, ArmError> {
    let now = req.now;
    let g = live_group(part, rg, now)?;
    let loc = g.location.clone();
    if let Some((id, ends)) = &g.deleting {
        let (id, ends) = (id.clone(), *ends);
        let mut out = StatusCode::ACCEPTED.into_response();
        lro::accepted_headers(
            &mut out,
            req,
            cfg,
            "Microsoft.Resources",
            &loc,
            (&id, ends),
            true,
            false,
        );
        return Ok(out);
    }
    let mut op = new_op(req, OpKind::Delete, secs(cfg.durations.delete_s));
    // A resource group delete cannot be made to fail here; the fault answers
    // synchronously instead (see the request pipeline).
    op.failure = None;
    g.deleting = Some((op.id.clone(), op.ends));
    let key = rg.to_ascii_lowercase();
    for r in part
        .resources
        .values_mut()
        .filter(|r| r.rg.eq_ignore_ascii_case(&key))
    {
        r.op = op.clone();
    }
    record(part, req, &op, None);
    let mut out = StatusCode::ACCEPTED.into_response();
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        "Microsoft.Resources",
        &loc,
        (&op.id, op.ends),
        true,
        false,
    );
    Ok(out)
}
