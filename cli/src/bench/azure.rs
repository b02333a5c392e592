//! Benchmark: provision and tear down N workers through the Azure chain
//! against the in-process mock cloud (TLS), and print one JSON object.
//!
//! ```text
//! cargo run --release -p skyfleet -- bench azure --workers 2000 --json
//! ```
//!
//! Options: `--workers N` (default 100), `--json` (only the JSON line),
//! `--public-ip`, `--data-disks K`, `--retry-after S` (the mock's
//! `Retry-After`, default 5), `--scale X` (the mock's time scale, default 1).
//!
//! What is measured (every figure below is measured in this run, none is
//! assumed):
//! - `calls_per_worker`: ARM calls per worker by operation, split into
//!   create (until running) and delete (teardown), counted at the bottom of
//!   the transport stack (every HTTP exchange, retries included); the
//!   mock's own request count is reported alongside as a cross-check;
//! - `min_calls_per_worker`: what the chain cannot do without, from the
//!   mock's configured durations `D` and `Retry-After` `R`: one PUT per
//!   resource plus `max(1, ceil(D/R))` polls of its operation, and the same
//!   for the DELETE (one VM delete when dependents go with the VM);
//! - `time_to_running_overhead`: median over workers of (observed time from
//!   record creation to running - sum of the mock's create durations) / that
//!   sum;
//! - `cpu_ms_per_worker`: CPU time of the provider's runtime threads only
//!   (the mock runs on its own runtime, whose threads are excluded), from
//!   `/proc/self/task/*/schedstat`, divided by N;
//! - `leaked_resources`: our ARM resources left in the mock after teardown;
//!   `duplicate_vms`: VMs beyond one per worker once all are running.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use skyfleet_azure::{
    AzureBuilder, AzureConfig, AzureProvider, Credential, CredentialConfig, Secret,
};
use skyfleet_core::transport::{RequestExt, ReqwestService, Transport};
use skyfleet_core::{DesiredState, Phase, Worker};
use skyfleet_mock::{MockCloud, MockConfig};

use super::drive::{Drive, NoCrash};
use super::harness::{self, BenchError, MockThread, Report};
use super::stats::Distribution;
use crate::mockctl::{self, Stats};

const SUB: &str = "00000000-0000-0000-0000-00000000beef";
const RG: &str = "bench";
const LOCATION: &str = "eastus";

/// Options of `skyfleet bench azure`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Workers to provision and tear down.
    #[arg(long, default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    workers: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Give every worker a public IP.
    #[arg(long)]
    public_ip: bool,
    /// Data disks per worker.
    #[arg(long, default_value_t = 0)]
    data_disks: usize,
    /// The mock's Retry-After, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    retry_after: u64,
    /// The mock's time scale.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

/// CPU nanoseconds of this process's threads whose name starts with `prefix`.
fn thread_cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if !comm.trim().starts_with(prefix) {
            continue;
        }
        let s = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        total += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

type Counts = Arc<Mutex<HashMap<String, u64>>>;

fn worker(id: &str, launch: &Value) -> Worker {
    harness::worker(id, "bench", "azure", launch.clone())
}

/// Each worker is driven on its own (the Azure chain steps one worker per
/// call): errors counted, a worker given up after 50.
fn drive(until: Phase) -> Drive {
    Drive {
        until: vec![until],
        batch: 1,
        deadline: Duration::from_secs(3600),
        backoff: Duration::from_millis(500),
        max_errors: 50,
    }
}

/// Drives one worker; its failed steps.
async fn drive_one(p: AzureProvider, mut w: Worker, until: Phase) -> Result<(Worker, u32), String> {
    let driven = drive(until)
        .run(&p, std::slice::from_mut(&mut w), &mut NoCrash)
        .await?;
    Ok((w, driven.errors))
}

fn min_polls(d: f64, r: f64) -> f64 {
    (d / r).ceil().max(1.0)
}

/// The worker resources the mock holds (the shared resource group and
/// network excluded). A failed read is an error, never "nothing leaked".
async fn ours(mock: &MockCloud) -> Result<Vec<Value>, String> {
    Ok(mockctl::resources_of(mock, "azure")
        .await?
        .into_iter()
        .filter(mockctl::is_worker_resource)
        .collect())
}

