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

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::drive::{self, Crashes, Drive};
use super::harness::{self, BenchError, Report};
use super::stats::{diff, per, total};
use crate::mockctl::{self, Stats};
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{DesiredState, Phase, PollPolicy, Worker};
use skyfleet_gcp::{Credentials, GcpBuilder, GcpProvider};
use skyfleet_mock::MockCloud;

/// The seed of the crash decisions: every run loses the same steps.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

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
    pub json: bool,
}

fn worker(i: usize, zone: &str) -> Worker {
    harness::worker(
        &format!("bench-{i:05}"),
        "bench/pool",
        "gcp",
        json!({
            "zone": zone,
            "machineType": "e2-small",
            "disks": [{"boot": true, "autoDelete": true,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "spot": true
        }),
    )
}

/// The provider on `mock` over `zones`. Limits far above the load: the
/// benchmark counts calls, not waits.
fn provider(mock: &MockCloud, zones: &[String]) -> Result<GcpProvider, String> {
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
        .with_zones(zones.to_vec())
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(200),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(120),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_millis(1), Duration::from_millis(20))
        .with_transport(transport);
    config.build().map_err(|e| e.to_string())
}

/// Loses a share of the steps, drawn from a seeded generator.
struct RandomCrashes {
    rate: f64,
    rng: StdRng,
}

impl Crashes for RandomCrashes {
    fn lost(&mut self, _: usize, _: &Worker) -> bool {
        self.rng.random::<f64>() < self.rate
    }
}

fn drive(until: Phase) -> Drive {
    Drive {
        until: vec![until],
        // One step_many for every due worker: the provider lists per zone.
        batch: usize::MAX,
        deadline: Duration::from_secs(600),
        backoff: Duration::from_millis(50),
        max_errors: 50,
    }
}

/// Runs `skyfleet bench gcp`.
pub async fn run(a: &Args) -> Result<Report, BenchError> {
    if !(0.0..1.0).contains(&a.crash_rate) {
        return Err(BenchError::Usage(
            "--crash-rate must be within [0, 1)".into(),
        ));
    }
    let mock = MockCloud::builder().time_scale(0.001).start().await?;
    let zones: Vec<String> = (0..a.zones)
        .map(|i| format!("us-central1-{}", (b'a' + (i % 26) as u8) as char))
        .collect();
    let p = provider(&mock, &zones)?;
    let mut workers: Vec<Worker> = (0..a.workers)
        .map(|i| worker(i, &zones[i % zones.len()]))
        .collect();
    let mut crashes = RandomCrashes {
        rate: a.crash_rate,
        rng: StdRng::seed_from_u64(SEED),
    };
    let calls = |s: Stats| s.calls("gcp");

    let s0 = calls(Stats::read(&mock).await?);
    let t = Instant::now();
    let created = drive(Phase::Running)
        .run(&p, &mut workers, &mut crashes)
        .await?;
    let create_s = t.elapsed().as_secs_f64();
    let s1 = calls(Stats::read(&mock).await?);
    let running = workers.iter().filter(|w| w.phase == Phase::Running).count();

    // Duplicates: more than one live instance for a worker.
    let live = mockctl::resources_of(&mock, "gcp").await?;
    let duplicates = mockctl::duplicates_per_worker(&live);

    let t = Instant::now();
    drive::check_all(&p, &mut workers, usize::MAX, a.checks).await?;
    let check_s = t.elapsed().as_secs_f64();
    let s2 = calls(Stats::read(&mock).await?);
    let still_running = workers.iter().filter(|w| w.phase == Phase::Running).count();

    for w in workers.iter_mut() {
        w.desired = DesiredState::Removed;
        w.next_check_at = time::OffsetDateTime::now_utc();
    }
    let t = Instant::now();
    let deleted = drive(Phase::Stopped)
        .run(&p, &mut workers, &mut crashes)
        .await?;
    let delete_s = t.elapsed().as_secs_f64();
    let s3 = calls(Stats::read(&mock).await?);
    let stopped = workers.iter().filter(|w| w.phase == Phase::Stopped).count();
    let leaked = mockctl::resources_of(&mock, "gcp").await?.len();
    if created.given_up + deleted.given_up > 0 {
        return Err(BenchError::Failed(format!(
            "{} workers given up after repeated step errors",
            created.given_up + deleted.given_up
        )));
    }

    let (create, check, delete) = (diff(&s1, &s0), diff(&s2, &s1), diff(&s3, &s2));
    let n = a.workers as f64;
    let value = json!({
        "workers": a.workers,
        "checks": a.checks,
        "zones": a.zones,
        "crash_rate": a.crash_rate,
        "crashes_simulated": created.crashes + deleted.crashes,
        "running_after_create": running,
        "running_after_checks": still_running,
        "stopped_after_delete": stopped,
        "leaked_resources": leaked,
        "duplicate_instances": duplicates,
        "calls_per_worker": {
            "create": per(total(&create), n),
            "check": per(total(&check), n * a.checks.max(1) as f64),
            "delete": per(total(&delete), n),
        },
        "calls": {"create": create, "check": check, "delete": delete},
        "seconds": {"create": create_s, "check": check_s, "delete": delete_s},
    });
    let text = summary(&value);
    Ok(Report {
        value,
        ok: true,
        text: Some(text),
    })
}

fn summary(v: &Value) -> String {
    format!(
        "workers:             {}\n\
         leaked resources:    {}\n\
         duplicate instances: {}\n\
         calls per worker:    create {}, check (per check) {}, delete {}\n\
         calls:               {}",
        v["workers"],
        v["leaked_resources"],
        v["duplicate_instances"],
        v["calls_per_worker"]["create"],
        v["calls_per_worker"]["check"],
        v["calls_per_worker"]["delete"],
        v["calls"]
    )
}
