//! `skyfleet demo`: a fleet on the embedded mock cloud and SQLite, with
//! progress bars, then a summary.
//!
//! The loop a worker-manager runs, end to end: demand (a simulated task
//! queue per pool) makes the fleet request VMs; each VM that comes up gets
//! an in-process agent ([`agents`]) that proves its identity from the VM's
//! metadata and registers through the worker API, served on loopback as
//! `skyfleet run --api-listen` serves it; the workers take tasks; when the
//! queue empties, scale-in drains idle workers, which confirm, and only
//! then are their VMs removed. The summary counts busy workers killed,
//! which must be 0.

pub(crate) mod agents;
mod bars;
pub(crate) mod queues;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use skyfleet_api::{router, serve, ApiConfig, WorkerService};
use skyfleet_core::fleet::FleetConfig;
use skyfleet_core::store::{WorkerFilter, WorkerStore};
use skyfleet_core::{Phase, Worker};
use skyfleet_mock::MockCloud;
use tokio_util::sync::CancellationToken;

use crate::bench::stats::Distribution;
use crate::mock_clouds::{self, DemoCloud, WorkerApi};
use crate::{mockctl, wait};
use agents::Agents;
use bars::{describe, Bars};
use queues::Queues;

/// Fault presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Faults {
    /// No faults.
    None,
    /// A few throttles and transient errors on every cloud.
    Mild,
    /// Throttles and 5xx errors on 5 % of calls each.
    Harsh,
    /// The soak mix: 10 % 5xx, 5 % throttles, 1 % hangs, 5 % failed async
    /// operations and eventual-consistency 404s after creates.
    Mixed,
    /// Every VM create fails: nothing can reach running, so the demo (and
    /// any bench run on it) must exit 1. Proves a broken cloud is not
    /// mistaken for a clean run.
    Broken,
}

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// Workers per pool.
    pub workers: u32,
    /// Fault preset.
    pub faults: Faults,
    /// Print one JSON object instead of bars.
    pub json: bool,
    /// Store URL (default: a SQLite file in a temporary directory).
    pub store: Option<String>,
    /// Give up on a phase after this long.
    pub timeout: Duration,
}

/// Per-provider figures of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderSummary {
    /// Provider id.
    pub provider: String,
    /// Pool id.
    pub pool: String,
    /// Workers that reached running.
    pub reached_running: usize,
    /// Workers asked for.
    pub workers: u32,
    /// Median seconds from record creation to running.
    pub time_to_running_p50_s: f64,
    /// 95th percentile of the same.
    pub time_to_running_p95_s: f64,
    /// Requests the mock received for this cloud, per worker.
    pub api_calls_per_worker: f64,
    /// Pool errors by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Resources of this cloud still in the mock after teardown.
    pub leaked_resources: usize,
    /// Workers that registered through the worker API.
    pub registered: usize,
    /// Median seconds from record creation to registration.
    pub time_to_registered_p50_s: f64,
    /// 95th percentile of the same.
    pub time_to_registered_p95_s: f64,
    /// What this cloud's agents counted: tasks completed and lost, drains
    /// confirmed, busy workers killed.
    pub agents: agents::Tally,
}

/// The demo's summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Workers per pool.
    pub workers_per_pool: u32,
    /// Fault preset.
    pub faults: String,
    /// Per provider.
    pub providers: Vec<ProviderSummary>,
    /// Leaked resources in all.
    pub leaked_resources: usize,
    /// VMs beyond one per worker, counted while the fleet was running.
    pub duplicate_vms: usize,
    /// Phases that reached `--timeout-s` before the fleet got there.
    pub timed_out_phases: Vec<&'static str>,
    /// Workers that did not end stopped or failed.
    pub unconverged_workers: usize,
    /// Busy workers told to terminate or refused, on every cloud (must be 0).
    pub busy_workers_killed: u64,
    /// Tasks lost on every cloud (must be 0).
    pub tasks_lost: u64,
    /// Tasks completed on every cloud.
    pub tasks_completed: u64,
    /// Wall time of the run.
    pub seconds: f64,
}

