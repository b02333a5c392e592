//! Benchmark of the AWS provider against the in-process mock EC2
//! (time-scaled): creates `--workers` workers, checks them `--checks` times,
//! removes them, and prints one JSON object with the calls EC2 received per
//! worker, leaked resources and duplicate instances.
//!
//! ```text
//! cargo run --release -p skyfleet -- bench aws --workers 500 --checks 10 --json
//! ```
//!
//! Workers are stepped as a scanner would: all due workers of the region
//! together through `step_many` (so checks are batched DescribeInstances
//! calls), each answer applied to the record as a store would persist it.
//! Every `--replay-every`-th worker's launch step is run twice from the same
//! persisted state, its first answer thrown away, as if the process had died
//! before persisting it: those replays must not launch a second instance.
//!
//! The transport's limits are raised for the run (the mock's throttling is
//! off): the published EC2 defaults (RunInstances 2/s) would only make the
//! benchmark wait.

use std::time::{Duration, Instant};

use serde_json::json;

use super::drive::{self, Crashes, Drive, NoCrash};
use super::harness::{self, BenchError, Report, MANAGER};
use super::stats::{diff, per, total};
use crate::mockctl::{self, Stats};
use skyfleet_aws::{AwsBuilder, AwsProvider, AwsState, Timings};
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{DesiredState, OwnershipScope, Phase, Provider, Worker};
use skyfleet_identity::aws::AwsTrust;
use skyfleet_mock::MockCloud;

/// The region of the benchmarks' AWS workers.
pub const REGION: &str = "us-east-1";
/// Largest batch handed to `step_many`: DescribeInstances' page size.
const BATCH: usize = 1000;

/// Options of `skyfleet bench aws`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Workers to create, check and delete.
    #[arg(long, default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    workers: usize,
    /// Batched checks of every worker.
    #[arg(long, default_value_t = 10)]
    checks: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Replay every Nth worker's launch as if the process had crashed (0: never).
    #[arg(long, default_value_t = 10)]
    replay_every: usize,
    /// The mock's time scale.
    #[arg(long, default_value_t = 0.001)]
    time_scale: f64,
}

fn worker(i: usize) -> Worker {
    harness::worker(
        &format!("w-bench-{i}"),
        "bench/pool",
        "aws",
        json!({
            "region": "us-east-1",
            "ImageId": "ami-0123456789abcdef0",
            "InstanceType": "m5.large",
            "workerConfig": {"bench": true}
        }),
    )
}

/// The AWS provider (id `aws`, region `us-east-1`) of the benchmarks on
/// the mock at `url`: its transport's limits raised (the mock does not
/// throttle, and EC2's published limits would only make a run wait), the
/// given `timings`, and `trust` to check workers' identity proofs against
/// when the scenario registers workers (`None`: none registers).
pub async fn mock_provider(
    url: &str,
    timings: Timings,
    trust: Option<AwsTrust>,
) -> Result<AwsProvider, String> {
    let fast = Limit::per_second(100_000, 100_000);
    let mut tc = TransportConfig::default()
        .with_operation_limit("aws", "RunInstances", fast)
        .with_max_concurrency(256);
    for class in ApiClass::ALL {
        tc = tc.with_limit("aws", class, fast);
    }
    let transport = Transport::builder()
        .config(tc)
        .build()
        .map_err(|e| e.to_string())?;
    let mut b = AwsBuilder::new()
        .with_id("aws")
        .with_regions([REGION])
        .with_endpoint_url(url)
        .with_static_credentials("AKIDSKYFLEETBENCH", "bench-secret", None)
        .with_timings(timings)
        .with_transport(transport);
    if let Some(trust) = trust {
        b = b.with_identity_trust(trust);
    }
    b.build().await.map_err(|e| e.to_string())
}

/// Loses the launch step of every `every`-th worker once: the instance is
/// launched, the answer lost, the same persisted state stepped again.
struct LaunchReplay {
    every: usize,
    replayed: Vec<bool>,
}

