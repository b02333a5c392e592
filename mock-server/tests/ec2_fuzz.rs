//! Property test: random EC2 form bodies, headers and paths never make the
//! mock panic, and every answer is well-formed XML in EC2's shapes (an
//! error is `Response/Errors/Error/{Code,Message}` plus `RequestID`).

mod ec2_support;

use axum::body::Body;
use ec2_support::xmlcheck;
use http_body_util::BodyExt;
use proptest::prelude::*;
use skyfleet_mock::MockCloud;
use tower::ServiceExt;

const ACTIONS: &[&str] = &[
    "RunInstances",
    "DescribeInstances",
    "DescribeInstanceStatus",
    "TerminateInstances",
    "StopInstances",
    "StartInstances",
    "CreateTags",
    "DeleteTags",
    "DescribeTags",
    "DescribeRegions",
    "DescribeAvailabilityZones",
    "DescribeInstanceTypes",
    "CreateLaunchTemplate",
    "DescribeLaunchTemplates",
    "DeleteLaunchTemplate",
    "CreateVolume",
    "DescribeVolumes",
    "DeleteVolume",
    "AttachVolume",
    "DetachVolume",
    "CreateFleet",
    "",
];

const KEYS: &[&str] = &[
    "ImageId",
    "InstanceType",
    "MinCount",
    "MaxCount",
    "ClientToken",
    "DryRun",
    "UserData",
    "SubnetId",
    "Placement.AvailabilityZone",
    "InstanceId.1",
    "InstanceId.2",
    "ResourceId.1",
    "Tag.1.Key",
    "Tag.1.Value",
    "Filter.1.Name",
    "Filter.1.Value.1",
    "Filter.2.Name",
    "MaxResults",
    "NextToken",
    "IncludeAllInstances",
    "TagSpecification.1.ResourceType",
    "TagSpecification.1.Tag.1.Key",
    "TagSpecification.1.Tag.1.Value",
    "InstanceMarketOptions.MarketType",
    "InstanceMarketOptions.SpotOptions.MaxPrice",
    "RegionName.1",
    "ZoneName.1",
    "InstanceType.1",
    "LaunchTemplateName",
    "LaunchTemplateName.1",
    "LaunchTemplateId",
    "LaunchTemplateId.1",
    "LaunchTemplateData.ImageId",
    "LaunchTemplateData.InstanceType",
    "LaunchTemplateData.SecurityGroupId.1",
    "LaunchTemplateData.UserData",
    "LaunchTemplateData.InstanceMarketOptions.MarketType",
    "LaunchTemplateData.TagSpecification.1.ResourceType",
    "LaunchTemplateData.TagSpecification.1.Tag.1.Key",
    "LaunchTemplate.LaunchTemplateName",
    "LaunchTemplate.LaunchTemplateId",
    "LaunchTemplate.Version",
    "AvailabilityZone",
    "Size",
    "VolumeType",
    "Iops",
    "Throughput",
    "VolumeId",
    "VolumeId.1",
    "Device",
    "Force",
    "BlockDeviceMapping.1.DeviceName",
    "BlockDeviceMapping.1.Ebs.VolumeSize",
    "BlockDeviceMapping.1.Ebs.VolumeType",
    "BlockDeviceMapping.1.Ebs.DeleteOnTermination",
    "Type",
    "LaunchTemplateConfigs.1.LaunchTemplateSpecification.LaunchTemplateId",
    "LaunchTemplateConfigs.1.LaunchTemplateSpecification.Version",
    "LaunchTemplateConfigs.1.Overrides.1.InstanceType",
    "LaunchTemplateConfigs.1.Overrides.1.WeightedCapacity",
    "LaunchTemplateConfigs.1.Overrides.1.Priority",
    "TargetCapacitySpecification.TotalTargetCapacity",
    "TargetCapacitySpecification.SpotTargetCapacity",
    "TargetCapacitySpecification.DefaultTargetCapacityType",
    "OnDemandOptions.AllocationStrategy",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("i-0123456789abcdef0".to_string()),
        Just("ami-12345678".to_string()),
        Just("1".to_string()),
        Just("5".to_string()),
        Just("true".to_string()),
        Just("instance".to_string()),
        Just("tag:Name".to_string()),
        Just("instance-state-name".to_string()),
        Just("running".to_string()),
        Just("us-east-1a".to_string()),
        Just("spot".to_string()),
        Just("m5.large".to_string()),
        Just("workers".to_string()),
        Just("lt-0123456789abcdef0".to_string()),
        Just("$Latest".to_string()),
        Just("gp3".to_string()),
        Just("vol-0123456789abcdef0".to_string()),
        Just("/dev/sdf".to_string()),
        Just("instant".to_string()),
        Just("prioritized".to_string()),
        "[a-z0-9.:*?-]{0,12}",
        any::<String>(),
    ]
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form() -> impl Strategy<Value = Vec<u8>> {
    let structured = (
        prop::sample::select(ACTIONS),
        any::<bool>(),
        prop::collection::vec((prop::sample::select(KEYS), value()), 0..8),
    )
        .prop_map(|(action, version, pairs)| {
            let mut s = format!("Action={}", encode(action));
            if version {
                s.push_str("&Version=2016-11-15");
            }
            for (k, v) in pairs {
                s.push('&');
                s.push_str(&encode(k));
                s.push('=');
                s.push_str(&encode(&v));
            }
            s.into_bytes()
        });
    prop_oneof![
        4 => structured,
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => "[A-Za-z=&%.0-9+]{0,200}".prop_map(String::into_bytes),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just("/".to_string()),
        1 => "/[a-z0-9._~-]{1,20}(/[a-z0-9._-]{0,10}){0,3}".prop_filter(
            "EC2's part of the path space",
            |p| !p.starts_with("/_mock") && !p.starts_with("/compute") && p != "/token"
                && !p.contains("oauth2") && !p.starts_with("/subscriptions")
                && !p.starts_with("/metadata")
        ),
    ]
}

