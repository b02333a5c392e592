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
use skyfleet_azure::{AzureConfig, AzureProvider, Credential, CredentialConfig, SecretString};
use skyfleet_core::clock::until;
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{RequestExt, ReqwestService, Transport};
use skyfleet_core::{DesiredState, Lifecycle, OwnershipTags, Phase, Provider, Worker, WorkerSpec};
use skyfleet_mock::{MockCloud, MockConfig};

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
    json: bool,
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

fn check_args(a: Args) -> Result<Args, String> {
    if !a.scale.is_finite() || a.scale <= 0.0 {
        return Err("--scale must be a finite number > 0".into());
    }
    Ok(a)
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

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

type Counts = Arc<Mutex<HashMap<String, u64>>>;

fn worker(id: &str, launch: &Value) -> Worker {
    Worker::new(
        WorkerSpec {
            worker_id: id.into(),
            pool_id: "bench".into(),
            provider_id: "azure".into(),
            launch_config_id: "lc".into(),
            launch: launch.clone(),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "bench".into(),
                pool_id: "bench".into(),
                worker_id: id.into(),
                provider_id: "azure".into(),
                extra: BTreeMap::new(),
            },
        },
        time::OffsetDateTime::now_utc(),
    )
}

/// Steps `w` until its phase is in `target` or final; counts step errors.
async fn drive(p: &AzureProvider, w: &mut Worker, target: Phase) -> u32 {
    let mut errors = 0;
    while w.phase != target && !w.phase.is_final() {
        let now = time::OffsetDateTime::now_utc();
        let wait = until(now, w.next_check_at);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match p.step(w).await {
            Ok(s) => apply_step(w, &s, time::OffsetDateTime::now_utc()),
            Err(e) => {
                errors += 1;
                if errors > 50 {
                    eprintln!("worker {}: giving up: {e}", w.id());
                    return errors;
                }
                let back = e.retry_after().unwrap_or(Duration::from_millis(500));
                w.next_check_at = time::OffsetDateTime::now_utc() + back;
            }
        }
    }
    errors
}

fn min_polls(d: f64, r: f64) -> f64 {
    (d / r).ceil().max(1.0)
}

