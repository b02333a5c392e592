//! VM power actions (`POST .../virtualMachines/{vm}/{action}`) in process:
//! the LRO each starts, the instance view (and `$expand=instanceView` and
//! the `statusOnly` list) following it, `skipShutdown`, ARM's errors, and
//! faults, throttling and the journal acting on them like on any ARM call.

mod arm_support;

use std::time::{Duration, Instant};

use arm_support::*;
use axum::body::Body;
use axum::Router;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skyfleet_mock::arm::{Arm, ArmConfig};
use skyfleet_mock::config::MockConfig;
use skyfleet_mock::ctx::FaultRule;
use skyfleet_mock::MockCloud;
use tower::ServiceExt;

const NIC: &str = "Microsoft.Network/networkInterfaces";
const VM: &str = "Microsoft.Compute/virtualMachines";

/// Every create/delete `secs`, every power action `power_s`.
fn config(secs: f64, power_s: f64) -> ArmConfig {
    let mut cfg = arm_support::config(secs);
    let p = &mut cfg.power;
    p.power_off_s = power_s;
    p.power_off_skip_shutdown_s = power_s;
    p.deallocate_s = power_s;
    p.start_s = power_s;
    p.restart_s = power_s;
    p.redeploy_s = power_s;
    cfg
}

/// Network, a NIC and VM `name` (Succeeded); returns the VM's path.
async fn vm(r: &Router, sub: &str, name: &str) -> String {
    network(r, sub).await;
    let nic = put_done(
        r,
        &res_path(sub, NIC, &format!("{name}-nic")),
        nic_body(sub, None, true),
    )
    .await;
    let path = res_path(sub, VM, name);
    let v = put_done(
        r,
        &path,
        vm_image_body(nic.body["id"].as_str().unwrap(), true),
    )
    .await;
    assert_eq!(v.state(), "Succeeded");
    path
}

