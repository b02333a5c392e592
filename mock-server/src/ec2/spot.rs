//! Spot interruptions of EC2 instances: which running spot instances there
//! are, and giving one its two-minute notice (the metadata service then
//! shows `spot/instance-action`; at its end the instance goes
//! `shutting-down` -> `terminated` with `Server.SpotInstanceTermination`).

use std::time::Instant;

use super::instances::{Interrupted, State};
use super::Ec2;
use crate::capacity::{Notice, Target};

impl Ec2 {
    /// Every running spot instance not yet interrupted.
    pub fn spot_running(&self) -> Vec<Target> {
        let now = Instant::now();
        let mut out = Vec::new();
        for (_, part) in self.store.all() {
            let part = part.lock().unwrap_or_else(|e| e.into_inner());
            for i in part.instances.values() {
                if i.spot.is_some()
                    && i.interrupted.is_none()
                    && i.seen(now).state == State::Running
                {
                    out.push(Target {
                        id: i.id.clone(),
                        name: i.id.clone(),
                        location: i.zone.clone(),
                        instance_type: i.instance_type.clone(),
                    });
                }
            }
        }
        out
    }

    /// Gives the running spot instance `id` its interruption notice; empty
    /// when it is unknown, on-demand, not running or already interrupted.
    pub fn interrupt(&self, id: &str, notice: &Notice) -> Vec<Target> {
        let now = Instant::now();
        let cfg = self.config();
        let shut = self.scaled_ms(cfg.terminate_ms);
        let visible = self.scaled_ms(cfg.terminated_visible_ms);
        for (_, part) in self.store.all() {
            let mut part = part.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = part.get_mut(id, now) else {
                continue;
            };
            if i.spot.is_none() || i.interrupted.is_some() || i.seen(now).state != State::Running
            {
                return Vec::new();
            }
            let terminated_at = notice.ends_at + shut;
            i.interrupted = Some(Interrupted {
                notice: notice.clone(),
                terminated_at,
                gone_at: terminated_at + visible,
            });
            return vec![Target {
                id: i.id.clone(),
                name: i.id.clone(),
                location: i.zone.clone(),
                instance_type: i.instance_type.clone(),
            }];
        }
        Vec::new()
    }
}