/// The mock fault rules of a preset.
pub fn fault_rules(f: Faults) -> serde_json::Value {
    let clouds = ["aws", "azure", "gcp"];
    let server_error = |c: &str| match c {
        "aws" => (503, "Unavailable"),
        "azure" => (500, "InternalServerError"),
        _ => (503, "backendError"),
    };
    let creates = |c: &str| -> &'static [&'static str] {
        match c {
            "aws" => &["RunInstances"],
            "azure" => &[
                "VirtualMachines_CreateOrUpdate",
                "NetworkInterfaces_CreateOrUpdate",
            ],
            _ => &["compute.instances.insert"],
        }
    };
    let mut rules = Vec::new();
    for c in clouds {
        let (status, code) = server_error(c);
        match f {
            Faults::None => {}
            Faults::Mild => {
                rules.push(
                    serde_json::json!({"cloud": c, "operation": "*", "probability": 0.05,
                    "effect": {"kind": "throttle", "retry_after_s": 1}}),
                );
            }
            Faults::Harsh => {
                rules.push(
                    serde_json::json!({"cloud": c, "operation": "*", "probability": 0.05,
                    "effect": {"kind": "throttle", "retry_after_s": 1}}),
                );
                rules.push(serde_json::json!({"cloud": c, "operation": "*", "probability": 0.05,
                    "effect": {"kind": "error", "status": status, "code": code, "message": "injected"}}));
            }
            Faults::Mixed => {
                for op in creates(c) {
                    rules.push(serde_json::json!({"cloud": c, "operation": op, "probability": 0.05,
                        "effect": {"kind": "fail_operation", "code": "InjectedFailure", "message": "injected async failure"}}));
                    rules.push(
                        serde_json::json!({"cloud": c, "operation": op, "probability": 0.2,
                        "effect": {"kind": "not_found_reads", "count": 2}}),
                    );
                }
                rules.push(
                    serde_json::json!({"cloud": c, "operation": "*", "probability": 0.01,
                    "effect": {"kind": "hang"}}),
                );
                rules.push(
                    serde_json::json!({"cloud": c, "operation": "*", "probability": 0.05,
                    "effect": {"kind": "throttle", "retry_after_s": 1}}),
                );
                rules.push(serde_json::json!({"cloud": c, "operation": "*", "probability": 0.10,
                    "effect": {"kind": "error", "status": status, "code": code, "message": "injected"}}));
            }
            Faults::Broken => {
                for op in creates(c) {
                    rules.push(serde_json::json!({"cloud": c, "operation": op, "probability": 1.0,
                        "effect": {"kind": "fail_operation", "code": "InjectedFailure", "message": "every create fails"}}));
                }
            }
        }
    }
    serde_json::Value::Array(rules)
}

async fn pool_workers(store: &Arc<dyn WorkerStore>, pool: &str) -> Vec<Worker> {
    store
        .list_workers(&WorkerFilter::pool(pool))
        .await
        .unwrap_or_default()
}

/// How often the demo looks at the fleet: agents for new VMs, the bars.
fn poll_every(workers: u32) -> Duration {
    // Progress reads every worker record; at soak sizes read less often.
    if workers > 200 {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(200)
    }
}

/// Per pool, how many workers match `counted`; true when every pool has
/// `want` (or, with `want` `None`, all its workers). Updates the bars and
/// starts agents on VMs that came up.
async fn look(
    store: &Arc<dyn WorkerStore>,
    mock: &MockCloud,
    demo: &[DemoCloud],
    agents: &Agents,
    bars: &Bars,
    want: Option<usize>,
    counted: impl Fn(&Worker) -> bool,
) -> Result<bool, String> {
    agents.spawn_new(&mockctl::resources(mock).await?);
    let mut done = true;
    for (i, c) in demo.iter().enumerate() {
        let ws = pool_workers(store, &c.pool.pool_id).await;
        let n = ws.iter().filter(|w| counted(w)).count();
        bars.update(i, n as u64, describe(&ws));
        done &= n >= want.unwrap_or(ws.len());
    }
    Ok(done)
}

