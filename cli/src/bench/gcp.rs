//! Benchmark of the GCP provider against the in-process mock: creates N
//! workers, checks them K times, removes them, and reports the calls each
//! phase made (counted by the mock, retries included), leaked resources and
//! duplicate instances.
//!
//! ```text
//! cargo run --release -p skyfleet -- bench gcp --workers 500 --checks 10 --json
//! ```
//!
//! Options: `--workers N` (500), `--checks K` (10), `--zones Z` (1),
//! `--crash-rate R` (0.1: the share of step answers thrown away, as if the
//! process died before persisting them; the worker is stepped again from its
//! old record), `--json` (one JSON object on stdout).
//!
//! `calls_per_worker.check` is per worker *and per check*: Taskcluster's
//! design makes 1 (one `instances.get` per worker per scan); batching makes
//! one `instances.list` per zone per check.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mockctl;
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{
    DesiredState, Lifecycle, OwnershipTags, Phase, PollPolicy, Provider, Worker, WorkerSpec,
};
use skyfleet_gcp::{Credentials, GcpBuilder, GcpProvider};
use skyfleet_mock::MockCloud;

/// Options of `skyfleet bench gcp`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Workers to create, check and delete.
    #[arg(long, default_value_t = 500, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    workers: usize,
    /// Batched checks of every worker.
    #[arg(long, default_value_t = 10)]
    checks: usize,
    /// Zones the workers spread over.
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    zones: usize,
    /// Share of step answers thrown away to simulate crashes, in [0, 1).
    #[arg(long, default_value_t = 0.1)]
    crash_rate: f64,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn check_args(a: Args) -> Result<Args, String> {
    if !(0.0..1.0).contains(&a.crash_rate) {
        return Err("--crash-rate must be within [0, 1)".into());
    }
    Ok(a)
}

