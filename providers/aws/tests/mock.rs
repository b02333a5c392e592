//! The AWS provider against skyfleet's mock EC2 (time-scaled), through the
//! shared transport: lifecycle, crash replay, batched checks, error
//! classification, throttles, eventual consistency, deadlines, bad input.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_aws::{AwsBuilder, AwsProvider, AwsState, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{
    DesiredState, ErrorKind, OwnershipScope, Phase, Provider, ProviderExt, Worker,
};
use skyfleet_mock::MockCloud;

const MANAGER: &str = "mgr-test";

fn transport(max_attempts: u32) -> Transport {
    let fast = Limit::per_second(10_000, 10_000);
    let mut config = TransportConfig::default()
        .with_operation_limit("aws", "RunInstances", fast)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50))
        .with_max_attempts(max_attempts);
    for class in ApiClass::ALL {
        config = config.with_limit("aws", class, fast);
    }
    Transport::builder()
        .config(config)
        .build()
        .expect("transport")
}

fn aws_config(url: &str) -> AwsBuilder {
    AwsBuilder::new()
        .with_regions(["us-east-1", "eu-west-1"])
        .with_endpoint_url(url)
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_millis(800),
        })
}

async fn mock() -> MockCloud {
    MockCloud::builder()
        .time_scale(0.01) // launch 5 s -> 50 ms
        .start()
        .await
        .expect("mock")
}

async fn provider(url: &str, t: &Transport) -> AwsProvider {
    aws_config(url)
        .with_transport(t.clone())
        .build()
        .await
        .expect("provider")
}

fn launch() -> Value {
    json!({
        "region": "us-east-1",
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "t3.micro",
        "workerConfig": {"capacity": 1}
    })
}

fn worker(id: &str, launch: Value) -> Worker {
    fixtures::worker(id)
        .pool("proj/linux")
        .provider("aws")
        .manager(MANAGER)
        .launch_config("lc-1")
        .launch(launch)
        .build_now()
}