/// Runs the demo; `Ok(summary)`; the caller exits non-zero on leaks or
/// busy workers killed.
pub async fn run(args: DemoArgs) -> Result<Summary, String> {
    let started = Instant::now();
    let mock = MockCloud::builder()
        .tls(true)
        .seed(7)
        .time_scale(mock_clouds::DEMO_TIME_SCALE)
        .start()
        .await
        .map_err(|e| format!("starting the mock cloud: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
    let store_url = args
        .store
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("skyfleet-demo.db").display()));
    let store = skyfleet_core::store::open(&store_url).await.map_err(|e| {
        format!(
            "opening store {}: {e}",
            crate::store_url::redacted(&store_url)
        )
    })?;
    // The worker API's address goes into every VM's bootstrap document, so
    // it is bound before the providers are built.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the worker API: {e}"))?;
    let root_url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("the worker API's address: {e}"))?
    );
    let api = WorkerApi::read(&mock, root_url).await?;
    let demo = mock_clouds::demo_clouds_with_api(&mock, &api).await?;
    // Faults start after the scaffolding (resource group, network) exists.
    mockctl::set_faults(&mock, &fault_rules(args.faults)).await?;
    // A hung call is cut by the client's timeouts; the cap only bounds
    // what a forgotten request can hold on the mock.
    mock.ctx().set_max_hang(Duration::from_secs(60));
    let queues = Arc::new(Queues::new(demo.iter().map(|c| c.pool.pool_id.as_str())));
    let fleet = mock_clouds::fleet_with(&demo, store.clone(), queues.clone())
        .config(FleetConfig {
            manager_id: "skyfleet-demo".into(),
            scan_interval: Duration::from_millis(50),
            provision_interval: Duration::from_millis(500),
            step_timeout: Duration::from_secs(20),
            lease: Duration::from_secs(60),
            error_backoff_min: Duration::from_millis(200),
            error_backoff_max: Duration::from_secs(5),
            ..FleetConfig::default()
        })
        .build()
        .map_err(|e| format!("fleet: {e}"))?;
    let cancel = CancellationToken::new();
    let runner = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    // Every agent calls from 127.0.0.1: one source, so the per-source
    // limit is lifted (a real fleet's workers each have their own address).
    let service: Arc<dyn WorkerService> = Arc::new(fleet.clone());
    let app = router(service, ApiConfig::default().with_rate(100_000, 100_000));
    let server = tokio::spawn(serve(listener, None, app, cancel.clone()));
    let agents = Agents::new(mock.imds_url(), queues.clone());

    let result = phases(&args, &mock, &store, &demo, &queues, &agents).await;
    agents.stop().await;
    cancel.cancel();
    let phases = result?;
    match runner.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("fleet: {e}")),
        Err(e) => return Err(format!("fleet task: {e}")),
    }
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("worker API: {e}")),
        Err(e) => return Err(format!("worker API task: {e}")),
    }
    summarize(&args, &mock, &store, &demo, &agents, phases, started).await
}

/// What the phases saw.
struct Phases {
    /// VMs beyond one per worker, counted while the fleet was up.
    duplicate_vms: usize,
    /// The phases that reached their time limit.
    timed_out: Vec<&'static str>,
}

