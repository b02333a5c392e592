//! `skyfleet bench scale-in`: a pool of up to `--workers` AWS workers on the
//! in-process mock, each with a simulated agent (its proof read from the
//! mock's instance metadata, registered and heartbeating through the
//! fleet's worker API calls) running simulated tasks of random lengths from
//! a simulated queue, while the queue's load swings up and down.
//!
//! ```text
//! cargo run --release -p skyfleet -- bench scale-in --workers 200 --json
//! ```
//!
//! It reports what scale-in must never do and how tight it runs:
//! - busy workers terminated (target 0): an agent told `terminate`, or
//!   refused, while it runs a task;
//! - tasks lost (0): tasks taken by a worker that was terminated under them;
//! - mean idle capacity (target at most `1.1 * min_idle + 1`), sampled from
//!   the agents themselves (idle and not draining), and the share of samples
//!   below `min_idle` while the pool was below its maximum;
//! - the p95 time from surplus appearing to it gone: surplus episodes run
//!   from the first sample with more than `min_idle + 1` idle agents (a drop
//!   in load, or tasks finishing once it dropped) to the first sample
//!   without (target at most `idle_timeout` plus two scan intervals; none
//!   at all leaves it undefined, `null`);
//! - how long each agent told to drain while idle had been idle by then
//!   (the runtime's reaction; the maximum idle capacity sampled is reported
//!   too).
//!
//! The run fails unless workers reached running, registered and completed
//! tasks, so a run where nothing works cannot pass.

mod agent;
pub(crate) mod queue;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::aws::REGION;
use super::harness::{self, BenchError, Report, MANAGER};
use super::stats::Distribution;
use agent::{Agents, Tally};
use queue::Queue;
use skyfleet_aws::Timings;
use skyfleet_core::fleet::{Fleet, FleetConfig};
use skyfleet_core::store::{MemoryStore, WorkerFilter, WorkerStore};
use skyfleet_core::{Phase, PoolConfig};
use skyfleet_identity::aws::{AwsTrust, SignatureForm};
use skyfleet_mock::MockCloud;

const POOL: &str = "bench/scale-in";
/// How often the agents and the pool are sampled.
const SAMPLE: Duration = Duration::from_millis(250);

/// Options of `skyfleet bench scale-in`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The pool's maximum capacity (one capacity unit per worker).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=5000))]
    workers: u32,
    /// How long the load swings, in seconds.
    #[arg(long, default_value_t = 180)]
    duration_s: u64,
    /// The pool's `min_idle`.
    #[arg(long, default_value_t = 5)]
    min_idle: u32,
    /// The pool's `idle_timeout`, in seconds.
    #[arg(long, default_value_t = 5)]
    idle_timeout_s: u64,
    /// Seed of the load pattern and task lengths.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The mock's time scale (instance boot and API latencies).
    #[arg(long, default_value_t = 0.02)]
    time_scale: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The load pattern: shares of the maximum capacity, one per phase.
const LOAD: [f64; 8] = [0.6, 0.1, 0.9, 0.0, 0.5, 0.2, 0.8, 0.05];

fn pool(a: &Args) -> Result<PoolConfig, BenchError> {
    serde_json::from_value(json!({
        "pool_id": POOL, "provider_id": "aws", "max_capacity": a.workers,
        "min_idle": a.min_idle,
        "launch_configs": [{"id": "m5", "launch": {
            "region": REGION, "ImageId": "ami-0123456789abcdef0", "InstanceType": "m5.large",
            "workerConfig": {"bench": "scale-in"}
        }}],
        "lifecycle": {
            "provisioning_deadline": 120, "registration_timeout": 60,
            "heartbeat_timeout": 4, "idle_timeout": a.idle_timeout_s
        }
    }))
    .map_err(|e| BenchError::Usage(format!("pool: {e}")))
}

/// The benchmarks' AWS provider on `mock`, trusting the mock's identity
/// documents.
async fn provider(mock: &MockCloud) -> Result<skyfleet_aws::AwsProvider, String> {
    let trust = crate::mockctl::call_authorized(mock, "GET", "/_mock/trust", None).await?;
    let pem = trust["aws"]["certificate_pem"]
        .as_str()
        .ok_or("the mock publishes no AWS certificate")?;
    let trust = AwsTrust::empty()
        .with_certificate(SignatureForm::Rsa, REGION, pem)
        .map_err(|e| e.to_string())?;
    let timings = Timings {
        poll_interval: Duration::from_millis(50),
        check_interval: Duration::from_secs(5),
        not_found_grace: Duration::from_secs(2),
    };
    super::aws::mock_provider(mock.url(), timings, Some(trust)).await
}

/// One sample of the run.
struct Sample {
    at: Duration,
    idle: u64,
    live: u64,
    /// Capacity on its way: workers requested, or running without a
    /// registered agent yet.
    booting: u64,
}

