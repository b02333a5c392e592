//! PATCH of a resource or a resource group: tags only, synchronously (200).

use axum::response::Response;
use serde_json::{Map, Value};

use super::groups::group_json;
use super::{live_group, obj, ok_json, type_and_name};
use crate::arm::compact::Compact;
use crate::arm::error::ArmError;
use crate::arm::request::Req;
use crate::arm::store::{Kind, Partition, ResKey};
use crate::arm::view::resource_json;

/// The `tags` of a PATCH body; anything else is refused, as this mock
/// updates tags only (`*_UpdateTags`, and tags of `Disks_Update` /
/// `VirtualMachines_Update` / `ResourceGroups_Update`).
fn patch_tags(body: &Value) -> Result<Option<Map<String, Value>>, ArmError> {
    let b = body
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("The request content must be a JSON object."))?;
    if let Some(k) = b.keys().find(|k| k.as_str() != "tags") {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!("Updating '{k}' with PATCH is not supported by this mock; use PUT."),
        ));
    }
    match b.get("tags") {
        None => Ok(None),
        v => obj(v, "tags").map(Some),
    }
}

/// PATCH of a resource: replaces its tags, synchronously (200).
pub fn patch(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let now = req.now;
    live_group(part, rg, now)?;
    let tags = patch_tags(body)?;
    let key = ResKey::new(kind, rg, name);
    let r = part
        .live(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    if r.busy(now) {
        return Err(ArmError::another_operation(&r.id));
    }
    if let Some(t) = tags {
        r.tags = Compact::object(t);
    }
    let r = part
        .peek(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    Ok(ok_json(resource_json(part, r, now, Default::default())))
}

/// PATCH of a resource group: replaces its tags.
pub fn patch_group(
    part: &mut Partition,
    req: &Req,
    rg: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let tags = patch_tags(body)?;
    let g = live_group(part, rg, req.now)?;
    if let Some(t) = tags {
        g.tags = t;
    }
    Ok(ok_json(group_json(req, g)))
}
