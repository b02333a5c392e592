//! The `compute.instances.*` methods insert, get and list, and what every
//! mutation shares: mutations answer with an Operation; `requestId` makes
//! them idempotent (the same id answers the same operation, and changes
//! nothing). The power methods are in `power`, `setLabels` in `labels`,
//! `aggregatedList` in `aggregated`.

use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::ctx::FaultEffect;

use crate::gce::error::GceError;
use crate::gce::filters::{Fields, Filter};
use crate::gce::instances::Instance;
use crate::gce::lifecycle::{Status, Timeline};
use crate::gce::operations::{Failure, OpType, Operation};
use crate::gce::request::{Call, Reply};
use crate::gce::spec::Spec;
use crate::gce::store::Project;
use crate::gce::Gce;

use super::paging;

/// The principal operations report (the mock does not tie tokens to users).
pub(crate) const USER: &str = "mock-user@skyfleet.iam.gserviceaccount.com";

/// `ms` milliseconds of simulated time, scaled.
pub(super) fn ms(gce: &Gce, ms: u64) -> Duration {
    gce.ctx.scaled(Duration::from_millis(ms))
}

/// The validated `requestId` query parameter, if given.
pub(super) fn request_id(call: &Call) -> Result<Option<String>, GceError> {
    let Some(raw) = call.query("requestId") else {
        return Ok(None);
    };
    match uuid::Uuid::parse_str(raw) {
        Ok(u) if !u.is_nil() => Ok(Some(u.hyphenated().to_string())),
        _ => Err(GceError::invalid_field(
            "requestId",
            raw,
            "Must be a valid UUID other than the zero UUID.",
        )),
    }
}

/// A new numeric resource id (19 digits, like Compute's).
pub(crate) fn numeric_id(gce: &Gce) -> u64 {
    let hex = gce.ctx.hex_id(15);
    1_000_000_000_000_000_000 + u64::from_str_radix(&hex, 16).unwrap_or(0)
}

pub(crate) fn operation_name(gce: &Gce) -> String {
    let millis = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    format!(
        "operation-{millis}-{}-{}-{}",
        gce.ctx.hex_id(13),
        gce.ctx.hex_id(8),
        gce.ctx.hex_id(8)
    )
}

/// The operation a replayed `requestId` created, rendered now.
pub(super) fn replay(call: &Call, p: &Project, rid: &Option<String>) -> Option<Reply> {
    let name = p.request_ids.get(rid.as_ref()?)?;
    let op = p.operations.get(name)?;
    Some(Reply::Json(op.render(&call.base, &call.project, call.now)))
}

/// An operation about to be recorded.
pub(super) struct NewOp<'a> {
    pub(super) op_type: OpType,
    /// Target instance name and id.
    pub(super) target: (&'a str, u64),
    pub(super) duration_ms: u64,
    pub(super) failure: Option<Failure>,
}

/// Records a new operation and answers with it.
pub(super) fn start_operation(
    gce: &Gce,
    call: &Call,
    p: &mut Project,
    rid: Option<String>,
    new: NewOp<'_>,
) -> Reply {
    let NewOp {
        op_type,
        target,
        duration_ms,
        failure,
    } = new;
    let now = call.now;
    let started = now + ms(gce, call.config.operation_pending_ms);
    let op = Operation {
        id: numeric_id(gce),
        name: operation_name(gce).into(),
        zone: call.zone.clone(),
        op_type,
        target: target.0.to_string(),
        target_id: target.1,
        user: crate::gce::operations::Principal(USER),
        inserted_wall: OffsetDateTime::now_utc(),
        inserted: now,
        started,
        done: if matches!(call.fault, Some(FaultEffect::Stuck)) {
            // `RUNNING` for as long as the mock keeps time.
            started + crate::bounded::MAX_DURATION
        } else {
            started + ms(gce, duration_ms)
        },
        failure,
    };
    let body = op.render(&call.base, &call.project, now);
    p.add_operation(op, rid, call.config.operation_limit);
    Reply::Json(body)
}

pub(super) fn failure_of(call: &Call) -> Option<Failure> {
    match &call.fault {
        Some(FaultEffect::FailOperation { code, message }) => {
            Some(Failure::new(code, message, &call.project, &call.zone))
        }
        _ => None,
    }
}

fn hidden_reads_of(call: &Call) -> u32 {
    match call.fault {
        Some(FaultEffect::NotFoundReads { count }) => count,
        _ => 0,
    }
}

/// The boot sequence: PROVISIONING, STAGING, RUNNING.
pub(super) fn boot(gce: &Gce, call: &Call) -> [(Duration, Status); 2] {
    [
        (ms(gce, call.config.provisioning_ms), Status::Staging),
        (ms(gce, call.config.staging_ms), Status::Running),
    ]
}

