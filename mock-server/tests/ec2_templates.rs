//! DescribeInstanceTypes and launch templates driven by the real
//! aws-sdk-ec2 client.

mod ec2_support;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    ArchitectureType, Filter, InstanceType, LaunchTemplateInstanceMarketOptionsRequest,
    LaunchTemplatePlacementRequest, LaunchTemplateSpecification,
    LaunchTemplateTagSpecificationRequest, MarketType, RequestLaunchTemplateData, ResourceType,
    Tag, TagSpecification, UsageClassType,
};
use ec2_support::{ec2, mock};
use skyfleet_mock::ec2::Ec2Config;
use skyfleet_mock::MockConfig;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn template_data() -> RequestLaunchTemplateData {
    RequestLaunchTemplateData::builder()
        .image_id("ami-0abc1234")
        .instance_type(InstanceType::C5Large)
        .key_name("fleet-key")
        .security_group_ids("sg-11111111")
        .security_group_ids("sg-22222222")
        .user_data("IyEvYmluL3NoCmVjaG8gaGk=")
        .placement(
            LaunchTemplatePlacementRequest::builder()
                .availability_zone("us-east-1b")
                .build(),
        )
        .instance_market_options(
            LaunchTemplateInstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .build(),
        )
        .tag_specifications(
            LaunchTemplateTagSpecificationRequest::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("pool", "workers"))
                .tags(tag("Name", "from-template"))
                .build(),
        )
        .build()
}

#[tokio::test]
async fn describe_instance_types_selection_filters_pages_and_unknown() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDTYPES").await;

    let out = client
        .describe_instance_types()
        .instance_types(InstanceType::M5Large)
        .instance_types(InstanceType::T4gMicro)
        .send()
        .await
        .unwrap();
    let types = out.instance_types();
    assert_eq!(types.len(), 2);
    let m5 = types
        .iter()
        .find(|t| t.instance_type() == Some(&InstanceType::M5Large))
        .unwrap();
    assert_eq!(m5.current_generation(), Some(true));
    let v = m5.v_cpu_info().unwrap();
    assert_eq!(v.default_v_cpus(), Some(2));
    assert_eq!(v.default_cores(), Some(1));
    assert_eq!(v.default_threads_per_core(), Some(2));
    assert_eq!(m5.memory_info().unwrap().size_in_mib(), Some(8192));
    assert_eq!(
        m5.processor_info().unwrap().supported_architectures(),
        &[ArchitectureType::X8664]
    );
    assert_eq!(
        m5.supported_usage_classes(),
        &[UsageClassType::OnDemand, UsageClassType::Spot]
    );
    assert_eq!(m5.hypervisor().map(|h| h.as_str()), Some("nitro"));
    let t4g = types
        .iter()
        .find(|t| t.instance_type() == Some(&InstanceType::T4gMicro))
        .unwrap();
    assert_eq!(
        t4g.processor_info().unwrap().supported_architectures(),
        &[ArchitectureType::Arm64]
    );

    // Filter with a wildcard.
    let out = client
        .describe_instance_types()
        .filters(
            Filter::builder()
                .name("instance-type")
                .values("t3.*")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = out
        .instance_types()
        .iter()
        .map(|t| t.instance_type().unwrap().as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["t3.large", "t3.medium", "t3.micro", "t3.small"]);

    let out = client
        .describe_instance_types()
        .filters(
            Filter::builder()
                .name("processor-info.supported-architecture")
                .values("arm64")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.instance_types().len() >= 3);

    // Pagination: pages of 5 cover the catalogue once.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .describe_instance_types()
            .max_results(5)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        assert!(out.instance_types().len() <= 5);
        seen.extend(
            out.instance_types()
                .iter()
                .map(|t| t.instance_type().unwrap().as_str().to_string()),
        );
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let n = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), n);
    assert!(n > 10);

    let err = client
        .describe_instance_types()
        .instance_types(InstanceType::from("m5.huge"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceType"));
    assert!(err.message().unwrap().contains("m5.huge"));

    let err = client
        .describe_instance_types()
        .max_results(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let err = client
        .describe_instance_types()
        .filters(Filter::builder().name("no-such").values("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
}

#[tokio::test]
async fn launch_template_lifecycle_and_errors() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDTEMPLATES").await;

    let created = client
        .create_launch_template()
        .launch_template_name("workers-v1")
        .client_token("tok-1")
        .launch_template_data(template_data())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::LaunchTemplate)
                .tags(tag("team", "infra"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lt = created.launch_template().unwrap();
    let id = lt.launch_template_id().unwrap().to_string();
    assert!(id.starts_with("lt-"), "{id}");
    assert_eq!(lt.launch_template_name(), Some("workers-v1"));
    assert_eq!(lt.default_version_number(), Some(1));
    assert_eq!(lt.latest_version_number(), Some(1));
    assert!(lt.create_time().is_some());
    assert!(lt.created_by().unwrap().starts_with("arn:aws:iam::"));

    // ClientToken: the same request answers the same template.
    let again = client
        .create_launch_template()
        .launch_template_name("workers-v1")
        .client_token("tok-1")
        .launch_template_data(template_data())
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.launch_template().unwrap().launch_template_id(),
        Some(id.as_str())
    );

    let err = client
        .create_launch_template()
        .launch_template_name("workers-v1")
        .launch_template_data(template_data())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("InvalidLaunchTemplateName.AlreadyExistsException")
    );
    for bad in ["ab", "has space", "star*"] {
        let err = client
            .create_launch_template()
            .launch_template_name(bad)
            .launch_template_data(template_data())
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some("InvalidLaunchTemplateName.MalformedException"),
            "{bad}"
        );
    }
    let err = client
        .create_launch_template()
        .launch_template_name("bad-ami")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("nope")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidAMIID.Malformed"));

    let other = client
        .create_launch_template()
        .launch_template_name("other")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-99999999")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let other_id = other
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_string();

    // Describe: all, by id, by name, by name filter, by tag filter.
    let all = client.describe_launch_templates().send().await.unwrap();
    assert_eq!(all.launch_templates().len(), 2);
    let by_id = client
        .describe_launch_templates()
        .launch_template_ids(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.launch_templates().len(), 1);
    assert_eq!(by_id.launch_templates()[0].tags(), &[tag("team", "infra")]);
    let by_name = client
        .describe_launch_templates()
        .launch_template_names("other")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.launch_templates()[0].launch_template_id(),
        Some(other_id.as_str())
    );
    let filtered = client
        .describe_launch_templates()
        .filters(
            Filter::builder()
                .name("launch-template-name")
                .values("work*")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.launch_templates().len(), 1);
    let tagged = client
        .describe_launch_templates()
        .filters(Filter::builder().name("tag:team").values("infra").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        tagged.launch_templates()[0].launch_template_id(),
        Some(id.as_str())
    );
    let err = client
        .describe_launch_templates()
        .launch_template_ids("lt-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidLaunchTemplateId.NotFound"));
    let err = client
        .describe_launch_templates()
        .launch_template_names("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("InvalidLaunchTemplateName.NotFoundException")
    );
    let err = client
        .describe_launch_templates()
        .launch_template_ids("lt-zz")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidLaunchTemplateId.Malformed"));

    // Delete, by name; then it is gone.
    let deleted = client
        .delete_launch_template()
        .launch_template_name("other")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.launch_template().unwrap().launch_template_id(),
        Some(other_id.as_str())
    );
    let err = client
        .delete_launch_template()
        .launch_template_id(&other_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidLaunchTemplateId.NotFound"));
    let all = client.describe_launch_templates().send().await.unwrap();
    assert_eq!(all.launch_templates().len(), 1);
}

