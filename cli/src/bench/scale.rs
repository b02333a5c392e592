//! `skyfleet bench scale`: the whole runtime at fleet size.
//!
//! ```text
//! cargo run --release -p skyfleet -- bench scale --workers 1000 --json
//! ```
//!
//! The real runtime (provisioners, per-partition scanners, estimator,
//! sweeper, store) against the three clouds of a time-scaled mock running
//! in a child process (`skyfleet mock`), so the mock's CPU and memory are
//! not counted as ours. `--workers` are spread evenly over the three
//! clouds. Phases:
//! 1. idle: the fleet runs with no demand for a while: the baseline CPU
//!    and memory (X(0));
//! 2. ramp: demand for every worker; waits until all run;
//! 3. hold: `--hold-checks` check intervals of the slowest provider (AWS
//!    checks a running worker every 60 s, GCP and Azure every 30 s); one VM
//!    per cloud is deleted out of band (through the provider's own delete,
//!    not the runtime) and must be noticed within one check interval;
//! 4. down: demand 0, scaled to zero; resources left are leaks.
//!
//! Reported per cloud: due-check lag (from a worker's `next_check_at` to
//! its claim) p50 and p99 over the hold; API calls per step over the hold
//! (every call the mock answered for that cloud, token requests excluded,
//! over the steps the runtime served: a check of a running worker is one
//! step); time to running p50/p95; how long the out-of-band delete took to
//! notice. For the process: CPU milliseconds per worker-hour and resident
//! bytes per worker, both marginal ((X(N) - X(0)) / N); leaks and
//! duplicates.
//!
//! With `--replicas R` (PostgreSQL), R replicas of the runtime share the
//! store, each on a tokio runtime of its own with its own connections
//! ([`replicas`]); their steps are logged ([`witness`]) and one is killed
//! a check interval into the hold ([`takeover`]): no worker may be stepped
//! by two replicas at once, each replica serves its share, the survivors
//! take the dead one's workers within a lease and the lag recovers. The
//! store's statements per second over the hold are reported for every run.
//!
//! The run fails unless every worker reached running, the hold served
//! steps on every cloud, and each out-of-band delete was noticed.

mod capture;
mod child;
mod replicas;
mod takeover;
mod usage;
mod witness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skyfleet_core::fleet::{FixedDemand, FleetConfig};
use skyfleet_core::model::OwnershipScope;
use skyfleet_core::store::{WorkerFilter, WorkerStore};
use skyfleet_core::{DesiredState, Phase};

use super::harness::{BenchError, Report};
use super::stats::Distribution;
use crate::mock_clouds::{self, DemoCloud};
use capture::Capture;
use child::MockProcess;
use replicas::{Replicas, Setup, StoreAt};

const MANAGER: &str = "skyfleet-bench-scale";
/// The PostgreSQL database `--store postgres` means, unless
/// `SKYFLEET_TEST_POSTGRES_URL` names another.
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// The slowest check interval of a running worker (AWS's default).
const CHECK_INTERVAL: Duration = Duration::from_secs(60);
/// The baseline phase's length.
const IDLE: Duration = Duration::from_secs(15);
/// Memory budget per worker refused up front: ours plus the mock's three
/// or so resources per worker, with a wide margin.
const BYTES_PER_WORKER: u64 = 256 * 1024;

/// Options of `skyfleet bench scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Workers in all, spread evenly over the three clouds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(3..=100_000))]
    workers: u32,
    /// Check intervals (of 60 s) the fleet is held at full size.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=60))]
    hold_checks: u32,
    /// The store: `sqlite` (a file in a temporary directory, the default),
    /// `postgres` (a schema of the run's own in `SKYFLEET_TEST_POSTGRES_URL`,
    /// or the local test database), or any store URL.
    #[arg(long)]
    store: Option<String>,
    /// Replicas of the runtime sharing the store (more than one needs
    /// PostgreSQL); with several, one is killed a check interval into the
    /// hold.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    replicas: u32,
    /// Seconds a claimed worker stays leased (the step timeout is half).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..=3600))]
    lease: u64,
    /// The mock's time scale (VM creation and deletion times).
    #[arg(long, default_value_t = 0.02)]
    time_scale: f64,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Refuses a fleet this machine cannot hold, naming the limit.
