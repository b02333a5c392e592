//! The EC2 part of the mock driven by the real aws-sdk-ec2 client.

mod ec2_support;

use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    Filter, InstanceMarketOptionsRequest, InstanceStateName, MarketType, Placement, ResourceType,
    Tag, TagSpecification,
};
use ec2_support::{ec2, ec2_custom, ec2_with, mock};
use skyfleet_mock::ctx::{Cloud, FaultEffect, FaultRule};
use skyfleet_mock::ec2::Ec2Config;
use skyfleet_mock::MockConfig;

fn tags(pairs: &[(&str, &str)]) -> TagSpecification {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (k, v) in pairs {
        spec = spec.tags(Tag::builder().key(*k).value(*v).build());
    }
    spec.build()
}

fn rule(operation: &str, effect: FaultEffect) -> FaultRule {
    FaultRule {
        cloud: Cloud::Aws,
        operation: operation.into(),
        resource: None,
        count: Some(1),
        probability: None,
        effect,
    }
}

async fn states(client: &aws_sdk_ec2::Client, ids: &[String]) -> Vec<InstanceStateName> {
    let out = client
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .unwrap();
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| i.state().unwrap().name().unwrap().clone())
        .collect()
}

async fn wait_for(
    client: &aws_sdk_ec2::Client,
    ids: &[String],
    want: InstanceStateName,
) -> Duration {
    let started = Instant::now();
    loop {
        let s = states(client, ids).await;
        if s.len() == ids.len() && s.iter().all(|x| *x == want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stuck in {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn ids_of(out: &aws_sdk_ec2::operation::run_instances::RunInstancesOutput) -> Vec<String> {
    out.instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn run_wait_describe_by_tag_paginate_terminate() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDLIFECYCLE").await;

    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(12)
        .max_count(12)
        .placement(Placement::builder().availability_zone("us-east-1b").build())
        .tag_specifications(tags(&[("Name", "web"), ("pool", "p1")]))
        .user_data("IyEvYmluL3NoCmVjaG8gaGk=")
        .send()
        .await
        .unwrap();
    let ids = ids_of(&run);
    assert_eq!(ids.len(), 12);
    assert!(run.reservation_id().unwrap().starts_with("r-"));
    let first = &run.instances()[0];
    assert_eq!(
        first.state().unwrap().name(),
        Some(&InstanceStateName::Pending)
    );
    assert_eq!(first.state().unwrap().code(), Some(0));
    assert_eq!(
        first.placement().unwrap().availability_zone(),
        Some("us-east-1b")
    );
    assert!(first.launch_time().is_some());
    // Three more that the tag filter must not return.
    client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(3)
        .max_count(3)
        .tag_specifications(tags(&[("pool", "p2")]))
        .send()
        .await
        .unwrap();

    wait_for(&client, &ids, InstanceStateName::Running).await;

    // Tag-filtered describe, 5 per page: 5 + 5 + 2.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out = client
            .describe_instances()
            .filters(Filter::builder().name("tag:pool").values("p1").build())
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .build(),
            )
            .max_results(5)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        for r in out.reservations() {
            assert_eq!(r.reservation_id(), run.reservation_id());
            for i in r.instances() {
                assert_eq!(i.tags().len(), 2);
                seen.push(i.instance_id().unwrap().to_string());
            }
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    // The SDK's own paginator agrees.
    let all: Vec<_> = client
        .describe_instances()
        .filters(Filter::builder().name("tag-key").values("pool").build())
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let instances: usize = all.into_iter().map(|r| r.unwrap().instances().len()).sum();
    assert_eq!(instances, 15);

    let term = client
        .terminate_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    let change = &term.terminating_instances()[0];
    assert_eq!(
        change.current_state().unwrap().name(),
        Some(&InstanceStateName::ShuttingDown)
    );
    assert_eq!(
        change.previous_state().unwrap().name(),
        Some(&InstanceStateName::Running)
    );
    wait_for(&client, &ids, InstanceStateName::Terminated).await;
    // Terminated instances are still describable (for an hour, scaled).
    let out = client
        .describe_instances()
        .instance_ids(ids[0].clone())
        .send()
        .await
        .unwrap();
    let inst = &out.reservations()[0].instances()[0];
    assert_eq!(
        inst.state_reason().unwrap().code(),
        Some("Client.UserInitiatedShutdown")
    );
    assert!(inst
        .state_transition_reason()
        .unwrap()
        .starts_with("User initiated ("));
}

#[tokio::test]
async fn client_token_replay_and_mismatch() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDTOKEN").await;
    let launch = || {
        client
            .run_instances()
            .image_id("ami-12345678")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(2)
            .max_count(2)
            .client_token("worker-0001")
    };
    let first = launch().send().await.unwrap();
    let ids = ids_of(&first);
    wait_for(&client, &ids, InstanceStateName::Running).await;

    let again = launch().send().await.unwrap();
    assert_eq!(again.reservation_id(), first.reservation_id());
    assert_eq!(ids_of(&again), ids);
    // The replay shows the current state.
    assert_eq!(
        again.instances()[0].state().unwrap().name(),
        Some(&InstanceStateName::Running)
    );
    assert_eq!(again.instances()[0].client_token(), Some("worker-0001"));

    let err = client
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Large)
        .min_count(2)
        .max_count(2)
        .client_token("worker-0001")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"));

    // Only two instances exist.
    let out = client.describe_instances().send().await.unwrap();
    let n: usize = out.reservations().iter().map(|r| r.instances().len()).sum();
    assert_eq!(n, 2);

    // Once terminated, the token cannot be reused.
    client
        .terminate_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    wait_for(&client, &ids, InstanceStateName::Terminated).await;
    let err = launch().send().await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentInstanceTerminated"));
}

#[tokio::test]
async fn errors_have_real_codes() {
    let mock = mock(1.0).await;
    let client = ec2(&mock, "AKIDERRORS").await;

    let err = client
        .describe_instances()
        .instance_ids("i-nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.Malformed"));
    let err = client
        .describe_instances()
        .instance_ids("i-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    assert!(err.message().unwrap().contains("i-0123456789abcdef0"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);

    let err = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .dry_run(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("DryRunOperation"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 412);

    let err = client
        .run_instances()
        .image_id("bogus")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidAMIID.Malformed"));

    let err = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .placement(Placement::builder().availability_zone("mars-1a").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));

    let err = client
        .describe_instances()
        .filters(Filter::builder().name("no-such-filter").values("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));

    // A pending instance cannot be stopped.
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let err = client
        .stop_instances()
        .set_instance_ids(Some(ids_of(&run)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("IncorrectInstanceState"));

    mock.set_config(MockConfig {
        aws: Some(Ec2Config {
            unavailable_instance_types: vec!["p5.48xlarge".into()],
            ..Ec2Config::default()
        }),
        ..MockConfig::default()
    })
    .unwrap();
    let err = client
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::P548xlarge)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InsufficientInstanceCapacity"));
}

#[tokio::test]
async fn stop_start_status_tags_regions() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDMISC").await;
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(2)
        .max_count(2)
        .send()
        .await
        .unwrap();
    let ids = ids_of(&run);

    // Only running instances have a status, unless all are asked for.
    let out = client.describe_instance_status().send().await.unwrap();
    assert!(out.instance_statuses().is_empty());
    let out = client
        .describe_instance_status()
        .include_all_instances(true)
        .send()
        .await
        .unwrap();
    assert_eq!(out.instance_statuses().len(), 2);
    wait_for(&client, &ids, InstanceStateName::Running).await;
    let out = client.describe_instance_status().send().await.unwrap();
    assert_eq!(out.instance_statuses().len(), 2);
    let st = &out.instance_statuses()[0];
    assert_eq!(
        st.instance_status().unwrap().status().unwrap().as_str(),
        "ok"
    );

    let stop = client
        .stop_instances()
        .instance_ids(ids[0].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        stop.stopping_instances()[0].current_state().unwrap().name(),
        Some(&InstanceStateName::Stopping)
    );
    wait_for(&client, &ids[..1], InstanceStateName::Stopped).await;
    client
        .start_instances()
        .instance_ids(ids[0].clone())
        .send()
        .await
        .unwrap();
    wait_for(&client, &ids[..1], InstanceStateName::Running).await;

    client
        .create_tags()
        .resources(ids[0].clone())
        .resources(ids[1].clone())
        .tags(Tag::builder().key("team").value("a&b <c>").build())
        .tags(Tag::builder().key("tmp").value("1").build())
        .send()
        .await
        .unwrap();
    client
        .delete_tags()
        .resources(ids[1].clone())
        .tags(Tag::builder().key("tmp").build())
        .send()
        .await
        .unwrap();
    let out = client
        .describe_tags()
        .filters(Filter::builder().name("key").values("t*").build())
        .send()
        .await
        .unwrap();
    let mut rows: Vec<(String, String)> = out
        .tags()
        .iter()
        .map(|t| {
            (
                t.resource_id().unwrap().to_string(),
                t.key().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    let mut want = vec![
        (ids[0].clone(), "team".to_string()),
        (ids[0].clone(), "tmp".to_string()),
        (ids[1].clone(), "team".to_string()),
    ];
    want.sort();
    assert_eq!(rows, want);
    assert_eq!(out.tags()[0].value(), Some("a&b <c>"));
    let err = client
        .create_tags()
        .resources("i-0123456789abcdef0")
        .tags(Tag::builder().key("x").value("y").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));

    let regions = client.describe_regions().send().await.unwrap();
    assert!(regions
        .regions()
        .iter()
        .any(|r| r.region_name() == Some("us-east-1")));
    let zones = client.describe_availability_zones().send().await.unwrap();
    let names: Vec<_> = zones
        .availability_zones()
        .iter()
        .map(|z| z.zone_name().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["us-east-1a", "us-east-1b", "us-east-1c"]);
    assert_eq!(zones.availability_zones()[0].zone_id(), Some("use1-az1"));
}

#[tokio::test]
async fn accounts_are_partitions_and_reset_by_scope() {
    let mock = mock(0.01).await;
    let a = ec2(&mock, "AKIDAAAA").await;
    let b = ec2(&mock, "AKIDBBBB").await;
    for c in [&a, &b] {
        c.run_instances()
            .image_id("ami-12345678")
            .min_count(1)
            .max_count(1)
            .send()
            .await
            .unwrap();
    }
    let count = |c: aws_sdk_ec2::Client| async move {
        let out = c.describe_instances().send().await.unwrap();
        out.reservations()
            .iter()
            .map(|r| r.instances().len())
            .sum::<usize>()
    };
    assert_eq!(count(a.clone()).await, 1);
    assert_eq!(count(b.clone()).await, 1);
    let owner = a.describe_instances().send().await.unwrap().reservations()[0]
        .owner_id()
        .unwrap()
        .to_string();
    assert_eq!(
        owner,
        skyfleet_mock::ec2::account_for_access_key("AKIDAAAA")
    );

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_mock/reset?scope=AKIDAAAA", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(count(a).await, 0);
    assert_eq!(count(b).await, 1);
}

#[tokio::test]
async fn fault_throttle_error_latency() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDFAULTS").await;

    mock.ctx()
        .set_faults(vec![rule(
            "DescribeRegions",
            FaultEffect::Throttle { retry_after_s: 0 },
        )])
        .unwrap();
    let err = client.describe_regions().send().await.unwrap_err();
    assert_eq!(err.code(), Some("RequestLimitExceeded"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    // The rule fired once; the next call passes.
    client.describe_regions().send().await.unwrap();

    // The announced wait is scaled: 3 s at time_scale 0.01 is 30 ms.
    mock.ctx()
        .set_faults(vec![rule(
            "DescribeRegions",
            FaultEffect::Throttle { retry_after_s: 3 },
        )])
        .unwrap();
    let err = client.describe_regions().send().await.unwrap_err();
    assert_eq!(
        err.raw_response()
            .unwrap()
            .headers()
            .get("x-amz-retry-after"),
        Some("30")
    );

    // A retrying client rides over a throttle.
    let retrying = ec2_with(&mock, "AKIDFAULTS", 3).await;
    mock.ctx()
        .set_faults(vec![rule(
            "DescribeRegions",
            FaultEffect::Throttle { retry_after_s: 0 },
        )])
        .unwrap();
    retrying.describe_regions().send().await.unwrap();

    mock.ctx()
        .set_faults(vec![rule(
            "DescribeInstances",
            FaultEffect::Error {
                status: 500,
                code: "InternalError".into(),
                message: "boom".into(),
            },
        )])
        .unwrap();
    let err = client.describe_instances().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InternalError"));
    assert_eq!(err.message(), Some("boom"));

    mock.ctx()
        .set_faults(vec![rule(
            "DescribeAvailabilityZones",
            FaultEffect::Latency { ms: 300 },
        )])
        .unwrap();
    let t = Instant::now();
    client.describe_availability_zones().send().await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn fault_hang_and_reset_are_client_failures() {
    let mock = mock(0.01).await;
    let client = ec2_custom(&mock, "AKIDHANG", 1, Duration::from_millis(300)).await;
    mock.ctx()
        .set_faults(vec![rule("DescribeRegions", FaultEffect::Hang)])
        .unwrap();
    let t = Instant::now();
    let err = client.describe_regions().send().await.unwrap_err();
    assert!(
        matches!(err, aws_sdk_ec2::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));

    mock.ctx()
        .set_faults(vec![rule("DescribeRegions", FaultEffect::Reset)])
        .unwrap();
    let err = client.describe_regions().send().await.unwrap_err();
    assert!(
        matches!(err, aws_sdk_ec2::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );
    client.describe_regions().send().await.unwrap();
}

#[tokio::test]
async fn fault_fail_operation_and_not_found_reads() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDASYNC").await;
    mock.ctx()
        .set_faults(vec![FaultRule {
            resource: Some("doomed-*".into()),
            ..rule(
                "RunInstances",
                FaultEffect::FailOperation {
                    code: "Server.InsufficientInstanceCapacity".into(),
                    message: "Server.InsufficientInstanceCapacity: Insufficient capacity.".into(),
                },
            )
        }])
        .unwrap();
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .tag_specifications(tags(&[("Name", "doomed-1")]))
        .send()
        .await
        .unwrap();
    let ids = ids_of(&run);
    assert_eq!(
        run.instances()[0].state().unwrap().name(),
        Some(&InstanceStateName::Pending)
    );
    wait_for(&client, &ids, InstanceStateName::Terminated).await;
    let out = client
        .describe_instances()
        .instance_ids(ids[0].clone())
        .send()
        .await
        .unwrap();
    let reason = out.reservations()[0].instances()[0].state_reason().unwrap();
    assert_eq!(reason.code(), Some("Server.InsufficientInstanceCapacity"));

    mock.ctx()
        .set_faults(vec![rule(
            "RunInstances",
            FaultEffect::NotFoundReads { count: 2 },
        )])
        .unwrap();
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let id = ids_of(&run).remove(0);
    for _ in 0..2 {
        let err = client
            .describe_instances()
            .instance_ids(id.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    }
    client
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn throttling_model_limits_run_instances() {
    let mock = mock(0.01).await;
    let mut cfg = Ec2Config::default();
    cfg.throttle.enabled = true;
    cfg.throttle.run_instances.capacity = 2.0;
    cfg.throttle.run_instances.refill_per_s = 0.01;
    mock.set_config(MockConfig {
        aws: Some(cfg),
        ..MockConfig::default()
    })
    .unwrap();
    let client = ec2(&mock, "AKIDTHROTTLE").await;
    let launch = || {
        client
            .run_instances()
            .image_id("ami-12345678")
            .min_count(1)
            .max_count(1)
            .send()
    };
    launch().await.unwrap();
    launch().await.unwrap();
    let err = launch().await.unwrap_err();
    assert_eq!(err.code(), Some("RequestLimitExceeded"));
    let headers = err.raw_response().unwrap().headers();
    assert!(headers.get("x-amz-retry-after").is_some());
    // Another account has its own buckets.
    ec2(&mock, "AKIDOTHER")
        .await
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    // Describes use another class and still pass.
    client.describe_instances().send().await.unwrap();
}

#[tokio::test]
async fn time_scale_shortens_the_lifecycle() {
    // launch_ms 60 s at scale 0.001: running within ~60 ms.
    let mock = mock(0.001).await;
    let cfg = Ec2Config {
        launch_ms: 60_000,
        ..Ec2Config::default()
    };
    mock.set_config(MockConfig {
        aws: Some(cfg),
        ..MockConfig::default()
    })
    .unwrap();
    let client = ec2(&mock, "AKIDSCALE").await;
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let took = wait_for(&client, &ids_of(&run), InstanceStateName::Running).await;
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    // At scale 1 the same launch is still pending a moment later.
    mock.ctx().set_time_scale(1.0).unwrap();
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        states(&client, &ids_of(&run)).await,
        vec![InstanceStateName::Pending]
    );
}

#[tokio::test]
async fn spot_launch_reports_lifecycle() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDSPOT").await;
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .instance_market_options(
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let i = &run.instances()[0];
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    assert!(i.spot_instance_request_id().unwrap().starts_with("sir-"));
    let out = client
        .describe_instances()
        .filters(
            Filter::builder()
                .name("instance-lifecycle")
                .values("spot")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.reservations().len(), 1);
}

#[tokio::test]
async fn terminated_instances_disappear_after_their_visible_time() {
    let mock = mock(1.0).await;
    mock.set_config(MockConfig {
        aws: Some(Ec2Config {
            launch_ms: 0,
            terminate_ms: 50,
            terminated_visible_ms: 200,
            ..Ec2Config::default()
        }),
        ..MockConfig::default()
    })
    .unwrap();
    let client = ec2(&mock, "AKIDGONE").await;
    let run = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    let ids = ids_of(&run);
    client
        .terminate_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .unwrap();
    wait_for(&client, &ids, InstanceStateName::Terminated).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = client
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    let out = client.describe_instances().send().await.unwrap();
    assert!(out.reservations().is_empty());
}

/// `lose_answer`: the launch is carried out but the SDK sees no answer; the
/// instance is there, and a retry with the same client token returns it
/// rather than launching a second one.
#[tokio::test]
async fn a_lost_answer_still_launches_and_its_token_replay_finds_it() {
    let mock = mock(0.01).await;
    mock.ctx().set_max_hang(Duration::from_millis(50));
    let client = ec2_custom(&mock, "AKIDLOST", 1, Duration::from_secs(5)).await;
    mock.ctx()
        .set_faults(vec![rule("RunInstances", FaultEffect::LoseAnswer)])
        .unwrap();
    let launch = || {
        client
            .run_instances()
            .image_id("ami-12345678")
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .client_token("lost-answer-1")
    };
    let err = launch().send().await.unwrap_err();
    assert!(
        matches!(err, aws_sdk_ec2::error::SdkError::DispatchFailure(_)),
        "{err:?}"
    );
    assert_eq!(mock.ctx().faults()[0].count, Some(0));
    let out = client.describe_instances().send().await.unwrap();
    let ids: Vec<_> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.instance_id())
        .collect();
    assert_eq!(ids.len(), 1, "the lost launch landed: {ids:?}");
    let replay = launch().send().await.unwrap();
    assert_eq!(replay.instances()[0].instance_id(), Some(ids[0]));
}