impl Crashes for LaunchReplay {
    fn lost(&mut self, i: usize, w: &Worker) -> bool {
        let about_to_launch = w.desired == DesiredState::Running
            && AwsState::of(w)
                .ok()
                .flatten()
                .is_some_and(|s| s.instance_id.is_none() && s.teardown.is_none());
        let lose = self.every > 0 && i % self.every == 0 && !self.replayed[i] && about_to_launch;
        if lose {
            self.replayed[i] = true;
        }
        lose
    }
}

fn drive(until: &[Phase]) -> Drive {
    Drive {
        until: until.to_vec(),
        batch: BATCH,
        deadline: Duration::from_secs(600),
        backoff: Duration::from_millis(50),
        max_errors: u32::MAX - 1,
    }
}

/// Runs `skyfleet bench aws`.
pub async fn run(a: &Args) -> Result<Report, BenchError> {
    if !a.time_scale.is_finite() || a.time_scale < 0.0 {
        return Err(BenchError::Usage(
            "--time-scale must be a finite number >= 0".into(),
        ));
    }
    let mock = MockCloud::builder()
        .time_scale(a.time_scale)
        .start()
        .await?;
    let timings = Timings {
        poll_interval: Duration::from_millis(20),
        check_interval: Duration::from_secs(3600),
        not_found_grace: Duration::from_secs(2),
    };
    let p = mock_provider(mock.url(), timings, None).await?;
    let calls = |s: Stats| s.calls("aws");

    let started = Instant::now();
    let mut ws: Vec<Worker> = (0..a.workers).map(worker).collect();

    // Create.
    let c0 = calls(Stats::read(&mock).await?);
    let mut replay = LaunchReplay {
        every: a.replay_every,
        replayed: vec![false; ws.len()],
    };
    let created = drive(&[Phase::Running])
        .run(&p, &mut ws, &mut replay)
        .await?;
    let c1 = calls(Stats::read(&mock).await?);
    let failed = ws.iter().filter(|w| w.phase != Phase::Running).count();
    let live = mockctl::resources_of(&mock, "aws").await?;
    let duplicates = mockctl::duplicates_per_worker(&live);
    let create_ms = started.elapsed().as_millis();

    // Check: every worker due at once, `checks` times.
    let t_check = Instant::now();
    drive::check_all(&p, &mut ws, BATCH, a.checks).await?;
    let check_ms = t_check.elapsed().as_millis();
    let c2 = calls(Stats::read(&mock).await?);
    let still_running = ws.iter().filter(|w| w.phase == Phase::Running).count();

    // Delete.
    let t_delete = Instant::now();
    for w in ws.iter_mut() {
        w.desired = DesiredState::Removed;
        w.next_check_at = time::OffsetDateTime::now_utc();
    }
    drive(&[]).run(&p, &mut ws, &mut NoCrash).await?;
    let delete_ms = t_delete.elapsed().as_millis();
    let c3 = calls(Stats::read(&mock).await?);
    let stopped = ws.iter().filter(|w| w.phase == Phase::Stopped).count();

    let leaked_mock = mockctl::resources_of(&mock, "aws").await?;
    let leaked_owned = p
        .list_owned(&OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: "aws".into(),
        })
        .await?;

    let n = a.workers as f64;
    let (create, check, delete) = (diff(&c1, &c0), diff(&c2, &c1), diff(&c3, &c2));
    Ok(Report::pretty(json!({
        "workers": a.workers,
        "checks": a.checks,
        "leaked_resources": leaked_mock.len().max(leaked_owned.len()),
        "duplicate_instances": duplicates,
        "calls_per_worker": {
            "create": per(total(&create), n),
            "check": per(total(&check), n * a.checks.max(1) as f64),
            "delete": per(total(&delete), n),
        },
        "calls": {"create": create, "check": check, "delete": delete},
        "replayed_launches": created.crashes,
        "workers_running_after_create": a.workers - failed,
        "workers_running_after_checks": still_running,
        "workers_stopped_after_delete": stopped,
        "elapsed_ms": {"create": create_ms, "check": check_ms, "delete": delete_ms},
        "mock_time_scale": a.time_scale,
    })))
}