fn check_fits(workers: u32) -> Result<(), BenchError> {
    let need = u64::from(workers) * BYTES_PER_WORKER;
    if let Some(avail) = usage::mem_available() {
        if need > avail {
            return Err(BenchError::Usage(format!(
                "--workers {workers} needs about {} MiB ({} KiB per worker, ours and the \
                 mock's) but the machine has {} MiB available",
                need >> 20,
                BYTES_PER_WORKER >> 10,
                avail >> 20
            )));
        }
    }
    Ok(())
}

/// Runs the benchmark.
pub async fn run(a: &Args) -> Result<Report, BenchError> {
    check_fits(a.workers)?;
    if !(a.time_scale > 0.0 && a.time_scale <= 1.0) {
        return Err(BenchError::Usage(format!(
            "--time-scale must be in (0, 1], got {}",
            a.time_scale
        )));
    }
    let dir = tempfile::tempdir()?;
    let at = store_at(a, dir.path())?;
    let config = fleet_config(a);
    config
        .validate()
        .map_err(|e| BenchError::Usage(e.to_string()))?;
    let capture = Capture::install()
        .ok_or_else(|| BenchError::Failed("a metrics recorder is already installed".into()))?;
    let mock = MockProcess::spawn(dir.path()).await?;
    mock.call(
        "PUT",
        "/_mock/config",
        Some(json!({"time_scale": a.time_scale})),
    )
    .await?;
    mock.scaffold().await?;
    let result = measure(a, &mock, &capture, &at, config).await;
    mock.stop().await;
    result
}

/// Where `--store` puts the run's state.
fn store_at(a: &Args, dir: &std::path::Path) -> Result<StoreAt, BenchError> {
    let at = match a.store.as_deref() {
        None | Some("sqlite") => StoreAt::Url(format!("sqlite:{}", dir.join("scale.db").display())),
        Some("postgres") => StoreAt::Postgres {
            url: std::env::var("SKYFLEET_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES.to_string()),
            schema: format!("bench_scale_{}", std::process::id()),
        },
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            StoreAt::Postgres {
                url: u.to_string(),
                schema: format!("bench_scale_{}", std::process::id()),
            }
        }
        Some(u) => StoreAt::Url(u.to_string()),
    };
    if a.replicas > 1 && !matches!(at, StoreAt::Postgres { .. }) {
        return Err(BenchError::Usage(format!(
            "--replicas {} needs a store the replicas share: --store postgres",
            a.replicas
        )));
    }
    Ok(at)
}

/// The fleet settings of every replica.
fn fleet_config(a: &Args) -> FleetConfig {
    let lease = Duration::from_secs(a.lease);
    FleetConfig {
        manager_id: MANAGER.into(),
        lease,
        step_timeout: (lease / 2).min(FleetConfig::default().step_timeout),
        ..FleetConfig::default()
    }
}

async fn measure(
    a: &Args,
    mock: &MockProcess,
    capture: &Capture,
    at: &StoreAt,
    config: FleetConfig,
) -> Result<Report, BenchError> {
    let demo = mock_clouds::demo_clouds_at(&mock.url, &mock.ca_pem).await?;
    let store = at.open().await?;
    let demand = FixedDemand::new();
    let fleet = Replicas::start(
        a.replicas as usize,
        Setup {
            mock: (&mock.url, &mock.ca_pem),
            store: at,
            config,
            demand: &demand,
        },
    )
    .await?;
    let mut run = Run {
        a,
        mock,
        capture,
        demo: &demo,
        store: &store,
        demand: &demand,
        fleet,
    };
    let out = run.phases().await;
    run.fleet.stop().await;
    at.clean_up().await;
    out
}

