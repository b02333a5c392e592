//! Provisions one EC2 worker through skyfleet's public API, as a user would,
//! against the in-process mock EC2 (so it runs anywhere without an AWS
//! account):
//!
//! ```text
//! cargo run -p skyfleet-aws --example ec2_worker
//! ```
//!
//! Against real AWS, drop the mock, use `AwsBuilder::from_env()` (the
//! default credential chain: environment, profile, SSO, web identity, IMDS)
//! and a real AMI.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use skyfleet_aws::{AwsBuilder, AwsProvider, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{
    Lifecycle, OwnershipScope, OwnershipTags, Provider, ProviderExt, Worker, WorkerSpec,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A mock EC2 whose instances boot in 50 ms instead of 5 s.
    let mock = skyfleet_mock::MockCloud::builder()
        .time_scale(0.01)
        .start()
        .await?;
    println!("mock EC2 at {}", mock.url());

    // Every EC2 call goes through the shared transport (limits, retries,
    // timeouts, metrics).
    let transport = Transport::builder()
        .config(TransportConfig::default())
        .build()?;
    let provider = AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(mock.url())
        .with_static_credentials("AKIDEXAMPLE", "example-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(50),
            ..Timings::default()
        })
        .with_transport(transport)
        .build()
        .await?;

    // The launch config a pool would carry; validated before any worker uses it.
    let launch = json!({
        "region": "us-east-1",
        "ImageId": "ami-0123456789abcdef0",
        "InstanceType": "m5.large",
        "Placement": {"AvailabilityZone": "us-east-1a"},
        "InstanceMarketOptions": {"MarketType": "spot"},
        "workerConfig": {"queue": "linux-large"}
    });
    provider.validate(&launch)?;

    let mut worker = Worker::new(
        WorkerSpec {
            worker_id: "w-example-1".into(),
            pool_id: "ci/linux-large".into(),
            provider_id: "aws".into(),
            launch_config_id: "spot-us-east-1a".into(),
            launch,
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "example-manager".into(),
                pool_id: "ci/linux-large".into(),
                worker_id: "w-example-1".into(),
                provider_id: "aws".into(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    );

    provider
        .create(&mut worker, &SystemClock, Duration::from_secs(30))
        .await?;
    println!(
        "worker {} is {:?} on instance {}",
        worker.id(),
        worker.phase,
        AwsProvider::instance_id(&worker).unwrap_or_default()
    );
    println!("persisted provider state: {}", worker.provider_state);

    let owned = provider
        .list_owned(&OwnershipScope {
            manager_id: "example-manager".into(),
            provider_id: "aws".into(),
        })
        .await?;
    for r in &owned {
        println!("owned: {} ({})", r.id, r.kind);
    }

    provider
        .remove(&mut worker, &SystemClock, Duration::from_secs(30))
        .await?;
    println!("worker {} is {:?}", worker.id(), worker.phase);
    Ok(())
}