/// The demo's three phases.
async fn phases(
    args: &DemoArgs,
    mock: &MockCloud,
    store: &Arc<dyn WorkerStore>,
    demo: &[DemoCloud],
    queues: &Queues,
    agents: &Agents,
) -> Result<Phases, String> {
    let n = args.workers as usize;
    let every = poll_every(args.workers);
    let bars = Bars::new(args.json, demo, args.workers);
    let mut timed_out = Vec::new();
    // The queues hold one task per worker, pending or running, until the
    // scale-in phase.
    for c in demo {
        queues.set_load(&c.pool.pool_id, u64::from(args.workers));
    }
    bars.phase("provisioning: requested -> running -> registered");
    let registered = wait::until(args.timeout, every, || {
        // Running and registered: a worker whose agent registered while
        // its create was still going on, and whose create then failed (a
        // fault), does not count; its replacement does.
        look(store, mock, demo, agents, &bars, Some(n), |w| {
            w.registered_at.is_some() && w.phase == Phase::Running
        })
    })
    .await?;
    if !registered {
        timed_out.push("provisioning");
    }
    // Without registered workers no task can run: skip to the scale-in.
    let skip_work = !registered;
    let resources = mockctl::resources(mock).await?;
    let duplicate_vms: usize = mockctl::vm_duplicates_by_cloud(&resources).values().sum();

    bars.reset();
    bars.phase("working: each worker takes tasks from its pool's queue");
    let worked = skip_work
        || wait::until(args.timeout, every, || async {
            agents.spawn_new(&mockctl::resources(mock).await?);
            let mut done = true;
            for (i, c) in demo.iter().enumerate() {
                // Two tasks per worker on average, then the queue empties.
                let completed = queues.counts(&c.pool.pool_id).completed;
                bars.update(
                    i,
                    completed.min(2 * n as u64),
                    format!("{completed} tasks done"),
                );
                done &= completed >= 2 * n as u64;
            }
            Ok::<_, String>(done)
        })
        .await?;
    if !worked {
        timed_out.push("working");
    }

    bars.reset();
    bars.phase("scale-in: the queues emptied; idle workers drain, then go");
    for c in demo {
        queues.set_load(&c.pool.pool_id, 0);
    }
    let gone = wait::until(args.timeout, every, || {
        look(store, mock, demo, agents, &bars, None, |w| {
            w.phase.is_final()
        })
    })
    .await?;
    if !gone {
        timed_out.push("scale-in");
    }
    bars.finish();
    Ok(Phases {
        duplicate_vms,
        timed_out,
    })
}

