//! AttachVolume, DetachVolume and the volumes RunInstances creates from
//! block device mappings, driven by the real aws-sdk-ec2 client.

mod ec2_support;

use std::time::{Duration, Instant};

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceStateName, ResourceType, Tag,
    TagSpecification, Volume, VolumeAttachmentState, VolumeState, VolumeType,
};
use aws_sdk_ec2::Client;
use ec2_support::{ec2, mock};
use skyfleet_mock::ec2::Ec2Config;
use skyfleet_mock::MockConfig;

async fn run_one(client: &Client, zone: &str) -> String {
    let out = client
        .run_instances()
        .image_id("ami-12345678")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .placement(
            aws_sdk_ec2::types::Placement::builder()
                .availability_zone(zone)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

async fn volume(client: &Client, id: &str) -> Volume {
    let out = client
        .describe_volumes()
        .volume_ids(id)
        .send()
        .await
        .unwrap();
    out.volumes()[0].clone()
}

/// Polls until `done` accepts the volume (10 s at most).
async fn wait_volume(client: &Client, id: &str, done: impl Fn(&Volume) -> bool) -> Volume {
    let started = Instant::now();
    loop {
        let v = volume(client, id).await;
        if done(&v) {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{v:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_instance(client: &Client, id: &str, state: InstanceStateName) {
    let started = Instant::now();
    loop {
        let out = client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .unwrap();
        let i = &out.reservations()[0].instances()[0];
        if i.state().and_then(|s| s.name()) == Some(&state) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn create_volume(client: &Client, zone: &str) -> String {
    let id = client
        .create_volume()
        .availability_zone(zone)
        .size(10)
        .send()
        .await
        .unwrap()
        .volume_id()
        .unwrap()
        .to_string();
    wait_volume(client, &id, |v| v.state() == Some(&VolumeState::Available)).await;
    id
}

fn code<E: ProvideErrorMetadata, R>(e: &aws_sdk_ec2::error::SdkError<E, R>) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("not a service error")
        .to_string()
}

#[tokio::test]
async fn attach_detach_lifecycle_and_views() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDATTACH").await;
    let instance = run_one(&client, "us-east-1a").await;
    wait_instance(&client, &instance, InstanceStateName::Running).await;
    let vol = create_volume(&client, "us-east-1a").await;

    let att = client
        .attach_volume()
        .volume_id(&vol)
        .instance_id(&instance)
        .device("/dev/sdf")
        .send()
        .await
        .unwrap();
    assert_eq!(att.state(), Some(&VolumeAttachmentState::Attaching));
    assert_eq!(att.device(), Some("/dev/sdf"));
    assert_eq!(att.instance_id(), Some(instance.as_str()));

    let v = wait_volume(&client, &vol, |v| {
        v.attachments().first().and_then(|a| a.state()) == Some(&VolumeAttachmentState::Attached)
    })
    .await;
    assert_eq!(v.state(), Some(&VolumeState::InUse));
    assert_eq!(v.attachments()[0].instance_id(), Some(instance.as_str()));
    assert_eq!(v.attachments()[0].delete_on_termination(), Some(false));

    // The instance shows its root volume and the attached one.
    let out = client
        .describe_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    let devices: Vec<(&str, &str)> = i
        .block_device_mappings()
        .iter()
        .map(|m| {
            (
                m.device_name().unwrap(),
                m.ebs().unwrap().volume_id().unwrap(),
            )
        })
        .collect();
    assert_eq!(devices.len(), 2, "{devices:?}");
    assert_eq!(devices[0].0, "/dev/sdf");
    assert_eq!(devices[0].1, vol);
    assert_eq!(devices[1].0, "/dev/xvda");

    // Filters by attachment.
    let by_instance = client
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(&instance)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_instance.volumes().len(), 2);

    // In use: not attachable again, not deletable.
    let other = run_one(&client, "us-east-1a").await;
    wait_instance(&client, &other, InstanceStateName::Running).await;
    let e = client
        .attach_volume()
        .volume_id(&vol)
        .instance_id(&other)
        .device("/dev/sdg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "IncorrectState");
    let e = client
        .delete_volume()
        .volume_id(&vol)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "VolumeInUse");
    // The wrong instance named on detach.
    let e = client
        .detach_volume()
        .volume_id(&vol)
        .instance_id(&other)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidAttachment.NotFound");

    let det = client.detach_volume().volume_id(&vol).send().await.unwrap();
    assert_eq!(det.state(), Some(&VolumeAttachmentState::Detaching));
    let v = wait_volume(&client, &vol, |v| {
        v.state() == Some(&VolumeState::Available)
    })
    .await;
    assert!(v.attachments().is_empty());
    let e = client
        .detach_volume()
        .volume_id(&vol)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "IncorrectState");
    client.delete_volume().volume_id(&vol).send().await.unwrap();
}

#[tokio::test]
async fn attach_errors() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDATTACHERR").await;
    let instance = run_one(&client, "us-east-1a").await;
    wait_instance(&client, &instance, InstanceStateName::Running).await;
    let vol_a = create_volume(&client, "us-east-1a").await;
    let vol_b = create_volume(&client, "us-east-1b").await;
    let attach = |vol: &str, inst: &str, dev: &str| {
        client
            .attach_volume()
            .volume_id(vol)
            .instance_id(inst)
            .device(dev)
            .send()
    };
    let e = attach("vol-0123456789abcdef0", &instance, "/dev/sdf")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidVolume.NotFound");
    let e = attach(&vol_a, "i-0123456789abcdef0", "/dev/sdf")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidInstanceID.NotFound");
    let e = attach(&vol_a, &instance, "sdf").await.unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    assert!(e
        .as_service_error()
        .unwrap()
        .message()
        .unwrap()
        .contains("sdf"));
    let e = attach(&vol_a, &instance, "/dev/xvda").await.unwrap_err();
    assert_eq!(
        code(&e),
        "InvalidParameterValue",
        "the root device is taken"
    );
    let e = attach(&vol_b, &instance, "/dev/sdf").await.unwrap_err();
    assert_eq!(code(&e), "InvalidVolume.ZoneMismatch");

    client
        .terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .unwrap();
    wait_instance(&client, &instance, InstanceStateName::Terminated).await;
    let e = attach(&vol_a, &instance, "/dev/sdf").await.unwrap_err();
    assert_eq!(code(&e), "IncorrectInstanceState");
}

#[tokio::test]
async fn termination_detaches_and_deletes_on_termination() {
    let mock = mock(0.01).await;
    let client = ec2(&mock, "AKIDATTACHTERM").await;
    let out = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(2)
        .max_count(2)
        .placement(
            aws_sdk_ec2::types::Placement::builder()
                .availability_zone("us-east-1b")
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sdb")
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(50)
                        .volume_type(VolumeType::Gp3)
                        .delete_on_termination(false)
                        .build(),
                )
                .build(),
        )
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(EbsBlockDevice::builder().volume_size(30).build())
                .build(),
        )
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Volume)
                .tags(Tag::builder().key("team").value("storage").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ids: Vec<String> = out
        .instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    // Two volumes per instance, tagged, attached, in the instance's zone.
    let tagged = client
        .describe_volumes()
        .filters(Filter::builder().name("tag:team").values("storage").build())
        .send()
        .await
        .unwrap();
    let vols = tagged.volumes();
    assert_eq!(vols.len(), 4, "{vols:?}");
    for v in vols {
        assert_eq!(v.state(), Some(&VolumeState::InUse));
        assert_eq!(v.availability_zone(), Some("us-east-1b"));
        let a = &v.attachments()[0];
        match a.device().unwrap() {
            "/dev/xvda" => {
                assert_eq!(v.size(), Some(30));
                assert_eq!(a.delete_on_termination(), Some(true));
            }
            "/dev/sdb" => {
                assert_eq!(v.size(), Some(50));
                assert_eq!(v.volume_type(), Some(&VolumeType::Gp3));
                assert_eq!(a.delete_on_termination(), Some(false));
            }
            other => panic!("unexpected device {other}"),
        }
    }
    let first = &ids[0];
    client
        .terminate_instances()
        .instance_ids(first)
        .send()
        .await
        .unwrap();
    wait_instance(&client, first, InstanceStateName::Terminated).await;
    let after = client
        .describe_volumes()
        .filters(Filter::builder().name("tag:team").values("storage").build())
        .send()
        .await
        .unwrap();
    let left = after.volumes();
    assert_eq!(
        left.len(),
        3,
        "the root volume went with the instance: {left:?}"
    );
    let kept: Vec<&Volume> = left.iter().filter(|v| v.attachments().is_empty()).collect();
    assert_eq!(kept.len(), 1, "the data volume is detached and kept");
    assert_eq!(kept[0].state(), Some(&VolumeState::Available));
    assert_eq!(kept[0].size(), Some(50));
    // The other instance keeps both.
    let others = client
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(&ids[1])
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(others.volumes().len(), 2);
}

#[tokio::test]
async fn block_device_volumes_respect_the_volume_limit() {
    let mock = mock(0.01).await;
    mock.set_config(MockConfig {
        aws: Some(Ec2Config {
            volume_limit: 3,
            ..Ec2Config::default()
        }),
        ..MockConfig::default()
    })
    .unwrap();
    let client = ec2(&mock, "AKIDATTACHLIMIT").await;
    let run = |n: i32| {
        client
            .run_instances()
            .image_id("ami-12345678")
            .min_count(n)
            .max_count(n)
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name("/dev/sdf")
                    .ebs(EbsBlockDevice::builder().volume_size(5).build())
                    .build(),
            )
            .send()
    };
    // Two instances need four volumes: refused, and nothing is left behind.
    let e = run(2).await.unwrap_err();
    assert_eq!(code(&e), "VolumeLimitExceeded");
    let all = client.describe_instances().send().await.unwrap();
    assert!(all.reservations().is_empty());
    assert!(client
        .describe_volumes()
        .send()
        .await
        .unwrap()
        .volumes()
        .is_empty());
    run(1).await.unwrap();
    assert_eq!(
        client
            .describe_volumes()
            .send()
            .await
            .unwrap()
            .volumes()
            .len(),
        2
    );
    // A bad mapping is the launch's error.
    let e = client
        .run_instances()
        .image_id("ami-12345678")
        .min_count(1)
        .max_count(1)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/sdf")
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_size(5)
                        .volume_type(VolumeType::Io1)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "MissingParameter");
}
