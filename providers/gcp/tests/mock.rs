//! The GCP provider against the mock's Compute Engine.

use skyfleet_core::testing::fixtures;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{ErrorKind, OwnershipScope, Phase, PollPolicy, Provider, ProviderExt, Worker};
use skyfleet_gcp::{Credentials, GcpBuilder, GcpProvider};
use skyfleet_mock::{MockCloud, MockConfig};

const PROJECT: &str = "skyfleet-test";
const ZONE: &str = "us-central1-a";

fn launch(zone: &str) -> Value {
    json!({
        "zone": zone,
        "machineType": "e2-small",
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
        "spot": true,
        "serviceAccount": {"email": "worker@skyfleet-test.iam.gserviceaccount.com"},
        "metadata": {"startup-script": "echo hello"}
    })
}

fn worker(id: &str, zone: &str) -> Worker {
    fixtures::worker(id)
        .pool("ci/linux")
        .provider("gcp")
        .launch(launch(zone))
        .build_now()
}

fn transport() -> Transport {
    let mut c = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200));
    for class in ApiClass::ALL {
        c = c.with_limit("gcp", class, Limit::per_second(5000, 5000));
    }
    Transport::builder().config(c).build().unwrap()
}

fn config(url: &str) -> GcpBuilder {
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
        .with_transport(transport())
}

async fn mock() -> MockCloud {
    MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .unwrap()
}

async fn get_json(url: String) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Live GCE instances of `worker_id` in the mock.
async fn instances_of(mock: &MockCloud, worker_id: &str) -> Vec<Value> {
    let all = get_json(format!("{}/_mock/resources?cloud=gcp", mock.url())).await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["tags"]["skyfleet-worker"] == worker_id)
        .cloned()
        .collect()
}

/// Requests of `operation` the mock answered so far.
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

