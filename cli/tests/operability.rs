//! `skyfleet run` as an operator meets it (issue 21): against `skyfleet
//! mock`, with a short registration timeout, it says what it does and why
//! on standard error (text and JSON), `skyfleet workers` and `status` carry
//! the removal reasons, `/metrics` serves every documented metric before any
//! event, and no line carries a secret from the config.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{free_port, http, skyfleet, start_mock, Fleet, Reaped, BIN};
const POOL: &str = "ops/linux";
const REASON: &str = "registration timeout";
/// Secrets in the config: none may reach any output.
const AWS_KEY_ID: &str = "AKIDOPSSECRET0001";
const AWS_SECRET: &str = "ops-aws-secret-key-0001";
const AZURE_SECRET: &str = "ops-azure-client-secret-0001";
const GCP_TOKEN: &str = "ops-gcp-token-0001";
const STORE_PASSWORD: &str = "ops-store-password-0001";
const SECRETS: [&str; 5] = [
    AWS_KEY_ID,
    AWS_SECRET,
    AZURE_SECRET,
    GCP_TOKEN,
    STORE_PASSWORD,
];

/// A fleet config: one AWS pool on the mock wanting `pending` workers with
/// a 2 s registration timeout, plus an Azure and a GCP provider without
/// pools, there only so their secrets are in the file.
fn write_config(dir: &Path, mock: &str, pending: u32) -> PathBuf {
    let store = dir.join("fleet.db");
    let text = format!(
        r#"
[fleet]
manager_id = "ops-test"
store = "sqlite:{store}"
provision_interval = 0.5
scan_interval = 0.1
sweep_interval = 3600

[demand]
kind = "fixed"
pending = {{ "{POOL}" = {pending} }}

[providers.aws]
kind = "aws"
regions = ["us-east-1"]
endpoint_url = "{mock}"
access_key_id = "{AWS_KEY_ID}"
secret_access_key = "{AWS_SECRET}"

[providers.azure]
kind = "azure"
subscription_id = "00000000-0000-0000-0000-0000000000a1"
resource_groups = ["workers"]
credential = {{ kind = "client_secret", tenant_id = "00000000-0000-0000-0000-0000000000b2", client_id = "ops", client_secret = "{AZURE_SECRET}" }}

[providers.gcp]
kind = "gcp"
project = "ops-project"
zones = ["europe-west1-b"]
endpoint = "{mock}"
static_token = "{GCP_TOKEN}"

[[pools]]
pool_id = "{POOL}"
provider_id = "aws"
max_capacity = {pending}
lifecycle = {{ registration_timeout = 2 }}
launch_configs = [{{ id = "m5", launch = {{ region = "us-east-1", ImageId = "ami-0123456789abcdef0", InstanceType = "m5.large" }} }}]
"#,
        store = store.display()
    );
    let path = dir.join("fleet.toml");
    std::fs::write(&path, text).expect("write fleet.toml");
    path
}

