//! Resource group delete in process: the LRO, `Deleting` while it runs,
//! ARM's refusals meanwhile, and the cascade to every resource in it.

mod arm_support;

use arm_support::*;
use http::{Method, StatusCode};
use serde_json::json;

const PIP: &str = "Microsoft.Network/publicIPAddresses";
const NIC: &str = "Microsoft.Network/networkInterfaces";
const VM: &str = "Microsoft.Compute/virtualMachines";

#[tokio::test]
async fn group_delete_is_an_lro_that_takes_every_resource() {
    // Deletes take 20 s, 200 ms at this scale.
    let (_ctx, arm, r) = arm(0.01, 1.0);
    let mut cfg = config(1.0);
    cfg.durations.delete_s = 20.0;
    arm.set_config(cfg);
    let sub = "sub-rg-delete";
    network(&r, sub).await;
    let pip = put_done(&r, &res_path(sub, PIP, "p1"), pip_body()).await;
    let nic = put_done(
        &r,
        &res_path(sub, NIC, "n1"),
        nic_body(sub, Some(pip.body["id"].as_str().unwrap()), false),
    )
    .await;
    let vm = res_path(sub, VM, "v1");
    put_done(
        &r,
        &vm,
        vm_image_body(nic.body["id"].as_str().unwrap(), false),
    )
    .await;
    // A second group, which must survive.
    let keep = format!("/subscriptions/{sub}/resourceGroups/keep");
    let a = send(
        &r,
        Method::PUT,
        &u(&keep),
        Some(json!({"location": "eastus"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let before = arm.resources().len();
    assert!(
        before >= 6,
        "group, vnet, pip, nic, disk, vm, keep: {before}"
    );

    let del = send(&r, Method::DELETE, &u(&rg_path(sub)), None).await;
    assert_eq!(del.status, StatusCode::ACCEPTED, "{:?}", del.body);
    let loc = path_of(del.header("location").unwrap());
    assert!(loc.contains("/operationResults/"), "{loc}");
    let op = del.header("azure-asyncoperation").unwrap().to_string();

    // While it runs: the group and its resources are Deleting.
    let g = send(&r, Method::GET, &u(&rg_path(sub)), None).await;
    assert_eq!((g.status, g.state()), (StatusCode::OK, "Deleting"));
    assert_eq!(
        send(&r, Method::GET, &u(&vm), None).await.state(),
        "Deleting"
    );
    assert_eq!(
        send(&r, Method::GET, &loc, None).await.status,
        StatusCode::ACCEPTED
    );
    // Changes inside it are refused as ARM refuses them.
    for (m, path, body) in [
        (Method::PUT, res_path(sub, PIP, "p2"), Some(pip_body())),
        (
            Method::PUT,
            rg_path(sub),
            Some(json!({"location": "eastus"})),
        ),
        (Method::POST, format!("{vm}/powerOff"), None),
    ] {
        let a = send(&r, m, &u(&path), body).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::CONFLICT, "ResourceGroupBeingDeleted"),
            "{path}"
        );
    }
    // A second DELETE answers the same operation.
    let again = send(&r, Method::DELETE, &u(&rg_path(sub)), None).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.header("azure-asyncoperation"), Some(op.as_str()));

    // Done: Succeeded, the Location answers, everything in it is gone.
    assert_eq!(wait_op(&r, &op).await["status"], "Succeeded");
    let done = send(&r, Method::GET, &loc, None).await;
    assert!(
        done.status.is_success() && done.status != StatusCode::ACCEPTED,
        "{}",
        done.status
    );
    let g = send(&r, Method::GET, &u(&rg_path(sub)), None).await;
    assert_eq!(
        (g.status, g.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
    let v = send(&r, Method::GET, &u(&vm), None).await;
    assert_eq!(
        (v.status, v.code()),
        (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
    );
    let left = arm.resources();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].name, "keep");
    let list = send(
        &r,
        Method::GET,
        &u(&format!("/subscriptions/{sub}/providers/{VM}")),
        None,
    )
    .await;
    assert_eq!(list.body["value"], json!([]));

    // Deleting it again, or a group that never was: 404.
    for g in [
        rg_path(sub),
        format!("/subscriptions/{sub}/resourceGroups/never"),
    ] {
        let a = send(&r, Method::DELETE, &u(&g), None).await;
        assert_eq!(
            (a.status, a.code()),
            (StatusCode::NOT_FOUND, "ResourceGroupNotFound")
        );
    }
    // The name is free again, and the new group is empty.
    let a = send(
        &r,
        Method::PUT,
        &u(&rg_path(sub)),
        Some(json!({"location": "westus"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let list = send(
        &r,
        Method::GET,
        &u(&format!("{}/providers/{PIP}", rg_path(sub))),
        None,
    )
    .await;
    assert_eq!(list.body["value"], json!([]));
}

#[tokio::test]
async fn group_delete_takes_resources_still_being_created() {
    let (_ctx, arm, r) = arm(0.01, 1.0);
    let mut cfg = config(1.0);
    cfg.durations.public_ip_s = 1000.0; // still Updating when the group goes
    cfg.durations.delete_s = 5.0;
    arm.set_config(cfg);
    let sub = "sub-rg-delete-busy";
    network(&r, sub).await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, PIP, "slow")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(a.state(), "Updating");
    let del = send(&r, Method::DELETE, &u(&rg_path(sub)), None).await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    assert_eq!(
        wait_op(&r, del.header("azure-asyncoperation").unwrap()).await["status"],
        "Succeeded"
    );
    assert!(arm.resources().is_empty(), "{:?}", arm.resources());
}
