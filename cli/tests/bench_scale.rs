//! `skyfleet bench scale`: the whole runtime against the mock in a child
//! process, at a size CI can afford; BENCHMARKS.md has the fleet-size runs.

use std::process::Command;

fn skyfleet(args: &[&str]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skyfleet"))
        .args(args)
        .env_remove("RUST_LOG")
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

/// What every run must show: every cloud served steps in the hold, noticed
/// its out-of-band delete, and nothing leaked or was duplicated.
fn assert_sound(j: &serde_json::Value, out: &str) {
    assert_eq!(j["leaks"], 0, "{out}");
    assert_eq!(j["duplicates"], 0, "{out}");
    assert_eq!(j["failures"].as_array().map(Vec::len), Some(0), "{out}");
    for cloud in ["aws", "gcp", "azure"] {
        let c = &j["clouds"][cloud];
        assert!(c["steps_in_hold"].as_u64() > Some(0), "{cloud}: {out}");
        assert!(c["calls_in_hold"].as_u64() > Some(0), "{cloud}: {out}");
        let noticed = c["out_of_band_delete_noticed_s"].as_f64();
        assert!(noticed.is_some_and(|s| s <= 65.0), "{cloud}: {out}");
        assert!(c["lag_s"]["p99"].as_f64().is_some(), "{cloud}: {out}");
    }
    assert!(j["store"]["statements_per_s"].as_f64() > Some(0.0), "{out}");
}

#[test]
fn one_replica_on_sqlite_runs_the_fleet_up_holds_it_and_takes_it_down() {
    let (code, j, out) = skyfleet(&[
        "bench",
        "scale",
        "--workers",
        "30",
        "--hold-checks",
        "1",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["workers"], 30, "{out}");
    assert_eq!(j["store"]["kind"], "sqlite", "{out}");
    assert!(j["replicas"].is_null(), "{out}");
    assert_sound(&j, &out);
}

#[test]
fn three_replicas_on_postgres_never_step_one_worker_at_once_and_survive_a_kill() {
    if std::env::var("SKYFLEET_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: replicas on PostgreSQL (set SKYFLEET_TEST_POSTGRES_URL)");
        return;
    }
    let (code, j, out) = skyfleet(&[
        "bench",
        "scale",
        "--workers",
        "30",
        "--hold-checks",
        "1",
        "--replicas",
        "3",
        "--store",
        "postgres",
        "--lease",
        "10",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(j["store"]["kind"], "postgres", "{out}");
    assert_sound(&j, &out);
    let r = &j["replicas"];
    assert_eq!(r["replicas"], 3, "{out}");
    assert_eq!(r["overlapping_steps"], 0, "{out}");
    for s in r["steps_before_kill"]
        .as_array()
        .expect("steps per replica")
    {
        assert!(s.as_u64() > Some(0), "a replica served no steps: {out}");
    }
    // The out-of-band deletes take one worker per cloud at the hold's start.
    assert!(r["live_at_kill"].as_u64() >= Some(27), "{out}");
    let after = r["first_step_after_kill_s"]["max"].as_f64();
    assert!(after.is_some_and(|s| s <= 80.0), "{out}");
    assert!(
        r["lag_p99_s_after_two_leases"].as_f64() <= Some(2.0),
        "{out}"
    );
}

#[test]
fn bad_sizes_and_stores_are_refused_up_front_naming_the_limit() {
    let (code, _, out) = skyfleet(&[
        "bench",
        "scale",
        "--workers",
        "30",
        "--replicas",
        "2",
        "--json",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--store postgres"), "{out}");
    // 100,000 workers at 256 KiB each is 24 GiB.
    let (code, _, out) = skyfleet(&["bench", "scale", "--workers", "100000", "--json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("MiB available"), "{out}");
    let (code, _, out) = skyfleet(&["bench", "scale", "--workers", "2", "--json"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--workers"), "{out}");
}
