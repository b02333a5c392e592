//! Per-subscription limits (`azure.limits`), each with a small configured
//! value: Azure's quota errors when exceeded, nothing made, updates still
//! allowed, and a finished delete freeing the place.

mod arm_support;

use arm_support::*;
use http::{Method, StatusCode};
use serde_json::json;
use skyfleet_mock::arm::ArmLimits;
use skyfleet_mock::config::MockConfig;

const PIP: &str = "Microsoft.Network/publicIPAddresses";
const NIC: &str = "Microsoft.Network/networkInterfaces";
const VM: &str = "Microsoft.Compute/virtualMachines";

fn group(sub: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{name}")
}

#[test]
fn defaults_are_azures_published_limits_and_the_config_takes_others() {
    let d = ArmLimits::default();
    assert_eq!(
        (
            d.resource_groups,
            d.resources_per_type_per_group,
            d.vms_per_region
        ),
        (980, 800, 25_000)
    );
    let cfg = MockConfig::from_json(r#"{"azure":{"limits":{"resource_groups":2}}}"#).unwrap();
    let l = cfg.azure.unwrap().limits;
    assert_eq!(
        (l.resource_groups, l.resources_per_type_per_group),
        (2, 800)
    );
    let e = MockConfig::from_json(r#"{"azure":{"limits":{"groups":2}}}"#).unwrap_err();
    assert!(e.contains("azure.limits"), "{e}");
}

#[tokio::test]
async fn resource_groups_per_subscription() {
    let (_ctx, arm, r) = arm(0.0, 1.0);
    let mut cfg = config(1.0);
    cfg.limits.resource_groups = 2;
    arm.set_config(cfg);
    let sub = "sub-limit-groups";
    let body = || Some(json!({"location": "eastus"}));
    for name in ["g1", "g2"] {
        let a = send(&r, Method::PUT, &u(&group(sub, name)), body()).await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let a = send(&r, Method::PUT, &u(&group(sub, "g3")), body()).await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "ResourceGroupQuotaExceeded")
    );
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("'g3' would exceed the quota of '2'"), "{msg}");
    assert!(msg.contains("current resource group count is '2'"), "{msg}");
    assert_eq!(
        send(&r, Method::GET, &u(&group(sub, "g3")), None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "nothing made"
    );
    // Updating an existing group is not a new one; another subscription has its own count.
    let a = send(
        &r,
        Method::PUT,
        &u(&group(sub, "G1")),
        Some(json!({"location": "eastus", "tags": {"a": "b"}})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let a = send(&r, Method::PUT, &u(&group("sub-limit-other", "g3")), body()).await;
    assert_eq!(a.status, StatusCode::CREATED);
    // A finished delete frees the place.
    let d = send(&r, Method::DELETE, &u(&group(sub, "g1")), None).await;
    assert_eq!(d.status, StatusCode::ACCEPTED);
    let a = send(&r, Method::PUT, &u(&group(sub, "g3")), body()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
}

#[tokio::test]
async fn resources_of_one_type_per_group() {
    let (_ctx, arm, r) = arm(0.0, 1.0);
    let mut cfg = config(1.0);
    cfg.limits.resources_per_type_per_group = 2;
    arm.set_config(cfg);
    let sub = "sub-limit-res";
    network(&r, sub).await;
    for name in ["p1", "p2"] {
        put_done(&r, &res_path(sub, PIP, name), pip_body()).await;
    }
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "p3")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "ResourceQuotaExceeded")
    );
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "quota of '2' resources of type '{PIP}' per resource group"
        )),
        "{msg}"
    );
    assert_eq!(
        send(&r, Method::GET, &u(&res_path(sub, PIP, "p3")), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Another type in the same group, the same type in another group, and
    // an update of an existing one all go through.
    put_done(&r, &res_path(sub, NIC, "n1"), nic_body(sub, None, false)).await;
    let other = group(sub, "rg2");
    send(
        &r,
        Method::PUT,
        &u(&other),
        Some(json!({"location": "eastus"})),
    )
    .await;
    let a = send(
        &r,
        Method::PUT,
        &u(&format!("{other}/providers/{PIP}/p3")),
        Some(pip_body()),
    )
    .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "p1")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    // Deleting one makes room.
    let d = send(&r, Method::DELETE, &u(&res_path(sub, PIP, "p2")), None).await;
    assert!(d.status.is_success());
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "p3")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
}

#[tokio::test]
async fn virtual_machines_per_subscription_and_region() {
    let (_ctx, arm, r) = arm(0.0, 1.0);
    let mut cfg = config(1.0);
    cfg.limits.vms_per_region = 1;
    arm.set_config(cfg);
    let sub = "sub-limit-vms";
    network(&r, sub).await;
    let mut nics = Vec::new();
    for name in ["n1", "n2"] {
        let n = put_done(&r, &res_path(sub, NIC, name), nic_body(sub, None, false)).await;
        nics.push(n.body["id"].as_str().unwrap().to_string());
    }
    put_done(&r, &res_path(sub, VM, "v1"), vm_image_body(&nics[0], true)).await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, VM, "v2")),
        Some(vm_image_body(&nics[1], true)),
    )
    .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::CONFLICT, "OperationNotAllowed")
    );
    let msg = a.body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("exceeding approved virtualMachines quota"),
        "{msg}"
    );
    assert!(
        msg.contains("Location: eastus, Current Limit: 1, Current Usage: 1"),
        "{msg}"
    );
    // Once the first is deleted, the second fits.
    let d = send(&r, Method::DELETE, &u(&res_path(sub, VM, "v1")), None).await;
    assert!(d.status.is_success());
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, VM, "v2")),
        Some(vm_image_body(&nics[1], true)),
    )
    .await;
    assert!(a.status.is_success(), "{:?}", a.body);
}
