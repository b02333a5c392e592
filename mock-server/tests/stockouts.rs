//! Stockouts: the control API, and each cloud's capacity error with
//! nothing created.

mod capacity_support;
mod ec2_support;
mod imds_support;

use aws_sdk_ec2::error::ProvideErrorMetadata;

use capacity_support::*;
use serde_json::{json, Value};

fn stockouts(rules: Value) -> Option<Value> {
    Some(json!({ "stockouts": rules }))
}

#[tokio::test]
async fn control_api_replaces_reports_and_clears_the_set() {
    let mock = mock(0.01).await;
    let rules = json!([
        {"cloud": "aws", "location": "us-east-1a", "instance_type": "m5.large", "capacity_type": "spot", "code": null},
        {"cloud": "gcp", "location": "*", "instance_type": "e2-*"}
    ]);
    let got = control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let got = control(&mock, "GET", "/_mock/stockouts", None).await;
    let v = got.json();
    assert_eq!(v["stockouts"].as_array().unwrap().len(), 2);
    assert_eq!(v["stockouts"][0]["capacity_type"], "spot");
    assert_eq!(v["stockouts"][0]["code"], Value::Null);
    assert_eq!(v["stockouts"][1]["capacity_type"], "any", "default any");
    let got = control(&mock, "DELETE", "/_mock/stockouts", None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), json!({"stockouts": []}));
}

#[tokio::test]
async fn bad_stockout_bodies_are_400_naming_the_field() {
    let mock = mock(0.01).await;
    for (body, field) in [
        (
            json!({"stockouts": [{"cloud": "ibm", "location": "*", "instance_type": "*"}]}),
            "cloud",
        ),
        (
            json!({"stockouts": [{"cloud": "aws", "location": "", "instance_type": "*"}]}),
            "location",
        ),
        (
            json!({"stockouts": [{"cloud": "aws", "location": "*"}]}),
            "instance_type",
        ),
        (
            json!({"stockouts": [{"cloud": "aws", "location": "*", "instance_type": "*", "capacity_type": "reserved"}]}),
            "capacity_type",
        ),
        (
            json!({"stockouts": [{"cloud": "aws", "location": "*", "instance_type": "*", "code": "bad code!"}]}),
            "code",
        ),
        (
            json!({"stockouts": [{"cloud": "aws", "location": "*", "instance_type": "*", "zone": "x"}]}),
            "zone",
        ),
        (json!({"rules": []}), "rules"),
    ] {
        let got = control(&mock, "PUT", "/_mock/stockouts", Some(body.clone())).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text());
        let msg = got.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(field), "{body}: {msg}");
    }
    let got = control(&mock, "GET", "/_mock/stockouts", None).await;
    assert_eq!(got.json(), json!({"stockouts": []}), "nothing applied");
}

const RUN: [(&str, &str); 5] = [
    ("Action", "RunInstances"),
    ("ImageId", "ami-12345678"),
    ("InstanceType", "m5.large"),
    ("MinCount", "1"),
    ("MaxCount", "1"),
];

async fn ec2_instance_count(mock: &skyfleet_mock::MockCloud) -> usize {
    let (_, body) = ec2_raw(mock, &[("Action", "DescribeInstances")]).await;
    body.matches("<instanceId>").count()
}

#[tokio::test]
async fn ec2_stockout_answers_insufficient_capacity_500_and_creates_nothing() {
    let mock = mock(0.001).await;
    let rules = json!([{"cloud": "aws", "location": "eu-west-1a", "instance_type": "m5.*", "capacity_type": "spot"}]);
    control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    let zone = [("Placement.AvailabilityZone", "eu-west-1a")];
    let mut spot: Vec<(&str, &str)> = RUN.to_vec();
    spot.extend(SPOT);
    spot.extend(zone);
    let (status, body) = ec2_raw(&mock, &spot).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("<Code>InsufficientInstanceCapacity</Code>"),
        "{body}"
    );
    assert!(body.contains("eu-west-1a"), "{body}");
    assert_eq!(ec2_instance_count(&mock).await, 0);
    // On-demand in the same zone, and spot in another zone, launch.
    let mut on_demand: Vec<(&str, &str)> = RUN.to_vec();
    on_demand.extend(zone);
    let (status, body) = ec2_raw(&mock, &on_demand).await;
    assert_eq!(status, 200, "{body}");
    let mut other: Vec<(&str, &str)> = RUN.to_vec();
    other.extend(SPOT);
    other.push(("Placement.AvailabilityZone", "eu-west-1b"));
    let (status, body) = ec2_raw(&mock, &other).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ec2_instance_count(&mock).await, 2);
    // aws-sdk-ec2 (one attempt) reads the code.
    let rules = json!([{"cloud": "aws", "location": "us-east-1a", "instance_type": "m5.large", "capacity_type": "spot"}]);
    control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    let client = ec2_support::ec2_with(&mock, "AKIDSTOCKOUT", 1).await;
    let err = client
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::M5Large)
        .min_count(1)
        .max_count(1)
        .placement(
            aws_sdk_ec2::types::Placement::builder()
                .availability_zone("us-east-1a")
                .build(),
        )
        .instance_market_options(
            aws_sdk_ec2::types::InstanceMarketOptionsRequest::builder()
                .market_type(aws_sdk_ec2::types::MarketType::Spot)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InsufficientInstanceCapacity"), "{err:?}");
}

