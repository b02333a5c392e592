//! `skyfleet bench <scenario> --json`: every benchmark scenario that needs
//! more than one crate (see BENCHMARKS.md): the shared limiter, the Azure
//! chain, AWS and GCP providers, isolation, crash and soak.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;
use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig};
use skyfleet_core::store::{WorkerFilter, WorkerStore};
use skyfleet_core::Phase;
use skyfleet_mock::MockCloud;
use tokio_util::sync::CancellationToken;

pub mod aws;
pub mod azure;
pub mod gcp;
pub mod limiter;

use crate::clouds::{self, DemoCloud};
use crate::mockctl;

/// A benchmark scenario.
#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// The shared rate limit under saturation (clones sharing one limit)
    /// and the transport stack's overhead over bare reqwest on loopback.
    Limiter(limiter::Args),
    /// The Azure chain: provision and tear down N workers against the
    /// in-process mock; calls per worker against the minimum, time-to-running
    /// overhead, CPU per worker, leaks and duplicates.
    Azure(azure::Args),
    /// The AWS provider: create, check (batched) and delete N workers on the
    /// mock; calls per worker, leaks, duplicates.
    Aws(aws::Args),
    /// The GCP provider: create, check (batched) and delete N workers on the
    /// mock; calls per worker, leaks, duplicates.
    Gcp(gcp::Args),
    /// Pools on all three mock clouds; every Azure call hangs. Compares the
    /// AWS and GCP time to running with and without the hung Azure, and
    /// checks that the Azure workers are removed at their provisioning
    /// deadline without a leak.
    Isolation {
        /// Workers per pool.
        #[arg(long, default_value_t = 20)]
        workers: u32,
        /// Print JSON (the only output format; accepted for uniformity).
        #[arg(long)]
        json: bool,
    },
    /// Runs a fleet as a child process against a standalone mock and
    /// SIGKILLs it at random (seeded) moments during provisioning and
    /// teardown, restarting it each time from the same SQLite store; then
    /// lets it converge and counts leaks, duplicates and unconverged workers.
    Crash {
        /// How many times to kill the fleet.
        #[arg(long, default_value_t = 20)]
        kills: u32,
        /// Workers per cloud.
        #[arg(long, default_value_t = 10)]
        workers: u32,
        /// RNG seed for the kill moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON (the only output format).
        #[arg(long)]
        json: bool,
    },
    /// The demo under the mixed fault soak (10 % 5xx, 5 % throttles, 1 %
    /// hangs, 5 % failed async operations, eventual-consistency 404s):
    /// provisions and tears down W workers per cloud.
    Soak {
        /// Workers per cloud.
        #[arg(long, default_value_t = 100)]
        workers: u32,
        /// The fault mix (only `mixed` is defined for soaks).
        #[arg(long, default_value = "mixed")]
        faults: String,
        /// Give up on each phase after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout_s: u64,
        /// Print JSON (the only output format).
        #[arg(long)]
        json: bool,
    },
    /// (internal) The child process of `bench crash`.
    #[command(hide = true)]
    CrashChild {
        /// The mock's URL.
        #[arg(long)]
        mock_url: String,
        /// The mock's certificate (PEM file).
        #[arg(long)]
        cert: PathBuf,
        /// The SQLite file.
        #[arg(long)]
        store: PathBuf,
        /// Workers per cloud wanted (0 tears down).
        #[arg(long)]
        workers: u32,
    },
}

/// Runs a scenario that brings its own runtimes (limiter, azure, aws, gcp),
/// outside any runtime; `None` for the others, which run in the CLI's.
pub fn run_standalone(scenario: &Scenario) -> Option<ExitCode> {
    let code = match scenario {
        Scenario::Limiter(args) => limiter::main_with(args.clone()).map_err(|e| e.to_string()),
        Scenario::Azure(args) => azure::main_with(args.clone()).map_err(|e| e.to_string()),
        Scenario::Aws(args) => {
            aws::main_with(args.clone());
            Ok(())
        }
        Scenario::Gcp(args) => {
            gcp::main_with(args.clone());
            Ok(())
        }
        _ => return None,
    };
    Some(match code {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skyfleet bench: {e}");
            ExitCode::FAILURE
        }
    })
}