async fn control(url: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
    let mut req = client.request(method, format!("{url}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("control call");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("control json")
}

async fn instances(url: &str) -> Vec<Value> {
    let v = control(
        url,
        reqwest::Method::GET,
        "/_mock/resources?cloud=aws",
        None,
    )
    .await;
    v.as_array().cloned().unwrap_or_default()
}

async fn set_faults(url: &str, rules: Value) {
    control(url, reqwest::Method::PUT, "/_mock/faults", Some(rules)).await;
}

/// Calls of `operation` answered with `status` (any status when `None`).
async fn calls(url: &str, operation: &str, status: Option<u64>) -> u64 {
    let v = control(url, reqwest::Method::GET, "/_mock/stats", None).await;
    v["operations"]
        .as_array()
        .map(|ops| {
            ops.iter()
                .filter(|o| o["cloud"] == "aws" && o["operation"] == operation)
                .filter(|o| status.is_none_or(|s| o["status"].as_u64() == Some(s)))
                .filter_map(|o| o["count"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

async fn step(p: &dyn Provider, w: &mut Worker) -> skyfleet_core::Step {
    let s = p.step(w).await.expect("step");
    apply_step(w, &s, SystemClock.now());
    s
}

#[tokio::test]
async fn create_running_remove_gone() {
    let m = mock().await;
    let t = transport(3);
    let p = provider(m.url(), &t).await;
    let mut w = worker("w-life", launch());
    p.create(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("create");
    assert_eq!(w.phase, Phase::Running);
    let id = AwsProvider::instance_id(&w).expect("instance id");

    let live = instances(m.url()).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["id"], id.as_str());
    assert_eq!(live[0]["state"], "running");
    assert_eq!(live[0]["tags"]["skyfleet-manager"], MANAGER);
    assert_eq!(live[0]["tags"]["skyfleet-worker"], "w-life");

    let owned = p
        .list_owned(&OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: "aws".into(),
        })
        .await
        .expect("list_owned");
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].worker_id.as_deref(), Some("w-life"));
    assert!(
        owned[0].id.ends_with(&format!("instance/{id}")),
        "{}",
        owned[0].id
    );

    p.remove(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("remove");
    assert_eq!(w.phase, Phase::Stopped);
    assert!(instances(m.url()).await.is_empty());
    assert_eq!(calls(m.url(), "RunInstances", None).await, 1);
    assert_eq!(calls(m.url(), "TerminateInstances", None).await, 1);

    // Removing again is a no-op; deleting an owned resource already gone is fine.
    p.remove(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("remove again");
    p.delete_owned(&owned[0])
        .await
        .expect("delete_owned of a gone instance");
}

#[tokio::test]
async fn a_step_replayed_after_a_crash_creates_nothing_new() {
    let m = mock().await;
    let mut w = worker("w-crash", launch());
    let first = provider(m.url(), &transport(3)).await;
    // Step 1 records the token; nothing is sent.
    step(&first, &mut w).await;
    assert_eq!(calls(m.url(), "RunInstances", None).await, 0);
    let token = AwsState::of(&w).unwrap().unwrap().client_token;
    let persisted = w.clone();

    // Step 2 sends RunInstances; the process dies before persisting it.
    let lost = first.step(&persisted).await.expect("launch");
    let lost_state: AwsState = serde_json::from_value(lost.state).unwrap();
    drop(first);

    // A new process resumes from the last persisted state.
    let second = provider(m.url(), &transport(3)).await;
    let mut w = persisted;
    let replayed = step(&second, &mut w).await;
    let state: AwsState = serde_json::from_value(replayed.state).unwrap();
    assert_eq!(state.client_token, token);
    assert_eq!(state.instance_id, lost_state.instance_id);
    assert_eq!(calls(m.url(), "RunInstances", Some(200)).await, 2);
    assert_eq!(instances(m.url()).await.len(), 1);

    second
        .create(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("create");
    assert_eq!(instances(m.url()).await.len(), 1);
    second
        .remove(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("remove");
    assert!(instances(m.url()).await.is_empty());
}

#[tokio::test]
async fn a_removal_after_a_lost_launch_answer_finds_the_instance_by_tag() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    let mut w = worker("w-lost", launch());
    step(&p, &mut w).await;
    let _lost = p.step(&w).await.expect("launch"); // answer never persisted
    assert_eq!(instances(m.url()).await.len(), 1);
    p.remove(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("remove");
    assert_eq!(w.phase, Phase::Stopped);
    assert!(instances(m.url()).await.is_empty(), "orphaned instance");
}

#[tokio::test]
async fn fifty_workers_are_checked_with_one_describe() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    let mut ws: Vec<Worker> = (0..50)
        .map(|i| worker(&format!("w-batch-{i}"), launch()))
        .collect();
    let apply = |ws: &mut Vec<Worker>, steps: Vec<skyfleet_core::Result<skyfleet_core::Step>>| {
        for (w, s) in ws.iter_mut().zip(steps) {
            apply_step(w, &s.expect("step"), SystemClock.now());
        }
    };
    let s = p.step_many(&ws).await; // tokens
    apply(&mut ws, s);
    let s = p.step_many(&ws).await; // 50 RunInstances
    apply(&mut ws, s);
    assert_eq!(calls(m.url(), "RunInstances", None).await, 50);
    tokio::time::sleep(Duration::from_millis(200)).await; // launch takes 50 ms

    let before = calls(m.url(), "DescribeInstances", None).await;
    let s = p.step_many(&ws).await;
    apply(&mut ws, s);
    let after = calls(m.url(), "DescribeInstances", None).await;
    assert_eq!(after - before, 1, "one DescribeInstances for 50 workers");
    assert!(ws.iter().all(|w| w.phase == Phase::Running));
    assert_eq!(p.partition(&ws[0]).as_deref(), Some("us-east-1"));

    for w in ws.iter_mut() {
        w.desired = DesiredState::Removed;
    }
    let s = p.step_many(&ws).await; // 50 TerminateInstances
    apply(&mut ws, s);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = calls(m.url(), "DescribeInstances", None).await;
    let s = p.step_many(&ws).await; // one confirming describe
    apply(&mut ws, s);
    assert_eq!(calls(m.url(), "DescribeInstances", None).await - before, 1);
    assert!(ws.iter().all(|w| w.phase == Phase::Stopped));
    assert!(instances(m.url()).await.is_empty());
}

#[tokio::test]
async fn a_capacity_error_is_classified_capacity_or_quota() {
    let m = mock().await;
    // One attempt per call, so the 500 is not retried by the transport.
    let p = provider(m.url(), &transport(1)).await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances", "count": 1,
                "effect": {"kind": "error", "status": 500, "code": "InsufficientInstanceCapacity",
                           "message": "We currently do not have sufficient t3.micro capacity."}}]),
    )
    .await;
    let mut w = worker("w-cap", launch());
    step(&p, &mut w).await;
    let s = step(&p, &mut w).await;
    assert_eq!(w.phase, Phase::Failed);
    let e = s.error.expect("a recorded error");
    assert_eq!(e.kind, ErrorKind::CapacityOrQuota.name());
    assert_eq!(e.code.as_deref(), Some("InsufficientInstanceCapacity"));
    assert!(instances(m.url()).await.is_empty());

    // The same through the verbs: create fails, and the record says why.
    let mut w = worker("w-cap-2", launch());
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances",
                "effect": {"kind": "error", "status": 400, "code": "VcpuLimitExceeded",
                           "message": "You have requested more vCPU capacity than your current vCPU limit."}}]),
    )
    .await;
    assert!(p
        .create(&mut w, &SystemClock, Duration::from_secs(5))
        .await
        .is_err());
    assert_eq!(w.last_error.as_ref().unwrap().kind, "capacity_or_quota");
}

