//! Provider states persisted by the code before the provider was split into
//! builder/plan/decide modules (tests/fixtures/state-v1.json, written by it
//! against the mock, seed 42) are read unchanged and stepped correctly by
//! the current code.
//!
//! The fixture's instance ids were the mock's of that run; the states of
//! worker `w-fixture` are stepped against the instance this run launches
//! (same worker, same ClientToken), so their `instance_id` is set to it.
//! The other workers' instances do not exist here: their states step as
//! states whose instance is gone.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_aws::{AwsBuilder, AwsProvider, AwsState, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{
    DesiredState, Lifecycle, OwnershipTags, Phase, Provider, ProviderExt, Worker, WorkerSpec,
};

const FIXTURE: &str = include_str!("fixtures/state-v1.json");

fn fixture() -> BTreeMap<String, Value> {
    serde_json::from_str(FIXTURE).expect("fixture JSON")
}

fn state(name: &str) -> Value {
    fixture()[name]["state"].clone()
}

fn worker(id: &str, state: Value) -> Worker {
    let mut w = Worker::new(
        WorkerSpec {
            worker_id: id.into(),
            pool_id: "fixture/pool".into(),
            provider_id: "aws".into(),
            launch_config_id: "lc-1".into(),
            launch: json!({"region": "us-east-1", "ImageId": "ami-0123456789abcdef0",
                           "InstanceType": "t3.micro", "workerConfig": {"capacity": 1}}),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "mgr-fixture".into(),
                pool_id: "fixture/pool".into(),
                worker_id: id.into(),
                provider_id: "aws".into(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    );
    w.provider_state = state;
    w
}

fn with_instance(mut state: Value, id: &str) -> Value {
    state["instance_id"] = json!(id);
    state
}

async fn provider(url: &str) -> AwsProvider {
    let fast = Limit::per_second(10_000, 10_000);
    let mut config = TransportConfig::default()
        .with_operation_limit("aws", "RunInstances", fast)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
        .with_max_attempts(3);
    for class in ApiClass::ALL {
        config = config.with_limit("aws", class, fast);
    }
    let transport = Transport::builder()
        .config(config)
        .build()
        .expect("transport");
    AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(url)
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_millis(800),
        })
        .with_transport(transport)
        .build()
        .await
        .expect("provider")
}

async fn live(url: &str) -> usize {
    let v: Value = reqwest::get(format!("{url}/_mock/resources?cloud=aws"))
        .await
        .expect("resources")
        .json()
        .await
        .expect("json");
    v.as_array()
        .map(|a| a.iter().filter(|i| i["state"] != "terminated").count())
        .unwrap_or(0)
}

async fn step(p: &AwsProvider, w: &mut Worker) -> skyfleet_core::Step {
    let s = p.step(w).await.expect("step");
    apply_step(w, &s, SystemClock.now());
    s
}

#[test]
fn every_fixture_state_reads_back_unchanged() {
    let all = fixture();
    assert!(all.len() >= 8, "{:?}", all.keys());
    for (name, entry) in all {
        let st: AwsState = serde_json::from_value(entry["state"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            st.to_value().expect("serialise"),
            entry["state"],
            "{name} changes when written back"
        );
    }
}

#[tokio::test]
async fn fixture_states_step_against_the_mock() {
    let m = skyfleet_mock::MockCloud::builder()
        .seed(42)
        .time_scale(0.01)
        .start()
        .await
        .expect("mock");
    let p = provider(m.url()).await;

    // Token recorded, RunInstances not yet sent: the step sends it with the
    // recorded token.
    let recorded: AwsState = serde_json::from_value(state("recorded")).expect("recorded");
    let mut w = worker("w-fixture", state("recorded"));
    let s = step(&p, &mut w).await;
    assert_eq!(s.phase, Phase::Requested);
    let launched = AwsState::of(&w).expect("state").expect("some state");
    assert_eq!(launched.client_token, recorded.client_token);
    let id = launched
        .instance_id
        .expect("the launch recorded its instance");
    assert_eq!(live(m.url()).await, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Launched (pending when written) and running: both look and run.
    for name in ["launched", "running"] {
        let mut w = worker("w-fixture", with_instance(state(name), &id));
        let s = step(&p, &mut w).await;
        assert_eq!(s.phase, Phase::Running, "{name}");
        assert!(AwsState::of(&w).unwrap().unwrap().seen_running, "{name}");
    }

    // Terminating, the terminate sent long ago and the instance still
    // running: the terminate is sent again, then the instance is gone.
    let mut w = worker("w-fixture", with_instance(state("terminating"), &id));
    w.desired = DesiredState::Removed;
    let s = step(&p, &mut w).await;
    assert_eq!(s.phase, Phase::Stopping);
    p.drive(&mut w, &[], &SystemClock, Duration::from_secs(10), 5)
        .await
        .expect("drive");
    assert_eq!(w.phase, Phase::Stopped);
    assert!(w.last_error.is_none(), "{:?}", w.last_error);
    assert_eq!(live(m.url()).await, 0);

    // Stopped: stepping it again finds the instance terminated.
    let mut w = worker("w-fixture", with_instance(state("stopped"), &id));
    w.desired = DesiredState::Removed;
    assert_eq!(step(&p, &mut w).await.phase, Phase::Stopped);

    // The deadline's teardown, its instance gone: failed, as a timeout.
    let mut w = worker("w-fixture-deadline", state("deadline_terminating"));
    let s = step(&p, &mut w).await;
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.error.expect("error").kind, "timeout");

    // A launch refused as IdempotentParameterMismatch, nothing found by
    // tag: failed with the recorded cause.
    let mut w = worker("w-fixture-mismatch", state("launch_failed"));
    let s = step(&p, &mut w).await;
    assert_eq!(s.phase, Phase::Failed);
    let e = s.error.expect("error");
    assert_eq!(e.kind, "already_exists");
    assert_eq!(e.code.as_deref(), Some("IdempotentParameterMismatch"));

    // An instance that ended behind the provider's back: stopped, with why.
    let ended: AwsState = serde_json::from_value(state("instance_ended")).expect("ended");
    let ended_id = ended.instance_id.clone().expect("ended instance id");
    let mut w = worker("w-fixture-ended", state("instance_ended"));
    let s = step(&p, &mut w).await;
    assert_eq!(s.phase, Phase::Stopped);
    let e = s.error.expect("error");
    assert!(e.message.contains(&ended_id), "{e:?}");
    assert_eq!(live(m.url()).await, 0);
}