/// A small deterministic generator for the crash decisions.
struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn worker(i: usize, zone: &str) -> Worker {
    let id = format!("bench-{i:05}");
    Worker::new(
        WorkerSpec {
            worker_id: id.clone(),
            pool_id: "bench/pool".into(),
            provider_id: "gcp".into(),
            launch_config_id: "lc".into(),
            launch: json!({
                "zone": zone,
                "machineType": "e2-small",
                "disks": [{"boot": true, "autoDelete": true,
                           "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
                "spot": true
            }),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "bench".into(),
                pool_id: "bench/pool".into(),
                worker_id: id,
                provider_id: "gcp".into(),
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    )
}

async fn get(url: String) -> Result<Value, String> {
    reqwest::get(&url)
        .await
        .map_err(|e| format!("{url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// Compute requests the mock answered so far, by method (token requests
/// excluded).
async fn stats(mock: &MockCloud) -> Result<BTreeMap<String, u64>, String> {
    let s = get(format!("{}/_mock/stats", mock.url())).await?;
    let mut out = BTreeMap::new();
    for r in s["operations"].as_array().into_iter().flatten() {
        if r["cloud"] == "gcp" && r["operation"] != "oauth2.token" {
            let op = r["operation"].as_str().unwrap_or("?").to_string();
            *out.entry(op).or_insert(0) += r["count"].as_u64().unwrap_or(0);
        }
    }
    Ok(out)
}

fn diff(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Steps due workers until every one is in `target` (or final), throwing
/// away a share of the answers as crashes. Returns the crashes simulated.
async fn drive(
    p: &GcpProvider,
    workers: &mut [Worker],
    target: Phase,
    crash_rate: f64,
    rng: &mut XorShift,
) -> Result<u64, String> {
    let give_up = Instant::now() + Duration::from_secs(600);
    let mut crashes = 0;
    loop {
        let now = SystemClock.now();
        let pending: Vec<usize> = (0..workers.len())
            .filter(|&i| workers[i].phase != target && !workers[i].phase.is_final())
            .collect();
        if pending.is_empty() {
            return Ok(crashes);
        }
        if Instant::now() > give_up {
            return Err(format!(
                "{} workers did not reach {target:?}",
                pending.len()
            ));
        }
        let due: Vec<usize> = pending
            .into_iter()
            .filter(|&i| workers[i].next_check_at <= now)
            .collect();
        if !due.is_empty() {
            let batch: Vec<Worker> = due.iter().map(|&i| workers[i].clone()).collect();
            let answers = p.step_many(&batch).await;
            for (i, answer) in due.into_iter().zip(answers) {
                match answer {
                    Ok(step) => {
                        if rng.next_f64() < crash_rate {
                            crashes += 1; // lost before it was persisted
                        } else {
                            apply_step(&mut workers[i], &step, SystemClock.now());
                        }
                    }
                    Err(e) if e.is_retryable() => {
                        workers[i].next_check_at = SystemClock.now() + Duration::from_millis(50)
                    }
                    Err(e) => return Err(format!("worker {}: {e}", workers[i].id())),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn per_worker(calls: &BTreeMap<String, u64>, divisor: f64) -> f64 {
    let total: u64 = calls.values().sum();
    (total as f64 / divisor * 10_000.0).round() / 10_000.0
}

async fn run(a: Args) -> Result<Value, String> {
    let mock = MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .map_err(|e| e.to_string())?;
    let zones: Vec<String> = (0..a.zones)
        .map(|i| format!("us-central1-{}", (b'a' + (i % 26) as u8) as char))
        .collect();
    // Limits far above the load: the benchmark counts calls, not waits.
    let mut tc = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(500));
    for class in ApiClass::ALL {
        tc = tc.with_limit("gcp", class, Limit::per_second(20_000, 20_000));
    }
    let transport = Transport::builder()
        .config(tc)
        .build()
        .map_err(|e| e.to_string())?;
    let config = GcpBuilder::new("bench-project")
        .with_endpoint(mock.url())
        .with_credentials(Credentials::static_token("bench"))
        .with_zones(zones.clone())
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(200),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(120),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_millis(1), Duration::from_millis(20))
        .with_transport(transport);
    let p = config.build().map_err(|e| e.to_string())?;
    let mut workers: Vec<Worker> = (0..a.workers)
        .map(|i| worker(i, &zones[i % zones.len()]))
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);

    let s0 = stats(&mock).await?;
    let t = Instant::now();
    let create_crashes = drive(&p, &mut workers, Phase::Running, a.crash_rate, &mut rng).await?;
    let create_s = t.elapsed().as_secs_f64();
    let s1 = stats(&mock).await?;
    let running = workers.iter().filter(|w| w.phase == Phase::Running).count();

    // Duplicates: more than one live instance for a worker.
    let live = mockctl::resources_of(&mock, "gcp").await?;
    let duplicates = mockctl::duplicates_per_worker(&live);

    let t = Instant::now();
    for _ in 0..a.checks {
        let answers = p.step_many(&workers).await;
        for (w, answer) in workers.iter_mut().zip(answers) {
            let step = answer.map_err(|e| format!("check of {}: {e}", w.id()))?;
            apply_step(w, &step, SystemClock.now());
        }
    }
    let check_s = t.elapsed().as_secs_f64();
    let s2 = stats(&mock).await?;
    let still_running = workers.iter().filter(|w| w.phase == Phase::Running).count();

    for w in workers.iter_mut() {
        w.desired = DesiredState::Removed;
        w.next_check_at = SystemClock.now();
    }
    let t = Instant::now();
    let delete_crashes = drive(&p, &mut workers, Phase::Stopped, a.crash_rate, &mut rng).await?;
    let delete_s = t.elapsed().as_secs_f64();
    let s3 = stats(&mock).await?;
    let stopped = workers.iter().filter(|w| w.phase == Phase::Stopped).count();
    let leaked = mockctl::resources_of(&mock, "gcp").await?.len();

    let (create, check, delete) = (diff(&s1, &s0), diff(&s2, &s1), diff(&s3, &s2));
    let n = a.workers as f64;
    Ok(json!({
        "workers": a.workers,
        "checks": a.checks,
        "zones": a.zones,
        "crash_rate": a.crash_rate,
        "crashes_simulated": create_crashes + delete_crashes,
        "running_after_create": running,
        "running_after_checks": still_running,
        "stopped_after_delete": stopped,
        "leaked_resources": leaked,
        "duplicate_instances": duplicates,
        "calls_per_worker": {
            "create": per_worker(&create, n),
            "check": per_worker(&check, n * a.checks.max(1) as f64),
            "delete": per_worker(&delete, n),
        },
        "calls": {"create": create, "check": check, "delete": delete},
        "seconds": {"create": create_s, "check": check_s, "delete": delete_s},
    }))
}

/// Runs the benchmark with `args` (the words after `skyfleet bench gcp`).
pub fn main_with(args: Args) {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skyfleet bench gcp: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async_main(args))
}

async fn async_main(args: Args) {
    let args = match check_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_gcp: {e}");
            std::process::exit(2);
        }
    };
    let json_out = args.json;
    match run(args).await {
        Ok(v) if json_out => println!("{v}"),
        Ok(v) => {
            println!("workers:             {}", v["workers"]);
            println!("leaked resources:    {}", v["leaked_resources"]);
            println!("duplicate instances: {}", v["duplicate_instances"]);
            println!(
                "calls per worker:    create {}, check (per check) {}, delete {}",
                v["calls_per_worker"]["create"],
                v["calls_per_worker"]["check"],
                v["calls_per_worker"]["delete"]
            );
            println!("calls:               {}", v["calls"]);
        }
        Err(e) => {
            eprintln!("bench_gcp: {e}");
            std::process::exit(1);
        }
    }
}
