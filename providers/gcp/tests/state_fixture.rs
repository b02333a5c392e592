//! Provider states written by the code before the provider redesign
//! (`tests/data/state_fixture.json`, captured from the mock) are read, written
//! back unchanged, and stepped to the right end by the current code.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{
    DesiredState, Lifecycle, OwnershipTags, Phase, PollPolicy, Provider, ProviderExt, Worker,
    WorkerSpec,
};
use skyfleet_gcp::{Credentials, GceState, GcpBuilder, GcpProvider};
use skyfleet_mock::MockCloud;

const PROJECT: &str = "skyfleet-test";
const ZONE: &str = "us-central1-a";
const LIMIT: Duration = Duration::from_secs(30);

/// One captured state.
struct Entry {
    worker_id: String,
    phase: Phase,
    desired: DesiredState,
    state: Value,
}

fn fixture() -> BTreeMap<String, Entry> {
    let text = include_str!("data/state_fixture.json");
    let all: Vec<Value> = serde_json::from_str(text).unwrap();
    all.into_iter()
        .map(|e| {
            let label = e["label"].as_str().unwrap().to_string();
            let entry = Entry {
                worker_id: e["worker_id"].as_str().unwrap().to_string(),
                phase: serde_json::from_value(e["phase"].clone()).unwrap(),
                desired: serde_json::from_value(e["desired"].clone()).unwrap(),
                state: e["state"].clone(),
            };
            (label, entry)
        })
        .collect()
}

/// A worker as the store would hand it back: its phase, desired state and
/// provider state from the fixture, due now.
fn worker(e: &Entry) -> Worker {
    let id = e.worker_id.as_str();
    let mut w = Worker::new(
        WorkerSpec {
            worker_id: id.into(),
            pool_id: "ci/linux".into(),
            provider_id: "gcp".into(),
            launch_config_id: "lc".into(),
            launch: json!({"zone": ZONE, "machineType": "e2-small",
                "disks": [{"boot": true, "autoDelete": true, "initializeParams":
                    {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
                "spot": true}),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "mgr".into(),
                pool_id: "ci/linux".into(),
                worker_id: id.into(),
                provider_id: "gcp".into(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    );
    w.phase = e.phase;
    w.desired = e.desired;
    w.provider_state = e.state.clone();
    w
}

fn provider(url: &str) -> GcpProvider {
    let mut c = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200));
    for class in ApiClass::ALL {
        c = c.with_limit("gcp", class, Limit::per_second(5000, 5000));
    }
    let transport = Transport::builder().config(c).build().unwrap();
    GcpBuilder::new(PROJECT)
        .with_endpoint(url)
        .with_credentials(Credentials::static_token("test-token"))
        .with_zones([ZONE])
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(30),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_secs(60), Duration::from_millis(20))
        .with_transport(transport)
        .build()
        .unwrap()
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn instances_of(mock: &MockCloud, worker_id: &str) -> usize {
    let all = get_json(format!("{}/_mock/resources?cloud=gcp", mock.url())).await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["tags"]["skyfleet-worker"] == worker_id)
        .count()
}

async fn calls(mock: &MockCloud, operation: &str) -> u64 {
    let s = get_json(format!("{}/_mock/stats", mock.url())).await;
    s["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cloud"] == "gcp" && r["operation"] == operation)
        .map(|r| r["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn every_captured_state_reads_and_writes_back_unchanged() {
    let all = fixture();
    assert_eq!(all.len(), 8);
    for (label, e) in &all {
        let w = worker(e);
        let st = GceState::of(&w).unwrap_or_else(|err| panic!("{label}: {err}"));
        assert_eq!(serde_json::to_value(&st).unwrap(), e.state, "{label}");
    }
}

#[tokio::test]
async fn captured_states_are_stepped_to_their_end() {
    let mock = MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .unwrap();
    let p = provider(mock.url());
    let all = fixture();

    // Named, nothing sent: the insert goes out and the worker runs.
    let mut w = worker(&all["named"]);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(w.phase, Phase::Running);
    assert_eq!(instances_of(&mock, "w-fixture").await, 1);
    assert_eq!(calls(&mock, "compute.instances.insert").await, 1);

    // Insert sent, its operation pending (and unknown to this mock): the
    // instance decides, and no second insert is sent.
    let mut w = worker(&all["insert_pending"]);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(w.phase, Phase::Running);
    assert_eq!(calls(&mock, "compute.instances.insert").await, 1);

    // Running: checked, still running, next check at the running interval.
    let w = worker(&all["running"]);
    let s = p.step(&w).await.unwrap();
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.next_check_in, Duration::from_secs(60));

    // Delete pending (its operation unknown here, the instance still
    // there): a new delete removes it.
    let mut w = worker(&all["delete_pending"]);
    p.remove(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(w.phase, Phase::Stopped);
    assert_eq!(instances_of(&mock, "w-fixture").await, 0);

    // Stopped is final.
    assert!(worker(&all["stopped"]).phase.is_final());

    // Teardowns end in their recorded phase with their recorded error.
    for (label, kind, code) in [
        (
            "teardown_capacity",
            "capacity_or_quota",
            "ZONE_RESOURCE_POOL_EXHAUSTED",
        ),
        ("teardown_deadline", "timeout", "ProvisioningDeadline"),
    ] {
        let mut w = worker(&all[label]);
        p.drive(&mut w, &[], &SystemClock, LIMIT, 5).await.unwrap();
        assert_eq!(w.phase, Phase::Failed, "{label}");
        let err = w.last_error.clone().unwrap();
        assert_eq!(err.kind, kind, "{label}");
        assert_eq!(err.code.as_deref(), Some(code), "{label}");
    }

    // A name held by a stranger is never deleted.
    let deletes = calls(&mock, "compute.instances.delete").await;
    let mut w = worker(&all["foreign"]);
    w.desired = DesiredState::Removed;
    let s = p.step(&w).await.unwrap();
    apply_step(&mut w, &s, SystemClock.now());
    assert_eq!(w.phase, Phase::Stopped);
    assert_eq!(calls(&mock, "compute.instances.delete").await, deletes);
}