fn method() -> impl Strategy<Value = http::Method> {
    prop_oneof![
        8 => Just(http::Method::POST),
        1 => Just(http::Method::GET),
        1 => Just(http::Method::PUT),
        1 => Just(http::Method::DELETE),
    ]
}

fn auth() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(
            "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0".to_string()
        )),
        "[ -~]{0,80}".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_get_well_formed_xml(
        body in form(),
        path in path(),
        method in method(),
        auth in auth(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mock = MockCloud::builder().time_scale(0.001).start().await.unwrap();
            let mut req = http::Request::builder()
                .method(method.clone())
                .uri(&path)
                .header("content-type", "application/x-www-form-urlencoded; charset=utf-8");
            if let Some(a) = &auth {
                req = req.header("authorization", a.as_str());
            }
            let req = req.body(Body::from(body.clone())).unwrap();
            let resp = mock.router().oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let text = std::str::from_utf8(&bytes).expect("UTF-8 body");
            let root = xmlcheck::parse(text)
                .unwrap_or_else(|e| panic!("not well-formed ({e}): {text}"));
            if status >= 400 {
                prop_assert_eq!(&root.name, "Response");
                let error = root.child("Errors").and_then(|e| e.child("Error"))
                    .expect("Errors/Error");
                prop_assert!(!error.child("Code").expect("Code").text.is_empty());
                prop_assert!(error.child("Message").is_some());
                prop_assert!(!root.child("RequestID").expect("RequestID").text.is_empty());
            } else {
                prop_assert_eq!(status, 200);
                prop_assert!(root.name.ends_with("Response"));
                prop_assert!(root.child("requestId").is_some());
            }
            if path != "/" {
                prop_assert!(status == 404, "unknown path {} answered {}", path, status);
            }
            Ok(())
        })?;
    }
}

/// A 1 MiB body of numbered list entries must be answered quickly (no
/// quadratic scans of the parameters).
#[tokio::test]
async fn huge_lists_are_cheap() {
    use std::fmt::Write;
    let mock = MockCloud::builder().start().await.unwrap();
    for (action, key) in [
        (
            "DescribeInstances",
            "Filter.{}.Name=tag:x&Filter.{}.Value.1=y",
        ),
        (
            "RunInstances",
            "TagSpecification.{}.ResourceType=instance&TagSpecification.{}.Tag.1.Key=Name",
        ),
        (
            "DeleteTags",
            "ResourceId.1=i-0123456789abcdef0&Tag.{}.Key=k",
        ),
        ("DescribeInstances", "InstanceId.{}=i-0123456789abcdef0"),
        ("DescribeInstanceTypes", "InstanceType.{}=m5.large"),
        (
            "CreateLaunchTemplate",
            "LaunchTemplateName=big&LaunchTemplateData.SecurityGroupId.{}=sg-11111111",
        ),
        (
            "CreateLaunchTemplate",
            "LaunchTemplateName=big&LaunchTemplateData.TagSpecification.{}.ResourceType=instance",
        ),
        ("DescribeLaunchTemplates", "LaunchTemplateName.{}=nope"),
        ("DescribeVolumes", "VolumeId.{}=vol-0123456789abcdef0"),
        (
            "CreateVolume",
            "AvailabilityZone=us-east-1a&Size=8&TagSpecification.{}.ResourceType=volume",
        ),
    ] {
        let mut body = format!(
            "Action={action}&Version=2016-11-15&ImageId=ami-12345678&MinCount=1&MaxCount=1"
        );
        let mut n = 1;
        while body.len() < 1000 * 1024 {
            let _ = write!(body, "&{}", key.replace("{}", &n.to_string()));
            n += 1;
        }
        let started = std::time::Instant::now();
        let req = http::Request::builder()
            .method("POST")
            .uri("/")
            .body(Body::from(body))
            .unwrap();
        let resp = mock.router().oneshot(req).await.unwrap();
        assert!(
            resp.status().is_client_error(),
            "{action}: {}",
            resp.status()
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{action} took {:?}",
            started.elapsed()
        );
    }
}
