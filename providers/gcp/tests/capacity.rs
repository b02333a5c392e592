//! Issue #17 on Compute Engine, against skyfleet's mock: the Spot request
//! shape, each capacity and quota code classified on the failed worker's
//! step (as a refused insert and as a failed operation), a preempted Spot
//! VM seen by the provider, and the offering of a launch config.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::model::LaunchConfig;
use skyfleet_core::offering::{CapacityClass, CapacityType, InterruptionSource};
use skyfleet_core::provider::apply_step;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{ErrorKind, Phase, PollPolicy, Provider, Step, Worker};
use skyfleet_gcp::{Credentials, GcpBuilder, GcpProvider};
use skyfleet_mock::MockCloud;

const PROJECT: &str = "skyfleet-test";
const ZONE: &str = "us-central1-a";

fn launch() -> Value {
    json!({
        "zone": ZONE,
        "machineType": "n2-standard-2",
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "scheduling": {"provisioningModel": "SPOT"},
    })
}

fn worker(id: &str) -> Worker {
    fixtures::worker(id)
        .pool("ci/spot")
        .provider("gcp")
        .launch(launch())
        .build_now()
}

async fn setup() -> (MockCloud, GcpProvider) {
    let m = MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .expect("mock");
    let mut c = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200))
        .with_max_attempts(1);
    for class in ApiClass::ALL {
        c = c.with_limit("gcp", class, Limit::per_second(5000, 5000));
    }
    let p = GcpBuilder::new(PROJECT)
        .with_endpoint(m.url())
        .with_credentials(Credentials::static_token("test-token"))
        .with_zones([ZONE])
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(30),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_millis(20), Duration::from_millis(20))
        .with_transport(Transport::builder().config(c).build().expect("transport"))
        .build()
        .expect("provider");
    (m, p)
}

async fn faults(m: &MockCloud, rules: Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/_mock/faults", m.url()))
        .json(&rules)
        .send()
        .await
        .expect("faults");
    assert!(r.status().is_success());
}

/// Calls Compute on the mock directly, as another client would.
async fn compute(m: &MockCloud, method: reqwest::Method, path: &str) -> Value {
    let r = reqwest::Client::new()
        .request(
            method,
            format!(
                "{}/compute/v1/projects/{PROJECT}/zones/{ZONE}/{path}",
                m.url()
            ),
        )
        .bearer_auth("someone-else")
        .send()
        .await
        .expect("compute");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.expect("json")
}

async fn live(m: &MockCloud) -> usize {
    let v: Value = reqwest::get(format!("{}/_mock/resources?cloud=gcp", m.url()))
        .await
        .expect("resources")
        .json()
        .await
        .expect("json");
    v.as_array().map_or(0, Vec::len)
}

/// Steps `w` until it is in one of `until`; every step taken.
async fn drive(p: &GcpProvider, w: &mut Worker, until: &[Phase]) -> Vec<Step> {
    let mut steps = Vec::new();
    for _ in 0..500 {
        let s = p.step(w).await.expect("step");
        apply_step(w, &s, SystemClock.now());
        let wait = s.next_check_in.min(Duration::from_millis(20));
        steps.push(s);
        if until.contains(&w.phase) {
            return steps;
        }
        tokio::time::sleep(wait).await;
    }
    panic!("worker {} stuck in {:?}", w.id(), w.phase);
}

const ENDED: &[Phase] = &[Phase::Failed, Phase::Stopped];

#[tokio::test]
async fn a_spot_worker_is_inserted_as_a_spot_vm_deleted_on_preemption() {
    let (m, p) = setup().await;
    let mut w = worker("w-spot");
    drive(&p, &mut w, &[Phase::Running]).await;
    let vm = compute(&m, reqwest::Method::GET, "instances/w-spot-vm").await;
    assert_eq!(vm["scheduling"]["provisioningModel"], "SPOT", "{vm}");
    assert_eq!(vm["scheduling"]["instanceTerminationAction"], "DELETE");
    assert_eq!(vm["scheduling"]["automaticRestart"], false);
}