fn workers_json(config_dir: &Path) -> Vec<Value> {
    let store = format!("sqlite:{}", config_dir.join("fleet.db").display());
    let (code, out, err) = skyfleet(&["workers", "--store", &store, "--json"]);
    if code != 0 {
        // The fleet may not have created the file yet.
        assert!(err.contains("store"), "{err}");
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Waits until `n` workers are stopped after a registration timeout.
fn wait_for_removals(dir: &Path, fleet: &Fleet, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let stopped: Vec<Value> = workers_json(dir)
            .into_iter()
            .filter(|w| w["phase"] == "stopped" && w["removal_reason"] == REASON)
            .collect();
        if stopped.len() >= n {
            return stopped;
        }
        assert!(fleet.running(), "skyfleet run exited:\n{}", fleet.stderr());
        assert!(
            Instant::now() < deadline,
            "{n} workers were not removed for `{REASON}` within 120 s; log:\n{}",
            fleet.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} contains the secret {s}:\n{text}");
    }
}

#[test]
fn run_logs_each_worker_transition_with_its_reason_and_the_store_keeps_it() {
    let (_mock, url) = start_mock();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, 2);
    let port = free_port();
    let fleet = Fleet::start(&config, port, "text");
    let stopped = wait_for_removals(dir.path(), &fleet, 2);

    // `status` while the fleet runs: the pool's bounds and target from the
    // store, scanner lag and API calls from the metrics endpoint.
    let store = format!("sqlite:{}", dir.path().join("fleet.db").display());
    let metrics = format!("http://127.0.0.1:{port}");
    let (code, out, err) = skyfleet(&[
        "status",
        "--store",
        &store,
        "--json",
        "--metrics",
        &metrics,
        "--sample",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).expect("status JSON");
    let pool = &status["pools"][0];
    assert_eq!(pool["pool_id"], POOL, "{status}");
    assert_eq!(
        (pool["min"].clone(), pool["max"].clone()),
        (0.into(), 2.into()),
        "{status}"
    );
    assert_eq!(pool["target"], 2, "{status}");
    assert!(
        pool["idle"].is_null() && pool["draining"].is_null(),
        "{status}"
    );
    let m = &status["metrics"];
    assert!(
        m["unreachable"].as_array().is_some_and(Vec::is_empty),
        "{status}"
    );
    let scanners = m["scanners"].as_array().expect("scanners");
    assert!(
        scanners
            .iter()
            .any(|s| s["provider"] == "aws" && s["partition"] == "us-east-1"),
        "{status}"
    );
    let (code, text, _) = skyfleet(&["status", "--store", &store]);
    assert_eq!(code, 0);
    assert!(text.contains(&format!("pool {POOL}")), "{text}");
    // `--watch --json` redraws: one object per line, the second one with a
    // metrics window since the first.
    let mut watch = Command::new(BIN)
        .args([
            "status",
            "--store",
            &store,
            "--watch",
            "--interval",
            "1",
            "--json",
        ])
        .args(["--metrics", &metrics])
        .stdout(Stdio::piped())
        .spawn()
        .expect("status --watch");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let _reap = Reaped(watch);
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["pools"][0]["pool_id"], POOL);
    assert!(
        second["metrics"]["window_s"].as_f64().unwrap() >= 0.9,
        "{second}"
    );

    let log = fleet.stop();
    assert_no_secret("the log", &log);
    let startup = log
        .lines()
        .find(|l| l.contains("skyfleet run starting"))
        .unwrap_or_else(|| panic!("no startup line:\n{log}"));
    for field in [
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        "store_kind=\"sqlite\"",
        POOL,
        "aws (aws, partitions us-east-1)",
        "gcp (gcp, partitions -)",
        &format!("127.0.0.1:{port}"),
    ] {
        assert!(
            startup.contains(field),
            "startup line lacks {field}: {startup}"
        );
    }
    for w in &stopped {
        let id = w["spec"]["worker_id"].as_str().expect("worker id");
        let about: Vec<&str> = log.lines().filter(|l| l.contains(id)).collect();
        for (event, extra) in [
            ("worker requested", "partition=\"us-east-1\""),
            ("worker running", "provider=\"aws\""),
            ("worker removed", REASON),
            ("worker stopped", REASON),
        ] {
            assert!(
                about
                    .iter()
                    .any(|l| l.contains(event) && l.contains(extra) && l.contains(POOL)),
                "{id}: no `{event}` line with {extra}:\n{}",
                about.join("\n")
            );
        }
        assert!(w["transitioned_at"].is_string(), "{w}");
    }
    assert!(log.contains("estimator decision"), "{log}");

    // The store keeps the reasons after the fleet stopped.
    let (code, out, _) = skyfleet(&["workers", "--store", &store]);
    assert_eq!(code, 0);
    assert!(
        out.contains("removal reason") && out.contains(REASON),
        "{out}"
    );
    let (code, out, err) = skyfleet(&["errors", "--store", &store, "--pool", POOL, "--json"]);
    assert_eq!(code, 0, "{err}");
    let errors: Value = serde_json::from_str(&out).expect("errors JSON");
    assert_eq!(errors["window_s"], 3600, "{errors}");
    assert!(
        errors["by_kind"].is_array() && errors["recent"].is_array(),
        "{errors}"
    );
    let (code, _, err) = skyfleet(&["remove", "--store", &store, "no-such-worker"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn json_logs_carry_the_documented_fields() {
    let (_mock, url) = start_mock();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, 1);
    let fleet = Fleet::start(&config, free_port(), "json");
    wait_for_removals(dir.path(), &fleet, 1);
    let log = fleet.stop();
    assert_no_secret("the JSON log", &log);
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        for f in ["timestamp", "level", "target", "message"] {
            assert!(l.get(f).is_some(), "no {f}: {l}");
        }
    }
    let event =
        |name: &str| -> Vec<&Value> { lines.iter().filter(|l| l["event"] == name).collect() };
    let startup = event("startup");
    assert_eq!(startup.len(), 1, "{log}");
    for f in [
        "version",
        "store_kind",
        "store",
        "replica",
        "pools",
        "providers",
        "metrics",
        "api",
    ] {
        assert!(
            startup[0][f].is_string(),
            "startup lacks {f}: {}",
            startup[0]
        );
    }
    for name in [
        "worker.requested",
        "worker.running",
        "worker.removed",
        "worker.stopped",
    ] {
        let found = event(name);
        assert!(!found.is_empty(), "no {name} line:\n{log}");
        for l in found {
            for f in ["pool", "worker", "provider", "partition", "launch_config"] {
                assert!(l[f].is_string(), "{name} lacks {f}: {l}");
            }
            assert_eq!(l["pool"], POOL);
            assert_eq!(l["partition"], "us-east-1");
        }
    }
    assert!(
        event("worker.removed")
            .iter()
            .any(|l| l["reason"] == REASON),
        "{log}"
    );
    let target = event("pool.target");
    assert!(!target.is_empty(), "{log}");
    for f in [
        "pending",
        "existing",
        "idle",
        "requested",
        "desired",
        "scale_in_target",
        "created",
    ] {
        assert!(
            target[0][f].is_u64(),
            "pool.target lacks {f}: {}",
            target[0]
        );
    }
}

/// Every metric the dashboard and the alerts query, and every metric of the
/// README's table, is on `/metrics` of a fleet that has done nothing yet.
#[test]
fn dashboard_and_alerts_query_only_metrics_a_running_fleet_serves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("contrib/grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(exprs.len() >= 15, "{exprs:?}");
    let alerts = std::fs::read_to_string(root.join("contrib/prometheus-alerts.yml")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let readme_rows: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(n, _)| n.to_string()))
        .filter(|n| n.starts_with("skyfleet_"))
        .collect();
    assert!(readme_rows.len() >= 20, "{readme_rows:?}");

    let queried = |text: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("skyfleet_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
        out
    };
    let wanted: Vec<String> = exprs
        .iter()
        .flat_map(|e| queried(e))
        .chain(queried(&alerts))
        .collect();
    let served_names = |body: &str| -> std::collections::BTreeSet<String> {
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect()
    };

    let (_mock, url) = start_mock();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, 0);
    let port = free_port();
    let fleet = Fleet::start(&config, port, "text");
    // Series with per-call labels (the transport's `status`) appear with the
    // first cloud call, which the scanners make within a tick or two of
    // start; wait for every wanted name (or the deadline) rather than for the
    // first answer, so a slow machine does not race the first scan.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (served, names) = loop {
        match http("GET", &format!("http://127.0.0.1:{port}/metrics"), None) {
            Ok(body) if body.contains("skyfleet_workers") => {
                let names = served_names(&body);
                let complete = wanted.iter().all(|n| names.contains(n))
                    && readme_rows
                        .iter()
                        .all(|n| names.contains(n) || names.contains(&format!("{n}_bucket")));
                if complete || Instant::now() >= deadline {
                    break (body, names);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("no /metrics: {other:?}\n{}", fleet.stderr()),
        }
    };
    let mut checked = 0;
    for name in &wanted {
        assert!(
            names.contains(name.as_str()),
            "{name} is queried but not served:\n{served}"
        );
        checked += 1;
    }
    assert!(checked >= 25, "{checked}");
    for name in &readme_rows {
        let present = names.contains(name.as_str()) || names.contains(&format!("{name}_bucket"));
        assert!(present, "{name} is documented but not served:\n{served}");
    }
    fleet.stop();
}