/// Per cloud: workers wanted.
fn split(workers: u32, demo: &[DemoCloud]) -> Vec<u64> {
    let n = demo.len().max(1) as u32;
    (0..n)
        .map(|i| u64::from(workers / n + u32::from(i < workers % n)))
        .collect()
}

async fn live(store: &Arc<dyn WorkerStore>) -> Result<Vec<skyfleet_core::Worker>, BenchError> {
    Ok(store
        .list_workers(&WorkerFilter::default().with_phases(&[
            Phase::Requested,
            Phase::Running,
            Phase::Stopping,
        ]))
        .await?)
}

/// Calls per cloud the mock answered (token requests excluded).
async fn calls(mock: &MockProcess) -> Result<BTreeMap<String, u64>, BenchError> {
    let stats = mock.call("GET", "/_mock/stats", None).await?;
    let mut out = BTreeMap::new();
    for o in stats["operations"].as_array().into_iter().flatten() {
        if o["operation"] == "oauth2.token" {
            continue;
        }
        let cloud = o["cloud"].as_str().unwrap_or("?").to_string();
        *out.entry(cloud).or_default() += o["count"].as_u64().unwrap_or(0);
    }
    Ok(out)
}

/// VMs beyond one per worker in `resources`.
fn duplicates(resources: &[Value]) -> usize {
    crate::mockctl::vm_duplicates_by_cloud(resources)
        .values()
        .sum()
}

/// One run's parts.
struct Run<'a> {
    a: &'a Args,
    mock: &'a MockProcess,
    capture: &'a Capture,
    demo: &'a [DemoCloud],
    store: &'a Arc<dyn WorkerStore>,
    demand: &'a FixedDemand,
    fleet: Replicas,
}