async fn faults(mock: &MockCloud, rules: Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/_mock/faults", mock.url()))
        .json(&rules)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn create_run_remove() {
    let mock = mock().await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-create", ZONE);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(w.phase, Phase::Running);
    let live = instances_of(&mock, "w-create").await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["name"], "w-create-vm");
    assert_eq!(live[0]["tags"]["skyfleet-manager"], "mgr");
    assert_eq!(live[0]["state"], "RUNNING");
    // The pool id is not a valid label value: it is made one.
    let pool = live[0]["tags"]["skyfleet-pool"].as_str().unwrap();
    assert!(pool.starts_with("ci_linux-"), "{pool}");
    assert_eq!(p.partition(&w).as_deref(), Some(ZONE));
    p.remove(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(w.phase, Phase::Stopped);
    assert!(instances_of(&mock, "w-create").await.is_empty());
    assert_eq!(calls(&mock, "compute.instances.insert").await, 1);
    assert_eq!(calls(&mock, "compute.instances.delete").await, 1);
}

#[tokio::test]
async fn request_id_replay_after_a_crash_creates_one_instance() {
    let mock = mock().await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-replay", ZONE);
    let s = p.step(&w).await.unwrap(); // persists the name
    apply_step(&mut w, &s, SystemClock.now());
    let before_insert = w.clone();
    let lost = p.step(&w).await.unwrap(); // inserts; the answer is never persisted
    assert!(lost.state["insert_sent"].as_bool().unwrap());
    // A new process, even a new provider, resumes from the old record.
    let p2 = config(mock.url()).build().unwrap();
    let s = p2.step(&before_insert).await.unwrap();
    assert_eq!(
        s.state["insert_op"]["poll_url"], lost.state["insert_op"]["poll_url"],
        "the replay answers the original operation"
    );
    let mut w = before_insert;
    apply_step(&mut w, &s, SystemClock.now());
    p2.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(calls(&mock, "compute.instances.insert").await, 2);
    assert_eq!(instances_of(&mock, "w-replay").await.len(), 1);
}

/// Steps `workers` with `step_many` until all are in a final phase or `until`.
async fn drive_all(p: &GcpProvider, workers: &mut [Worker], until: Phase) {
    let give_up = tokio::time::Instant::now() + LIMIT;
    loop {
        let due: Vec<usize> = (0..workers.len())
            .filter(|&i| workers[i].phase != until && !workers[i].phase.is_final())
            .collect();
        if due.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < give_up, "workers stuck");
        let batch: Vec<Worker> = due.iter().map(|&i| workers[i].clone()).collect();
        let answers = p.step_many(&batch).await;
        for (i, a) in due.into_iter().zip(answers) {
            let s = a.unwrap();
            apply_step(&mut workers[i], &s, SystemClock.now());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn batched_check_makes_one_list_call_per_zone() {
    let mock = mock().await;
    let p = config(mock.url())
        .with_zones([ZONE, "europe-west1-b"])
        .build()
        .unwrap();
    let mut workers: Vec<Worker> = (0..30)
        .map(|i| {
            let zone = if i % 2 == 0 { ZONE } else { "europe-west1-b" };
            worker(&format!("w-batch-{i}"), zone)
        })
        .collect();
    drive_all(&p, &mut workers, Phase::Running).await;
    assert!(workers.iter().all(|w| w.phase == Phase::Running));
    let (lists, gets) = (
        calls(&mock, "compute.instances.list").await,
        calls(&mock, "compute.instances.get").await,
    );
    for _ in 0..5 {
        let answers = p.step_many(&workers).await;
        for (w, a) in workers.iter_mut().zip(answers) {
            let s = a.unwrap();
            assert_eq!(s.phase, Phase::Running);
            apply_step(w, &s, SystemClock.now());
        }
    }
    // 5 checks of 30 workers in 2 zones: 10 lists, no get.
    assert_eq!(calls(&mock, "compute.instances.list").await - lists, 10);
    assert_eq!(calls(&mock, "compute.instances.get").await - gets, 0);
    // A worker whose instance vanished is seen as gone by the list.
    let owned = p
        .list_owned(&OwnershipScope {
            manager_id: "mgr".into(),
            provider_id: "gcp".into(),
        })
        .await
        .unwrap();
    assert_eq!(owned.len(), 30);
    let victim = owned
        .iter()
        .find(|r| r.worker_id.as_deref() == Some("w-batch-0"))
        .unwrap();
    p.delete_owned(victim).await.unwrap();
    for w in workers.iter_mut() {
        w.desired = skyfleet_core::DesiredState::Removed;
    }
    drive_all(&p, &mut workers, Phase::Stopped).await;
    assert!(workers.iter().all(|w| w.phase == Phase::Stopped));
    let left = get_json(format!("{}/_mock/resources?cloud=gcp", mock.url())).await;
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
}

#[tokio::test]
async fn failed_operation_is_capacity_and_leaves_nothing() {
    let mock = mock().await;
    faults(
        &mock,
        json!([{"cloud": "gcp", "operation": "compute.instances.insert", "resource": "w-cap*",
                "count": 1, "effect": {"kind": "fail_operation", "code": "ZONE_RESOURCE_POOL_EXHAUSTED",
                "message": "The zone does not have enough resources available to fulfill the request."}}]),
    )
    .await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-cap", ZONE);
    let e = p.create(&mut w, &SystemClock, LIMIT).await.unwrap_err();
    assert_eq!(w.phase, Phase::Failed, "{e}");
    let last = w.last_error.clone().unwrap();
    assert_eq!(last.kind, "capacity_or_quota");
    assert_eq!(last.code.as_deref(), Some("ZONE_RESOURCE_POOL_EXHAUSTED"));
    assert!(instances_of(&mock, "w-cap").await.is_empty());
}

#[tokio::test]
async fn throttles_and_transient_errors_are_retried() {
    let mock = mock().await;
    faults(
        &mock,
        json!([
            {"cloud": "gcp", "operation": "compute.instances.insert", "count": 1,
             "effect": {"kind": "throttle", "retry_after_s": 1}},
            {"cloud": "gcp", "operation": "compute.zoneOperations.get", "count": 1,
             "effect": {"kind": "error", "status": 503, "code": "backendError", "message": "try again"}}
        ]),
    )
    .await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-throttle", ZONE);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(instances_of(&mock, "w-throttle").await.len(), 1);
    assert_eq!(calls(&mock, "compute.instances.insert").await, 2);
}

#[tokio::test]
async fn provisioning_deadline_tears_down() {
    let cfg = MockConfig::from_json(r#"{"gcp": {"provisioning_ms": 100000000}}"#).unwrap();
    let mock = MockCloud::builder()
        .time_scale(0.001)
        .config(cfg)
        .start()
        .await
        .unwrap();
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-slow", ZONE);
    w.spec.lifecycle.provisioning_deadline = Duration::from_millis(500);
    p.drive(&mut w, &[Phase::Running], &SystemClock, LIMIT, 5)
        .await
        .unwrap();
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(w.last_error.unwrap().kind, "timeout");
    assert!(instances_of(&mock, "w-slow").await.is_empty());
}

#[tokio::test]
async fn validate_names_the_field() {
    let p = config("http://127.0.0.1:9").build().unwrap();
    let field = |v: Value| match p.validate(&v).unwrap_err().kind().clone() {
        ErrorKind::InvalidConfig { field } => field,
        k => panic!("{k:?}"),
    };
    assert!(p.validate(&launch(ZONE)).is_ok());
    let mut v = launch(ZONE);
    v.as_object_mut().unwrap().remove("machineType");
    assert_eq!(field(v), "launch.machineType");
    let mut v = launch(ZONE);
    v.as_object_mut().unwrap().remove("disks");
    assert_eq!(field(v), "launch.disks");
    let mut v = launch(ZONE);
    v["zone"] = json!(3);
    assert_eq!(field(v), "launch.zone");
    // A worker with a bad launch config fails at its first step, creating nothing.
    let mut w = worker("w-bad", ZONE);
    w.spec.launch = json!({"zone": ZONE});
    let s = p.step(&w).await.unwrap();
    assert_eq!(s.phase, Phase::Failed);
    assert_eq!(s.error.unwrap().kind, "invalid_config");
    assert!(GcpBuilder::new("Bad Project").build().is_err());
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let garbage = tower::service_fn(|_req: http::Request<Bytes>| async {
        Ok::<_, skyfleet_core::Error>(
            http::Response::builder()
                .status(200)
                .body(Bytes::from_static(
                    b"{\"kind\": \"compute#operation\", \"status\": 7",
                ))
                .unwrap(),
        )
    });
    let t = Transport::builder().build_with(garbage).unwrap();
    let p = config("https://compute.invalid")
        .with_transport(t)
        .build()
        .unwrap();
    let mut w = worker("w-garbage", ZONE);
    let s = p.step(&w).await.unwrap();
    apply_step(&mut w, &s, SystemClock.now());
    let e = p.step(&w).await.unwrap_err();
    assert_eq!(e.code(), Some("MalformedResponse"));
    assert!(
        e.message().contains("compute.instances.insert") && e.message().contains("malformed"),
        "{e}"
    );
}

#[tokio::test]
async fn service_account_key_gets_a_token_from_the_mock() {
    let mock = mock().await;
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/test_service_account_key.pem"
    ))
    .unwrap();
    let sa = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "test",
        "private_key": key,
        "client_email": "skyfleet@skyfleet-test.iam.gserviceaccount.com",
        "client_id": "1",
        "auth_uri": format!("{}/auth", mock.url()),
        "token_uri": format!("{}/token", mock.url()),
    });
    let creds = Credentials::ServiceAccountJson(sa.to_string());
    assert!(!format!("{creds:?}").contains("PRIVATE KEY"));
    let p = config(mock.url()).with_credentials(creds).build().unwrap();
    let mut w = worker("w-sa", ZONE);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(calls(&mock, "oauth2.token").await, 1);
    // Without credentials the mock refuses, and the error says so.
    let p = config(mock.url())
        .with_credentials(Credentials::static_token(""))
        .build()
        .unwrap();
    let mut w = worker("w-anon", ZONE);
    let s = p.step(&w).await.unwrap();
    apply_step(&mut w, &s, SystemClock.now());
    let e = p.step(&w).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Unauthenticated, "{e}");
}