/// Reads the figures of the summary once the fleet stopped.
async fn summarize(
    args: &DemoArgs,
    mock: &MockCloud,
    store: &Arc<dyn WorkerStore>,
    demo: &[DemoCloud],
    agents: &Agents,
    phases: Phases,
    started: Instant,
) -> Result<Summary, String> {
    let resources = mockctl::resources(mock).await?;
    let stats = mockctl::Stats::read(mock).await?;
    let mut providers = Vec::new();
    let mut unconverged = 0;
    for c in demo {
        let ws = pool_workers(store, &c.pool.pool_id).await;
        unconverged += ws.iter().filter(|w| !w.phase.is_final()).count();
        let since_created = |at: fn(&Worker) -> Option<time::OffsetDateTime>| {
            Distribution::new(
                ws.iter()
                    .filter_map(|w| at(w).map(|t| (t - w.created_at).as_seconds_f64()))
                    .collect(),
            )
        };
        let ttr = since_created(|w| w.running_at);
        let ttreg = since_created(|w| w.registered_at);
        let calls = stats.requests(c.mock_cloud);
        let errors = store
            .list_pool_errors(&c.pool.pool_id, 10_000)
            .await
            .map_err(|e| format!("reading pool errors: {e}"))?;
        let mut errors_by_kind = BTreeMap::new();
        for e in errors {
            *errors_by_kind.entry(e.kind.name().to_string()).or_default() += 1;
        }
        let leaked = resources
            .iter()
            .filter(|r| r["cloud"] == c.mock_cloud && mockctl::is_worker_resource(r))
            .count();
        providers.push(ProviderSummary {
            provider: c.provider.id().to_string(),
            pool: c.pool.pool_id.clone(),
            reached_running: ttr.len(),
            workers: args.workers,
            // No worker reached running: 0, as before (not NaN/null).
            time_to_running_p50_s: ttr.median().unwrap_or(0.0),
            time_to_running_p95_s: ttr.percentile(0.95).unwrap_or(0.0),
            api_calls_per_worker: calls as f64 / (ws.len().max(1)) as f64,
            errors_by_kind,
            leaked_resources: leaked,
            registered: ttreg.len(),
            time_to_registered_p50_s: ttreg.median().unwrap_or(0.0),
            time_to_registered_p95_s: ttreg.percentile(0.95).unwrap_or(0.0),
            agents: agents.tally(c.mock_cloud),
        });
    }
    let sum = |f: &dyn Fn(&ProviderSummary) -> u64| providers.iter().map(f).sum::<u64>();
    Ok(Summary {
        workers_per_pool: args.workers,
        faults: format!("{:?}", args.faults).to_lowercase(),
        leaked_resources: providers.iter().map(|p| p.leaked_resources).sum(),
        duplicate_vms: phases.duplicate_vms,
        timed_out_phases: phases.timed_out,
        unconverged_workers: unconverged,
        busy_workers_killed: sum(&|p| p.agents.busy_killed),
        tasks_lost: sum(&|p| p.agents.tasks_lost),
        tasks_completed: sum(&|p| p.agents.tasks_completed),
        providers,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Prints the summary as two tables: provisioning, then the workers.
pub fn print_table(s: &Summary) {
    println!();
    println!(
        "{:<14} {:>8} {:>9} {:>9} {:>11} {:>7}  errors",
        "provider", "running", "ttr p50", "ttr p95", "calls/wkr", "leaked"
    );
    for p in &s.providers {
        let errors = if p.errors_by_kind.is_empty() {
            "-".to_string()
        } else {
            p.errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "{:<14} {:>4}/{:<3} {:>8.2}s {:>8.2}s {:>11.1} {:>7}  {}",
            p.provider,
            p.reached_running,
            p.workers,
            p.time_to_running_p50_s,
            p.time_to_running_p95_s,
            p.api_calls_per_worker,
            p.leaked_resources,
            errors
        );
    }
    println!();
    println!(
        "{:<14} {:>10} {:>9} {:>9} {:>7} {:>8} {:>11} {:>6}",
        "provider", "registered", "reg p50", "reg p95", "tasks", "drained", "busy killed", "lost"
    );
    for p in &s.providers {
        println!(
            "{:<14} {:>6}/{:<3} {:>8.2}s {:>8.2}s {:>7} {:>8} {:>11} {:>6}",
            p.provider,
            p.registered,
            p.workers,
            p.time_to_registered_p50_s,
            p.time_to_registered_p95_s,
            p.agents.tasks_completed,
            p.agents.drained,
            p.agents.busy_killed,
            p.agents.tasks_lost,
        );
    }
    println!(
        "\n{} leaked resources, {} duplicate VMs, {} unconverged workers, \
         {} tasks completed, {} busy workers killed, {} tasks lost, {:.1} s",
        s.leaked_resources,
        s.duplicate_vms,
        s.unconverged_workers,
        s.tasks_completed,
        s.busy_workers_killed,
        s.tasks_lost,
        s.seconds
    );
}

impl Summary {
    /// What went wrong, if anything: workers that never reached running,
    /// leaks, duplicates, unconverged workers, busy workers killed, tasks
    /// lost or a phase that timed out.
    pub fn failures(&self) -> Option<String> {
        let mut bad = Vec::new();
        // The work must have happened: a run where nothing reached running
        // leaks nothing, and must still fail.
        let never_ran: u64 = self
            .providers
            .iter()
            .map(|p| u64::from(p.workers).saturating_sub(p.reached_running as u64))
            .sum();
        for (n, what) in [
            (never_ran, "workers that never reached running"),
            (self.leaked_resources as u64, "leaked resources"),
            (self.duplicate_vms as u64, "duplicate VMs"),
            (self.unconverged_workers as u64, "unconverged workers"),
            (self.busy_workers_killed, "busy workers killed"),
            (self.tasks_lost, "tasks lost"),
        ] {
            if n > 0 {
                bad.push(format!("{n} {what}"));
            }
        }
        if !self.timed_out_phases.is_empty() {
            bad.push(format!("timed out in {}", self.timed_out_phases.join(", ")));
        }
        (!bad.is_empty()).then(|| bad.join(", "))
    }
}