/// The `PowerState/...` code of the VM's instance view.
async fn power(r: &Router, vm: &str) -> String {
    let a = send(r, Method::GET, &u(&format!("{vm}/instanceView")), None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    power_of(&a.body)
}

fn power_of(view: &Value) -> String {
    view["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["code"].as_str())
        .find(|c| c.starts_with("PowerState/"))
        .unwrap_or("none")
        .to_string()
}

/// POSTs `action` (query `extra` added) and checks the 202 an LRO gets;
/// returns its `Azure-AsyncOperation` URL.
async fn post(r: &Router, vm: &str, action: &str, extra: &str) -> String {
    let a = send(r, Method::POST, &u(&format!("{vm}/{action}{extra}")), None).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{action}: {:?}", a.body);
    let op = a.header("azure-asyncoperation").unwrap().to_string();
    assert!(
        op.contains("/providers/Microsoft.Compute/locations/eastus/operations/"),
        "{op}"
    );
    let loc = a.header("location").unwrap();
    assert!(loc.contains("/operationResults/"), "{loc}");
    assert!(
        a.header("retry-after-ms").is_some() || a.header("retry-after").is_some(),
        "no polling hint"
    );
    op
}

#[tokio::test]
async fn power_actions_are_lros_the_instance_view_follows() {
    // Power actions take 20 s, 200 ms at this scale: long enough to see
    // each transition, short enough to wait for.
    let (_ctx, arm, r) = arm(0.01, 1.0);
    arm.set_config(config(1.0, 20.0));
    let sub = "sub-power";
    let vm = vm(&r, sub, "w1").await;
    assert_eq!(power(&r, &vm).await, "PowerState/running");

    // powerOff: stopping while it runs (provisioning Updating), then stopped.
    let op = post(&r, &vm, "powerOff", "").await;
    assert_eq!(power(&r, &vm).await, "PowerState/stopping");
    let g = send(&r, Method::GET, &u(&vm), None).await;
    assert_eq!(g.state(), "Updating");
    let st = send(&r, Method::GET, &path_of(&op), None).await;
    assert_eq!(st.body["status"], "InProgress");
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    assert_eq!(power(&r, &vm).await, "PowerState/stopped");
    assert_eq!(
        send(&r, Method::GET, &u(&vm), None).await.state(),
        "Succeeded"
    );
    // $expand=instanceView and the statusOnly list say the same.
    let g = send(
        &r,
        Method::GET,
        &u(&format!("{vm}?$expand=instanceView")),
        None,
    )
    .await;
    assert_eq!(
        power_of(&g.body["properties"]["instanceView"]),
        "PowerState/stopped"
    );
    let list = send(
        &r,
        Method::GET,
        &u(&format!("{}/providers/{VM}?statusOnly=true", rg_path(sub))),
        None,
    )
    .await;
    assert_eq!(
        power_of(&list.body["value"][0]["properties"]["instanceView"]),
        "PowerState/stopped"
    );

    // deallocate: deallocating, then deallocated.
    let op = post(&r, &vm, "deallocate", "").await;
    assert_eq!(power(&r, &vm).await, "PowerState/deallocating");
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    assert_eq!(power(&r, &vm).await, "PowerState/deallocated");

    // restart of a deallocated VM: refused as Azure does.
    let a = send(&r, Method::POST, &u(&format!("{vm}/restart")), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("deallocated"));

    // start: starting, then running.
    let op = post(&r, &vm, "start", "").await;
    assert_eq!(power(&r, &vm).await, "PowerState/starting");
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    assert_eq!(power(&r, &vm).await, "PowerState/running");

    // restart passes through starting and ends running.
    let op = post(&r, &vm, "restart", "").await;
    assert_eq!(power(&r, &vm).await, "PowerState/starting");
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    assert_eq!(power(&r, &vm).await, "PowerState/running");

    // redeploy of a stopped VM ends running.
    let op = post(&r, &vm, "powerOff", "").await;
    wait_op(&r, &op).await;
    let op = post(&r, &vm, "redeploy", "").await;
    assert_eq!(
        send(&r, Method::GET, &u(&vm), None).await.state(),
        "Updating"
    );
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    assert_eq!(power(&r, &vm).await, "PowerState/running");

    // The Location URL: 202 while running, then 204 (the action has no body).
    let a = send(&r, Method::POST, &u(&format!("{vm}/powerOff")), None).await;
    let loc = path_of(a.header("location").unwrap());
    assert_eq!(
        send(&r, Method::GET, &loc, None).await.status,
        StatusCode::ACCEPTED
    );
    wait_op(&r, a.header("azure-asyncoperation").unwrap()).await;
    assert_eq!(
        send(&r, Method::GET, &loc, None).await.status,
        StatusCode::NO_CONTENT
    );
    // Starting a running VM, powering off a stopped one: accepted, no change.
    let op = post(&r, &vm, "powerOff", "").await;
    assert_eq!(power(&r, &vm).await, "PowerState/stopped");
    wait_op(&r, &op).await;
    let op = post(&r, &vm, "start", "").await;
    wait_op(&r, &op).await;
    let op = post(&r, &vm, "start", "").await;
    assert_eq!(power(&r, &vm).await, "PowerState/running");
    wait_op(&r, &op).await;
}

#[tokio::test]
async fn skip_shutdown_takes_the_shorter_time_and_bad_values_are_refused() {
    let (_ctx, arm, r) = arm(0.01, 1.0);
    let mut cfg = config(1.0, 1.0);
    cfg.power.power_off_s = 300.0; // 3 s at this scale
    cfg.power.power_off_skip_shutdown_s = 5.0; // 50 ms
    arm.set_config(cfg);
    let vm = vm(&r, "sub-skip", "w1").await;

    let a = send(
        &r,
        Method::POST,
        &u(&format!("{vm}/powerOff?skipShutdown=maybe")),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidParameter")
    );
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("skipShutdown"));
    assert_eq!(
        power(&r, &vm).await,
        "PowerState/running",
        "a refused action changes nothing"
    );

    let t = Instant::now();
    let op = post(&r, &vm, "powerOff", "?skipShutdown=true").await;
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(power(&r, &vm).await, "PowerState/stopped");

    let op = post(&r, &vm, "start", "").await;
    wait_op(&r, &op).await;
    // Graceful (skipShutdown=false): still stopping well after 50 ms.
    let op = post(&r, &vm, "powerOff", "?skipShutdown=false").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(power(&r, &vm).await, "PowerState/stopping");
    let st = send(&r, Method::GET, &path_of(&op), None).await;
    assert_eq!(st.body["status"], "InProgress");
}

#[tokio::test]
async fn errors_are_arms() {
    let (ctx, arm, r) = arm(0.01, 1.0);
    arm.set_config(config(1.0, 100.0));
    let sub = "sub-power-err";
    let vm = vm(&r, sub, "w1").await;

    // Unknown VM, unknown group.
    let a = send(
        &r,
        Method::POST,
        &u(&format!("{}/start", res_path(sub, VM, "nope"))),
        None,
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "ResourceNotFound")
    );
    let other = format!("/subscriptions/{sub}/resourceGroups/nogroup/providers/{VM}/w1/start");
    let a = send(&r, Method::POST, &u(&other), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
    // Unknown action: ARM's router has no such type; other methods: 405.
    let a = send(&r, Method::POST, &u(&format!("{vm}/hibernate")), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::NOT_FOUND, "InvalidResourceType")
    );
    let a = send(&r, Method::GET, &u(&format!("{vm}/start")), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed")
    );

    // A second action while one runs: 409 Conflict.
    let _op = post(&r, &vm, "deallocate", "").await;
    let a = send(&r, Method::POST, &u(&format!("{vm}/start")), None).await;
    assert_eq!((a.status, a.code()), (StatusCode::CONFLICT, "Conflict"));

    // A VM still being created: 409 Conflict, naming its state.
    ctx.set_faults(
        serde_json::from_value::<Vec<FaultRule>>(json!([{"cloud": "azure",
            "operation": "VirtualMachines_CreateOrUpdate", "count": 1, "effect": {"kind": "stuck"}}]))
        .unwrap(),
    )
    .unwrap();
    let nic = put_done(&r, &res_path(sub, NIC, "n2"), nic_body(sub, None, true)).await;
    let vm2 = res_path(sub, VM, "w2");
    let a = send(
        &r,
        Method::PUT,
        &u(&vm2),
        Some(vm_image_body(nic.body["id"].as_str().unwrap(), true)),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let a = send(&r, Method::POST, &u(&format!("{vm2}/powerOff")), None).await;
    assert_eq!((a.status, a.code()), (StatusCode::CONFLICT, "Conflict"));
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Creating"));

    // A VM being deleted: 409 OperationNotAllowed, as Compute answers.
    let (_ctx, arm, r) = arm_support::arm(0.01, 1.0);
    let mut cfg = config(1.0, 1.0);
    cfg.durations.vm_delete_s = 100.0;
    arm.set_config(cfg);
    let vm = self::vm(&r, sub, "w3").await;
    let d = send(&r, Method::DELETE, &u(&vm), None).await;
    assert_eq!(d.status, StatusCode::ACCEPTED);
    let a = send(&r, Method::POST, &u(&format!("{vm}/start")), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("marked for deletion"));
}

fn arm_fresh(scale: f64) -> (skyfleet_mock::ctx::Ctx, std::sync::Arc<Arm>, Router) {
    let (ctx, arm, r) = arm_support::arm(scale, 1.0);
    arm.set_config(config(1.0, 1.0));
    (ctx, arm, r)
}

#[tokio::test]
async fn faults_and_throttling_act_on_power_actions() {
    let (ctx, _arm, r) = arm_fresh(0.01);
    let vm = vm(&r, "sub-power-faults", "w1").await;

    // error: the rule's answer, by the action's operationId.
    ctx.set_faults(
        serde_json::from_value::<Vec<FaultRule>>(json!([{"cloud": "azure",
            "operation": "VirtualMachines_Deallocate", "count": 1,
            "effect": {"kind": "error", "status": 500, "code": "InternalServerError", "message": "boom"}}]))
        .unwrap(),
    )
    .unwrap();
    let a = send(&r, Method::POST, &u(&format!("{vm}/deallocate")), None).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError")
    );
    assert_eq!(power(&r, &vm).await, "PowerState/running");

    // fail_operation: accepted, the operation ends Failed, the VM stays running.
    ctx.set_faults(
        serde_json::from_value::<Vec<FaultRule>>(json!([{"cloud": "azure",
            "operation": "VirtualMachines_PowerOff", "count": 1,
            "effect": {"kind": "fail_operation", "code": "VMAgentStatusCommunicationError", "message": "agent gone"}}]))
        .unwrap(),
    )
    .unwrap();
    let op = post(&r, &vm, "powerOff", "").await;
    let done = wait_op(&r, &op).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "VMAgentStatusCommunicationError");
    assert_eq!(power(&r, &vm).await, "PowerState/running");

    // stuck: the operation never ends, the VM stays Updating.
    ctx.set_faults(
        serde_json::from_value::<Vec<FaultRule>>(json!([{"cloud": "azure",
            "operation": "VirtualMachines_Start", "count": 1, "effect": {"kind": "stuck"}}]))
        .unwrap(),
    )
    .unwrap();
    let op = post(&r, &vm, "start", "").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        send(&r, Method::GET, &path_of(&op), None).await.body["status"],
        "InProgress"
    );
    assert_eq!(
        send(&r, Method::GET, &u(&vm), None).await.state(),
        "Updating"
    );

    // Throttling: actions draw from the writes bucket.
    let (_ctx, arm, r) = arm_fresh(0.0);
    let vm = self::vm(&r, "sub-power-throttle", "w1").await;
    let mut cfg = config(1.0, 1.0);
    cfg.throttle.enabled = true;
    cfg.throttle.writes.burst = 1;
    cfg.throttle.writes.refill_per_s = 0.001;
    arm.set_config(cfg);
    let a = send(&r, Method::POST, &u(&format!("{vm}/powerOff")), None).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(
        a.header("x-ms-ratelimit-remaining-subscription-writes"),
        Some("0")
    );
    let a = send(&r, Method::POST, &u(&format!("{vm}/start")), None).await;
    assert_eq!(
        (a.status, a.code()),
        (
            StatusCode::TOO_MANY_REQUESTS,
            "SubscriptionRequestsThrottled"
        )
    );
    drop(arm);
}

#[tokio::test]
async fn the_journal_names_power_actions() {
    let cfg = MockConfig {
        azure: Some(config(1.0, 1.0)),
        ..MockConfig::default()
    };
    let mock = MockCloud::builder()
        .time_scale(0.0)
        .tls(false)
        .config(cfg)
        .start()
        .await
        .unwrap();
    let r = mock.router();
    let vm = vm(&r, "sub-power-journal", "w1").await;
    let a = send(
        &r,
        Method::POST,
        &u(&format!("{vm}/powerOff?skipShutdown=true")),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let req = Request::builder()
        .uri("/_mock/requests")
        // The control API takes loopback hosts only.
        .header("host", "127.0.0.1")
        .body(Body::empty())
        .unwrap();
    let res = r.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let last = body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["operation"], "VirtualMachines_PowerOff");
    assert_eq!(last["method"], "POST");
    assert_eq!(last["cloud"], "azure");
    assert_eq!(last["status"], 202);
}
