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
            .filter(|op| op.zone == call.zone)
            .map(|op| op.render(&call.base, &call.project, call.now))
            .ok_or_else(|| not_found(call, name))
    })
}

/// `compute.zoneOperations.get`.
pub(crate) fn get(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    render_named(gce, call, &call.target).map(Reply::Json)
}

/// `compute.zoneOperations.wait`.
pub(crate) fn wait(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let remaining = gce.store.read(&call.project, |p| {
        p.and_then(|p| p.operations.get(&call.target))
            .filter(|op| op.zone == call.zone)
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
