//! Issue #17 on EC2, against skyfleet's mock (time-scaled): the spot
//! request shape, each capacity and quota code classified on the failed
//! worker's step, a capacity failure of the launch itself (state reason),
//! a spot interruption seen by the provider, and the offering of a launch
//! config.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_aws::{AwsBuilder, AwsProvider, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::model::LaunchConfig;
use skyfleet_core::offering::{CapacityClass, CapacityType, InterruptionSource};
use skyfleet_core::provider::apply_step;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{ErrorKind, Phase, Provider, Step, Worker};
use skyfleet_mock::MockCloud;

fn transport() -> Transport {
    let fast = Limit::per_second(10_000, 10_000);
    let mut config = TransportConfig::default()
        .with_operation_limit("aws", "RunInstances", fast)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
        // One attempt: a 500 capacity answer is not retried.
        .with_max_attempts(1);
    for class in ApiClass::ALL {
        config = config.with_limit("aws", class, fast);
    }
    Transport::builder()
        .config(config)
        .build()
        .expect("transport")
}

async fn setup() -> (MockCloud, AwsProvider) {
    let m = MockCloud::builder()
        .time_scale(0.01)
        .start()
        .await
        .expect("mock");
    let p = AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(m.url())
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_millis(50),
            not_found_grace: Duration::from_millis(800),
        })
        .with_transport(transport())
        .build()
        .await
        .expect("provider");
    (m, p)
}

fn spot_launch() -> Value {
    json!({
        "region": "us-east-1",
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "m5.large",
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "InstanceMarketOptions": {"MarketType": "spot", "SpotOptions": {
            "MaxPrice": "0.05", "InstanceInterruptionBehavior": "terminate"}}
    })
}

fn worker(id: &str) -> Worker {
    fixtures::worker(id)
        .pool("proj/spot")
        .provider("aws")
        .manager("mgr-test")
        .launch_config("lc-spot")
        .launch(spot_launch())
        .build_now()
}

async fn set_faults(url: &str, rules: Value) {
    let resp = reqwest::Client::new()
        .put(format!("{url}/_mock/faults"))
        .json(&rules)
        .send()
        .await
        .expect("faults");
    assert!(resp.status().is_success());
}

async fn live_instances(url: &str) -> usize {
    let v: Value = reqwest::get(format!("{url}/_mock/resources?cloud=aws"))
        .await
        .expect("resources")
        .json()
        .await
        .expect("json");
    v.as_array()
        .map(|a| a.iter().filter(|r| r["state"] != "terminated").count())
        .unwrap_or(0)
}

/// Steps `w` until it is Failed or Stopped; every step taken.
async fn run_to_end(p: &AwsProvider, w: &mut Worker) -> Vec<Step> {
    let mut steps = Vec::new();
    for _ in 0..400 {
        let s = p.step(w).await.expect("step");
        apply_step(w, &s, SystemClock.now());
        let wait = s.next_check_in.min(Duration::from_millis(20));
        steps.push(s);
        if matches!(w.phase, Phase::Failed | Phase::Stopped) {
            return steps;
        }
        tokio::time::sleep(wait).await;
    }
    panic!("worker {} never ended: {:?}", w.id(), w.phase);
}