#[tokio::test]
async fn each_capacity_code_fails_the_worker_with_its_code() {
    let (m, p) = setup().await;
    let cases = [
        ("error", 503, "ZONE_RESOURCE_POOL_EXHAUSTED", "no resources"),
        ("error", 403, "QUOTA_EXCEEDED", "Quota 'N2_CPUS' exceeded."),
        ("error", 403, "quotaExceeded", "Quota 'CPUS' exceeded."),
        (
            "fail_operation",
            0,
            "ZONE_RESOURCE_POOL_EXHAUSTED",
            "no resources",
        ),
        (
            "fail_operation",
            0,
            "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
            "no resources",
        ),
        (
            "fail_operation",
            0,
            "QUOTA_EXCEEDED",
            "Quota 'N2_CPUS' exceeded.",
        ),
        (
            "fail_operation",
            0,
            "RESOURCE_NOT_AVAILABLE",
            "The zone 'projects/skyfleet-test/zones/us-central1-a' does not have enough \
             resources available to fulfill the request.",
        ),
    ];
    for (n, (effect, status, code, message)) in cases.into_iter().enumerate() {
        let id = format!("w-cap-{n}");
        let effect = if effect == "error" {
            json!({"kind": "error", "status": status, "code": code, "message": message})
        } else {
            json!({"kind": "fail_operation", "code": code, "message": message})
        };
        faults(
            &m,
            json!([{"cloud": "gcp", "operation": "compute.instances.insert",
                    "resource": format!("{id}*"), "count": 1, "effect": effect}]),
        )
        .await;
        let mut w = worker(&id);
        let steps = drive(&p, &mut w, ENDED).await;
        assert_eq!(w.phase, Phase::Failed, "{code}");
        let e = steps
            .last()
            .and_then(|s| s.error.clone())
            .expect("the error on the last step");
        assert_eq!(e.kind, ErrorKind::CapacityOrQuota, "{code}: {e:?}");
        assert_eq!(e.code.as_deref(), Some(code));
        let want = if code.eq_ignore_ascii_case("QUOTA_EXCEEDED") || code == "quotaExceeded" {
            CapacityClass::Quota
        } else {
            CapacityClass::Capacity
        };
        assert_eq!(CapacityClass::of_code(e.code.as_deref()), want, "{code}");
        let last = w.last_error.clone().expect("recorded on the worker");
        assert_eq!(last.code.as_deref(), Some(code));
        assert!(steps.iter().all(|s| s.interruption.is_none()));
    }
    assert_eq!(live(&m).await, 0, "nothing was left behind");
}

#[tokio::test]
async fn a_preempted_spot_vm_is_reported_once_and_torn_down() {
    let (m, p) = setup().await;
    // Stopped (TERMINATED) as Compute does to a preempted VM.
    let mut w = worker("w-pre");
    drive(&p, &mut w, &[Phase::Running]).await;
    compute(&m, reqwest::Method::POST, "instances/w-pre-vm/stop").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let steps = drive(&p, &mut w, ENDED).await;
    assert_eq!(w.phase, Phase::Stopped);
    let seen: Vec<_> = steps
        .iter()
        .filter_map(|s| s.interruption.clone())
        .collect();
    assert_eq!(seen.len(), 1, "{steps:?}");
    assert_eq!(seen[0].source, InterruptionSource::Provider);
    assert_eq!(seen[0].detail, "preempted");

    // Deleted outright (instanceTerminationAction DELETE).
    let mut w = worker("w-gone");
    drive(&p, &mut w, &[Phase::Running]).await;
    compute(&m, reqwest::Method::DELETE, "instances/w-gone-vm").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let steps = drive(&p, &mut w, ENDED).await;
    assert_eq!(w.phase, Phase::Stopped);
    let seen: Vec<_> = steps
        .iter()
        .filter_map(|s| s.interruption.clone())
        .collect();
    assert_eq!(seen.len(), 1, "{steps:?}");
    assert_eq!(seen[0].detail, "preempted");
    assert_eq!(live(&m).await, 0);
}

#[tokio::test]
async fn the_offering_of_a_launch_config() {
    let (_m, p) = setup().await;
    let lc = LaunchConfig {
        id: "lc-spot".into(),
        weight: 1.0,
        capacity_per_worker: 1,
        tier: 0,
        launch: launch(),
    };
    let o = p.offering(&lc).expect("offering");
    assert_eq!(o.key(), "gcp/us-central1-a/n2-standard-2/spot");
    assert_eq!(o.capacity_type, CapacityType::Spot);
    assert_eq!(o.quota_scope.as_deref(), Some("us-central1/spot/n2"));
    let mut bad = lc.clone();
    bad.launch["scheduling"]["instanceTerminationAction"] = json!("STOP");
    for e in [
        p.offering(&bad).unwrap_err(),
        p.validate(&bad.launch).unwrap_err(),
    ] {
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field }
                if field == "launch.scheduling.instanceTerminationAction"),
            "{e}"
        );
    }
}