#[test]
fn bad_log_flags_and_store_passwords() {
    let (code, _, err) = skyfleet(&["--log-level", "loud", "workers"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error, warn, info, debug, trace"), "{err}");
    let (code, _, err) = skyfleet(&["workers", "--log-format", "xml"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("text, json"), "{err}");

    // An sslmode no client accepts: the store fails at once, before any
    // connection attempt, and the error names the URL.
    let url = format!("postgres://fleet:{STORE_PASSWORD}@127.0.0.1:1/fleet?sslmode=nonsense");
    let (code, out, err) = skyfleet(&["workers", "--store", &url]);
    assert_eq!(code, 2, "{err}");
    assert_no_secret("workers", &format!("{out}{err}"));
    assert!(err.contains("fleet:REDACTED@127.0.0.1:1"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:1", 0);
    let (code, out, err) =
        skyfleet(&["run", "--config", config.to_str().unwrap(), "--store", &url]);
    assert_eq!(code, 2, "{err}");
    assert_no_secret("run", &format!("{out}{err}"));
    assert!(err.contains("REDACTED"), "{err}");
}

/// The leases of the workers in the store: (worker id, lease owner).
fn leases(config_dir: &Path) -> Vec<(String, Option<String>)> {
    workers_json(config_dir)
        .iter()
        .map(|w| {
            (
                w["spec"]["worker_id"].as_str().unwrap_or("").to_string(),
                w["lease_owner"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A fleet whose every EC2 RunInstances hangs, with `n` workers leased to
/// it mid-provisioning.
fn fleet_hung_mid_provisioning(n: usize) -> (Reaped, tempfile::TempDir, Fleet) {
    let (mock, url) = start_mock();
    http(
        "PUT",
        &format!("{url}/_mock/config"),
        Some(r#"{"max_hang_ms": 600000}"#),
    )
    .expect("configure the mock");
    let hang = r#"[{"cloud": "aws", "operation": "RunInstances", "effect": {"kind": "hang"}}]"#;
    http("PUT", &format!("{url}/_mock/faults"), Some(hang)).expect("set the fault");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, n as u32);
    let fleet = Fleet::start(&config, free_port(), "text");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let leased = leases(dir.path())
            .iter()
            .filter(|(_, owner)| owner.is_some())
            .count();
        if leased == n {
            break;
        }
        assert!(fleet.running(), "skyfleet run exited:\n{}", fleet.stderr());
        assert!(
            Instant::now() < deadline,
            "{leased} of {n} workers leased after 60 s:\n{}",
            fleet.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (mock, dir, fleet)
}

/// Issue 11: SIGTERM while every create hangs in the cloud: the process
/// exits cleanly within 10 s, and another replica takes every worker lease
/// and the pool's provisioning lease at once (they were released, not left
/// to expire: the worker leases last 120 s, the pool lease 30 s).
#[test]
fn sigterm_mid_provisioning_exits_within_10_s_and_another_replica_takes_every_lease() {
    let (_mock, dir, mut fleet) = fleet_hung_mid_provisioning(3);
    let signalled = Instant::now();
    fleet.signal("TERM");
    let status = fleet
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", fleet.stderr()));
    assert!(status.success(), "{status}:\n{}", fleet.stderr());
    let stopped_in = signalled.elapsed();

    let db = dir.path().join("fleet.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use skyfleet_core::store::{Claim, PartitionFilter, SqliteStore, WorkerStore};
        let store = SqliteStore::open(db.to_str().unwrap()).await.unwrap();
        let taking = Instant::now();
        let now = time::OffsetDateTime::now_utc();
        let pool_lease = store
            .acquire_pool_lease(POOL, "replica-2", now, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            pool_lease.is_some(),
            "the pool's provisioning lease was not released"
        );
        let claim = Claim {
            provider_id: "aws".into(),
            partition: PartitionFilter::Any,
            owner: "replica-2".into(),
            lease: Duration::from_secs(60),
            limit: 100,
        };
        let claimed = store.claim_due(&claim, now).await.unwrap();
        assert_eq!(claimed.len(), 3, "not every worker lease was released");
        assert!(
            taking.elapsed() < Duration::from_secs(2),
            "{:?}",
            taking.elapsed()
        );
    });
    let log = fleet.stderr();
    assert!(log.contains("signal received: stopping"), "{log}");
    assert!(log.contains("fleet stopped"), "{log}");
    eprintln!("stopped {stopped_in:?} after SIGTERM");
}

/// Issue 14: with trace logging on for the HTTP and AWS SDK layers, still
/// no credential from the config reaches the log.
#[test]
fn trace_logs_of_the_http_and_aws_sdk_layers_carry_no_credential() {
    let (_mock, url) = start_mock();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &url, 1);
    let filter = "info,aws_smithy_runtime=trace,aws_smithy_runtime_api=trace,\
                  aws_smithy_http=trace,aws_sigv4=trace,aws_config=trace,aws_sdk_ec2=trace,\
                  reqwest=trace,hyper=trace,hyper_util=trace,skyfleet_core=trace";
    let fleet = Fleet::start_with_log(&config, free_port(), "text", Some(filter));
    // A worker running: EC2 calls were signed and sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !workers_json(dir.path())
        .iter()
        .any(|w| w["phase"] == "running")
    {
        assert!(fleet.running(), "skyfleet run exited:\n{}", fleet.stderr());
        assert!(
            Instant::now() < deadline,
            "no worker running:\n{}",
            fleet.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = fleet.stop();
    // The trace lines were there to leak: the SDK's and the HTTP client's.
    assert!(log.contains("TRACE"), "no trace line at all:\n{log}");
    assert_no_secret("the trace log", &log);
    // The store `skyfleet run` created is its owner's only, journal included.
    #[cfg(unix)]
    for name in ["fleet.db", "fleet.db-wal", "fleet.db-shm"] {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(dir.path().join(name)) else {
            assert_ne!(name, "fleet.db", "no store file");
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }
}

/// Issues 13 and 14: `SKYFLEET_STORE` stands in for `--store` (shown
/// redacted), and `/metrics` is not served off loopback without
/// `--metrics-public`.
#[test]
fn the_store_comes_from_skyfleet_store_and_metrics_stay_on_loopback() {
    let url = format!("postgres://fleet:{STORE_PASSWORD}@127.0.0.1:1/fleet?sslmode=nonsense");
    let out = Command::new(BIN)
        .args(["workers"])
        .env_remove("RUST_LOG")
        .env("SKYFLEET_STORE", &url)
        .output()
        .expect("run skyfleet");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("fleet:REDACTED@127.0.0.1:1"), "{err}");
    assert_no_secret("workers", &err);

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:1", 0);
    let config = config.to_str().unwrap();
    let (code, _, err) = skyfleet(&["run", "--config", config, "--metrics-listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--metrics-listen 0.0.0.0:0") && err.contains("--metrics-public"),
        "{err}"
    );
    // Nothing was started: not even the store file was created.
    assert!(!dir.path().join("fleet.db").exists());
}
