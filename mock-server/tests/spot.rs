//! Each cloud's spot request shape, stored and reported back as the cloud
//! does, and bad values refused with the cloud's own error.

mod capacity_support;
mod ec2_support;
mod imds_support;

use aws_sdk_ec2::types::{
    InstanceMarketOptionsRequest, MarketType, SpotInstanceType, SpotMarketOptions,
};
use capacity_support::*;
use serde_json::json;

#[tokio::test]
async fn ec2_spot_launch_is_described_with_its_lifecycle_and_request_id() {
    let mock = ec2_support::mock(0.001).await;
    let client = ec2_support::ec2(&mock, "AKIDSPOTSHAPE").await;
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .max_price("0.05")
                        .spot_instance_type(SpotInstanceType::OneTime)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = run.instances()[0].instance_id().unwrap().to_string();
    let out = client
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    assert!(i.spot_instance_request_id().unwrap().starts_with("sir-"));
    // An on-demand launch has neither.
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let i = &run.instances()[0];
    assert!(i.instance_lifecycle().is_none());
    assert!(i.spot_instance_request_id().is_none());
    let od = i.instance_id().unwrap().to_string();
    let res = control(&mock, "GET", "/_mock/resources?cloud=aws", None)
        .await
        .json();
    let cap = |wanted: &str| {
        res.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == wanted)
            .map(|r| r["capacity_type"].clone())
            .unwrap()
    };
    assert_eq!(cap(&id), json!("spot"));
    assert_eq!(cap(&od), json!("on_demand"));
}

