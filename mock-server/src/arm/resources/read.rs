//! GET of a resource (or a VM's instance view) and of a list of one kind.
//!
//! A VM list (in a group or the whole subscription) takes `statusOnly=true`,
//! as ARM's `VirtualMachines_List`/`_ListAll` do: each VM then carries
//! `properties.instanceView` with the same `ProvisioningState/...` and
//! `PowerState/...` statuses its own instance view answers, so one list call
//! (against the reads bucket, like any GET) tells the power state of up to
//! [`PAGE`] VMs.

use axum::response::Response;

use super::{live_group, ok_json, type_and_name};
use crate::arm::compute;
use crate::arm::error::ArmError;
use crate::arm::request::Req;
use crate::arm::store::{Kind, OpKind, Partition, ResKey, Resource};
use crate::arm::view::{resource_json, ReadOpts};
use crate::consistency::lingering;

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
/// of [`PAGE`] with an absolute `nextLink` (`$skiptoken`). Resources made
/// less than `lag` ago are left out, and those deleted less than `lag` ago
/// are still listed (see [`crate::consistency`]).
pub fn list(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: Option<&str>,
    lag: std::time::Duration,
) -> Result<Response, ArmError> {
    let now = req.now;
    let status_only = kind == Kind::VirtualMachine && status_only(req.status_only.as_deref())?;
    let opts = ReadOpts {
        instance_view: status_only,
        user_data: false,
    };
    let rg_key = match rg {
        Some(rg) => Some(live_group(part, rg, now)?.name.to_ascii_lowercase()),
        None => None,
    };
    let in_scope = |r: &Resource| {
        r.kind == kind && rg_key.as_ref().is_none_or(|g| r.rg.eq_ignore_ascii_case(g))
    };
    // Deleted less than `lag` ago: a lagging list still shows it.
    let lingers = |r: &Resource| {
        !r.alive(now) && r.op.kind == OpKind::Delete && lingering(r.op.ends, lag, now)
    };
    let mut rows: Vec<&Resource> = part
        .resources
        .values()
        .map(|r| &**r)
        .filter(|r| in_scope(r))
        .filter(|r| (r.alive(now) && !made_within(r, req, lag)) || lingers(r))
        .collect();
    rows.extend(part.deleted.iter().map(|r| &**r).filter(|r| {
        in_scope(r)
            && lingers(r)
            && !part
                .resources
                .contains_key(&ResKey::new(r.kind, &r.rg, &r.name))
    }));
    let order = |r: &Resource| (r.rg.to_ascii_lowercase(), r.name.to_ascii_lowercase());
    rows.sort_by_cached_key(|r| order(r));
    let total = rows.len();
    let mut out = b"{\"value\":[".to_vec();
    for (i, r) in rows.iter().skip(req.skip).take(PAGE).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend(resource_json(part, r, now, opts));
    }
    out.push(b']');
    if req.skip.saturating_add(PAGE) < total {
        // The next page keeps the statuses: a client follows `nextLink`
        // as given.
        let next = format!(
            "{}{}?api-version={}{}&$skiptoken={}",
            req.base,
            req.path,
            req.api_version_q,
            if status_only { "&statusOnly=true" } else { "" },
            req.skip + PAGE
        );
        out.extend(b",\"nextLink\":");
        out.extend(serde_json::to_vec(&next).unwrap_or_else(|_| b"null".to_vec()));
    }
    out.push(b'}');
    Ok(ok_json(out))
}

/// `statusOnly` of a VM list: absent or `false` is off, `true` is on (ARM
/// reads booleans case-insensitively); anything else is a 400
/// `InvalidParameter` naming it.
fn status_only(v: Option<&str>) -> Result<bool, ArmError> {
    match v {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => {
            // Echo at most 64 characters of what was sent.
            let shown: String = v.chars().take(64).collect();
            Err(ArmError::invalid_parameter(
                "statusOnly",
                format!(
                    "The value '{shown}' of query parameter 'statusOnly' is not valid. Allowed values are 'true', 'false'."
                ),
            ))
        }
    }
}

/// Whether `r` was made less than `lag` before the request (wall clock:
/// resources keep their creation time so).
fn made_within(r: &Resource, req: &Req, lag: std::time::Duration) -> bool {
    if lag.is_zero() {
        return false;
    }
    let age = std::time::Duration::try_from(req.wall - r.created).unwrap_or_default();
    age < lag
}

#[cfg(test)]
mod tests {
    use super::status_only;

    #[test]
    fn status_only_values() {
        assert_eq!(status_only(None).ok(), Some(false));
        assert_eq!(status_only(Some("TRUE")).ok(), Some(true));
        assert_eq!(status_only(Some("false")).ok(), Some(false));
        assert!(status_only(Some("yes")).is_err());
        assert!(status_only(Some("")).is_err());
    }
}