#[allow(dead_code)]
fn _assert_send(p: Arc<dyn Provider>) -> Arc<dyn Provider> {
    p
}

/// Calls Compute on the mock directly, as another client would.
async fn compute(
    mock: &MockCloud,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(
            method,
            format!(
                "{}/compute/v1/projects/{PROJECT}/zones/{ZONE}/{path}",
                mock.url()
            ),
        )
        .bearer_auth("someone-else");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_stopped_instance_is_removed() {
    let mock = mock().await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-stopped", ZONE);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    // Stopped behind our back (or preempted): TERMINATED is dead.
    compute(
        &mock,
        reqwest::Method::POST,
        "instances/w-stopped-vm/stop",
        None,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.next_check_at = SystemClock.now();
    p.drive(&mut w, &[], &SystemClock, LIMIT, 5).await.unwrap();
    assert_eq!(w.phase, Phase::Stopped);
    let e = w.last_error.clone().unwrap();
    assert!(
        e.message.contains("TERMINATED") || e.message.contains("STOPPING"),
        "{e:?}"
    );
    assert!(instances_of(&mock, "w-stopped").await.is_empty());
}

#[tokio::test]
async fn read_after_write_lag_is_tolerated() {
    let mock = mock().await;
    faults(
        &mock,
        json!([{"cloud": "gcp", "operation": "compute.instances.insert", "resource": "w-lag*",
                "count": 1, "effect": {"kind": "not_found_reads", "count": 2}}]),
    )
    .await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-lag", ZONE);
    p.create(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(w.phase, Phase::Running);
    assert_eq!(instances_of(&mock, "w-lag").await.len(), 1);
    assert_eq!(calls(&mock, "compute.instances.insert").await, 1);
}

#[tokio::test]
async fn a_name_held_by_a_stranger_fails_without_touching_it() {
    let mock = mock().await;
    let stranger = json!({
        "name": "w-taken-vm",
        "machineType": format!("zones/{ZONE}/machineTypes/e2-small"),
        "disks": [{"boot": true, "initializeParams": {"sourceImage": "x"}}],
        "networkInterfaces": [{"network": "global/networks/default"}],
        "labels": {"owner": "someone-else"}
    });
    compute(&mock, reqwest::Method::POST, "instances", Some(stranger)).await;
    let p = config(mock.url()).build().unwrap();
    let mut w = worker("w-taken", ZONE);
    assert!(p.create(&mut w, &SystemClock, LIMIT).await.is_err());
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(w.last_error.clone().unwrap().kind, "already_exists");
    p.remove(&mut w, &SystemClock, LIMIT).await.unwrap();
    assert_eq!(calls(&mock, "compute.instances.delete").await, 0);
    let all = get_json(format!("{}/_mock/resources?cloud=gcp", mock.url())).await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
}

#[tokio::test]
async fn list_owned_without_zones_is_an_error_not_an_empty_answer() {
    let p = config("http://127.0.0.1:9")
        .with_zones(Vec::<String>::new())
        .build()
        .unwrap();
    let scope = OwnershipScope {
        manager_id: "mgr".into(),
        provider_id: "gcp".into(),
    };
    let e = p.list_owned(&scope).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "zones"),
        "{e}"
    );
}

#[tokio::test]
async fn an_absurd_retry_after_is_clamped_to_max_server_delay() {
    use skyfleet_core::transport::MAX_SERVER_DELAY;
    let mock = mock().await;
    faults(
        &mock,
        json!([{"cloud": "gcp", "operation": "*",
                "effect": {"kind": "throttle", "retry_after_s": 999_999_999_999u64}}]),
    )
    .await;
    let mut c = TransportConfig::default().with_max_attempts(1);
    for class in ApiClass::ALL {
        c = c.with_limit("gcp", class, Limit::per_second(5000, 5000));
    }
    let one_attempt = Transport::builder().config(c).build().unwrap();
    let p = config(mock.url())
        .with_transport(one_attempt)
        .build()
        .unwrap();
    let mut w = worker("w-absurd", ZONE);
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

/// `list_owned` reports each instance's store id (none for one made before
/// store ids); `tag_owned` adds the store label to such an instance
/// (instances.get for the label fingerprint, then instances.setLabels),
/// keeping its other labels.
#[tokio::test]
async fn list_owned_reports_the_store_id_and_tag_owned_adds_it() {
    const STORE: &str = "0123456789abcdef0123456789abcdef";
    let mock = mock().await;
    let p = config(mock.url()).build().unwrap();
    let mut new = fixtures::worker("w-new")
        .pool("ci/linux")
        .provider("gcp")
        .store(STORE)
        .launch(launch(ZONE))
        .build_now();
    let mut old = worker("w-old", ZONE);
    for w in [&mut new, &mut old] {
        p.create(w, &SystemClock, LIMIT).await.unwrap();
    }
    let scope = OwnershipScope {
        manager_id: "mgr".into(),
        provider_id: "gcp".into(),
    };
    let store_of = |owned: &[skyfleet_core::OwnedResource], w: &str| {
        owned
            .iter()
            .find(|r| r.worker_id.as_deref() == Some(w))
            .map(|r| r.store_id.clone())
            .unwrap()
    };
    let owned = p.list_owned(&scope).await.unwrap();
    assert_eq!(store_of(&owned, "w-new").as_deref(), Some(STORE));
    assert_eq!(store_of(&owned, "w-old"), None);
    let unclaimed = owned
        .iter()
        .find(|r| r.worker_id.as_deref() == Some("w-old"))
        .unwrap();
    let tags = [(
        skyfleet_core::model::tag::STORE.to_string(),
        STORE.to_string(),
    )]
    .into();
    p.tag_owned(unclaimed, &tags).await.unwrap();
    assert_eq!(calls(&mock, "compute.instances.setLabels").await, 1);
    let owned = p.list_owned(&scope).await.unwrap();
    assert_eq!(store_of(&owned, "w-old").as_deref(), Some(STORE));
    let live = instances_of(&mock, "w-old").await;
    assert_eq!(
        live[0]["tags"]["skyfleet-manager"], "mgr",
        "other labels kept"
    );
}
