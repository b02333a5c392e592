//! Preemption of spot and preemptible instances: which are running, and
//! giving one its 30-second notice. From the notice the metadata service
//! answers `instance/preempted` `TRUE` while the instance keeps running; at
//! its end the instance is `TERMINATED` (then deleted with
//! `instanceTerminationAction: DELETE`, after the configured deletion time)
//! and a `compute.instances.preempted` operation appears in the zone's
//! operations.

use std::time::{Duration, Instant};

use super::lifecycle::Status;
use super::methods::instances::{numeric_id, operation_name};
use super::operations::{OpType, Operation};
use super::Gce;
use crate::capacity::{Notice, Target};

/// The principal a preemption operation reports.
pub(crate) const SYSTEM: &str = "system";

impl Gce {
    /// Every running spot or preemptible instance not yet preempted.
    pub fn spot_running(&self) -> Vec<Target> {
        let now = Instant::now();
        self.store
            .each(|(_, p)| {
                p.zones
                    .iter()
                    .flat_map(|(zone, z)| z.values().map(move |i| (zone, i)))
                    .filter(|(_, i)| {
                        i.spec.is_spot() && i.preempted.is_none() && i.status(now) == Status::Running
                    })
                    .map(|(zone, i)| Target {
                        id: i.spec.name.clone(),
                        name: i.spec.name.clone(),
                        location: zone.clone(),
                        instance_type: i.spec.machine_type_name().to_string(),
                    })
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .flatten()
            .collect()
    }

    /// Preempts every running spot instance named `name` (in any project
    /// and zone): empty when there is none.
    pub fn interrupt(&self, name: &str, notice: &Notice) -> Vec<Target> {
        let now = Instant::now();
        let cfg = self.config();
        let scaled = |ms: u64| self.ctx.scaled(Duration::from_millis(ms));
        let deleting = scaled(cfg.deleting_ms);
        let projects: Vec<String> = self.store.each(|(p, _)| p.clone());
        let mut out = Vec::new();
        for project in projects {
            self.store.write(&project, |p| {
                let zones: Vec<String> = p.zones.keys().cloned().collect();
                for zone in zones {
                    let Some(i) = p.zones.get_mut(&zone).and_then(|z| z.get_mut(name)) else {
                        continue;
                    };
                    if !i.spec.is_spot() || i.preempted.is_some() || i.status(now) != Status::Running
                    {
                        continue;
                    }
                    // RUNNING (the guest's 30 s to shut down) until the
                    // end, then TERMINATED; deleted after with DELETE.
                    let steps: &[(Duration, Status)] = if i.spec.deleted_on_preemption() {
                        &[(deleting, Status::Gone)]
                    } else {
                        &[]
                    };
                    i.timeline.cut(notice.ends_at, Status::Terminated, steps);
                    let op_name = operation_name(self);
                    i.preempted = Some(Box::new((notice.clone(), op_name.clone())));
                    let (id, machine_type) = (i.id, i.spec.machine_type_name().to_string());
                    let op = Operation {
                        id: numeric_id(self),
                        name: op_name.as_str().into(),
                        zone: zone.clone(),
                        op_type: OpType::Preempted,
                        target: name.to_string(),
                        target_id: id,
                        user: super::operations::Principal(SYSTEM),
                        inserted_wall: notice.ends_wall,
                        inserted: notice.ends_at,
                        started: notice.ends_at,
                        done: notice.ends_at,
                        failure: None,
                    };
                    p.add_operation(op, None, cfg.operation_limit);
                    out.push(Target {
                        id: name.to_string(),
                        name: name.to_string(),
                        location: zone,
                        instance_type: machine_type,
                    });
                }
            });
        }
        out
    }
}
