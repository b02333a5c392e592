//! `skyfleet bench crash`: a fleet in a child process, SIGKILLed and
//! restarted from the same store, over and over: seven kills in eight while
//! one of its mutating calls is in flight, one at a random (seeded) moment
//! ([`kill`]). Kills come in phases (scale out to W workers per cloud, then
//! tear down; the target moves a step per kill so every child has calls to
//! make), each followed by a convergence without kills; then leaks,
//! duplicates and unconverged workers are counted, and whether the work
//! happened: every pool must have reached its workers running in every
//! scale-out, and every worker must have been running before it went, so
//! a run where every create fails (`--faults broken`) fails.

mod kill;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use serde_json::json;
use skyfleet_core::fleet::{FixedDemand, FleetConfig};
use skyfleet_core::store::WorkerFilter;
use skyfleet_core::Phase;
use skyfleet_mock::MockCloud;
use tokio_util::sync::CancellationToken;

use super::harness::{fast_fleet, BenchError, Report};
use crate::mock_clouds;
use crate::{mockctl, wait};

/// The child of `bench crash`: a fleet on the demo clouds of an external
/// mock, wanting `workers` per cloud, until killed.
pub async fn child(mock_url: String, cert: PathBuf, store: PathBuf, workers: u32) -> ExitCode {
    let pem = match std::fs::read_to_string(&cert) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("crash-child: {}: {e}", cert.display());
            return ExitCode::from(2);
        }
    };
    let demo = match mock_clouds::demo_clouds_at(&mock_url, &pem).await {
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
    for c in &demo {
        demand.set_pending(&c.pool.pool_id, workers as u64);
    }
    let b = mock_clouds::fleet(&demo, store, &demand)
        .config(FleetConfig {
            // A killed replica's leases block its workers until they expire:
            // keep them short so restarts converge quickly (the mock answers
            // in milliseconds; a step cut at 2 s is retried).
            lease: Duration::from_secs(3),
            pool_lease: Duration::from_secs(3),
            step_timeout: Duration::from_secs(2),
            ..fast_fleet("bench-crash")
        })
        .owner(format!("crash-child-{}", std::process::id()));
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

/// What `bench crash` runs.
#[derive(Debug, Clone)]
pub struct CrashArgs {
    /// SIGKILLs in all.
    pub kills: u32,
    /// Kills per phase: scale-out and teardown phases alternate until the
    /// kills are spent (0: one scale-out and one teardown, half each).
    pub kills_per_phase: u32,
    /// Workers per cloud.
    pub workers: u32,
    /// Seed of the kill moments.
    pub seed: u64,
    /// Faults the mock injects.
    pub faults: crate::demo::Faults,
    /// How long each phase may take to converge after its kills.
    pub converge_timeout: Duration,
}

/// Runs `skyfleet bench crash`.
pub async fn run(args: CrashArgs) -> Result<Report, BenchError> {
    let CrashArgs {
        kills,
        kills_per_phase,
        workers,
        seed,
        faults,
        converge_timeout,
    } = args;
    let started = Instant::now();
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(mock_clouds::DEMO_TIME_SCALE)
        .start()
        .await
        .map_err(|e| format!("mock: {e}"))?;
    mock_clouds::scaffold(&mock).await?;
    let base_rules = crate::demo::fault_rules(faults);
    mockctl::set_faults(&mock, &base_rules).await?;
    // Calls caught by a hang or a lost answer are held this long (their
    // process is dead by then).
    mock.ctx().set_max_hang(Duration::from_secs(5));
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cert = dir.path().join("mock.pem");
    std::fs::write(&cert, mock.cert_pem().unwrap_or_default()).map_err(|e| e.to_string())?;
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let spawn = |n: u32| -> Result<kill::Child, String> {
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
            .map(kill::Child)
            .map_err(|e| format!("spawning the fleet: {e}"))
    };
    let mut killer = kill::Killer::new(rand::rngs::StdRng::seed_from_u64(seed), base_rules);
    let store = skyfleet_core::store::open(&format!("sqlite:{}", db.display()))
        .await
        .map_err(|e| e.to_string())?;
    let mut duplicates: BTreeMap<String, usize> = BTreeMap::new();
    let per_phase = if kills_per_phase == 0 {
        kills.div_ceil(2).max(1)
    } else {
        kills_per_phase
    };
    // Scale-out and teardown phases, until the kills are spent; the last
    // phase is always a teardown.
    let mut phases = Vec::new();
    let mut left = kills;
    loop {
        let out = left.min(per_phase);
        left -= out;
        let down = left.min(per_phase);
        left -= down;
        phases.push((workers, out));
        phases.push((0, down));
        if left == 0 {
            break;
        }
    }
    // Running workers per pool when a scale-out phase converged (or gave
    // up), and the phases that did not converge in time.
    let mut reached_running: BTreeMap<String, usize> = BTreeMap::new();
    let mut pools_short = 0usize;
    let mut timed_out: Vec<String> = Vec::new();
    for (phase, (want, n_kills)) in phases.into_iter().enumerate() {
        for i in 0..n_kills {
            // The target moves by a step per kill (up in a scale-out, down
            // in a teardown), so every child has calls to make.
            let target = if want > 0 {
                (u64::from(workers) * u64::from(i + 1) / u64::from(n_kills)) as u32
            } else {
                (u64::from(workers) * u64::from(n_kills - i - 1) / u64::from(n_kills)) as u32
            };
            let n = killer.tally.kills;
            killer.kill_one(&mock, n, || spawn(target)).await?;
        }
        // Converge this phase without kills.
        let child = spawn(want)?;
        let running_per_pool = |ws: &[skyfleet_core::Worker]| {
            let mut per: BTreeMap<String, usize> = BTreeMap::new();
            for w in ws.iter().filter(|w| w.phase == Phase::Running) {
                *per.entry(w.spec.pool_id.clone()).or_default() += 1;
            }
            per
        };
        let converged = wait::until(converge_timeout, Duration::from_millis(250), || async {
            let ws = store
                .list_workers(&WorkerFilter::default())
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(if want > 0 {
                let per = running_per_pool(&ws);
                per.len() == 3 && per.values().all(|n| *n >= want as usize)
            } else {
                ws.iter().all(|w| w.phase.is_final())
            })
        })
        .await?;
        if !converged {
            let what = if want > 0 { "scale-out" } else { "teardown" };
            timed_out.push(format!("{what} {}", phase / 2 + 1));
        }
        if want > 0 {
            let ws = store
                .list_workers(&WorkerFilter::default())
                .await
                .map_err(|e| e.to_string())?;
            reached_running = running_per_pool(&ws);
            // Every pool had its workers running in this scale-out.
            pools_short += 3usize.saturating_sub(reached_running.len())
                + reached_running
                    .values()
                    .filter(|n| **n < workers as usize)
                    .count();
            // Count VMs per worker while everything runs.
            let resources = mockctl::resources(&mock).await?;
            for (cloud, n) in mockctl::vm_duplicates_by_cloud(&resources) {
                *duplicates.entry(cloud).or_default() += n;
            }
        }
        child.kill().await;
    }
    let ws = store
        .list_workers(&WorkerFilter::default())
        .await
        .map_err(|e| e.to_string())?;
    let unconverged = ws.iter().filter(|w| !w.phase.is_final()).count();
    // Every worker was running before it went: none failed or was dropped
    // on the way (creates retried after a kill must succeed).
    let never_running = ws.iter().filter(|w| w.running_at.is_none()).count();
    let mut leaked: BTreeMap<String, usize> = BTreeMap::new();
    for r in mockctl::resources(&mock).await? {
        if mockctl::is_worker_resource(&r) {
            *leaked
                .entry(r["cloud"].as_str().unwrap_or("?").to_string())
                .or_default() += 1;
        }
    }
    let total_leaked: usize = leaked.values().sum();
    let total_dupes: usize = duplicates.values().sum();
    let out = json!({
        "scenario": "crash",
        "kills": killer.tally.kills,
        "mid_call_kills": killer.tally.mid_call,
        "kill_tally": killer.tally,
        "workers_never_running": never_running,
        "workers": ws.len(),
        "workers_per_cloud": workers,
        "seed": seed,
        "leaked_resources": total_leaked,
        "leaked_by_cloud": leaked,
        "duplicate_vms": duplicates,
        "unconverged_workers": unconverged,
        "reached_running": reached_running,
        "pools_short_of_running": pools_short,
        "timed_out_phases": timed_out,
        "faults": format!("{faults:?}").to_lowercase(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    Ok(Report {
        ok: total_leaked == 0
            && total_dupes == 0
            && unconverged == 0
            && pools_short == 0
            && never_running == 0
            && timed_out.is_empty(),
        ..Report::json(out)
    })
}
