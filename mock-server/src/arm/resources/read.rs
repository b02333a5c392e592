//! GET of a resource (or a VM's instance view) and of a list of one kind.

use axum::response::Response;

use super::{live_group, ok_json, type_and_name};
use crate::arm::compute;
use crate::arm::error::ArmError;
use crate::arm::request::Req;
use crate::arm::store::{Kind, Partition, ResKey};
use crate::arm::view::resource_json;

/// GET of a resource (or its instance view).
pub fn get(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: &str,
    name: &str,
    instance_view: bool,
) -> Result<Response, ArmError> {
    let now = req.now;
    live_group(part, rg, now)?;
    let key = ResKey::new(kind, rg, name);
    let r = part
        .live(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    if let Some(n) = req.not_found_reads {
        r.not_found_reads = n;
    }
    if r.not_found_reads > 0 {
        r.not_found_reads -= 1;
        return Err(ArmError::resource_not_found(&type_and_name(kind, name), rg));
    }
    let r = part
        .peek(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    let body = if instance_view {
        serde_json::to_vec(&compute::instance_view(part, r, now)).unwrap_or_default()
    } else {
        resource_json(part, r, now, req.read)
    };
    Ok(ok_json(body))
}

/// Resources per list page.
pub const PAGE: usize = 100;

/// GET of a list: one kind in a group or the subscription, by name, in pages
/// of [`PAGE`] with an absolute `nextLink` (`$skiptoken`).
pub fn list(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: Option<&str>,
) -> Result<Response, ArmError> {
    let now = req.now;
    let rg_key = match rg {
        Some(rg) => Some(live_group(part, rg, now)?.name.to_ascii_lowercase()),
        None => None,
    };
    let mut keys: Vec<&ResKey> = part
        .resources
        .iter()
        .filter(|(k, r)| {
            k.kind == kind && rg_key.as_ref().is_none_or(|g| *g == k.rg) && r.alive(now)
        })
        .map(|(k, _)| k)
        .collect();
    keys.sort_by(|a, b| (&a.rg, &a.name).cmp(&(&b.rg, &b.name)));
    let total = keys.len();
    let mut out = b"{\"value\":[".to_vec();
    for (i, k) in keys.iter().skip(req.skip).take(PAGE).enumerate() {
        if let Some(r) = part.resources.get(*k) {
            if i > 0 {
                out.push(b',');
            }
            out.extend(resource_json(part, r, now, Default::default()));
        }
    }
    out.push(b']');
    if req.skip.saturating_add(PAGE) < total {
        let next = format!(
            "{}{}?api-version={}&$skiptoken={}",
            req.base,
            req.path,
            req.api_version_q,
            req.skip + PAGE
        );
        out.extend(b",\"nextLink\":");
        out.extend(serde_json::to_vec(&next).unwrap_or_else(|_| b"null".to_vec()));
    }
    out.push(b'}');
    Ok(ok_json(out))
}