#[tokio::test]
async fn run_instances_from_a_template() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDLTRUN").await;
    let created = client
        .create_launch_template()
        .launch_template_name("workers")
        .launch_template_data(template_data())
        .send()
        .await
        .unwrap();
    let id = created
        .launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_string();

    // Everything from the template, no ImageId in the request.
    let out = client
        .run_instances()
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&id)
                .version("$Latest")
                .build(),
        )
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let i = &out.instances()[0];
    assert_eq!(i.image_id(), Some("ami-0abc1234"));
    assert_eq!(i.instance_type(), Some(&InstanceType::C5Large));
    assert_eq!(i.key_name(), Some("fleet-key"));
    assert_eq!(
        i.placement().unwrap().availability_zone(),
        Some("us-east-1b")
    );
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, ["sg-11111111", "sg-22222222"]);
    let tag_of = |i: &aws_sdk_ec2::types::Instance, k: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag_of(i, "pool").as_deref(), Some("workers"));
    assert_eq!(tag_of(i, "Name").as_deref(), Some("from-template"));
    assert_eq!(
        tag_of(i, "aws:ec2launchtemplate:id").as_deref(),
        Some(id.as_str())
    );
    assert_eq!(
        tag_of(i, "aws:ec2launchtemplate:version").as_deref(),
        Some("1")
    );

    // The request's own parameters win; by name, default version.
    let out = client
        .run_instances()
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_name("workers")
                .build(),
        )
        .image_id("ami-12345678")
        .instance_type(InstanceType::M5Large)
        .security_group_ids("sg-33333333")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("Name", "override"))
                .build(),
        )
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let i = &out.instances()[0];
    assert_eq!(i.image_id(), Some("ami-12345678"));
    assert_eq!(i.instance_type(), Some(&InstanceType::M5Large));
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, ["sg-33333333"]);
    assert_eq!(tag_of(i, "Name").as_deref(), Some("override"));
    assert_eq!(tag_of(i, "pool").as_deref(), Some("workers"));
    assert_eq!(
        tag_of(i, "aws:ec2launchtemplate:version").as_deref(),
        Some("1")
    );

    // The tags are on the described instance too.
    let described = client
        .describe_instances()
        .filters(
            Filter::builder()
                .name("tag:aws:ec2launchtemplate:id")
                .values(&id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let n: usize = described
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum();
    assert_eq!(n, 2);

    // Errors: unknown template, unknown version, no image anywhere.
    let spec = |b: aws_sdk_ec2::types::builders::LaunchTemplateSpecificationBuilder| {
        client
            .run_instances()
            .launch_template(b.build())
            .min_count(1)
            .max_count(1)
    };
    let err =
        spec(LaunchTemplateSpecification::builder().launch_template_id("lt-0123456789abcdef0"))
            .send()
            .await
            .unwrap_err();
    assert_eq!(err.code(), Some("InvalidLaunchTemplateId.NotFound"));
    let err = spec(LaunchTemplateSpecification::builder().launch_template_name("nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("InvalidLaunchTemplateName.NotFoundException")
    );
    let err = spec(
        LaunchTemplateSpecification::builder()
            .launch_template_id(&id)
            .version("7"),
    )
    .send()
    .await
    .unwrap_err();
    assert_eq!(err.code(), Some("InvalidLaunchTemplateId.VersionNotFound"));
    client
        .create_launch_template()
        .launch_template_name("no-image")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .instance_type(InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let err = spec(LaunchTemplateSpecification::builder().launch_template_name("no-image"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"));
    assert!(err.message().unwrap().contains("ImageId"));
}

#[tokio::test]
async fn launch_template_limit() {
    let mock = mock(0.01).await;
    mock.set_config(MockConfig {
        aws: Some(Ec2Config {
            launch_template_limit: 2,
            ..Ec2Config::default()
        }),
        ..MockConfig::default()
    })
    .unwrap();
    let client = ec2(&mock, "AKIDLTLIMIT").await;
    let create = |name: &str| {
        client
            .create_launch_template()
            .launch_template_name(name)
            .launch_template_data(
                RequestLaunchTemplateData::builder()
                    .image_id("ami-12345678")
                    .build(),
            )
            .send()
    };
    create("one").await.unwrap();
    create("two").await.unwrap();
    let err = create("three").await.unwrap_err();
    assert_eq!(err.code(), Some("LaunchTemplateLimitExceeded"));
    client
        .delete_launch_template()
        .launch_template_name("one")
        .send()
        .await
        .unwrap();
    create("three").await.unwrap();
}

/// A template's `volume` tag specification tags the volumes its launches
/// create (the root volume too); the request's own volume tags win.
#[tokio::test]
async fn template_volume_tags_reach_launched_volumes() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDLTVOLS").await;
    client
        .create_launch_template()
        .launch_template_name("tagged-volumes")
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-0abc1234")
                .instance_type(InstanceType::T3Micro)
                .tag_specifications(
                    LaunchTemplateTagSpecificationRequest::builder()
                        .resource_type(ResourceType::Volume)
                        .tags(tag("pool", "workers"))
                        .tags(tag("owner", "template"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let launch = |owner: Option<&str>| {
        let mut req = client
            .run_instances()
            .launch_template(
                LaunchTemplateSpecification::builder()
                    .launch_template_name("tagged-volumes")
                    .build(),
            )
            .min_count(1)
            .max_count(1);
        if let Some(o) = owner {
            req = req.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Volume)
                    .tags(tag("owner", o))
                    .build(),
            );
        }
        req.send()
    };
    let volume_tags = |instance: String| {
        let client = client.clone();
        async move {
            let out = client
                .describe_volumes()
                .filters(
                    Filter::builder()
                        .name("attachment.instance-id")
                        .values(instance)
                        .build(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(out.volumes().len(), 1, "the root volume");
            let mut tags: Vec<(String, String)> = out.volumes()[0]
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or("").to_string(),
                        t.value().unwrap_or("").to_string(),
                    )
                })
                .collect();
            tags.sort();
            tags
        }
    };
    let from_template = launch(None).await.unwrap();
    let id = from_template.instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        volume_tags(id).await,
        [pair("owner", "template"), pair("pool", "workers")]
    );
    let overridden = launch(Some("request")).await.unwrap();
    let id = overridden.instances()[0].instance_id().unwrap().to_string();
    assert_eq!(
        volume_tags(id).await,
        [pair("owner", "request"), pair("pool", "workers")]
    );
}