/// Runs a scenario and prints its JSON.
pub async fn run(scenario: Scenario) -> ExitCode {
    let result = match scenario {
        Scenario::Limiter(_) | Scenario::Azure(_) | Scenario::Aws(_) | Scenario::Gcp(_) => {
            return run_standalone(&scenario).unwrap_or(ExitCode::FAILURE);
        }
        Scenario::Isolation { workers, .. } => isolation(workers).await,
        Scenario::Crash {
            kills,
            workers,
            seed,
            ..
        } => crash(kills, workers, seed).await,
        Scenario::Soak {
            workers,
            faults,
            timeout_s,
            ..
        } => soak(workers, &faults, timeout_s).await,
        Scenario::CrashChild {
            mock_url,
            cert,
            store,
            workers,
        } => return crash_child(mock_url, cert, store, workers).await,
    };
    match result {
        Ok((value, ok)) => {
            println!("{value}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("skyfleet bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fast_config(manager: &str) -> FleetConfig {
    FleetConfig {
        manager_id: manager.into(),
        scan_interval: Duration::from_millis(50),
        provision_interval: Duration::from_millis(300),
        step_timeout: Duration::from_secs(5),
        lease: Duration::from_secs(15),
        error_backoff_min: Duration::from_millis(200),
        error_backoff_max: Duration::from_secs(3),
        ..FleetConfig::default()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn workers_of(store: &Arc<dyn WorkerStore>, pool: &str) -> Vec<skyfleet_core::Worker> {
    store
        .list_workers(&WorkerFilter::pool(pool))
        .await
        .unwrap_or_default()
}

/// One isolation run: time to running of the non-Azure pools.
async fn isolation_run(workers: u32, hang_azure: bool) -> Result<serde_json::Value, String> {
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(clouds::DEMO_TIME_SCALE)
        .start()
        .await
        .map_err(|e| format!("mock: {e}"))?;
    let mut demo = clouds::demo_clouds(&mock, workers).await?;
    let deadline = Duration::from_secs(15);
    for c in demo.iter_mut() {
        if c.mock_cloud == "azure" {
            c.pool.lifecycle.provisioning_deadline = deadline;
        }
    }
    if hang_azure {
        mockctl::set_faults(
            &mock,
            &json!([{"cloud": "azure", "operation": "*", "effect": {"kind": "hang"}}]),
        )
        .await?;
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store =
        skyfleet_core::store::open(&format!("sqlite:{}", dir.path().join("iso.db").display()))
            .await
            .map_err(|e| e.to_string())?;
    let demand = FixedDemand::new();
    let mut b = Fleet::builder()
        .config(fast_config("bench-isolation"))
        .store(store.clone())
        .demand(Arc::new(demand.clone()));
    for c in &demo {
        b = b.provider(c.provider.clone()).pool(c.pool.clone());
    }
    let fleet = b.build().map_err(|e| e.to_string())?;
    let cancel = CancellationToken::new();
    let runner = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    let others: Vec<&DemoCloud> = demo.iter().filter(|c| c.mock_cloud != "azure").collect();
    for c in &demo {
        demand.set_pending(&c.pool.pool_id, workers as u64);
    }
    let limit = Instant::now() + Duration::from_secs(120);
    loop {
        let mut done = true;
        for c in &others {
            let ws = workers_of(&store, &c.pool.pool_id).await;
            done &= ws.iter().filter(|w| w.running_at.is_some()).count() >= workers as usize;
        }
        if done || Instant::now() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ttr = Vec::new();
    for c in &others {
        for w in workers_of(&store, &c.pool.pool_id).await {
            if let Some(r) = w.running_at {
                ttr.push((r - w.created_at).as_seconds_f64());
            }
        }
    }
    let mut azure = json!(null);
    if hang_azure {
        // Wait past the deadline: every Azure worker must be marked removed.
        let az = demo
            .iter()
            .find(|c| c.mock_cloud == "azure")
            .map(|c| c.pool.pool_id.clone());
        if let Some(az) = az {
            let limit = Instant::now() + deadline + Duration::from_secs(60);
            loop {
                let ws = workers_of(&store, &az).await;
                let removed = ws
                    .iter()
                    .filter(|w| {
                        w.removal_reason.as_deref() == Some("provisioning deadline exceeded")
                    })
                    .count();
                if (removed >= workers as usize) || Instant::now() > limit {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            // Lift the hang so teardown can finish, then drop all demand.
            mockctl::set_faults(&mock, &json!([])).await?;
            for c in &demo {
                demand.set_pending(&c.pool.pool_id, 0);
            }
            let limit = Instant::now() + Duration::from_secs(120);
            loop {
                let ws = workers_of(&store, &az).await;
                if ws.iter().all(|w| w.phase.is_final()) || Instant::now() > limit {
                    let removed_at_deadline = ws
                        .iter()
                        .filter(|w| {
                            w.removal_reason.as_deref() == Some("provisioning deadline exceeded")
                        })
                        .count();
                    azure = json!({
                        "workers": ws.len(),
                        "removed_at_provisioning_deadline": removed_at_deadline,
                        "final": ws.iter().filter(|w| w.phase.is_final()).count(),
                    });
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    for c in &demo {
        demand.set_pending(&c.pool.pool_id, 0);
    }
    let limit = Instant::now() + Duration::from_secs(120);
    loop {
        let mut done = true;
        for c in &demo {
            done &= workers_of(&store, &c.pool.pool_id)
                .await
                .iter()
                .all(|w| w.phase.is_final());
        }
        if done || Instant::now() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    let _ = runner.await;
    let leaked = mockctl::resources(&mock)
        .await?
        .iter()
        .filter(|r| clouds::is_worker_resource(r))
        .count();
    Ok(json!({
        "p50": median(ttr.clone()),
        "reached_running": ttr.len(),
        "azure": azure,
        "leaked_resources": leaked,
    }))
}

async fn isolation(workers: u32) -> Result<(serde_json::Value, bool), String> {
    let base = isolation_run(workers, false).await?;
    let hung = isolation_run(workers, true).await?;
    let (b, h) = (
        base["p50"].as_f64().unwrap_or(f64::NAN),
        hung["p50"].as_f64().unwrap_or(f64::NAN),
    );
    let ratio = h / b;
    let leaked = base["leaked_resources"].as_u64().unwrap_or(0)
        + hung["leaked_resources"].as_u64().unwrap_or(0);
    let out = json!({
        "scenario": "isolation",
        "workers_per_pool": workers,
        "baseline_aws_gcp_time_to_running_p50": b,
        "with_azure_hanging_aws_gcp_time_to_running_p50": h,
        "ratio": ratio,
        "target_ratio_max": 1.1,
        "azure_with_hang": hung["azure"],
        "leaked_resources": leaked,
    });
    Ok((out, leaked == 0))
}

/// The child of `bench crash`: a fleet on the demo clouds of an external
/// mock, wanting `workers` per cloud, until killed.
async fn crash_child(mock_url: String, cert: PathBuf, store: PathBuf, workers: u32) -> ExitCode {
    let pem = match std::fs::read_to_string(&cert) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("crash-child: {}: {e}", cert.display());
            return ExitCode::from(2);
        }
    };
    let demo = match clouds::demo_clouds_at(&mock_url, &pem).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("crash-child: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = match skyfleet_core::store::open(&format!("sqlite:{}", store.display())).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("crash-child: {e}");
            return ExitCode::FAILURE;
        }
    };
    let demand = FixedDemand::new();
    let mut b = Fleet::builder()
        .config(FleetConfig {
            // A killed replica's leases block its workers until they expire:
            // keep them short so restarts converge quickly.
            lease: Duration::from_secs(6),
            step_timeout: Duration::from_secs(5),
            ..fast_config("bench-crash")
        })
        .owner(format!("crash-child-{}", std::process::id()))
        .store(store)
        .demand(Arc::new(demand.clone()));
    for c in &demo {
        demand.set_pending(&c.pool.pool_id, workers as u64);
        b = b.provider(c.provider.clone()).pool(c.pool.clone());
    }
    let fleet = match b.build() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("crash-child: {e}");
            return ExitCode::FAILURE;
        }
    };
    match fleet.run(CancellationToken::new()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash-child: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Child(tokio::process::Child);

impl Child {
    async fn kill(mut self) {
        // SIGKILL: no cleanup, no lease release.
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

async fn crash(kills: u32, workers: u32, seed: u64) -> Result<(serde_json::Value, bool), String> {
    let started = Instant::now();
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(clouds::DEMO_TIME_SCALE)
        .start()
        .await
        .map_err(|e| format!("mock: {e}"))?;
    clouds::scaffold(&mock).await?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cert = dir.path().join("mock.pem");
    std::fs::write(&cert, mock.cert_pem().unwrap_or_default()).map_err(|e| e.to_string())?;
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let spawn = |n: u32| -> Result<Child, String> {
        tokio::process::Command::new(&exe)
            .args(["bench", "crash-child", "--mock-url", mock.url(), "--cert"])
            .arg(&cert)
            .arg("--store")
            .arg(&db)
            .args(["--workers", &n.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map(Child)
            .map_err(|e| format!("spawning the fleet: {e}"))
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let store = skyfleet_core::store::open(&format!("sqlite:{}", db.display()))
        .await
        .map_err(|e| e.to_string())?;
    let mut duplicates: BTreeMap<String, usize> = BTreeMap::new();
    let phases = [(workers, kills / 2), (0, kills - kills / 2)];
    let mut done_kills = 0;
    for (want, n_kills) in phases {
        for _ in 0..n_kills {
            let child = spawn(want)?;
            let wait = Duration::from_millis(rng.random_range(100..1500));
            tokio::time::sleep(wait).await;
            child.kill().await;
            done_kills += 1;
        }
        // Converge this phase without kills.
        let child = spawn(want)?;
        let limit = Instant::now() + Duration::from_secs(240);
        loop {
            let ws = store
                .list_workers(&WorkerFilter::default())
                .await
                .map_err(|e| e.to_string())?;
            let converged = if want > 0 {
                let mut per_pool: BTreeMap<&str, usize> = BTreeMap::new();
                for w in ws.iter().filter(|w| w.phase == Phase::Running) {
                    *per_pool.entry(w.spec.pool_id.as_str()).or_default() += 1;
                }
                per_pool.len() == 3 && per_pool.values().all(|n| *n >= want as usize)
            } else {
                ws.iter().all(|w| w.phase.is_final())
            };
            if converged || Instant::now() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if want > 0 {
            // Count VMs per worker while everything runs.
            let mut per_worker: BTreeMap<(String, String), usize> = BTreeMap::new();
            for r in mockctl::resources(&mock).await? {
                if !clouds::is_vm(&r) {
                    continue;
                }
                let cloud = r["cloud"].as_str().unwrap_or("?").to_string();
                if let Some(w) = clouds::worker_tag(&r) {
                    *per_worker.entry((cloud, w)).or_default() += 1;
                }
            }
            for ((cloud, _), n) in per_worker {
                *duplicates.entry(cloud).or_default() += n.saturating_sub(1);
            }
        }
        child.kill().await;
    }
    let ws = store
        .list_workers(&WorkerFilter::default())
        .await
        .map_err(|e| e.to_string())?;
    let unconverged = ws.iter().filter(|w| !w.phase.is_final()).count();
    let mut leaked: BTreeMap<String, usize> = BTreeMap::new();
    for r in mockctl::resources(&mock).await? {
        if clouds::is_worker_resource(&r) {
            *leaked
                .entry(r["cloud"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
    }
    let total_leaked: usize = leaked.values().sum();
    let total_dupes: usize = duplicates.values().sum();
    let out = json!({
        "scenario": "crash",
        "kills": done_kills,
        "workers": ws.len(),
        "workers_per_cloud": workers,
        "seed": seed,
        "leaked_resources": total_leaked,
        "leaked_by_cloud": leaked,
        "duplicate_vms": duplicates,
        "unconverged_workers": unconverged,
        "seconds": started.elapsed().as_secs_f64(),
    });
    Ok((
        out,
        total_leaked == 0 && total_dupes == 0 && unconverged == 0,
    ))
}

static PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

async fn soak(
    workers: u32,
    faults: &str,
    timeout_s: u64,
) -> Result<(serde_json::Value, bool), String> {
    if faults != "mixed" {
        return Err(format!(
            "--faults `{faults}`: only `mixed` is defined for soaks"
        ));
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));
    let summary = crate::demo::run(crate::demo::DemoArgs {
        workers,
        faults: crate::demo::Faults::Mixed,
        json: true,
        store: None,
        timeout: Duration::from_secs(timeout_s),
    })
    .await?;
    let panics = PANICS.load(std::sync::atomic::Ordering::SeqCst);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for p in &summary.providers {
        for (k, v) in &p.errors_by_kind {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    let ok = summary.leaked_resources == 0
        && summary.duplicate_vms == 0
        && summary.unconverged_workers == 0
        && panics == 0;
    let out = json!({
        "scenario": "soak",
        "faults": "mixed",
        "workers_per_cloud": workers,
        "leaked_resources": summary.leaked_resources,
        "duplicate_vms": summary.duplicate_vms,
        "unconverged_workers": summary.unconverged_workers,
        "panics": panics,
        "errors_by_kind": errors,
        "providers": summary.providers,
        "seconds": summary.seconds,
    });
    Ok((out, ok))
}