/// Runs `skyfleet bench scale-in`.
pub async fn run(a: &Args) -> Result<Report, BenchError> {
    if !a.time_scale.is_finite() || a.time_scale < 0.0 {
        return Err(BenchError::Usage(
            "--time-scale must be a finite number >= 0".into(),
        ));
    }
    if a.duration_s < 16 {
        return Err(BenchError::Usage("--duration-s must be at least 16".into()));
    }
    let mock = MockCloud::builder()
        .time_scale(a.time_scale)
        .start()
        .await?;
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let queue = Arc::new(Queue::new(a.seed));
    let scan_interval = Duration::from_millis(50);
    let fleet = Fleet::builder()
        .config(FleetConfig {
            scan_interval,
            provision_interval: Duration::from_millis(250),
            ..harness::fast_fleet(MANAGER)
        })
        .store(store.clone())
        .provider(Arc::new(provider(&mock).await?))
        .pool(pool(a)?)
        .demand(queue.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let runner = {
        let (f, c) = (fleet.clone(), cancel.clone());
        tokio::spawn(async move { f.run(c).await })
    };
    let agents = Agents::new(
        fleet.clone(),
        queue.clone(),
        mock.imds_url().to_string(),
        POOL,
    );

    let started = Instant::now();
    let phase = Duration::from_secs(a.duration_s) / LOAD.len() as u32;
    let mut drops = Vec::new();
    let mut samples = Vec::new();
    let mut last_load = 0.0;
    let mut ran = 0u64;
    for (i, share) in LOAD.iter().enumerate() {
        let load = (share * f64::from(a.workers)).round() as u64;
        if *share < last_load {
            drops.push(started.elapsed());
        }
        last_load = *share;
        let end = phase * (i as u32 + 1);
        while started.elapsed() < end {
            queue.set_load(load);
            let running = running_workers(&store).await?;
            ran = ran.max(running.len() as u64);
            agents.spawn_new(&running);
            let (idle, alive) = agents.idle_and_alive();
            let requested = requested_workers(&store).await?;
            samples.push(Sample {
                at: started.elapsed(),
                idle,
                live: running.len() as u64,
                booting: requested + (running.len() as u64).saturating_sub(alive),
            });
            tokio::time::sleep(SAMPLE).await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    cancel.cancel();
    agents.stop().await;
    let _ = runner.await;
    let tally: Tally = agents.tally();
    let q = queue.counts();

    let mean_idle =
        samples.iter().map(|s| s.idle as f64).sum::<f64>() / samples.len().max(1) as f64;
    let below_max: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.live < u64::from(a.workers))
        .collect();
    let below_min_idle = below_max
        .iter()
        .filter(|s| s.idle < u64::from(a.min_idle))
        .count();
    // Demand allows min_idle once the capacity that restores it has come
    // up: a rise in load takes idle workers at once (what the warm pool is
    // for), and their replacements need a boot. Samples with nothing on its
    // way are the ones where min_idle should hold.
    let settled: Vec<&&Sample> = below_max.iter().filter(|s| s.booting == 0).collect();
    let below_min_idle_settled = settled
        .iter()
        .filter(|s| s.idle < u64::from(a.min_idle))
        .count();
    // Surplus episodes: from the first sample with more idle capacity
    // than min_idle + 1 to the first one without.
    let limit = u64::from(a.min_idle) + 1;
    let mut episodes = Vec::new();
    let mut since: Option<Duration> = None;
    for smp in &samples {
        match (since, smp.idle > limit) {
            (None, true) => since = Some(smp.at),
            (Some(t0), false) => {
                episodes.push((smp.at - t0).as_secs_f64());
                since = None;
            }
            _ => {}
        }
    }
    let unsettled = usize::from(since.is_some());
    let episode_count = episodes.len();
    let p95_gone = Distribution::new(episodes).percentile(0.95);
    let gone_target = a.idle_timeout_s as f64 + 2.0 * scan_interval.as_secs_f64();
    let idle_target = 1.1 * f64::from(a.min_idle) + 1.0;
    let max_idle = samples.iter().map(|s| s.idle).max().unwrap_or(0);
    let heard = Distribution::new(agents.idle_to_drain());
    let worked = ran > 0 && tally.registered > 0 && q.completed > 0;
    let ok = worked && tally.busy_killed == 0 && tally.tasks_lost == 0;
    Ok(Report {
        ok,
        ..Report::json(json!({
            "scenario": "scale-in",
            "workers_max": a.workers,
            "min_idle": a.min_idle,
            "idle_timeout_s": a.idle_timeout_s,
            "seconds": seconds,
            "workers_running_max": ran,
            "agents_registered": tally.registered,
            "agents_drained": tally.drained,
            "busy_workers_terminated": tally.busy_killed,
            "tasks_lost": tally.tasks_lost,
            "tasks_submitted": q.submitted,
            "tasks_completed": q.completed,
            "mean_idle_capacity": mean_idle,
            "mean_idle_target": idle_target,
            "max_idle_capacity": max_idle,
            "samples_below_min_idle_while_below_max_pct":
                100.0 * below_min_idle as f64 / below_max.len().max(1) as f64,
            "samples_below_min_idle_with_nothing_booting_pct":
                100.0 * below_min_idle_settled as f64 / settled.len().max(1) as f64,
            "samples_with_nothing_booting": settled.len(),
            "load_drops": drops.len(),
            "surplus_episodes": episode_count,
            "surplus_unsettled_at_end": unsettled,
            "p95_surplus_to_gone_s": p95_gone,
            "drop_to_surplus_gone_target_s": gone_target,
            "idle_to_drain_heard_s": {
                "count": heard.len(),
                "p50": heard.median(),
                "p95": heard.percentile(0.95),
            },
            "agent_errors": tally.errors,
        }))
    })
}

/// How many of the pool's workers are requested (booting), meant to run.
async fn requested_workers(store: &Arc<dyn WorkerStore>) -> Result<u64, String> {
    let ws = store
        .list_workers(&WorkerFilter::pool(POOL).with_phases(&[Phase::Requested]))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws
        .iter()
        .filter(|w| w.desired == skyfleet_core::DesiredState::Running)
        .count() as u64)
}

/// The pool's running workers, meant to run.
async fn running_workers(
    store: &Arc<dyn WorkerStore>,
) -> Result<Vec<skyfleet_core::Worker>, String> {
    let ws = store
        .list_workers(&WorkerFilter::pool(POOL).with_phases(&[Phase::Running]))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws
        .into_iter()
        .filter(|w| w.desired == skyfleet_core::DesiredState::Running)
        .collect())
}