impl Run<'_> {
    async fn phases(&mut self) -> Result<Report, BenchError> {
        let (a, mock, capture, demo, store, demand) = (
            self.a,
            self.mock,
            self.capture,
            self.demo,
            self.store,
            self.demand,
        );
        // 1. Idle: the baseline.
        let (cpu0, t0) = (usage::cpu_ms(), Instant::now());
        tokio::time::sleep(IDLE).await;
        let cpu_idle_ms_per_s = (usage::cpu_ms() - cpu0) / t0.elapsed().as_secs_f64();
        let rss0 = usage::rss_bytes();

        // 2. Ramp.
        let wanted = split(a.workers, demo);
        for (c, n) in demo.iter().zip(&wanted) {
            demand.set_pending(&c.pool.pool_id, *n);
        }
        let ramp = Instant::now();
        let ramp_limit =
            Duration::from_secs(600) + Duration::from_millis(u64::from(a.workers) * 60);
        let mut worst_dups = 0;
        loop {
            let ws = live(store).await?;
            let running = ws
                .iter()
                .filter(|w| w.phase == Phase::Running && w.desired == DesiredState::Running)
                .count();
            if running >= a.workers as usize {
                break;
            }
            if ramp.elapsed() > ramp_limit {
                return Err(BenchError::Failed(format!(
                    "only {running} of {} workers running after {} s",
                    a.workers,
                    ramp_limit.as_secs()
                )));
            }
            worst_dups = worst_dups.max(duplicates(&mock.resources().await?));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let ramp_s = ramp.elapsed().as_secs_f64();

        // 3. Hold (with several replicas, one is killed a check interval in).
        let lease = Duration::from_secs(a.lease);
        let hold = if a.replicas > 1 {
            (CHECK_INTERVAL * a.hold_checks).max(CHECK_INTERVAL * 2 + lease * 2)
        } else {
            CHECK_INTERVAL * a.hold_checks
        };
        let calls0 = calls(mock).await?;
        let (cpu1, t1) = (usage::cpu_ms(), Instant::now());
        let statements0 = capture.statements();
        capture.start();
        let providers = demo.iter().map(|c| c.provider.clone()).collect();
        let oob = tokio::spawn(out_of_band(providers, store.clone()));
        let killed = if a.replicas > 1 {
            tokio::time::sleep(CHECK_INTERVAL).await;
            Some(self.kill_one().await?)
        } else {
            None
        };
        tokio::time::sleep(hold.saturating_sub(t1.elapsed())).await;
        capture.stop();
        let hold_end = Instant::now();
        let statements_per_s =
            (capture.statements() - statements0) as f64 / hold_end.duration_since(t1).as_secs_f64();
        let cpu_hold_ms_per_s = (usage::cpu_ms() - cpu1) / t1.elapsed().as_secs_f64();
        let rss1 = usage::rss_bytes();
        let calls1 = calls(mock).await?;
        worst_dups = worst_dups.max(duplicates(&mock.resources().await?));
        let noticed = oob.await.map_err(|e| BenchError::Failed(e.to_string()))??;
        // With a kill, the lag of the two lease periods after it is the
        // takeover's, reported apart.
        let steady = |t: Instant| {
            killed
                .as_ref()
                .is_none_or(|k| t < k.at || t >= k.at + lease * 2)
        };
        let (lag, steps) = (capture.lag_when(steady), capture.steps());
        let replica_figures = killed
            .as_ref()
            .map(|k| self.replica_figures(k, t1, hold_end, lease));

        // Time to running, per cloud, from the records.
        let ws = live(store).await?;
        let mut to_running: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for w in &ws {
            if let Some(r) = w.running_at {
                to_running
                    .entry(w.spec.provider_id.clone())
                    .or_default()
                    .push((r - w.created_at).as_seconds_f64());
            }
        }

        // 4. Down.
        for c in demo {
            demand.set_pending(&c.pool.pool_id, 0);
        }
        let leaks = scale_to_zero(mock, store).await?;

        let n = f64::from(a.workers);
        let mut clouds = serde_json::Map::new();
        let mut failures = Vec::new();
        for (i, c) in demo.iter().enumerate() {
            let id = c.provider.id().to_string();
            let l = Distribution::new(lag.get(&id).cloned().unwrap_or_default());
            let s = steps.get(&id).copied().unwrap_or(0);
            let cl = calls1.get(c.mock_cloud).copied().unwrap_or(0)
                - calls0.get(c.mock_cloud).copied().unwrap_or(0);
            let tr = Distribution::new(to_running.get(&id).cloned().unwrap_or_default());
            let seen = noticed.get(&id).copied().flatten();
            if s == 0 {
                failures.push(format!("{id}: no steps in the hold"));
            }
            match seen {
                None => failures.push(format!("{id}: the out-of-band delete was not noticed")),
                Some(t) if t > CHECK_INTERVAL.as_secs_f64() + 5.0 => failures.push(format!(
                    "{id}: the out-of-band delete took {t:.1} s to notice"
                )),
                _ => {}
            }
            clouds.insert(
                c.mock_cloud.to_string(),
                json!({
                    "workers": wanted.get(i).copied(),
                    "lag_s": {"p50": l.median(), "p99": l.percentile(0.99), "samples": l.len()},
                    "steps_in_hold": s,
                    "calls_in_hold": cl,
                    "calls_per_step": if s > 0 { Some(cl as f64 / s as f64) } else { None },
                    "time_to_running_s": {"p50": tr.median(), "p95": tr.percentile(0.95)},
                    "out_of_band_delete_noticed_s": seen,
                }),
            );
        }
        if leaks > 0 {
            failures.push(format!("{leaks} resources leaked"));
        }
        if worst_dups > 0 {
            failures.push(format!("{worst_dups} duplicate VMs"));
        }
        if let Some(f) = &replica_figures {
            failures.extend(f.failures.iter().cloned());
        }
        let value = json!({
            "scenario": "scale",
            "workers": a.workers,
            "hold_s": hold.as_secs(),
            "ramp_s": ramp_s,
            "time_scale": a.time_scale,
            "cpu_ms_per_worker_hour": (cpu_hold_ms_per_s - cpu_idle_ms_per_s) * 3600.0 / n,
            "rss_bytes_per_worker": (rss1 as f64 - rss0 as f64) / n,
            "clouds": clouds,
            "leaks": leaks,
            "duplicates": worst_dups,
            "store": {
                "kind": if a.store.as_deref().is_some_and(|s| s.starts_with("postgres")) { "postgres" } else { "sqlite" },
                "statements_per_s": statements_per_s,
            },
            "replicas": replica_figures.map(|f| f.value),
            "failures": failures,
        });
        let mut r = Report::pretty(value);
        r.ok = failures.is_empty();
        Ok(r)
    }
}

