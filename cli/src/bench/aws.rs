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

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mockctl;
use skyfleet_aws::{AwsBuilder, AwsProvider, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{
    DesiredState, Lifecycle, OwnershipScope, OwnershipTags, Phase, Provider, Worker, WorkerSpec,
};

const MANAGER: &str = "bench";
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
    json: bool,
    /// Replay every Nth worker's launch as if the process had crashed (0: never).
    #[arg(long, default_value_t = 10)]
    replay_every: usize,
    /// The mock's time scale.
    #[arg(long, default_value_t = 0.001)]
    time_scale: f64,
}

fn check_args(a: Args) -> Result<Args, String> {
    if !a.time_scale.is_finite() || a.time_scale < 0.0 {
        return Err("--time-scale must be a finite number >= 0".into());
    }
    Ok(a)
}

fn worker(i: usize) -> Worker {
    let id = format!("w-bench-{i}");
    Worker::new(
        WorkerSpec {
            worker_id: id.clone(),
            pool_id: "bench/pool".into(),
            provider_id: "aws".into(),
            launch_config_id: "lc".into(),
            launch: json!({
                "region": "us-east-1",
                "ImageId": "ami-0123456789abcdef0",
                "InstanceType": "m5.large",
                "workerConfig": {"bench": true}
            }),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: MANAGER.into(),
                pool_id: "bench/pool".into(),
                worker_id: id,
                provider_id: "aws".into(),
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    )
}

/// EC2 calls by action, from the mock's stats.
async fn ec2_calls(http: &reqwest::Client, url: &str) -> Result<HashMap<String, u64>, String> {
    let v: Value = http
        .get(format!("{url}/_mock/stats"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    for o in v["operations"].as_array().into_iter().flatten() {
        if o["cloud"] == "aws" {
            let op = o["operation"].as_str().unwrap_or("?").to_string();
            *out.entry(op).or_default() += o["count"].as_u64().unwrap_or(0);
        }
    }
    Ok(out)
}

fn total(m: &HashMap<String, u64>) -> u64 {
    m.values().sum()
}

fn diff(after: &HashMap<String, u64>, before: &HashMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Steps every due worker not yet in `until` (batched), until all are;
/// replays the launch step of every `replay_every`-th worker once.
async fn drive_all(
    p: &AwsProvider,
    ws: &mut [Worker],
    until: &[Phase],
    replay_every: usize,
    replays: &mut usize,
    deadline: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let mut replayed = vec![false; ws.len()];
    loop {
        let now = SystemClock.now();
        let due: Vec<usize> = (0..ws.len())
            .filter(|&i| !until.contains(&ws[i].phase) && !ws[i].phase.is_final())
            .filter(|&i| ws[i].next_check_at <= now)
            .collect();
        let pending = ws
            .iter()
            .filter(|w| !until.contains(&w.phase) && !w.phase.is_final())
            .count();
        if pending == 0 {
            return Ok(());
        }
        if start.elapsed() > deadline {
            return Err(format!("{pending} workers did not reach {until:?} in time"));
        }
        if due.is_empty() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            continue;
        }
        for chunk in due.chunks(BATCH) {
            let batch: Vec<Worker> = chunk.iter().map(|&i| ws[i].clone()).collect();
            // A crash after the launch: the answer is lost, the same
            // persisted state is stepped again.
            let about_to_launch = |w: &Worker| {
                w.desired == DesiredState::Running
                    && skyfleet_aws::AwsState::of(w)
                        .ok()
                        .flatten()
                        .is_some_and(|s| s.instance_id.is_none() && s.teardown.is_none())
            };
            let lost: Vec<Worker> = chunk
                .iter()
                .filter(|&&i| replay_every > 0 && i % replay_every == 0 && !replayed[i])
                .filter(|&&i| about_to_launch(&ws[i]))
                .map(|&i| ws[i].clone())
                .collect();
            if !lost.is_empty() {
                let _thrown_away = p.step_many(&lost).await;
                for &i in chunk {
                    if replay_every > 0 && i % replay_every == 0 && about_to_launch(&ws[i]) {
                        replayed[i] = true;
                        *replays += 1;
                    }
                }
            }
            let steps = p.step_many(&batch).await;
            let now = SystemClock.now();
            for (&i, s) in chunk.iter().zip(steps) {
                match s {
                    Ok(s) => apply_step(&mut ws[i], &s, now),
                    Err(e) => {
                        // As the runtime would: keep the state, retry later.
                        ws[i].next_check_at =
                            now + e.retry_after().unwrap_or(Duration::from_millis(50));
                    }
                }
            }
        }
    }
}

async fn run(a: Args) -> Result<Value, String> {
    let mock = skyfleet_mock::MockCloud::builder()
        .time_scale(a.time_scale)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let url = mock.url().to_string();
    let http = reqwest::Client::new();
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
    let p = AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(&url)
        .with_static_credentials("AKIDSKYFLEETBENCH", "bench-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(3600),
            not_found_grace: Duration::from_secs(2),
        })
        .with_transport(transport.clone())
        .build()
        .await
        .map_err(|e| e.to_string())?;

    let started = Instant::now();
    let mut ws: Vec<Worker> = (0..a.workers).map(worker).collect();
    let mut replays = 0usize;

    // Create.
    let c0 = ec2_calls(&http, &url).await?;
    drive_all(
        &p,
        &mut ws,
        &[Phase::Running],
        a.replay_every,
        &mut replays,
        Duration::from_secs(600),
    )
    .await?;
    let c1 = ec2_calls(&http, &url).await?;
    let failed = ws.iter().filter(|w| w.phase != Phase::Running).count();
    let live = mockctl::resources_of(&mock, "aws").await?;
    let duplicates = mockctl::duplicates_per_worker(&live);
    let create_ms = started.elapsed().as_millis();

    // Check: every worker due at once, `checks` times.
    let t_check = Instant::now();
    for _ in 0..a.checks {
        for chunk in ws.chunks_mut(BATCH) {
            let steps = p.step_many(chunk).await;
            let now = SystemClock.now();
            for (w, s) in chunk.iter_mut().zip(steps) {
                let s = s.map_err(|e| format!("check of {}: {e}", w.id()))?;
                apply_step(w, &s, now);
            }
        }
    }
    let check_ms = t_check.elapsed().as_millis();
    let c2 = ec2_calls(&http, &url).await?;
    let still_running = ws.iter().filter(|w| w.phase == Phase::Running).count();

    // Delete.
    let t_delete = Instant::now();
    for w in ws.iter_mut() {
        w.desired = DesiredState::Removed;
        w.next_check_at = SystemClock.now();
    }
    drive_all(&p, &mut ws, &[], 0, &mut replays, Duration::from_secs(600)).await?;
    let delete_ms = t_delete.elapsed().as_millis();
    let c3 = ec2_calls(&http, &url).await?;
    let stopped = ws.iter().filter(|w| w.phase == Phase::Stopped).count();

    let leaked_mock = mockctl::resources_of(&mock, "aws").await?;
    let leaked_owned = p
        .list_owned(&OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: "aws".into(),
        })
        .await
        .map_err(|e| e.to_string())?;

    let n = a.workers as f64;
    let per = |calls: u64, div: f64| ((calls as f64 / div) * 10_000.0).round() / 10_000.0;
    let create_calls = total(&c1) - total(&c0);
    let check_calls = total(&c2) - total(&c1);
    let delete_calls = total(&c3) - total(&c2);
    Ok(json!({
        "workers": a.workers,
        "checks": a.checks,
        "leaked_resources": leaked_mock.len().max(leaked_owned.len()),
        "duplicate_instances": duplicates,
        "calls_per_worker": {
            "create": per(create_calls, n),
            "check": per(check_calls, n * a.checks.max(1) as f64),
            "delete": per(delete_calls, n),
        },
        "calls": {
            "create": diff(&c1, &c0),
            "check": diff(&c2, &c1),
            "delete": diff(&c3, &c2),
        },
        "replayed_launches": replays,
        "workers_running_after_create": a.workers - failed,
        "workers_running_after_checks": still_running,
        "workers_stopped_after_delete": stopped,
        "elapsed_ms": {"create": create_ms, "check": check_ms, "delete": delete_ms},
        "mock_time_scale": a.time_scale,
    }))
}

/// Runs the benchmark with `args` (the words after `skyfleet bench aws`).
pub fn main_with(args: Args) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skyfleet bench aws: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async_main(args))
}

async fn async_main(args: Args) {
    let args = match check_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let json_out = args.json;
    match run(args).await {
        Ok(v) => {
            if json_out {
                println!("{v}");
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
                );
            }
        }
        Err(e) => {
            eprintln!("bench_aws: {e}");
            std::process::exit(1);
        }
    }
}