#[tokio::test]
async fn a_failed_launch_is_classified_from_its_state_reason() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances", "count": 1,
                "effect": {"kind": "fail_operation", "code": "Server.InsufficientInstanceCapacity",
                           "message": "Insufficient capacity."}}]),
    )
    .await;
    let mut w = worker("w-failop", launch());
    let r = p
        .create(&mut w, &SystemClock, Duration::from_secs(10))
        .await;
    assert!(r.is_err());
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(w.last_error.as_ref().unwrap().kind, "capacity_or_quota");
    assert!(instances(m.url()).await.is_empty());
}

#[tokio::test]
async fn throttles_are_retried_within_budget() {
    let m = mock().await;
    let t = transport(3);
    let p = provider(m.url(), &t).await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances", "count": 2,
                "effect": {"kind": "throttle", "retry_after_s": 0}},
               {"cloud": "aws", "operation": "DescribeInstances", "count": 1,
                "effect": {"kind": "throttle", "retry_after_s": 0}}]),
    )
    .await;
    let mut w = worker("w-throttle", launch());
    p.create(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("create despite throttles");
    assert_eq!(calls(m.url(), "RunInstances", Some(503)).await, 2);
    assert_eq!(calls(m.url(), "RunInstances", Some(200)).await, 1);
    assert_eq!(instances(m.url()).await.len(), 1);

    // A throttle that outlasts the attempts surfaces as Throttled (retryable).
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "DescribeInstances",
                "effect": {"kind": "throttle", "retry_after_s": 0}}]),
    )
    .await;
    let before = calls(m.url(), "DescribeInstances", None).await;
    let e = p.step(&w).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Throttled { .. }), "{e:?}");
    assert!(e.is_retryable());
    let attempts = calls(m.url(), "DescribeInstances", None).await - before;
    assert_eq!(attempts, 3, "max_attempts bounds the attempts");
}

#[tokio::test]
async fn a_missing_instance_right_after_launch_is_tolerated() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "RunInstances", "count": 1,
                "effect": {"kind": "not_found_reads", "count": 3}}]),
    )
    .await;
    let mut w = worker("w-consistency", launch());
    p.create(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("create");
    assert_eq!(w.phase, Phase::Running);
    assert_eq!(instances(m.url()).await.len(), 1);
}

#[tokio::test]
async fn the_provisioning_deadline_tears_down() {
    let m = mock().await;
    let mut cfg = m.config();
    let mut aws = cfg.aws.clone().unwrap_or_default();
    aws.launch_ms = 3_600_000; // never runs within the test
    cfg.aws = Some(aws);
    m.set_config(cfg).expect("config");
    let p = provider(m.url(), &transport(3)).await;
    let mut w = worker("w-deadline", launch());
    w.spec.lifecycle.provisioning_deadline = Duration::from_millis(500);
    p.drive(
        &mut w,
        &[Phase::Running],
        &SystemClock,
        Duration::from_secs(10),
        5,
    )
    .await
    .expect("drive");
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(w.last_error.as_ref().unwrap().kind, "timeout");
    assert!(instances(m.url()).await.is_empty());
}

