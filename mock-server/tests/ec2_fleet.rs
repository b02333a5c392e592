//! CreateFleet of type `instant` driven by the real aws-sdk-ec2 client:
//! per-override errors from stockouts, the next override tried, the
//! on-demand/spot split, allocation order, tags and ClientToken.

mod ec2_support;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest,
    FleetOnDemandAllocationStrategy, FleetType, InstanceLifecycle, InstanceType,
    OnDemandOptionsRequest, RequestLaunchTemplateData, ResourceType, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use aws_sdk_ec2::Client;
use ec2_support::{ec2, mock};
use skyfleet_mock::capacity::Stockout;

async fn template(client: &Client, name: &str) -> String {
    client
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-12345678")
                .instance_type(InstanceType::T3Micro)
                .tag_specifications(
                    aws_sdk_ec2::types::LaunchTemplateTagSpecificationRequest::builder()
                        .resource_type(ResourceType::Instance)
                        .tags(Tag::builder().key("from").value("template").build())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_string()
}

fn overrides(t: InstanceType, zone: &str, priority: f64) -> FleetLaunchTemplateOverridesRequest {
    FleetLaunchTemplateOverridesRequest::builder()
        .instance_type(t)
        .availability_zone(zone)
        .priority(priority)
        .build()
}

fn config(
    id: &str,
    o: Vec<FleetLaunchTemplateOverridesRequest>,
) -> FleetLaunchTemplateConfigRequest {
    FleetLaunchTemplateConfigRequest::builder()
        .launch_template_specification(
            FleetLaunchTemplateSpecificationRequest::builder()
                .launch_template_id(id)
                .version("$Latest")
                .build(),
        )
        .set_overrides(Some(o))
        .build()
}

fn capacity(total: i32, spot: i32) -> TargetCapacitySpecificationRequest {
    TargetCapacitySpecificationRequest::builder()
        .total_target_capacity(total)
        .spot_target_capacity(spot)
        .default_target_capacity_type(DefaultTargetCapacityType::OnDemand)
        .build()
}

fn stock_out(mock: &skyfleet_mock::MockCloud, zone: &str, instance_type: &str) {
    let rule: Stockout = serde_json::from_value(serde_json::json!({
        "cloud": "aws", "location": zone, "instance_type": instance_type
    }))
    .unwrap();
    mock.ctx().capacity().set_stockouts(vec![rule]).unwrap();
}

#[tokio::test]
async fn stocked_out_override_is_an_error_item_and_the_next_one_launches() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDFLEET").await;
    let lt = template(&client, "fleet-lt").await;
    stock_out(&mock, "us-east-1a", "m5.large");

    let out = client
        .create_fleet()
        .r#type(FleetType::Instant)
        .launch_template_configs(config(
            &lt,
            vec![
                overrides(InstanceType::M5Large, "us-east-1a", 1.0),
                overrides(InstanceType::C5Large, "us-east-1a", 2.0),
            ],
        ))
        .target_capacity_specification(capacity(3, 0))
        .on_demand_options(
            OnDemandOptionsRequest::builder()
                .allocation_strategy(FleetOnDemandAllocationStrategy::Prioritized)
                .build(),
        )
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key("Name").value("fleet-node").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fleet_id = out.fleet_id().unwrap();
    assert!(fleet_id.starts_with("fleet-"), "{fleet_id}");

    let errors = out.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].error_code(), Some("InsufficientInstanceCapacity"));
    assert!(errors[0].error_message().unwrap().contains("m5.large"));
    assert_eq!(errors[0].lifecycle(), Some(&InstanceLifecycle::OnDemand));
    let lto = errors[0].launch_template_and_overrides().unwrap();
    assert_eq!(
        lto.overrides().unwrap().instance_type(),
        Some(&InstanceType::M5Large)
    );
    assert_eq!(
        lto.launch_template_specification()
            .unwrap()
            .launch_template_id(),
        Some(lt.as_str())
    );

    let instances = out.instances();
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(instances[0].instance_type(), Some(&InstanceType::C5Large));
    assert_eq!(instances[0].lifecycle(), Some(&InstanceLifecycle::OnDemand));
    let ids = instances[0].instance_ids().to_vec();
    assert_eq!(ids.len(), 3);

    let described = client
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap();
    let all: Vec<_> = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(all.len(), 3);
    for i in all {
        assert_eq!(i.instance_type(), Some(&InstanceType::C5Large));
        assert_eq!(
            i.placement().unwrap().availability_zone(),
            Some("us-east-1a")
        );
        assert_eq!(i.instance_lifecycle(), None, "on-demand");
        let tag = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .map(str::to_string)
        };
        assert_eq!(tag("Name").as_deref(), Some("fleet-node"));
        assert_eq!(tag("from").as_deref(), Some("template"));
        assert_eq!(tag("aws:ec2:fleet-id").as_deref(), Some(fleet_id));
        assert_eq!(
            tag("aws:ec2launchtemplate:id").as_deref(),
            Some(lt.as_str())
        );
    }
}

