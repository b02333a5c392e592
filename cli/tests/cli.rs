//! The `skyfleet` binary end to end: the main job (`demo`), the crash and
//! soak harnesses at CI size, the isolation benchmark, and config errors.

use std::process::Command;

fn skyfleet(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skyfleet"))
        .args(args)
        .output()
        .expect("run skyfleet");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        format!("{stdout}\n{stderr}"),
    )
}

#[test]
fn demo_provisions_and_tears_down_on_all_three_clouds() {
    let (code, j, out) = skyfleet(&["demo", "--workers", "4", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["leaked_resources"], 0, "{out}");
    assert_eq!(j["duplicate_vms"], 0, "{out}");
    assert_eq!(j["unconverged_workers"], 0, "{out}");
    let providers = j["providers"].as_array().expect("providers");
    let names: Vec<&str> = providers
        .iter()
        .filter_map(|p| p["provider"].as_str())
        .collect();
    assert_eq!(names, vec!["aws", "gcp", "azure"]);
    assert_eq!(j["busy_workers_killed"], 0, "{out}");
    assert_eq!(j["tasks_lost"], 0, "{out}");
    for p in providers {
        assert_eq!(p["reached_running"], 4, "{p}");
        assert!(
            p["api_calls_per_worker"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
        // Every worker registered with its cloud's proof, took tasks, and
        // was drained (confirmed by its agent) before it was removed.
        assert_eq!(p["registered"], 4, "{p}");
        assert_eq!(p["agents"]["registered"], 4, "{p}");
        assert!(
            p["time_to_registered_p50_s"].as_f64().unwrap_or(0.0) > 0.0,
            "{p}"
        );
        assert!(
            p["agents"]["tasks_completed"].as_u64().unwrap_or(0) >= 8,
            "{p}"
        );
        assert_eq!(p["agents"]["drained"], 4, "{p}");
        assert_eq!(p["agents"]["errors"], 0, "{p}");
    }
}

#[test]
fn crash_harness_at_ci_size_leaks_and_duplicates_nothing() {
    let (code, j, out) = skyfleet(&[
        "bench",
        "crash",
        "--kills",
        "6",
        "--workers",
        "3",
        "--seed",
        "11",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["kills"], 6, "{out}");
    // Kills land inside mutating calls, not only between them.
    assert!(j["mid_call_kills"].as_u64() >= Some(3), "{out}");
    assert_eq!(j["workers_never_running"], 0, "{out}");
    assert_eq!(j["leaked_resources"], 0, "{out}");
    assert_eq!(j["unconverged_workers"], 0, "{out}");
    for cloud in ["aws", "azure", "gcp"] {
        assert_eq!(j["duplicate_vms"][cloud], 0, "{out}");
    }
    assert!(j["workers"].as_u64().unwrap_or(0) >= 9, "{out}");
    // The work happened: every pool had its 3 workers running.
    assert_eq!(j["pools_short_of_running"], 0, "{out}");
    let running = j["reached_running"].as_object().expect("reached_running");
    assert_eq!(running.len(), 3, "{out}");
    assert!(running.values().all(|n| n.as_u64() >= Some(3)), "{out}");
}

/// Nothing leaks when nothing is created: the crash bench must still fail
/// when no worker reaches running.
#[test]
fn a_crash_run_where_every_create_fails_fails_the_bench() {
    let (code, j, out) = skyfleet(&[
        "bench",
        "crash",
        "--kills",
        "2",
        "--workers",
        "2",
        "--faults",
        "broken",
        "--converge-timeout-s",
        "15",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(j["leaked_resources"], 0, "{out}");
    assert_eq!(j["pools_short_of_running"], 3, "{out}");
    let timed_out = j["timed_out_phases"][0].as_str().unwrap_or_default();
    assert!(timed_out.starts_with("scale-out"), "{out}");
}

#[test]
fn a_soak_where_every_create_fails_fails_the_bench() {
    let (code, j, out) = skyfleet(&[
        "bench",
        "soak",
        "--workers",
        "2",
        "--faults",
        "broken",
        "--timeout-s",
        "10",
        "--json",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(j["leaked_resources"], 0, "{out}");
    for cloud in ["aws", "azure", "gcp"] {
        assert_eq!(j["reached_running"][cloud], 0, "{out}");
    }
    let failures = j["failures"].as_str().unwrap_or_default();
    assert!(failures.contains("never reached running"), "{out}");
}

#[test]
fn soak_at_ci_size_converges_without_panics() {
    let (code, j, out) = skyfleet(&["bench", "soak", "--workers", "10", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["panics"], 0, "{out}");
    assert_eq!(j["leaked_resources"], 0, "{out}");
    assert_eq!(j["unconverged_workers"], 0, "{out}");
    // The work happened: every cloud's 10 workers reached running.
    for cloud in ["aws", "azure", "gcp"] {
        assert!(j["reached_running"][cloud].as_u64() >= Some(10), "{out}");
    }
    assert_eq!(j["failures"], serde_json::Value::Null, "{out}");
}

#[test]
fn bad_config_exits_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.toml");
    std::fs::write(
        &path,
        "[[pools]]\npool_id = \"p\"\nprovider_id = \"x\"\nmax_capacity = \"ten\"\nlaunch_configs = []\n",
    )
    .unwrap();
    let (code, _, out) = skyfleet(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("fleet.toml"), "{out}");
    assert!(out.contains("pools[0].max_capacity"), "{out}");

    std::fs::write(
        &path,
        "[fleet]\nmanager_id = \"m\"\n[providers.p]\nkind = \"aws\"\nregions = [\"us-east-1\"]\nendpoint_urll = \"x\"\n",
    )
    .unwrap();
    let (code, _, out) = skyfleet(&["run", "--config", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("providers.p"), "{out}");
    assert!(out.contains("endpoint_urll"), "{out}");

    // Runtime settings: a bad value, and a step timeout outliving its lease.
    for (text, key) in [
        // No manager id: two deployments must never share a default one.
        ("[fleet]\nstore = \"memory:\"\n", "fleet.manager_id"),
        (
            "[fleet]\nmanager_id = \"m\"\nstep_timeout = -1\n",
            "fleet.step_timeout",
        ),
        (
            "[fleet]\nmanager_id = \"m\"\nstep_timeout = 30\nlease = 10\n",
            "fleet.step_timeout",
        ),
        (
            "[fleet]\nmanager_id = \"m\"\nconcurrency_per_partition = 0\n",
            "fleet.concurrency_per_partition",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let (code, _, out) = skyfleet(&["run", "--config", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}: {out}");
        assert!(out.contains("fleet.toml"), "{out}");
        assert!(out.contains(key), "{text}: {out}");
    }
}

#[test]
fn mock_refuses_non_loopback_addresses() {
    let (code, _, out) = skyfleet(&["mock", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("loopback"), "{out}");
}

#[test]
fn secrets_never_reach_the_logs() {
    // Every skyfleet crate, the AWS SDK's request machinery and the HTTP
    // clients at trace level; the demo's credentials are `demo-secret` (AWS
    // secret key) and `demo-token` (GCP and Azure).
    let out = Command::new(env!("CARGO_BIN_EXE_skyfleet"))
        .args(["demo", "--workers", "3", "--faults", "harsh", "--json"])
        .env(
            "RUST_LOG",
            "skyfleet=trace,skyfleet_core=trace,skyfleet_aws=trace,skyfleet_gcp=trace,\
             skyfleet_azure=trace,skyfleet_mock=trace,aws_smithy_runtime=trace,\
             aws_smithy_runtime_api=trace,aws_smithy_http=trace,aws_sigv4=trace,\
             aws_config=trace,reqwest=trace,hyper=trace,hyper_util=trace",
        )
        .output()
        .expect("run skyfleet");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    // Injected faults make steps fail and be logged, with their messages.
    assert!(
        String::from_utf8_lossy(&out.stderr).lines().count() > 3,
        "expected step failures in the logs: {all}"
    );
    assert!(!all.contains("demo-secret"), "AWS secret key in the logs");
    assert!(!all.contains("demo-token"), "bearer token in the logs");
}

#[test]
fn bench_capacity_replaces_interrupted_spot_workers_and_steers_around_stockouts_on_every_cloud() {
    let (code, j, out) = skyfleet(&[
        "bench",
        "capacity",
        "--workers",
        "6",
        "--duration-s",
        "75",
        "--time-scale",
        "0.05",
        "--interrupt-share",
        "0.5",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["leaks"], 0, "{out}");
    for cloud in ["aws", "gcp", "azure"] {
        let c = &j["clouds"][cloud];
        assert!(c["workers_ran"].as_u64() >= Some(6), "{cloud}: {out}");
        let interrupted = c["interruptions"].as_u64().unwrap_or(0);
        assert!(interrupted > 0, "{cloud}: {out}");
        assert!(c["replaced"].as_u64() >= Some(1), "{cloud}: {out}");
        assert!(c["capacity_errors"].as_u64() > Some(0), "{cloud}: {out}");
        assert_eq!(
            c["creates_to_marked_offerings_within_ttl"], 0,
            "{cloud}: {out}"
        );
        assert_eq!(c["duplicates"], 0, "{cloud}: {out}");
        assert!(
            c["removals"]["interruption"].as_u64() > Some(0),
            "{cloud}: {out}"
        );
    }
    // AWS's provider sees an interruption only once the instance is
    // terminated: replacements running before that came from the agents
    // reading their two-minute notice.
    let aws = j["clouds"]["aws"]["replacement_running_before_vm_gone_share"].as_f64();
    assert!(aws >= Some(0.5), "{out}");
}
