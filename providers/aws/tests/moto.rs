//! The AWS provider against moto's EC2 server, a second, independent EC2
//! implementation. Runs when `SKYFLEET_TEST_MOTO_URL` is set (for example
//! `http://localhost:5055` after `moto_server -p 5055`); otherwise it says
//! on stderr that it skipped.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use skyfleet_aws::{AwsBuilder, AwsProvider, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{
    Lifecycle, OwnershipScope, OwnershipTags, Phase, Provider, ProviderExt, Worker, WorkerSpec,
};

fn moto_url() -> Option<String> {
    std::env::var("SKYFLEET_TEST_MOTO_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

#[tokio::test]
async fn create_running_remove_against_moto() {
    let Some(url) = moto_url() else {
        eprintln!("skipped: SKYFLEET_TEST_MOTO_URL is not set (start `moto_server -p 5055` and set it to http://localhost:5055)");
        return;
    };
    let transport = Transport::builder()
        .config(TransportConfig::default())
        .build()
        .expect("transport");
    let p = AwsBuilder::new()
        .with_id("aws-moto")
        .with_regions(["us-east-1"])
        .with_endpoint_url(url.trim_end_matches('/'))
        .with_static_credentials("testing", "testing", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(100),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_secs(5),
        })
        .with_transport(transport)
        .build()
        .await
        .expect("provider");

    // moto's state is process-wide: a manager id of our own keeps this run
    // apart from anything else in it.
    let nonce = SystemClock.now().unix_timestamp_nanos() % 1_000_000_000_000;
    let manager = format!("moto-{nonce}");
    let worker_id = format!("w-moto-{nonce}");
    let launch = json!({
        "region": "us-east-1",
        "ImageId": "ami-12c6146b",
        "InstanceType": "t3.micro",
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "workerConfig": {"from": "skyfleet moto test"}
    });
    p.validate(&launch).expect("valid launch config");
    let mut w = Worker::new(
        WorkerSpec {
            worker_id: worker_id.clone(),
            pool_id: "moto/pool".into(),
            provider_id: "aws-moto".into(),
            launch_config_id: "lc".into(),
            launch,
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: manager.clone(),
                pool_id: "moto/pool".into(),
                worker_id: worker_id.clone(),
                provider_id: "aws-moto".into(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    );
    p.create(&mut w, &SystemClock, Duration::from_secs(30))
        .await
        .expect("create");
    assert_eq!(w.phase, Phase::Running);
    let id = AwsProvider::instance_id(&w).expect("instance id");

    let scope = OwnershipScope {
        manager_id: manager.clone(),
        provider_id: "aws-moto".into(),
    };
    let owned = p.list_owned(&scope).await.expect("list_owned");
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].worker_id.as_deref(), Some(worker_id.as_str()));
    assert!(owned[0].id.ends_with(&format!("instance/{id}")));

    p.remove(&mut w, &SystemClock, Duration::from_secs(30))
        .await
        .expect("remove");
    assert_eq!(w.phase, Phase::Stopped);
    assert!(p.list_owned(&scope).await.expect("list_owned").is_empty());

    // The instance is terminated in moto's own view.
    let out = p
        .sdk_client("us-east-1")
        .expect("client")
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe");
    let state = out.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    assert_eq!(state.as_deref(), Some("terminated"));
}