#[tokio::test]
async fn ec2_bad_market_type_is_invalid_parameter_value() {
    let mock = mock(0.001).await;
    let (status, body) = ec2_raw(
        &mock,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-12345678"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("InstanceMarketOptions.MarketType", "cheap"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("<Code>InvalidParameterValue</Code>"),
        "{body}"
    );
    assert!(body.contains("MarketType"), "{body}");
    for (behavior, code) in [
        ("explode", "InvalidParameterValue"),
        ("stop", "InvalidParameterCombination"),
    ] {
        let (status, body) = ec2_raw(
            &mock,
            &[
                ("Action", "RunInstances"),
                ("ImageId", "ami-12345678"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceMarketOptions.MarketType", "spot"),
                (
                    "InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior",
                    behavior,
                ),
            ],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(&format!("<Code>{code}</Code>")), "{body}");
    }
}

#[tokio::test]
async fn gce_spot_scheduling_is_stored_and_reported_by_get_and_list() {
    let mock = mock(0.01).await;
    let got = gce_insert(
        &mock,
        "p-spot",
        "w1",
        "e2-small",
        json!({"provisioningModel": "SPOT", "instanceTerminationAction": "DELETE"}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let got = gce_insert(
        &mock,
        "p-spot",
        "w2",
        "e2-small",
        json!({"preemptible": true}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let v = gce_get(&mock, "p-spot", "w1").await.json();
    let s = &v["scheduling"];
    assert_eq!(s["provisioningModel"], "SPOT");
    assert_eq!(s["instanceTerminationAction"], "DELETE");
    assert_eq!(s["automaticRestart"], false);
    assert_eq!(s["onHostMaintenance"], "TERMINATE");
    assert_eq!(s["preemptible"], false);
    let v = gce_get(&mock, "p-spot", "w2").await.json();
    assert_eq!(v["scheduling"]["preemptible"], true);
    assert_eq!(v["scheduling"]["instanceTerminationAction"], "STOP");
    let list = json_call("GET", &gce_instances(&mock, "p-spot"), None)
        .await
        .json();
    let items = list["items"].as_array().unwrap();
    let w1 = items.iter().find(|i| i["name"] == "w1").unwrap();
    assert_eq!(w1["scheduling"]["provisioningModel"], "SPOT");
    // A standard instance says so.
    gce_insert(&mock, "p-spot", "w3", "e2-small", json!({})).await;
    let v = gce_get(&mock, "p-spot", "w3").await.json();
    assert_eq!(v["scheduling"]["provisioningModel"], "STANDARD");
    // The control API reports each instance's capacity type.
    let res = control(&mock, "GET", "/_mock/resources?cloud=gcp", None)
        .await
        .json();
    let kind_of = |name: &str| {
        res.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| (r["capacity_type"].clone(), r["instance_type"].clone()))
            .unwrap()
    };
    assert_eq!(kind_of("w1"), (json!("spot"), json!("e2-small")));
    assert_eq!(kind_of("w2").0, json!("spot"), "preemptible is spot");
    assert_eq!(kind_of("w3").0, json!("on_demand"));
}

#[tokio::test]
async fn gce_bad_scheduling_values_are_400_invalid() {
    let mock = mock(0.01).await;
    for (sched, field) in [
        (json!({"provisioningModel": "CHEAP"}), "provisioningModel"),
        (
            json!({"provisioningModel": "SPOT", "instanceTerminationAction": "KILL"}),
            "instanceTerminationAction",
        ),
        (json!({"preemptible": "yes"}), "preemptible"),
        (
            json!({"provisioningModel": "SPOT", "preemptible": true}),
            "preemptible",
        ),
    ] {
        let got = gce_insert(&mock, "p-bad", "w1", "e2-small", sched.clone()).await;
        assert_eq!(got.status, 400, "{sched}: {}", got.text());
        let v = got.json();
        assert_eq!(v["error"]["errors"][0]["reason"], "invalid", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{sched}: {v}"
        );
    }
    assert_eq!(gce_get(&mock, "p-bad", "w1").await.status, 404);
}

#[tokio::test]
async fn azure_spot_properties_are_stored_and_reported() {
    let mock = mock(0.01).await;
    let nic = azure_network(&mock, "s1").await;
    let vm = arm_put_done(
        &mock,
        &vm_path("s1"),
        vm_body(
            "s1",
            &nic,
            json!({"priority": "Spot", "evictionPolicy": "Delete", "billingProfile": {"maxPrice": 0.12}}),
        ),
    )
    .await;
    assert_eq!(vm["properties"]["provisioningState"], "Succeeded");
    assert_eq!(vm["properties"]["priority"], "Spot");
    assert_eq!(vm["properties"]["evictionPolicy"], "Delete");
    assert_eq!(vm["properties"]["billingProfile"]["maxPrice"], 0.12);
    // A Spot VM without a policy or price gets Azure's defaults.
    let nic2 = azure_network(&mock, "s2").await;
    let vm = arm_put_done(
        &mock,
        &vm_path("s2"),
        vm_body("s2", &nic2, json!({"priority": "Spot"})),
    )
    .await;
    assert_eq!(vm["properties"]["evictionPolicy"], "Deallocate");
    assert_eq!(vm["properties"]["billingProfile"]["maxPrice"], -1);
    let res = control(&mock, "GET", "/_mock/resources?cloud=azure", None)
        .await
        .json();
    let vms: Vec<_> = res
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "virtualMachine")
        .collect();
    assert_eq!(vms.len(), 2);
    for r in vms {
        assert_eq!(r["capacity_type"], "spot", "{r}");
        assert_eq!(r["location"], "westeurope");
        assert_eq!(r["instance_type"], "Standard_D2s_v5");
    }
    // The metadata service reports the priority.
    let vm_id = vm["properties"]["vmId"].as_str().unwrap();
    let got = azure_imds_get(&mock, vm_id, "instance/compute/priority").await;
    assert_eq!(got.json(), json!("Spot"));
}

#[tokio::test]
async fn azure_bad_spot_properties_are_400_invalid_parameter_with_target() {
    let mock = mock(0.01).await;
    let nic = azure_network(&mock, "b1").await;
    for (spot, target) in [
        (json!({"priority": "Cheap"}), "properties.priority"),
        (
            json!({"evictionPolicy": "Delete"}),
            "properties.evictionPolicy",
        ),
        (
            json!({"priority": "Spot", "evictionPolicy": "Hibernate"}),
            "properties.evictionPolicy",
        ),
        (
            json!({"priority": "Spot", "billingProfile": {"maxPrice": -2}}),
            "properties.billingProfile.maxPrice",
        ),
        (
            json!({"priority": "Spot", "billingProfile": {"maxPrice": "1"}}),
            "properties.billingProfile.maxPrice",
        ),
    ] {
        let got = json_call(
            "PUT",
            &arm_url(&mock, &vm_path("b1")),
            Some(vm_body("b1", &nic, spot.clone())),
        )
        .await;
        assert_eq!(got.status, 400, "{spot}: {}", got.text());
        let v = got.json();
        assert_eq!(v["error"]["code"], "InvalidParameter", "{v}");
        assert_eq!(v["error"]["target"], target, "{v}");
    }
    let got = json_call("GET", &arm_url(&mock, &vm_path("b1")), None).await;
    assert_eq!(got.status, 404);
}