#[tokio::test]
async fn ec2_quota_codes_answer_400() {
    let mock = mock(0.001).await;
    let rules = json!([
        {"cloud": "aws", "location": "*", "instance_type": "c5.*", "code": "VcpuLimitExceeded"},
        {"cloud": "aws", "location": "*", "instance_type": "*", "capacity_type": "spot", "code": "MaxSpotInstanceCountExceeded"}
    ]);
    control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    let mut c5: Vec<(&str, &str)> = RUN.to_vec();
    c5[2] = ("InstanceType", "c5.xlarge");
    let (status, body) = ec2_raw(&mock, &c5).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>VcpuLimitExceeded</Code>"), "{body}");
    let mut spot: Vec<(&str, &str)> = RUN.to_vec();
    spot.extend(SPOT);
    let (status, body) = ec2_raw(&mock, &spot).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("<Code>MaxSpotInstanceCountExceeded</Code>"),
        "{body}"
    );
    assert_eq!(ec2_instance_count(&mock).await, 0);
    // Without a zone, the mock's first assignment (the region's first
    // zone) is the location matched.
    let rules = json!([{"cloud": "aws", "location": "eu-west-1a", "instance_type": "*"}]);
    control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    let (status, body) = ec2_raw(&mock, &RUN).await;
    assert_eq!(status, 500, "{body}");
}

#[tokio::test]
async fn gce_stockout_ends_the_operation_with_the_error_and_no_instance() {
    let mock = mock(0.01).await;
    let rules = json!([
        {"cloud": "gcp", "location": imds_support::ZONE, "instance_type": "e2-small", "capacity_type": "spot"},
        {"cloud": "gcp", "location": "*", "instance_type": "n2-*", "code": "QUOTA_EXCEEDED"}
    ]);
    control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    for (name, machine, code) in [
        ("s1", "e2-small", "ZONE_RESOURCE_POOL_EXHAUSTED"),
        ("s2", "n2-standard-2", "QUOTA_EXCEEDED"),
    ] {
        let got = gce_insert(
            &mock,
            "p-so",
            name,
            machine,
            json!({"provisioningModel": "SPOT"}),
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        let op = got.json()["name"].as_str().unwrap().to_string();
        let done = until(20, "operation DONE", || async {
            let v = json_call(
                "GET",
                &format!("{}/{op}", gce_operations(&mock, "p-so")),
                None,
            )
            .await
            .json();
            (v["status"] == "DONE").then_some(v)
        })
        .await;
        assert_eq!(done["error"]["errors"][0]["code"], code, "{done}");
        assert!(done["httpErrorStatusCode"].as_u64().is_some(), "{done}");
        assert_eq!(gce_get(&mock, "p-so", name).await.status, 404);
    }
    // Standard capacity of the same type is there.
    let got = gce_insert(&mock, "p-so", "s3", "e2-small", json!({})).await;
    assert_eq!(got.status, 200);
    gce_wait_status(&mock, "p-so", "s3", "RUNNING").await;
}

#[tokio::test]
async fn azure_stockout_fails_the_put_operation_and_leaves_the_vm_failed() {
    let mock = mock(0.01).await;
    let rules = json!([
        {"cloud": "azure", "location": "westeurope", "instance_type": "Standard_D2s_v5", "capacity_type": "spot"},
        {"cloud": "azure", "location": "*", "instance_type": "*", "capacity_type": "on_demand", "code": "SkuNotAvailable"}
    ]);
    control(&mock, "PUT", "/_mock/stockouts", stockouts(rules)).await;
    for (name, spot, code) in [
        (
            "a1",
            json!({"priority": "Spot", "evictionPolicy": "Delete"}),
            "AllocationFailed",
        ),
        ("a2", json!({}), "SkuNotAvailable"),
    ] {
        let nic = azure_network(&mock, name).await;
        let url = arm_url(&mock, &vm_path(name));
        let got = json_call("PUT", &url, Some(vm_body(name, &nic, spot))).await;
        assert_eq!(got.status, 201, "{}", got.text());
        let op_url = got.header("azure-asyncoperation").unwrap().to_string();
        let op = until(20, "operation Failed", || async {
            let v = json_call("GET", &op_url, None).await.json();
            (v["status"] != "InProgress").then_some(v)
        })
        .await;
        assert_eq!(op["status"], "Failed", "{op}");
        assert_eq!(op["error"]["code"], code, "{op}");
        let vm = json_call("GET", &url, None).await.json();
        assert_eq!(vm["properties"]["provisioningState"], "Failed", "{vm}");
    }
}
