//! `statusOnly=true` on VM lists: every VM carries the statuses of its
//! instance view, pages keep the flag, a bad value is a 400 naming it, and a
//! page is one read against the subscription's reads bucket.

mod arm_support;

use arm_support::*;
use http::{Method, StatusCode};
use serde_json::Value;
use skyfleet_mock::arm::BucketLimit;

const NIC: &str = "Microsoft.Network/networkInterfaces";
const VM: &str = "Microsoft.Compute/virtualMachines";

/// Makes NIC `{name}-nic` and VM `name` (finished at once at time scale 0).
async fn vm(r: &axum::Router, sub: &str, name: &str) {
    let nic = format!("{name}-nic");
    let a = send(
        r,
        Method::PUT,
        &u(&res_path(sub, NIC, &nic)),
        Some(nic_body(sub, None, true)),
    )
    .await;
    assert!(a.status.is_success(), "{:?}", a.body);
    let nic_id = a.body["id"].as_str().unwrap().to_string();
    let a = send(
        r,
        Method::PUT,
        &u(&res_path(sub, VM, name)),
        Some(vm_image_body(&nic_id, true)),
    )
    .await;
    assert!(a.status.is_success(), "{:?}", a.body);
}

/// The status codes of an instance view (or of `properties.instanceView`).
fn codes(view: &Value) -> Vec<String> {
    view["statuses"]
        .as_array()
        .unwrap_or_else(|| panic!("no statuses: {view}"))
        .iter()
        .map(|s| s["code"].as_str().unwrap().to_string())
        .collect()
}

fn sub_list(sub: &str, query: &str) -> String {
    format!("/subscriptions/{sub}/providers/{VM}?{API}{query}")
}