#[tokio::test]
async fn a_spot_worker_runs_as_a_spot_instance() {
    let (m, p) = setup().await;
    let mut w = worker("w-spot");
    for _ in 0..200 {
        let s = p.step(&w).await.expect("step");
        apply_step(&mut w, &s, SystemClock.now());
        if w.phase == Phase::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(w.phase, Phase::Running);
    let id = AwsProvider::instance_id(&w).expect("instance id");
    let out = p
        .sdk_client("us-east-1")
        .expect("client")
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe");
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    assert_eq!(
        i.placement().and_then(|p| p.availability_zone()),
        Some("us-east-1a")
    );
    drop(m);
}

#[tokio::test]
async fn each_capacity_code_fails_the_worker_with_its_code() {
    let (m, p) = setup().await;
    for (n, (status, code)) in [
        (500, "InsufficientInstanceCapacity"),
        (400, "MaxSpotInstanceCountExceeded"),
        (400, "InsufficientFreeAddressesInSubnet"),
        (400, "VcpuLimitExceeded"),
        (400, "InstanceLimitExceeded"),
        (400, "SpotMaxPriceTooLow"),
    ]
    .into_iter()
    .enumerate()
    {
        set_faults(
            m.url(),
            json!([{"cloud": "aws", "operation": "RunInstances", "count": 1,
                    "effect": {"kind": "error", "status": status, "code": code,
                               "message": format!("{code} (injected)")}}]),
        )
        .await;
        let mut w = worker(&format!("w-cap-{n}"));
        let steps = run_to_end(&p, &mut w).await;
        assert_eq!(w.phase, Phase::Failed, "{code}");
        let e = steps
            .last()
            .and_then(|s| s.error.clone())
            .expect("the error on the last step");
        assert_eq!(e.kind, ErrorKind::CapacityOrQuota, "{code}");
        assert_eq!(e.code.as_deref(), Some(code));
        let class = CapacityClass::of_code(e.code.as_deref());
        let want = if code.ends_with("LimitExceeded") && !code.starts_with("MaxSpot") {
            CapacityClass::Quota
        } else {
            CapacityClass::Capacity
        };
        assert_eq!(class, want, "{code}");
    }
    assert_eq!(live_instances(m.url()).await, 0, "nothing was left behind");
}

#[tokio::test]
async fn a_launch_ended_on_capacity_fails_with_the_state_reason() {
    let (m, p) = setup().await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances", "count": 1,
                "effect": {"kind": "fail_operation", "code": "Server.InsufficientInstanceCapacity",
                           "message": "Insufficient capacity."}}]),
    )
    .await;
    let mut w = worker("w-async-cap");
    let steps = run_to_end(&p, &mut w).await;
    assert_eq!(w.phase, Phase::Failed);
    let e = steps.last().and_then(|s| s.error.clone()).expect("error");
    assert_eq!(e.kind, ErrorKind::CapacityOrQuota);
    assert_eq!(
        e.code.as_deref(),
        Some("Server.InsufficientInstanceCapacity")
    );
    assert!(steps.iter().all(|s| s.interruption.is_none()));
}

/// The mock ends a launch with the state reason a fault names; with
/// `Server.SpotInstanceTermination` that is EC2 reclaiming the spot
/// instance (before it ran: the mock cannot yet interrupt a running one).
#[tokio::test]
async fn a_spot_termination_is_reported_once_as_an_interruption() {
    let (m, p) = setup().await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances", "count": 1,
                "effect": {"kind": "fail_operation", "code": "Server.SpotInstanceTermination",
                           "message": "Spot instance termination"}}]),
    )
    .await;
    let mut w = worker("w-interrupted");
    let steps = run_to_end(&p, &mut w).await;
    let seen: Vec<_> = steps
        .iter()
        .filter_map(|s| s.interruption.clone())
        .collect();
    assert_eq!(seen.len(), 1, "{steps:?}");
    assert_eq!(seen[0].source, InterruptionSource::Provider);
    assert_eq!(seen[0].detail, "Server.SpotInstanceTermination");
    let e = steps.last().and_then(|s| s.error.clone()).expect("error");
    assert_eq!(e.code.as_deref(), Some("Server.SpotInstanceTermination"));
    assert_eq!(live_instances(m.url()).await, 0);
}

#[tokio::test]
async fn the_offering_of_a_launch_config() {
    let (_m, p) = setup().await;
    let lc = LaunchConfig {
        id: "lc-spot".into(),
        weight: 1.0,
        capacity_per_worker: 1,
        tier: 0,
        launch: spot_launch(),
    };
    let o = p.offering(&lc).expect("offering");
    assert_eq!(o.key(), "aws/us-east-1a/m5.large/spot");
    assert_eq!(o.capacity_type, CapacityType::Spot);
    assert_eq!(o.quota_scope.as_deref(), Some("us-east-1/spot/standard"));
    let mut bad = lc.clone();
    bad.launch["InstanceMarketOptions"]["SpotOptions"]["InstanceInterruptionBehavior"] =
        json!("stop");
    let e = p.offering(&bad).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidConfig { field }
            if field == "launch.InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior"),
        "{e}"
    );
    assert!(p.validate(&bad.launch).is_err());
}