/// Deletes one running worker's VM per provider through the provider's own
/// delete (as someone at the console would), then waits for the runtime to
/// notice: the worker no longer running. Seconds to notice, per provider
/// (`None`: not noticed within two check intervals).
async fn out_of_band(
    providers: Vec<skyfleet_core::DynProvider>,
    store: Arc<dyn WorkerStore>,
) -> Result<BTreeMap<String, Option<f64>>, BenchError> {
    let mut out = BTreeMap::new();
    let mut victims = Vec::new();
    for p in &providers {
        let scope = OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: p.id().to_string(),
        };
        let owned = list_owned(p, &scope).await?;
        let vm = owned.into_iter().find(|r| {
            matches!(r.kind.as_str(), "instance" | "virtualMachine") && r.worker_id.is_some()
        });
        let Some(vm) = vm else {
            out.insert(p.id().to_string(), None);
            continue;
        };
        p.delete_owned(&vm).await?;
        victims.push((
            p.id().to_string(),
            vm.worker_id.unwrap_or_default(),
            Instant::now(),
        ));
    }
    // Every victim is looked at each round, so each is timed from its
    // own delete.
    let limit = CHECK_INTERVAL * 2;
    while !victims.is_empty() {
        let mut waiting = Vec::new();
        for (provider, worker, at) in victims {
            let gone = store
                .get_worker(&worker)
                .await?
                .is_none_or(|w| !(w.phase == Phase::Running && w.desired == DesiredState::Running));
            if gone {
                out.insert(provider, Some(at.elapsed().as_secs_f64()));
            } else if at.elapsed() >= limit {
                out.insert(provider, None);
            } else {
                waiting.push((provider, worker, at));
            }
        }
        victims = waiting;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(out)
}

/// The bench's own listing of what a provider owns, tried three times: a
/// mock busy with several replicas' calls may stall one listing past the
/// SDK's stalled-stream limit (5 s without a byte), which says nothing of
/// the runtime under test.
async fn list_owned(
    p: &skyfleet_core::DynProvider,
    scope: &OwnershipScope,
) -> Result<Vec<skyfleet_core::model::OwnedResource>, BenchError> {
    const ATTEMPTS: u32 = 3;
    let mut attempt = 1;
    loop {
        match p.list_owned(scope).await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < ATTEMPTS => {
                eprintln!(
                    "bench scale: listing {} failed (attempt {attempt}): {e}",
                    p.id()
                );
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until no worker is live and no worker resource is left, or ten
/// minutes; what is left on the mock then is the leak count.
async fn scale_to_zero(
    mock: &MockProcess,
    store: &Arc<dyn WorkerStore>,
) -> Result<usize, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let left = mock
            .resources()
            .await?
            .iter()
            .filter(|r| crate::mockctl::is_worker_resource(r))
            .count();
        if (live(store).await?.is_empty() && left == 0) || Instant::now() >= deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_larger_than_memory_is_refused_naming_the_limit() {
        let e = check_fits(100_000_000 / 1000 * 1000).err();
        // 100 M workers at 256 KiB each is 24 TiB: no machine here has it.
        match e {
            Some(BenchError::Usage(m)) => assert!(m.contains("MiB available"), "{m}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
        assert!(check_fits(3).is_ok());
    }
}
