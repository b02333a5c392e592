//! Random interruptions: once a second, each running spot instance of a
//! cloud with a rate is interrupted with probability `1 - e^(-rate * dt)`,
//! `dt` the real time since the last tick in hours.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;

use super::control::{interrupt_one, spot_running};
use crate::app::Shared;

/// How often the ticker looks.
const TICK: Duration = Duration::from_secs(1);

/// Runs until `shutdown` fires (or its sender is dropped).
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<()>) {
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let hours = now.duration_since(last).as_secs_f64() / 3600.0;
        last = now;
        tick(&shared, hours);
    }
}

/// One tick covering `hours` of real time.
pub fn tick(shared: &Shared, hours: f64) {
    let capacity = shared.ctx.capacity();
    for rate in capacity.rates() {
        if rate.per_instance_per_hour <= 0.0 {
            continue;
        }
        let p = 1.0 - (-rate.per_instance_per_hour * hours).exp();
        if p.is_nan() || p <= 0.0 {
            continue;
        }
        let mut targets = spot_running(shared, rate.cloud);
        targets.sort_by(|a, b| a.id.cmp(&b.id));
        let picked: Vec<String> = capacity.with_rng(|rng| {
            targets
                .into_iter()
                .filter(|_| rng.random_bool(p.min(1.0)))
                .map(|t| t.id)
                .collect()
        });
        for id in picked {
            interrupt_one(shared, rate.cloud, &id);
        }
    }
}