/// The worker resources the mock holds (the shared resource group and
/// network excluded). A failed read is an error, never "nothing leaked".
async fn ours(http: &reqwest::Client, url: &str) -> Result<Vec<Value>, reqwest::Error> {
    let all: Vec<Value> = http
        .get(format!("{url}/_mock/resources?cloud=azure"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(all
        .into_iter()
        .filter(|r| {
            !matches!(
                r["kind"].as_str(),
                Some("resourceGroup") | Some("virtualNetwork")
            )
        })
        .collect())
}

/// Runs the benchmark with `args` (the words after `skyfleet bench azure`).
pub fn main_with(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let args = check_args(args)?;
    // The mock on its own runtime (threads "mock-*"), the provider on
    // another ("sf-*"), so the provider's CPU time can be measured alone.
    let mock_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mock-rt")
        .enable_all()
        .build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sf-rt")
        .enable_all()
        .build()?;
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
    let mock = mock_rt.block_on(MockCloud::builder().tls(true).config(mock_cfg).start())?;
    let url = mock.url().to_string();
    let pem = mock.cert_pem().unwrap_or_default().to_string();
    let out = rt.block_on(run(
        &args,
        &url,
        &pem,
        [pip_s, nic_s, disk_s, vm_s, vm_del_s],
    ))?;
    drop(mock);
    drop(mock_rt);
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

async fn run(
    args: &Args,
    url: &str,
    pem: &str,
    durations: [f64; 5],
) -> Result<Value, Box<dyn std::error::Error>> {
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
            return Err(format!("seeding {path}: {}", resp.status()).into());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut cfg = AzureConfig::new(SUB);
    cfg.endpoint = url.to_string();
    cfg.resource_groups = vec![RG.into()];
    cfg.credential = CredentialConfig::StaticToken {
        token: SecretString::new("bench"),
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
    let provider =
        AzureProvider::with_parts(cfg, transport, Arc::new(Credential::static_token("bench")))?;

    let disks: Vec<Value> = (0..args.data_disks)
        .map(|_| json!({"size_gb": 8}))
        .collect();
    let launch = json!({
        "location": LOCATION, "vm_size": "Standard_D2s_v5",
        "subnet_id": format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
        "public_ip": args.public_ip, "data_disks": disks,
    });
    let n = args.workers;
    let cpu0 = thread_cpu_ns("sf-");
    let wall0 = Instant::now();

    // Phase 1: every worker to running.
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let p = provider.clone();
        let mut w = worker(&format!("b-{i}"), &launch);
        handles.push(tokio::spawn(async move {
            let errors = drive(&p, &mut w, Phase::Running).await;
            (w, errors)
        }));
    }
    let mut workers = Vec::with_capacity(n);
    let mut step_errors = 0u32;
    for h in handles {
        let (w, e) = h.await?;
        step_errors += e;
        workers.push(w);
    }
    let create_wall = wall0.elapsed().as_secs_f64();
    let create_counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    let running = workers.iter().filter(|w| w.phase == Phase::Running).count();
    let snapshot = ours(&http, url).await?;
    let mut vms_per_worker: HashMap<String, u64> = HashMap::new();
    let mut vms = 0u64;
    for r in snapshot.iter().filter(|r| r["kind"] == "virtualMachine") {
        vms += 1;
        let w = r["tags"]["skyfleet-worker"]
            .as_str()
            .unwrap_or("")
            .to_string();
        *vms_per_worker.entry(w).or_default() += 1;
    }
    let duplicate_vms: u64 = vms_per_worker
        .values()
        .map(|c| c.saturating_sub(1))
        .sum::<u64>()
        + vms_per_worker.get("").copied().unwrap_or(0);
    let chain_sum =
        if args.public_ip { pip_s } else { 0.0 } + nic_s + disk_s * args.data_disks as f64 + vm_s;
    let mut ttr: Vec<f64> = workers
        .iter()
        .filter_map(|w| w.running_at.map(|t| (t - w.created_at).as_seconds_f64()))
        .collect();
    let mut overheads: Vec<f64> = ttr.iter().map(|t| (t - chain_sum) / chain_sum).collect();
    ttr.sort_by(|a, b| a.total_cmp(b));

    // Phase 2: every worker removed.
    let t1 = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for mut w in workers {
        let p = provider.clone();
        handles.push(tokio::spawn(async move {
            w.desired = DesiredState::Removed;
            w.next_check_at = time::OffsetDateTime::now_utc();
            let errors = drive(&p, &mut w, Phase::Stopped).await;
            (w, errors)
        }));
    }
    let mut stopped = 0;
    for h in handles {
        let (w, e) = h.await?;
        step_errors += e;
        if w.phase == Phase::Stopped {
            stopped += 1;
        }
    }
    let delete_wall = t1.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns("sf-").saturating_sub(cpu0);
    let delete_counts = std::mem::take(&mut *counts.lock().unwrap_or_else(|e| e.into_inner()));
    // Deletes the mock finishes with the VM may end a moment later.
    tokio::time::sleep(Duration::from_secs_f64((r * args.scale).max(0.5))).await;
    let leaked = ours(&http, url).await?.len();
    let stats: Value = http
        .get(format!("{url}/_mock/stats"))
        .send()
        .await?
        .json()
        .await?;
    let mock_total = stats["by_cloud"]["azure"].as_f64().unwrap_or(0.0);

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
    let mut min_create = 0.0;
    if args.public_ip {
        min_create += 1.0 + min_polls(pip_s, r);
    }
    min_create += 1.0 + min_polls(nic_s, r);
    min_create += args.data_disks as f64 * (1.0 + min_polls(disk_s, r));
    min_create += 1.0 + min_polls(vm_s, r);
    // One VM delete: every dependent goes with the VM (deleteOption Delete).
    let min_delete = 1.0 + min_polls(vm_del_s, r);
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
        "time_to_running_overhead": median(&mut overheads),
        "time_to_running_s": {"median": percentile(&ttr, 0.5), "p95": percentile(&ttr, 0.95), "max": percentile(&ttr, 1.0)},
        "mock_create_durations_s": chain_sum,
        "mock_retry_after_s": r,
        "time_scale": args.scale,
        "cpu_ms_per_worker": cpu_ns as f64 / 1e6 / n as f64,
        "wall_s": {"create": create_wall, "delete": delete_wall},
    }))
}
