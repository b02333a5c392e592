//! CreateVolume, DescribeVolumes and DeleteVolume driven by the real
//! aws-sdk-ec2 client.

mod ec2_support;

use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification, VolumeState, VolumeType};
use ec2_support::{ec2, mock};
use skyfleet_mock::ec2::Ec2Config;
use skyfleet_mock::MockConfig;

#[tokio::test]
async fn create_describe_delete_and_errors() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDVOLUMES").await;

    let created = client
        .create_volume()
        .availability_zone("us-east-1a")
        .size(100)
        .volume_type(VolumeType::Gp3)
        .encrypted(true)
        .client_token("vol-tok")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .tags(Tag::builder().key("pool").value("data").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = created.volume_id().unwrap().to_string();
    assert!(id.starts_with("vol-"), "{id}");
    assert_eq!(created.size(), Some(100));
    assert_eq!(created.volume_type(), Some(&VolumeType::Gp3));
    assert_eq!(created.iops(), Some(3000));
    assert_eq!(created.throughput(), Some(125));
    assert_eq!(created.encrypted(), Some(true));
    assert_eq!(created.availability_zone(), Some("us-east-1a"));

    // The same ClientToken answers the same volume.
    let again = client
        .create_volume()
        .availability_zone("us-east-1a")
        .size(100)
        .volume_type(VolumeType::Gp3)
        .encrypted(true)
        .client_token("vol-tok")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .tags(Tag::builder().key("pool").value("data").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.volume_id(), Some(id.as_str()));

    // creating -> available.
    let started = Instant::now();
    loop {
        let out = client
            .describe_volumes()
            .volume_ids(&id)
            .send()
            .await
            .unwrap();
        if out.volumes()[0].state() == Some(&VolumeState::Available) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let gp2 = client
        .create_volume()
        .availability_zone("us-east-1b")
        .size(10)
        .send()
        .await
        .unwrap();
    assert_eq!(gp2.volume_type(), Some(&VolumeType::Gp2));
    assert_eq!(gp2.iops(), Some(100));

    let tagged = client
        .describe_volumes()
        .filters(Filter::builder().name("tag:pool").values("da*").build())
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.volumes().len(), 1);
    assert_eq!(tagged.volumes()[0].volume_id(), Some(id.as_str()));
    let all = client.describe_volumes().send().await.unwrap();
    assert_eq!(all.volumes().len(), 2);

    for (size, vt, code) in [
        (0, VolumeType::Gp2, "InvalidParameterValue"),
        (20000, VolumeType::Gp3, "InvalidParameterValue"),
        (10, VolumeType::St1, "InvalidParameterValue"),
        (10, VolumeType::Io1, "MissingParameter"),
    ] {
        let err = client
            .create_volume()
            .availability_zone("us-east-1a")
            .size(size)
            .volume_type(vt.clone())
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{size} {vt:?}");
    }
    let err = client
        .create_volume()
        .availability_zone("mars-1a")
        .size(10)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    let err = client
        .create_volume()
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"));
    let err = client
        .describe_volumes()
        .volume_ids("vol-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidVolume.NotFound"));
    let err = client
        .describe_volumes()
        .volume_ids("vol-x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidVolumeID.Malformed"));

    client.delete_volume().volume_id(&id).send().await.unwrap();
    let err = client
        .delete_volume()
        .volume_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidVolume.NotFound"));
    let all = client.describe_volumes().send().await.unwrap();
    assert_eq!(all.volumes().len(), 1);
}

#[tokio::test]
async fn volume_limit() {
    let mock = mock(0.01).await;
    mock.set_config(MockConfig {
        aws: Some(Ec2Config {
            volume_limit: 1,
            ..Ec2Config::default()
        }),
        ..MockConfig::default()
    })
    .unwrap();
    let client = ec2(&mock, "AKIDVOLLIMIT").await;
    let create = || {
        client
            .create_volume()
            .availability_zone("us-east-1a")
            .size(8)
            .send()
    };
    let first = create().await.unwrap();
    let err = create().await.unwrap_err();
    assert_eq!(err.code(), Some("VolumeLimitExceeded"));
    client
        .delete_volume()
        .volume_id(first.volume_id().unwrap())
        .send()
        .await
        .unwrap();
    create().await.unwrap();
}