#[tokio::test]
async fn spot_and_on_demand_split_lowest_price_and_all_out() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDFLEETSPLIT").await;
    let lt = template(&client, "fleet-split").await;
    // lowest-price (the default) picks the smaller type first.
    let out = client
        .create_fleet()
        .r#type(FleetType::Instant)
        .launch_template_configs(config(
            &lt,
            vec![
                overrides(InstanceType::M5Xlarge, "us-east-1b", 1.0),
                overrides(InstanceType::T3Small, "us-east-1b", 2.0),
            ],
        ))
        .target_capacity_specification(capacity(5, 2))
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{:?}", out.errors());
    let by_lifecycle = |l: InstanceLifecycle| {
        out.instances()
            .iter()
            .filter(|i| i.lifecycle() == Some(&l))
            .map(|i| (i.instance_type().cloned(), i.instance_ids().len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        by_lifecycle(InstanceLifecycle::OnDemand),
        vec![(Some(InstanceType::T3Small), 3)]
    );
    assert_eq!(
        by_lifecycle(InstanceLifecycle::Spot),
        vec![(Some(InstanceType::T3Small), 2)]
    );
    let spot_ids: Vec<String> = out
        .instances()
        .iter()
        .filter(|i| i.lifecycle() == Some(&InstanceLifecycle::Spot))
        .flat_map(|i| i.instance_ids().to_vec())
        .collect();
    let d = client
        .describe_instances()
        .set_instance_ids(Some(spot_ids))
        .send()
        .await
        .unwrap();
    for i in d.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(
            i.instance_lifecycle(),
            Some(&aws_sdk_ec2::types::InstanceLifecycleType::Spot)
        );
    }

    // Every override stocked out: one error per override, no instances.
    stock_out(&mock, "*", "*");
    let out = client
        .create_fleet()
        .r#type(FleetType::Instant)
        .launch_template_configs(config(
            &lt,
            vec![
                overrides(InstanceType::M5Xlarge, "us-east-1b", 1.0),
                overrides(InstanceType::T3Small, "us-east-1b", 2.0),
            ],
        ))
        .target_capacity_specification(capacity(1, 0))
        .send()
        .await
        .unwrap();
    assert!(out.instances().is_empty());
    let codes: Vec<_> = out
        .errors()
        .iter()
        .map(|e| e.error_code().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "InsufficientInstanceCapacity",
            "InsufficientInstanceCapacity"
        ]
    );
    // lowest-price order shows in the errors too.
    assert_eq!(
        out.errors()[0]
            .launch_template_and_overrides()
            .unwrap()
            .overrides()
            .unwrap()
            .instance_type(),
        Some(&InstanceType::T3Small)
    );
}

#[tokio::test]
async fn client_token_and_request_errors() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDFLEETTOK").await;
    let lt = template(&client, "fleet-tok").await;
    let fleet = |total: i32, token: &str| {
        client
            .create_fleet()
            .r#type(FleetType::Instant)
            .client_token(token)
            .launch_template_configs(config(
                &lt,
                vec![overrides(InstanceType::T3Micro, "us-east-1a", 1.0)],
            ))
            .target_capacity_specification(capacity(total, 0))
            .send()
    };
    let first = fleet(2, "tok-1").await.unwrap();
    let again = fleet(2, "tok-1").await.unwrap();
    assert_eq!(first.fleet_id(), again.fleet_id());
    assert_eq!(
        first.instances()[0].instance_ids(),
        again.instances()[0].instance_ids()
    );
    let live = client.describe_instances().send().await.unwrap();
    let n: usize = live
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum();
    assert_eq!(n, 2, "the retry launched nothing");
    let e = fleet(3, "tok-1").await.unwrap_err();
    assert_eq!(
        e.as_service_error().unwrap().code(),
        Some("IdempotentParameterMismatch")
    );

    let e = client
        .create_fleet()
        .r#type(FleetType::Maintain)
        .launch_template_configs(config(&lt, vec![]))
        .target_capacity_specification(capacity(1, 0))
        .send()
        .await
        .unwrap_err();
    let se = e.as_service_error().unwrap();
    assert_eq!(se.code(), Some("InvalidParameterValue"));
    assert!(
        se.message().unwrap().contains("instant"),
        "{:?}",
        se.message()
    );

    let e = client
        .create_fleet()
        .r#type(FleetType::Instant)
        .launch_template_configs(config("lt-0123456789abcdef0", vec![]))
        .target_capacity_specification(capacity(1, 0))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.as_service_error().unwrap().code(),
        Some("InvalidLaunchTemplateId.NotFound")
    );

    let e = client
        .create_fleet()
        .r#type(FleetType::Instant)
        .launch_template_configs(config(&lt, vec![]))
        .target_capacity_specification(capacity(1, 2))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.as_service_error().unwrap().code(),
        Some("InvalidParameterValue")
    );
}