#[tokio::test]
async fn an_instance_terminated_behind_our_back_ends_the_worker() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    let mut w = worker("w-spot", launch());
    p.create(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("create");
    let id = AwsProvider::instance_id(&w).unwrap();
    p.sdk_client("us-east-1")
        .unwrap()
        .terminate_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("terminate behind the provider's back");
    w.next_check_at = SystemClock.now();
    p.drive(&mut w, &[], &SystemClock, Duration::from_secs(10), 5)
        .await
        .expect("drive");
    assert_eq!(w.phase, Phase::Stopped);
    assert!(w.last_error.as_ref().unwrap().message.contains(&id));
}

#[tokio::test]
async fn spot_subnet_and_user_data_reach_ec2() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    let mut l = launch();
    l["InstanceMarketOptions"] = json!({"MarketType": "spot", "SpotOptions": {"MaxPrice": "0.05"}});
    l["SubnetId"] = json!("subnet-0123456789abcdef0");
    l["BlockDeviceMappings"] =
        json!([{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 50, "VolumeType": "gp3"}}]);
    let mut w = worker("w-spot-launch", l);
    let r = p
        .create(&mut w, &SystemClock, Duration::from_secs(10))
        .await;
    assert!(r.is_ok(), "{r:?} {:?}", w.last_error);
    let id = AwsProvider::instance_id(&w).unwrap();
    let out = p
        .sdk_client("us-east-1")
        .unwrap()
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe");
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.subnet_id(), Some("subnet-0123456789abcdef0"));
    assert_eq!(
        i.instance_lifecycle().map(|l| l.as_str()),
        Some("spot"),
        "{i:?}"
    );
    assert!(i
        .client_token()
        .unwrap_or("")
        .starts_with("sf-w-spot-launch-"));
}

#[tokio::test]
async fn bad_launch_configs_are_refused_up_front() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    let field = |v: Value| match p.validate(&v).unwrap_err().kind().clone() {
        ErrorKind::InvalidConfig { field } => field,
        k => panic!("unexpected {k:?}"),
    };
    let with = |k: &str, v: Value| {
        let mut l = launch();
        l[k] = v;
        l
    };
    assert!(p.validate(&launch()).is_ok());
    assert_eq!(field(with("MinCount", json!(2))), "launch.MinCount");
    assert_eq!(field(with("MaxCount", json!(2))), "launch.MaxCount");
    assert_eq!(field(with("UserData", json!("aGk="))), "launch.UserData");
    assert_eq!(
        field(with("IamInstanceProfile", json!({"Name": "admin"}))),
        "launch.IamInstanceProfile"
    );
    assert_eq!(field(with("region", json!("ap-south-1"))), "launch.region");
    let mut no_image = launch();
    no_image.as_object_mut().unwrap().remove("ImageId");
    assert_eq!(field(no_image), "launch.ImageId");
    assert_eq!(field(json!("m5.large")), "launch");

    // A worker with a bad launch config fails without any call.
    let mut w = worker("w-bad", with("InstanceType", json!("huge")));
    let s = step(&p, &mut w).await;
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(s.error.unwrap().kind, "invalid_config");
    assert_eq!(calls(m.url(), "RunInstances", None).await, 0);

    // Unreadable provider state is an error for that worker only.
    let mut w = worker("w-garbled", launch());
    w.provider_state = json!({"region": 7});
    assert_eq!(
        p.step(&w).await.unwrap_err().code(),
        Some("InvalidProviderState")
    );
}

#[tokio::test]
async fn malformed_answers_fail_the_step_without_panicking() {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/",
        post(|| async {
            (
                [("content-type", "text/xml")],
                "<<< this is not XML &&& >>>",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let p = provider(&url, &transport(1)).await;
    let mut w = worker("w-garbage", launch());
    step(&p, &mut w).await; // token, no call
                            // RunInstances answered with garbage: the instance may exist, so the
                            // step fails (the token is kept for a replay) instead of failing the worker.
    let e = p.step(&w).await.unwrap_err();
    assert_eq!(e.code(), Some("MalformedResponse"), "{e:?}");
    // A describe answered with garbage.
    let mut st = AwsState::of(&w).unwrap().unwrap();
    st.instance_id = Some("i-0123456789abcdef0".into());
    w.provider_state = serde_json::to_value(&st).unwrap();
    let e = p.step(&w).await.unwrap_err();
    assert_eq!(e.code(), Some("MalformedResponse"), "{e:?}");
}

#[tokio::test]
async fn each_region_has_its_own_client_and_owned_resources_carry_it() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    let mut eu = launch();
    eu["region"] = json!("eu-west-1");
    let mut ws = [worker("w-us", launch()), worker("w-eu", eu)];
    for w in ws.iter_mut() {
        p.create(w, &SystemClock, Duration::from_secs(10))
            .await
            .expect("create");
    }
    assert_eq!(p.partition(&ws[1]).as_deref(), Some("eu-west-1"));
    let owned = p
        .list_owned(&OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: "aws".into(),
        })
        .await
        .expect("list_owned");
    assert_eq!(owned.len(), 2);
    let eu_arn = owned
        .iter()
        .find(|r| r.worker_id.as_deref() == Some("w-eu"))
        .map(|r| r.id.clone())
        .expect("eu instance");
    assert!(eu_arn.starts_with("arn:aws:ec2:eu-west-1:"), "{eu_arn}");

    // The orphan sweep's delete reaches the right region.
    let eu_resource = owned
        .iter()
        .find(|r| r.id == eu_arn)
        .cloned()
        .expect("eu resource");
    p.delete_owned(&eu_resource).await.expect("delete_owned");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = p
        .list_owned(&OwnershipScope {
            manager_id: MANAGER.into(),
            provider_id: "aws".into(),
        })
        .await
        .expect("list_owned");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].worker_id.as_deref(), Some("w-us"));
}