#[tokio::test]
async fn status_only_lists_carry_each_vms_instance_view_statuses() {
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    let sub = "sub-status";
    network(&r, sub).await;
    for name in ["vm-a", "vm-b"] {
        vm(&r, sub, name).await;
    }

    let plain = send(&r, Method::GET, &sub_list(sub, ""), None).await;
    assert_eq!(plain.status, StatusCode::OK, "{:?}", plain.body);
    let vms = plain.body["value"].as_array().unwrap();
    assert_eq!(vms.len(), 2);
    assert!(
        vms.iter()
            .all(|v| v["properties"].get("instanceView").is_none()),
        "no statuses without statusOnly: {vms:?}"
    );

    for query in ["&statusOnly=true", "&statusonly=True"] {
        let a = send(&r, Method::GET, &sub_list(sub, query), None).await;
        assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
        let vms = a.body["value"].as_array().unwrap();
        assert_eq!(vms.len(), 2);
        for v in vms {
            let name = v["name"].as_str().unwrap();
            let listed = codes(&v["properties"]["instanceView"]);
            assert_eq!(
                listed,
                ["ProvisioningState/succeeded", "PowerState/running"],
                "{name}"
            );
            let own = send(
                &r,
                Method::GET,
                &u(&format!("{}/instanceView", res_path(sub, VM, name))),
                None,
            )
            .await;
            assert_eq!(codes(&own.body), listed, "{name}: the same statuses");
            assert_eq!(v["properties"]["provisioningState"], "Succeeded");
        }
    }

    // `false` is the plain list.
    let a = send(&r, Method::GET, &sub_list(sub, "&statusOnly=false"), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body["value"][0]["properties"]
        .get("instanceView")
        .is_none());

    // The resource group's list takes it too.
    let rg_list = format!("{}/providers/{VM}?{API}&statusOnly=true", rg_path(sub));
    let a = send(&r, Method::GET, &rg_list, None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["value"].as_array().unwrap().len(), 2);
    assert_eq!(
        codes(&a.body["value"][1]["properties"]["instanceView"]),
        ["ProvisioningState/succeeded", "PowerState/running"]
    );

    // Other kinds' lists ignore it, as their resource providers do.
    let nics = format!("{}/providers/{NIC}?{API}&statusOnly=maybe", rg_path(sub));
    let a = send(&r, Method::GET, &nics, None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["value"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_bad_status_only_is_an_invalid_parameter() {
    let (_ctx, _arm, r) = arm(0.0, 1.0);
    let sub = "sub-bad";
    network(&r, sub).await;
    vm(&r, sub, "vm-a").await;
    for bad in ["yes", "1", ""] {
        let a = send(
            &r,
            Method::GET,
            &sub_list(sub, &format!("&statusOnly={bad}")),
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", a.body);
        assert_eq!(a.code(), "InvalidParameter", "{bad}");
        assert_eq!(a.body["error"]["target"], "statusOnly", "{bad}");
        let msg = a.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains("statusOnly"), "{msg}");
    }
    let rg_list = format!("{}/providers/{VM}?{API}&statusOnly=on", rg_path(sub));
    let a = send(&r, Method::GET, &rg_list, None).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.code(), "InvalidParameter");
}

#[tokio::test]
async fn pages_keep_status_only_and_each_costs_one_read() {
    let (_ctx, arm, r) = arm(0.0, 1.0);
    let sub = "sub-pages";
    network(&r, sub).await;
    for i in 0..120 {
        vm(&r, sub, &format!("vm{i:03}")).await;
    }
    // Two reads left, and (nearly) no refill: a third read is refused.
    let mut cfg = config(1.0);
    cfg.throttle.enabled = true;
    cfg.throttle.reads = BucketLimit {
        burst: 2,
        refill_per_s: 0.001,
    };
    arm.set_config(cfg);
    let first = send(&r, Method::GET, &sub_list(sub, "&statusOnly=true"), None).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let page = first.body["value"].as_array().unwrap();
    assert_eq!(page.len(), 100);
    assert_eq!(page[0]["name"], "vm000");
    let running = |v: &Value| {
        codes(&v["properties"]["instanceView"]).contains(&"PowerState/running".to_string())
    };
    assert!(page.iter().all(running));
    let next = first.body["nextLink"].as_str().unwrap();
    assert!(next.contains("statusOnly=true"), "{next}");
    assert!(next.contains("$skiptoken=100"), "{next}");
    let second = send(&r, Method::GET, &path_of(next), None).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let page = second.body["value"].as_array().unwrap();
    assert_eq!(page.len(), 20);
    assert_eq!(page[0]["name"], "vm100");
    assert!(page.iter().all(running));
    assert!(second.body.get("nextLink").is_none());
    let third = send(&r, Method::GET, &sub_list(sub, "&statusOnly=true"), None).await;
    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "two pages were two reads: {:?}",
        third.body
    );
}

#[tokio::test]
async fn statuses_follow_the_vms_state() {
    let (ctx, arm, r) = arm(0.0, 1.0);
    let sub = "sub-states";
    network(&r, sub).await;
    vm(&r, sub, "vm-up").await;
    // A VM still being created, and one being deleted: slow operations now.
    ctx.set_time_scale(1.0).unwrap();
    arm.set_config(config(600.0));
    vm(&r, sub, "vm-new").await;
    let del = send(&r, Method::DELETE, &u(&res_path(sub, VM, "vm-up")), None).await;
    assert!(del.status.is_success(), "{:?}", del.body);
    let a = send(&r, Method::GET, &sub_list(sub, "&statusOnly=true"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    let by_name = |n: &str| -> Vec<String> {
        let v = a.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == n)
            .unwrap_or_else(|| panic!("{n} listed: {}", a.body));
        codes(&v["properties"]["instanceView"])
    };
    assert_eq!(
        by_name("vm-new"),
        ["ProvisioningState/creating", "PowerState/starting"]
    );
    assert_eq!(
        by_name("vm-up"),
        ["ProvisioningState/deleting", "PowerState/deallocating"]
    );
}