/// `compute.instances.insert`.
pub(crate) fn insert(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let rid = request_id(call)?;
    let body: Value = serde_json::from_slice(&call.body).map_err(|e| {
        GceError::api(
            400,
            "parseError",
            &format!("Invalid JSON payload received. {e}"),
        )
    })?;
    let spec = Spec::parse(&body, &call.project, &call.zone)?;
    let stockout = gce.ctx.capacity().stockout(
        crate::ctx::Cloud::Gcp,
        &call.zone,
        spec.machine_type_name(),
        spec.is_spot(),
    );
    let failure = failure_of(call).or_else(|| {
        stockout.map(|code| Failure::new(&code, "", &call.project, &call.zone))
    });
    let hidden = hidden_reads_of(call);
    gce.store.write(&call.project, |p| {
        if let Some(reply) = replay(call, p, &rid) {
            return Ok(reply);
        }
        let now = call.now;
        if p.instance(&call.zone, &spec.name, now).is_some() {
            return Err(GceError::already_exists(&format!(
                "{}/instances/{}",
                call.zone_path(),
                spec.name
            )));
        }
        let limit = call.config.instance_limit;
        if failure.is_none() && p.room(now, limit, 1) == 0 {
            // Over the `INSTANCES` quota: accepted, and the operation
            // fails at once, creating nothing.
            let id = numeric_id(gce);
            let new = NewOp {
                op_type: OpType::Insert,
                target: (&spec.name, id),
                duration_ms: 0,
                failure: Some(Failure::instance_quota(limit, &call.zone)),
            };
            return Ok(start_operation(gce, call, p, rid, new));
        }
        let op_ms = call.config.insert_operation_ms;
        let timeline = if failure.is_some() {
            // Accepted, then given up: the instance never gets past
            // PROVISIONING and is gone when the operation ends.
            let until = ms(gce, call.config.operation_pending_ms) + ms(gce, op_ms);
            Timeline::new(now, Status::Provisioning, &[(until, Status::Gone)])
        } else if matches!(call.fault, Some(FaultEffect::Stuck)) {
            // Held where the stuck operation left it.
            Timeline::new(now, Status::Provisioning, &[])
        } else {
            Timeline::new(now, Status::Provisioning, &boot(gce, call))
        };
        let id = numeric_id(gce);
        let name = spec.name.clone();
        let instance = Instance::new(id, spec, &call.zone, now, timeline);
        instance
            .hidden_reads
            .store(hidden, std::sync::atomic::Ordering::Release);
        p.zones
            .entry(call.zone.clone())
            .or_default()
            .insert(name.clone(), instance);
        let new = NewOp {
            op_type: OpType::Insert,
            target: (&name, id),
            duration_ms: op_ms,
            failure,
        };
        Ok(start_operation(gce, call, p, rid, new))
    })
}

/// `compute.instances.get`.
pub(crate) fn get(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let hidden = hidden_reads_of(call);
    gce.store.read(&call.project, |p| {
        let not_found =
            || GceError::not_found(&format!("{}/instances/{}", call.zone_path(), call.target));
        let inst = p
            .and_then(|p| p.instance(&call.zone, &call.target, call.now))
            .ok_or_else(not_found)?;
        if hidden > 0 {
            // This read is the first of the `count` that answer 404.
            inst.hidden_reads
                .store(hidden - 1, std::sync::atomic::Ordering::Release);
            return Err(not_found());
        }
        if inst.take_hidden_read() {
            return Err(not_found());
        }
        Ok(Reply::Json(inst.render(
            &call.base,
            &call.project,
            call.now,
        )))
    })
}

/// `compute.instances.list`: `filter`, `maxResults`, `pageToken`.
pub(crate) fn list(gce: &Gce, call: &Call) -> Result<Reply, GceError> {
    let filter = Filter::parse(call.query("filter").unwrap_or(""))?;
    let max = paging::max_results(call)?;
    let after = paging::after(call)?;
    let zone_path = call.zone_path();
    let (items, next) = gce.store.read(&call.project, |p| {
        let mut items = Vec::new();
        let mut next = None;
        let Some(zone) = p.and_then(|p| p.zones.get(&call.zone)) else {
            return (items, next);
        };
        let range = match &after {
            Some(a) => zone.range::<String, _>((
                std::ops::Bound::Excluded(a.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => zone.range::<String, _>(..),
        };
        for (name, inst) in range {
            let status = inst.status(call.now);
            if !inst.listed(call.now, ms(gce, call.config.consistency_window_ms)) {
                continue;
            }
            if let Some(f) = &filter {
                let fields = Fields {
                    name,
                    status: status.as_str(),
                    id: inst.id,
                    zone: &call.zone,
                    machine_type: inst.spec_machine_type(),
                    labels: &inst.spec.labels,
                };
                if !f.matches(&fields) {
                    continue;
                }
            }
            if items.len() == max {
                // There is at least one more: the page ends at the last
                // item returned.
                next = items
                    .last()
                    .map(|(n, _): &(String, Value)| paging::token(n));
                break;
            }
            items.push((
                name.clone(),
                inst.to_value(&call.base, &call.project, call.now),
            ));
        }
        (items, next)
    });
    let mut out = json!({
        "kind": "compute#instanceList",
        "id": format!("{zone_path}/instances"),
        "selfLink": call.base.link(&format!("{zone_path}/instances")),
    });
    if !items.is_empty() {
        out["items"] = Value::Array(items.into_iter().map(|(_, v)| v).collect());
    }
    if let Some(next) = next {
        out["nextPageToken"] = Value::from(next);
    }
    Ok(Reply::Json(out.to_string().into_bytes()))
}
