//! Snapshots (`POST /_mock/snapshot`, `PUT /_mock/snapshot`, `--state
//! FILE`): state seeded through each cloud's wire API survives a snapshot
//! and a restore into another mock; refused snapshots change nothing; a
//! resource mid-creation finishes after the time it had left; the binary
//! writes its state on SIGTERM and starts from it again.

mod arm_support;
mod gce_support;

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skyfleet_mock::{MockCloud, MockConfig};
use tower::ServiceExt;

use arm_support::{network, nic_body, pip_body, put_done, res_path, send, u, vm_image_body};
use gce_support::{vm, zone_url};

const AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=AKIDSNAPSHOT/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";
const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const PROJECT: &str = "snap-project";

async fn start(scale: f64) -> MockCloud {
    MockCloud::builder()
        .seed(7)
        .time_scale(scale)
        .start()
        .await
        .unwrap()
}

/// A control API call with a loopback Host; status and body bytes.
async fn control(router: &Router, method: Method, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri("/_mock/snapshot")
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        assert_eq!(res.headers()["content-type"], "application/json");
    }
    let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, bytes)
}

async fn take(router: &Router) -> Vec<u8> {
    let (status, body) = control(router, Method::POST, Vec::new()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    body
}

/// An EC2 Query call; the XML answer.
async fn ec2(router: &Router, params: &[(&str, &str)]) -> (StatusCode, String) {
    let mut all = vec![("Version", "2016-11-15")];
    all.extend_from_slice(params);
    let body = serde_urlencoded::to_string(&all).unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/")
        .header("host", "127.0.0.1")
        .header("authorization", AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// The text of the first `<tag>` in `xml`.
fn first<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"));
    let end = xml[start..].find('<').unwrap() + start;
    &xml[start..end]
}

async fn run_instance(router: &Router, name: &str) -> String {
    let (status, xml) = ec2(
        router,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("ClientToken", name),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", name),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    first(&xml, "instanceId").to_string()
}

async fn describe(router: &Router, id: &str) -> String {
    let (status, xml) = ec2(
        router,
        &[("Action", "DescribeInstances"), ("InstanceId.1", id)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    xml
}

/// Seeds all three clouds; answers the EC2 instance id and the ARM VM path.
async fn seed(router: &Router) -> (String, String) {
    let id = run_instance(router, "web-1").await;
    let (status, xml) = ec2(
        router,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", &id),
            ("Tag.1.Key", "team"),
            ("Tag.1.Value", "fleet"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{xml}");

    network(router, SUB).await;
    let pip = put_done(
        router,
        &res_path(SUB, "Microsoft.Network/publicIPAddresses", "pip1"),
        pip_body(),
    )
    .await;
    let pip_id = pip.body["id"].as_str().unwrap().to_string();
    let nic = put_done(
        router,
        &res_path(SUB, "Microsoft.Network/networkInterfaces", "nic1"),
        nic_body(SUB, Some(&pip_id), true),
    )
    .await;
    let nic_id = nic.body["id"].as_str().unwrap().to_string();
    let vm_path = res_path(SUB, "Microsoft.Compute/virtualMachines", "vm1");
    let made = put_done(router, &vm_path, vm_image_body(&nic_id, true)).await;
    assert_eq!(made.state(), "Succeeded", "{:?}", made.body);

    let (status, op) = gce_support::call(
        router,
        "POST",
        &format!("{}/instances", zone_url(PROJECT)),
        Some(&vm("gce-1", json!({"env": "test"}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{op}");
    (id, vm_path)
}

async fn gce_instance(router: &Router) -> (StatusCode, Value) {
    gce_support::call(
        router,
        "GET",
        &format!("{}/instances/gce-1", zone_url(PROJECT)),
        None,
    )
    .await
}

async fn wait_gce_running(router: &Router) -> Value {
    for _ in 0..300 {
        let (status, v) = gce_instance(router).await;
        if status == StatusCode::OK && v["status"] == "RUNNING" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gce-1 never ran");
}

#[tokio::test]
async fn state_seeded_through_the_wire_apis_survives_a_restore_into_another_mock() {
    let a = start(0.001).await;
    let ra = a.router();
    let (id, vm_path) = seed(&ra).await;
    let gce_before = wait_gce_running(&ra).await;
    let vm_before = send(&ra, Method::GET, &u(&vm_path), None).await;
    let snap = take(&ra).await;
    let doc: Value = serde_json::from_slice(&snap).unwrap();
    assert_eq!(doc["format"], "skyfleet-mock-snapshot");
    assert_eq!(doc["version"], 1);
    assert!(doc["mock_version"].is_string() && doc["taken_at"].is_string());

    let b = start(0.001).await;
    let rb = b.router();
    // Empty before the restore.
    let (_, xml) = ec2(
        &rb,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
    )
    .await;
    assert!(xml.contains("InvalidInstanceID.NotFound"), "{xml}");
    let (status, body) = control(&rb, Method::PUT, snap.clone()).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // EC2: same id, tags and state; the ClientToken still answers the
    // original launch; a new launch gets a fresh id.
    let xml = describe(&rb, &id).await;
    assert!(xml.contains("<name>running</name>"), "{xml}");
    assert!(xml.contains("<key>team</key><value>fleet</value>"), "{xml}");
    assert!(xml.contains("<key>Name</key><value>web-1</value>"), "{xml}");
    assert_eq!(
        run_instance(&rb, "web-1").await,
        id,
        "ClientToken replays the launch"
    );
    let fresh = run_instance(&rb, "web-2").await;
    assert_ne!(fresh, id);
    let fresh_in_a = run_instance(&ra, "web-2").await;
    assert_ne!(fresh, fresh_in_a, "the restored mock's id stream moved on");

    // ARM: the VM with its tags, state and vmId; its group.
    let vm_after = send(&rb, Method::GET, &u(&vm_path), None).await;
    assert_eq!(vm_after.status, StatusCode::OK, "{:?}", vm_after.body);
    assert_eq!(vm_after.body["id"], vm_before.body["id"]);
    assert_eq!(vm_after.body["tags"], json!({"worker": "w2"}));
    assert_eq!(vm_after.state(), "Succeeded");
    assert_eq!(
        vm_after.body["properties"]["vmId"],
        vm_before.body["properties"]["vmId"]
    );
    let rg = send(&rb, Method::GET, &u(&arm_support::rg_path(SUB)), None).await;
    assert_eq!(rg.status, StatusCode::OK, "{:?}", rg.body);

    // GCE: the instance with its id, labels and fingerprints.
    let (status, gce_after) = gce_instance(&rb).await;
    assert_eq!(status, StatusCode::OK, "{gce_after}");
    for field in [
        "id",
        "status",
        "labels",
        "labelFingerprint",
        "creationTimestamp",
    ] {
        assert_eq!(gce_after[field], gce_before[field], "{field}");
    }
    assert_eq!(gce_after["labels"], json!({"env": "test"}));

    // A snapshot of the restored mock holds the same resources.
    let again: Value = serde_json::from_slice(&take(&rb).await).unwrap();
    assert_eq!(again["gce"]["projects"][0]["project"], PROJECT);
    assert_eq!(
        again["arm"]["subscriptions"][0]["subscription"],
        doc["arm"]["subscriptions"][0]["subscription"]
    );
}

#[tokio::test]
async fn a_snapshot_of_another_version_is_refused_and_changes_nothing() {
    let a = start(0.001).await;
    let ra = a.router();
    let id = run_instance(&ra, "keep-me").await;
    let snap = take(&ra).await;

    let b = start(0.001).await;
    let rb = b.router();
    let other = run_instance(&rb, "other").await;

    let mut doc: Value = serde_json::from_slice(&snap).unwrap();
    doc["version"] = json!(2);
    let (status, body) = control(&rb, Method::PUT, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["found"], "2", "{err}");
    assert_eq!(err["expected"], 1, "{err}");
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("version 1") && msg.contains("version 2"),
        "{msg}"
    );

    doc["version"] = json!(1);
    doc["format"] = json!("something-else");
    let (status, body) = control(&rb, Method::PUT, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["field"], "format", "{err}");

    // A field of the wrong type deep inside: named, and nothing changes
    // (checked after the EC2 section, which alone would have parsed).
    doc["format"] = json!("skyfleet-mock-snapshot");
    doc["gce"] = json!({"projects": [{"project": "p", "state": {"zones": 5}}]});
    let (status, body) = control(&rb, Method::PUT, serde_json::to_vec(&doc).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["field"], "gce.projects[0].state.zones", "{err}");

    // Malformed JSON.
    let (status, body) = control(&rb, Method::PUT, b"{\"format\": ".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("not valid JSON"),
        "{err}"
    );

    // An inconsistent snapshot (an instance filed under another seq).
    let mut bad: Value = serde_json::from_slice(&snap).unwrap();
    let inst = bad["ec2"]["partitions"][0]["state"]["instances"]
        .as_object_mut()
        .unwrap();
    let (k, v) = inst
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    inst.remove(&k);
    inst.insert("9".into(), v);
    let (status, body) = control(&rb, Method::PUT, serde_json::to_vec(&bad).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(err["field"], "ec2.partitions[0].state.instances.9", "{err}");

    // After every refusal: b's own instance is still there, a's is not
    // (both mocks have the same seed, so the ids may be equal: compare by
    // the client token each was launched with).
    let _ = id;
    let (_, xml) = ec2(&rb, &[("Action", "DescribeInstances")]).await;
    assert!(xml.contains(&other), "{xml}");
    assert!(xml.contains("<clientToken>other</clientToken>"), "{xml}");
    assert!(!xml.contains("<clientToken>keep-me</clientToken>"), "{xml}");
}

#[tokio::test]
async fn a_resource_mid_creation_finishes_after_the_time_it_had_left() {
    let cfg = MockConfig::from_json(
        r#"{"aws": {"launch_ms": 1500}, "gcp": {"provisioning_ms": 700, "staging_ms": 800}}"#,
    )
    .unwrap();
    let a = MockCloud::builder()
        .config(cfg.clone())
        .start()
        .await
        .unwrap();
    let ra = a.router();
    let id = run_instance(&ra, "slow").await;
    let (status, op) = gce_support::call(
        &ra,
        "POST",
        &format!("{}/instances", zone_url(PROJECT)),
        Some(&vm("gce-1", json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{op}");
    let snap = take(&ra).await;
    drop(a);

    // Restored well after the snapshot: the time passed in between does
    // not count, the time left does.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let b = MockCloud::builder().config(cfg).start().await.unwrap();
    let rb = b.router();
    b.restore(&snap).unwrap();
    assert!(describe(&rb, &id).await.contains("<name>pending</name>"));
    let (_, v) = gce_instance(&rb).await;
    assert_ne!(v["status"], "RUNNING", "{v}");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert!(describe(&rb, &id).await.contains("<name>running</name>"));
    let (_, v) = gce_instance(&rb).await;
    assert_eq!(v["status"], "RUNNING", "{v}");
}

#[tokio::test]
async fn an_oversized_snapshot_is_refused_with_413() {
    let mock = start(0.001).await;
    let body = vec![b' '; skyfleet_mock::snapshot::BODY_LIMIT + 1];
    let (status, _) = control(&mock.router(), Method::PUT, body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_bad_state_file_stops_the_start_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(
        &path,
        br#"{"format": "skyfleet-mock-snapshot", "version": 99}"#,
    )
    .unwrap();
    let Err(err) = MockCloud::builder().state_file(&path).start().await else {
        panic!("a state file of another version was taken");
    };
    let msg = err.to_string();
    assert!(
        msg.contains("state.json") && msg.contains("version 99"),
        "{msg}"
    );
    // A missing file: start empty.
    let missing = dir.path().join("missing.json");
    let mock = MockCloud::builder()
        .state_file(&missing)
        .start()
        .await
        .unwrap();
    mock.save_state(&missing).unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(&missing).unwrap()).unwrap();
    assert_eq!(doc["ec2"]["partitions"], json!([]));
}

/// Reads the URL the binary prints on its first line.
fn spawn_mock(state: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_skyfleet-mock"))
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_string())
}

async fn wire_ec2(url: &str, params: &[(&str, &str)]) -> String {
    let mut all = vec![("Version", "2016-11-15")];
    all.extend_from_slice(params);
    reqwest::Client::new()
        .post(format!("{url}/"))
        .header("authorization", AUTH)
        .form(&all)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_binary_writes_its_state_on_sigterm_and_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (mut child, url) = spawn_mock(&state);
    let xml = wire_ec2(
        &url,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "Name"),
            ("TagSpecification.1.Tag.1.Value", "survivor"),
        ],
    )
    .await;
    let id = first(&xml, "instanceId").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(doc["version"], 1);
    assert!(doc.to_string().contains(&id));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let (mut child, url) = spawn_mock(&state);
    let xml = wire_ec2(
        &url,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
    )
    .await;
    assert!(
        xml.contains("<key>Name</key><value>survivor</value>"),
        "{xml}"
    );
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());

    // A state file of another version: the binary refuses to start.
    std::fs::write(
        &state,
        br#"{"format": "skyfleet-mock-snapshot", "version": 0}"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skyfleet-mock"))
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 0") && err.contains("version 1"),
        "{err}"
    );
}
