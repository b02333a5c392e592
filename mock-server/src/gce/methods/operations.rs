//! The `compute.zoneOperations.*` methods: get, and wait (which holds the
//! request until the operation is `DONE` or the wait cap passes, and may
//! so answer with an operation that is not `DONE`, as Compute documents).

use std::time::Duration;

use crate::gce::error::GceError;
use crate::gce::request::{Call, Reply};
use crate::gce::Gce;

fn not_found(call: &Call, name: &str) -> GceError {
    GceError::not_found(&format!("{}/operations/{name}", call.zone_path()))
}

/// The operation `name` of the call's zone, rendered at `call.now`.
pub(crate) fn render_named(gce: &Gce, call: &Call, name: &str) -> Result<Vec<u8>, GceError> {
    gce.store.read(&call.project, |p| {
        p.and_then(|p| p.operations.get(name))
            .filter(|op| op.zone == call.zone && op.visible(call.now))
            .map(|op| op.render(&call.base, &call.project, call.now))
            .ok_or_else(|| not_found(call, name))
    })
}

/// `compute.zoneOperations.get`.
pub(crate) fn get(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    render_named(gce, call, &call.target).map(Reply::Json)
}

/// `compute.zoneOperations.list`: every operation of the zone, oldest
/// first, with `filter=operationType="..."` (or `=`, `eq`) on the type; at
/// most 500, no paging.
pub(crate) fn list(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let want = match call.query("filter") {
        None | Some("") => None,
        Some(f) => Some(operation_type_filter(f).ok_or_else(|| {
            GceError::invalid(format!(
                "Invalid value for field 'filter': '{}'. Only operationType = \"...\" is supported.",
                f.chars().take(100).collect::<String>()
            ))
        })?),
    };
    let items = gce.store.read(&call.project, |p| {
        let mut ops: Vec<_> = p
            .map(|p| {
                p.operations
                    .values()
                    .filter(|op| op.zone == call.zone && op.visible(call.now))
                    .filter(|op| want.as_deref().is_none_or(|t| op.op_type.as_str() == t))
                    .collect()
            })
            .unwrap_or_default();
        ops.sort_by_key(|op| (op.inserted, op.id));
        ops.iter()
            .rev()
            .take(500)
            .rev()
            .map(|op| op.to_value(&call.base, &call.project, call.now))
            .collect::<Vec<_>>()
    });
    let body = serde_json::json!({
        "kind": "compute#operationList",
        "id": format!("projects/{}/zones/{}/operations", call.project, call.zone),
        "items": items,
        "selfLink": call.base.link(&format!("projects/{}/zones/{}/operations", call.project, call.zone)),
    });
    Ok(Reply::Json(serde_json::to_vec(&body).unwrap_or_default()))
}

/// The type of `operationType = "x"` (also `operationType=x`,
/// `operationType eq x`).
fn operation_type_filter(f: &str) -> Option<String> {
    let rest = f.trim().strip_prefix("operationType")?.trim_start();
    let rest = rest
        .strip_prefix('=')
        .or_else(|| rest.strip_prefix("eq "))?
        .trim();
    let value = rest.trim_matches('"');
    (!value.is_empty() && !value.contains('"')).then(|| value.to_string())
}

/// `compute.zoneOperations.wait`.
pub(crate) fn wait(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let remaining = gce.store.read(&call.project, |p| {
        p.and_then(|p| p.operations.get(call.target.as_str()))
            .filter(|op| op.zone == call.zone && op.visible(call.now))
            .map(|op| op.remaining(call.now))
            .ok_or_else(|| not_found(call, &call.target))
    })?;
    let cap = gce
        .ctx
        .scaled(Duration::from_millis(call.config.wait_cap_ms));
    if remaining.is_zero() {
        return render_named(gce, call, &call.target).map(Reply::Json);
    }
    Ok(Reply::Wait {
        op: call.target.clone(),
        until: call.now + remaining.min(cap),
    })
}
