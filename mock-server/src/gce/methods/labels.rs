//! `compute.instances.setLabels`: replaces an instance's labels, guarded by
//! the label fingerprint of the labels the caller read (a stale or missing
//! one is refused with 412 `conditionNotMet`, as Compute Engine does). Every
//! accepted change gives a new fingerprint, even one that restores earlier
//! labels, so a fingerprint read before it never matches again.

use serde_json::Value;

use super::instances::{failure_of, replay, request_id, start_operation, NewOp};
use crate::gce::error::GceError;
use crate::gce::operations::OpType;
use crate::gce::request::{Call, Reply};
use crate::gce::spec::parse_labels;
use crate::gce::Gce;

/// `compute.instances.setLabels`: body `{labels, labelFingerprint}`.
pub(crate) fn set_labels(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let rid = request_id(call)?;
    let body: Value = serde_json::from_slice(&call.body).map_err(|e| {
        GceError::api(
            400,
            "parseError",
            &format!("Invalid JSON payload received. {e}"),
        )
    })?;
    let labels = parse_labels(body.get("labels"))?;
    // A missing fingerprint matches no labels: Compute answers 412 as for a
    // stale one (the caller must read the instance first).
    let given = match body.get("labelFingerprint") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(GceError::invalid(format!(
                "Invalid value at 'instances_set_labels_request_resource.label_fingerprint' \
                 (TYPE_BYTES), {other}"
            )))
        }
    };
    let failure = failure_of(call);
    gce.store.write(&call.project, |p| {
        if let Some(reply) = replay(call, p, &rid) {
            return Ok(reply);
        }
        let resource = format!("{}/instances/{}", call.zone_path(), call.target);
        let inst = p
            .instance_mut(&call.zone, &call.target, call.now)
            .ok_or_else(|| GceError::not_found(&resource))?;
        if given.as_deref() != Some(inst.label_fingerprint().as_str()) {
            return Err(GceError::api(
                412,
                "conditionNotMet",
                "Labels fingerprint either invalid or resource labels have changed",
            ));
        }
        if failure.is_none() {
            inst.set_labels(labels);
        }
        let target = (inst.spec.name.clone(), inst.id);
        let new = NewOp {
            op_type: OpType::SetLabels,
            target: (&target.0, target.1),
            duration_ms: 0,
            failure,
        };
        Ok(start_operation(gce, call, p, rid, new))
    })
}