/// Runs `skyfleet bench azure`. The mock is served from its own thread,
/// so the CPU time of the CLI runtime's threads is the provider's alone.
pub async fn run(args: &Args) -> Result<Report, BenchError> {
    if !args.scale.is_finite() || args.scale <= 0.0 {
        return Err(BenchError::Usage(
            "--scale must be a finite number > 0".into(),
        ));
    }
    let r = args.retry_after as f64;
    // Durations are multiples of Retry-After (seconds, before the scale).
    let (pip_s, nic_s, disk_s, vm_s, vm_del_s) = (r, r, r, 9.0 * r, 6.0 * r);
    let mock_cfg = MockConfig::from_json(
        &json!({"time_scale": args.scale, "azure": {"retry_after_s": args.retry_after, "durations": {
            "public_ip_s": pip_s,
            "network_interface_s": nic_s, "disk_s": disk_s, "vm_create_s": vm_s,
            "vm_delete_s": vm_del_s, "delete_s": r, "virtual_network_s": 0.1}}})
        .to_string(),
    )?;
    let mock = MockThread::start(MockCloud::builder().tls(true).config(mock_cfg)).await?;
    let out = measure(args, mock.mock(), [pip_s, nic_s, disk_s, vm_s, vm_del_s]).await?;
    drop(mock);
    Ok(Report::pretty(out))
}