#[tokio::test]
async fn an_absurd_retry_after_is_clamped_to_max_server_delay() {
    use skyfleet_core::transport::MAX_SERVER_DELAY;
    let m = mock().await;
    let p = provider(m.url(), &transport(1)).await;
    set_faults(
        m.url(),
        json!([{"cloud": "aws", "operation": "*",
                "effect": {"kind": "throttle", "retry_after_s": 999_999_999_999u64}}]),
    )
    .await;
    let mut w = worker("w-absurd", launch());
    let e = loop {
        match p.step(&w).await {
            Ok(s) => apply_step(&mut w, &s, SystemClock.now()),
            Err(e) => break e,
        }
        assert!(w.phase != Phase::Running, "the throttle was never seen");
    };
    assert!(matches!(e.kind(), ErrorKind::Throttled { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(MAX_SERVER_DELAY));
    // What the scanner does with it stays in range.
    let _ = SystemClock.now() + e.retry_after().unwrap();
}

/// `list_owned` reports each instance's store id (none for an instance
/// made before store ids), and `tag_owned` adds the store tag to such an
/// instance with one CreateTags, keeping its other tags.
#[tokio::test]
async fn list_owned_reports_the_store_id_and_tag_owned_adds_it() {
    let m = mock().await;
    let p = provider(m.url(), &transport(3)).await;
    const STORE: &str = "0123456789abcdef0123456789abcdef";
    let mut new = fixtures::worker("w-new")
        .pool("proj/linux")
        .provider("aws")
        .manager(MANAGER)
        .store(STORE)
        .launch(launch())
        .build_now();
    let mut old = worker("w-old", launch());
    for w in [&mut new, &mut old] {
        p.create(w, &SystemClock, Duration::from_secs(10))
            .await
            .expect("create");
    }
    let scope = OwnershipScope {
        manager_id: MANAGER.into(),
        provider_id: "aws".into(),
    };
    let owned = p.list_owned(&scope).await.expect("list_owned");
    let store_of = |owned: &[skyfleet_core::OwnedResource], w: &str| {
        owned
            .iter()
            .find(|r| r.worker_id.as_deref() == Some(w))
            .map(|r| r.store_id.clone())
            .expect("listed")
    };
    assert_eq!(store_of(&owned, "w-new").as_deref(), Some(STORE));
    assert_eq!(store_of(&owned, "w-old"), None);

    let unclaimed = owned
        .iter()
        .find(|r| r.worker_id.as_deref() == Some("w-old"))
        .expect("w-old");
    let tags = [(
        skyfleet_core::model::tag::STORE.to_string(),
        STORE.to_string(),
    )]
    .into();
    p.tag_owned(unclaimed, &tags).await.expect("tag_owned");
    assert_eq!(calls(m.url(), "CreateTags", Some(200)).await, 1);
    let owned = p.list_owned(&scope).await.expect("list_owned");
    assert_eq!(store_of(&owned, "w-old").as_deref(), Some(STORE));
    let live = instances(m.url()).await;
    let tagged = live
        .iter()
        .find(|i| i["tags"]["skyfleet-worker"] == "w-old")
        .expect("w-old");
    assert_eq!(
        tagged["tags"]["skyfleet-manager"], MANAGER,
        "other tags kept"
    );
}
