//! Offerings in the read commands: `skyfleet workers` shows each worker's
//! offering, `skyfleet errors` and `skyfleet status` the pool's offerings
//! marked unavailable, why and until when (text and `--json`).

use std::process::Command;

use skyfleet_core::offering::{CapacityClass, CapacityType, Offering};
use skyfleet_core::store::{OfferingMark, PoolDecision, SqliteStore, WorkerStore};

fn skyfleet(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_skyfleet"))
        .args(args)
        .output()
        .expect("run skyfleet");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.is_empty() || out.status.success(), "{stderr}");
    (out.status.code().unwrap_or(-1), stdout)
}

fn spot() -> Offering {
    Offering {
        provider_id: "aws".into(),
        location: "us-east-1a".into(),
        instance_type: "m5.large".into(),
        capacity_type: CapacityType::Spot,
        quota_scope: Some("us-east-1/standard".into()),
    }
}

/// A store with pool `p` deciding over one spot offering, marked for a
/// capacity error until an hour from now, and one worker on it.
async fn store(path: &str) {
    let s = SqliteStore::open(path).await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    s.put_pool_decision(&PoolDecision {
        pool_id: "p".into(),
        provider_id: "aws".into(),
        min_capacity: 0,
        max_capacity: 3,
        demand: Default::default(),
        have: Default::default(),
        estimate: Default::default(),
        created: 1,
        removed: 0,
        owner: "r1".into(),
        decided_at: now,
        offerings: vec![spot()],
    })
    .await
    .unwrap();
    s.mark_offering(&OfferingMark {
        offering: spot(),
        class: CapacityClass::Capacity,
        code: Some("InsufficientInstanceCapacity".into()),
        message: "no m5.large in us-east-1a".into(),
        marked_at: now,
        until: now + time::Duration::hours(1),
        marked_by: "r1".into(),
    })
    .await
    .unwrap();
    let mut w = skyfleet_core::store::conformance::worker("w-1", "p", "aws", now);
    w.offering = Some(spot());
    s.create_worker(&w).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_errors_and_status_show_offerings_and_their_marks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    let path = path.to_str().unwrap().to_string();
    store(&path).await;
    let url = format!("sqlite:{path}");
    let key = spot().key();

    let (code, out) = skyfleet(&["workers", "--store", &url, "--json"]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j[0]["offering"]["capacity_type"], "spot", "{out}");
    let (code, out) = skyfleet(&["workers", "--store", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().nth(1).unwrap_or_default().contains(&key),
        "{out}"
    );

    let (code, out) = skyfleet(&["errors", "--store", &url, "--pool", "p", "--json"]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let u = &j["unavailable"][0];
    assert_eq!(u["offering"], key.as_str(), "{out}");
    assert_eq!(u["class"], "capacity");
    assert_eq!(u["code"], "InsufficientInstanceCapacity");
    assert!(u["until"].is_string());
    let (code, out) = skyfleet(&["errors", "--store", &url, "--pool", "p"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(&key) && l.contains("capacity") && l.contains("until")),
        "{out}"
    );

    let (code, out) = skyfleet(&["status", "--store", &url, "--json"]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["pools"][0]["unavailable"][0]["offering"], key.as_str());
    let (code, out) = skyfleet(&["status", "--store", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("unavailable: offering {key} until")),
        "{out}"
    );
}