async fn measure(args: &Args, mock: &MockCloud, durations: [f64; 5]) -> Result<Value, BenchError> {
    let url = mock.url();
    let pem = mock.cert_pem().unwrap_or_default();
    let [pip_s, nic_s, disk_s, vm_s, vm_del_s] = durations.map(|d| d * args.scale);
    let r = args.retry_after as f64;
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())?;
    let http = reqwest::Client::builder().tls_certs_merge(certs).build()?;
    for (path, body) in [
        (
            format!("/subscriptions/{SUB}/resourceGroups/{RG}?api-version=2021-04-01"),
            json!({"location": LOCATION}),
        ),
        (
            format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2024-05-01"),
            json!({"location": LOCATION, "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/8"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/16"}}]}}),
        ),
    ] {
        let resp = http.put(format!("{url}{path}")).bearer_auth("bench").json(&body).send().await?;
        if !resp.status().is_success() {
            return Err(BenchError::Failed(format!("seeding {path}: {}", resp.status())));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut cfg = AzureConfig::new(SUB);
    cfg.endpoint = url.to_string();
    cfg.resource_groups = vec![RG.into()];
    cfg.credential = CredentialConfig::StaticToken {
        token: Secret::new("bench"),
    };
    cfg.ca_pem = Some(pem.to_string());
    cfg.transport.reads_per_s = Some(100_000);
    cfg.transport.writes_per_s = Some(100_000);
    cfg.transport.max_concurrency = Some(512);
    cfg.transport.attempt_timeout_ms = Some(30_000);
    cfg.transport.overall_timeout_ms = Some(120_000);
    // Count every HTTP exchange by the operation name the chain gave it.
    let counts: Counts = Arc::default();
    let tc = skyfleet_azure::AzureBuilder::from_config(cfg.clone()).transport_config();
    let inner = ReqwestService::from_config(&tc)?;
    let c2 = counts.clone();
    let svc = tower::service_fn(move |req: http::Request<Bytes>| {
        let mut inner = inner.clone();
        let counts = c2.clone();
        async move {
            let op = req.operation().to_string();
            *counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(op)
                .or_default() += 1;
            tower::Service::call(&mut inner, req).await
        }
    });
    let transport = Transport::builder().config(tc).build_with(svc)?;
    let provider = AzureBuilder::from_config(cfg)
        .with_transport(transport)
        .with_token_source(Arc::new(Credential::static_token("bench")))
        .build()?;

    let disks: Vec<Value> = (0..args.data_disks)
        .map(|_| json!({"size_gb": 8}))
        .collect();
    let launch = json!({
        "location": LOCATION, "vm_size": "Standard_D2s_v5",
        "subnet_id": format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
        "public_ip": args.public_ip, "data_disks": disks,
    });
    let n = args.workers;
    let cpu0 = thread_cpu_ns(crate::RUNTIME_THREADS);
    let wall0 = Instant::now();

    // Phase 1: every worker to running.
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let p = provider.clone();
        let w = worker(&format!("b-{i}"), &launch);
        handles.push(tokio::spawn(drive_one(p, w, Phase::Running)));
    }
    let mut workers = Vec::with_capacity(n);
    let mut step_errors = 0u32;
    for h in handles {
        let (w, e) = h.await??;
        step_errors += e;
        workers.push(w);
    }
    let create_wall = wall0.elapsed().as_secs_f64();
    let create_counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    let running = workers.iter().filter(|w| w.phase == Phase::Running).count();
    let vm_list: Vec<Value> = ours(mock)
        .await?
        .into_iter()
        .filter(|r| r["kind"] == "virtualMachine")
        .collect();
    let vms = vm_list.len();
    // An untagged VM is a duplicate too: no worker can own it.
    let duplicate_vms = mockctl::duplicates_per_worker(&vm_list)
        + vm_list
            .iter()
            .filter(|r| mockctl::worker_tag(r).is_none())
            .count();
    let chain_sum =
        if args.public_ip { pip_s } else { 0.0 } + nic_s + disk_s * args.data_disks as f64 + vm_s;
    let ttr: Vec<f64> = workers
        .iter()
        .filter_map(|w| w.running_at.map(|t| (t - w.created_at).as_seconds_f64()))
        .collect();
    let overheads = Distribution::new(ttr.iter().map(|t| (t - chain_sum) / chain_sum).collect());
    let ttr = Distribution::new(ttr);

    // Phase 2: every worker removed.
    let t1 = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for mut w in workers {
        w.desired = DesiredState::Removed;
        w.next_check_at = time::OffsetDateTime::now_utc();
        handles.push(tokio::spawn(drive_one(provider.clone(), w, Phase::Stopped)));
    }
    let mut stopped = 0;
    for h in handles {
        let (w, e) = h.await??;
        step_errors += e;
        if w.phase == Phase::Stopped {
            stopped += 1;
        }
    }
    let delete_wall = t1.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns(crate::RUNTIME_THREADS).saturating_sub(cpu0);
    let delete_counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    // Deletes the mock finishes with the VM may end a moment later.
    tokio::time::sleep(Duration::from_secs_f64((r * args.scale).max(0.5))).await;
    let leaked = ours(mock).await?.len();
    let mock_total = Stats::read(mock).await?.requests("azure") as f64;

    let per = |m: &HashMap<String, u64>| -> (BTreeMap<String, f64>, f64) {
        let mut out = BTreeMap::new();
        let mut total = 0.0;
        for (k, v) in m {
            let x = *v as f64 / n as f64;
            out.insert(k.clone(), x);
            total += x;
        }
        (out, total)
    };
    let (create_by_op, create_total) = per(&create_counts);
    let (delete_by_op, delete_total) = per(&delete_counts);
    let resources = usize::from(args.public_ip) + 1 + args.data_disks + 1;
    // The mock scales its polling hint like the durations.
    let hint = r * args.scale;
    let mut min_create = 0.0;
    if args.public_ip {
        min_create += 1.0 + min_polls(pip_s, hint);
    }
    min_create += 1.0 + min_polls(nic_s, hint);
    min_create += args.data_disks as f64 * (1.0 + min_polls(disk_s, hint));
    min_create += 1.0 + min_polls(vm_s, hint);
    // The tags PATCH of the OS disk ARM makes with the VM (ARM does not
    // copy the VM's tags to it; synchronous, no poll).
    min_create += 1.0;
    // One VM delete: every dependent goes with the VM (deleteOption Delete).
    let min_delete = 1.0 + min_polls(vm_del_s, hint);
    let total = create_total + delete_total;
    let min_total = min_create + min_delete;
    Ok(json!({
        "workers": n,
        "running": running,
        "stopped": stopped,
        "step_errors": step_errors,
        "leaked_resources": leaked,
        "duplicate_vms": duplicate_vms,
        "vms_when_running": vms,
        "resources_per_worker": resources,
        "calls_per_worker": {
            "create": create_by_op,
            "delete": delete_by_op,
            "create_total": create_total,
            "delete_total": delete_total,
            "total": total,
        },
        "min_calls_per_worker": {"create": min_create, "delete": min_delete, "total": min_total},
        "calls_vs_min": total / min_total,
        "mock_requests_per_worker": mock_total / n as f64,
        "time_to_running_overhead": overheads.median().unwrap_or(f64::NAN),
        "time_to_running_s": {
            "median": ttr.median().unwrap_or(f64::NAN),
            "p95": ttr.percentile(0.95).unwrap_or(f64::NAN),
            "max": ttr.percentile(1.0).unwrap_or(f64::NAN),
        },
        "mock_create_durations_s": chain_sum,
        "mock_retry_after_s": r,
        "time_scale": args.scale,
        "cpu_ms_per_worker": cpu_ns as f64 / 1e6 / n as f64,
        "wall_s": {"create": create_wall, "delete": delete_wall},
    }))
}
