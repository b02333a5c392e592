//! `compute.instances.bulkInsert`
//! (`POST .../zones/{zone}/instances/bulkInsert`): creates `count`
//! instances as `insert` does, with one operation whose target is the zone.
//!
//! Names come from `perInstanceProperties`, then from `namePattern`,
//! numbered after the biggest number the pattern already names in the
//! project (Compute's rule: with `vm-0050` in use, `vm-####` goes on from
//! `vm-0051`), else from 1. Capacity is all or nothing in the mock (a
//! stockout covers the zone and machine type), so a stockout fails the
//! whole operation, leaving no instance. The `INSTANCES` quota
//! (`instance_limit`) is where `minCount` matters: the request gets as many
//! instances as fit if that is at least `minCount`, else none and an
//! operation that fails with `QUOTA_EXCEEDED`.

use serde_json::Value;

use crate::gce::bulk::BulkRequest;
use crate::gce::error::GceError;
use crate::gce::instances::Instance;
use crate::gce::lifecycle::{Status, Timeline};
use crate::gce::operations::{Failure, OpType};
use crate::gce::request::{Call, Reply};
use crate::gce::spec::Spec;
use crate::gce::store::Project;
use crate::gce::Gce;

use super::instances::{
    boot, failure_of, ms, numeric_id, replay, request_id, start_operation, NewOp,
};

/// The names of the instances to create, or 400 when the pattern runs out
/// of digits.
fn names(req: &BulkRequest, p: &Project, call: &Call) -> Result<Vec<String>, GceError> {
    let mut names = req.names.clone();
    // `count` is at most 1000 (checked by `BulkRequest::parse`).
    let count = usize::try_from(req.count).unwrap_or(usize::MAX);
    if names.len() >= count {
        return Ok(names);
    }
    let Some(pattern) = &req.pattern else {
        return Err(GceError::required("bulkInsertInstanceResource.namePattern"));
    };
    let biggest = p
        .zones
        .values()
        .flat_map(|z| z.iter())
        .filter(|(_, i)| i.live(call.now))
        .filter_map(|(name, _)| pattern.number(name))
        .max();
    // A number below 10^18 (at most 18 digits): adding one cannot overflow.
    let mut n = biggest.map_or(1, |b| b + 1);
    while names.len() < count {
        let name = pattern.name(n).ok_or_else(|| {
            GceError::invalid_field(
                "bulkInsertInstanceResource.namePattern",
                &pattern.name(0).unwrap_or_default(),
                &format!("Too few '#' characters to name {} more instances.", req.count),
            )
        })?;
        n += 1;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `compute.instances.bulkInsert`.
pub(crate) fn bulk_insert(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let rid = request_id(call)?;
    let body: Value = serde_json::from_slice(&call.body).map_err(|e| {
        GceError::api(
            400,
            "parseError",
            &format!("Invalid JSON payload received. {e}"),
        )
    })?;
    let req = BulkRequest::parse(&body, &call.project, &call.zone)?;
    // The shared properties, validated once with a stand-in name before
    // any name is chosen.
    let shared = Spec::parse(&req.body("bulk"), &call.project, &call.zone)?;
    let stockout = gce.ctx.capacity().stockout(
        crate::ctx::Cloud::Gcp,
        &call.zone,
        shared.machine_type_name(),
        shared.is_spot(),
    );
    let failure = failure_of(call).or_else(|| {
        stockout.map(|code| Failure::new(&code, "", &call.project, &call.zone))
    });
    gce.store.write(&call.project, |p| {
        if let Some(reply) = replay(call, p, &rid) {
            return Ok(reply);
        }
        let now = call.now;
        let mut names = names(&req, p, call)?;
        if let Some(taken) = names
            .iter()
            .find(|n| p.instance(&call.zone, n, now).is_some())
        {
            return Err(GceError::already_exists(&format!(
                "{}/instances/{taken}",
                call.zone_path()
            )));
        }
        let limit = call.config.instance_limit;
        if failure.is_none() {
            // As many as the `INSTANCES` quota leaves room for, if that is
            // at least `minCount`; otherwise none, and the operation fails.
            let room = p.room(now, limit, names.len());
            if (room as u64) < req.min_count {
                let new = NewOp {
                    op_type: OpType::BulkInsert,
                    target: ("", 0),
                    duration_ms: 0,
                    failure: Some(Failure::instance_quota(limit, &call.zone)),
                };
                return Ok(start_operation(gce, call, p, rid, new));
            }
            names.truncate(room);
        }
        let specs = names
            .iter()
            .map(|n| Spec::parse(&req.body(n), &call.project, &call.zone))
            .collect::<Result<Vec<_>, _>>()?;
        let op_ms = call.config.insert_operation_ms;
        let timeline = if failure.is_some() {
            // As a failed insert: PROVISIONING, then gone when the
            // operation ends.
            let until = ms(gce, call.config.operation_pending_ms) + ms(gce, op_ms);
            Timeline::new(now, Status::Provisioning, &[(until, Status::Gone)])
        } else {
            Timeline::new(now, Status::Provisioning, &boot(gce, call))
        };
        let zone = p.zones.entry(call.zone.clone()).or_default();
        for spec in specs {
            let name = spec.name.clone();
            let instance = Instance::new(numeric_id(gce), spec, &call.zone, now, timeline.clone());
            zone.insert(name, instance);
        }
        let new = NewOp {
            op_type: OpType::BulkInsert,
            target: ("", 0),
            duration_ms: op_ms,
            failure,
        };
        Ok(start_operation(gce, call, p, rid, new))
    })
}
