//! Configuration from the environment: region, `AWS_ENDPOINT_URL_EC2`, and
//! credentials through aws-config's default chain (here its environment
//! provider), all through the shared transport. This file holds a single
//! test because it sets process environment variables.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use skyfleet_aws::{AwsBuilder, CredentialsSource, Timings};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{Lifecycle, OwnershipTags, Phase, ProviderExt, Worker, WorkerSpec};

#[tokio::test]
async fn region_endpoint_and_credentials_from_the_environment() {
    let mock = skyfleet_mock::MockCloud::builder()
        .time_scale(0.01)
        .start()
        .await
        .expect("mock");
    // The only test in this binary: nothing else reads the environment.
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT"),
        ("AWS_SECRET_ACCESS_KEY", "secret-from-environment"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL_EC2", mock.url()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/nonexistent/skyfleet/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/skyfleet/credentials",
        ),
    ] {
        std::env::set_var(k, v);
    }
    std::env::remove_var("SKYFLEET_AWS_REGIONS");
    std::env::remove_var("AWS_PROFILE");

    let builder = AwsBuilder::from_env().expect("config from env");
    assert_eq!(builder.regions(), ["eu-west-1"]);
    assert_eq!(builder.endpoint_url(), Some(mock.url()));
    assert_eq!(builder.credentials(), &CredentialsSource::DefaultChain);
    let timings = Timings {
        poll_interval: Duration::from_millis(20),
        ..builder.timings()
    };
    let builder = builder.with_timings(timings);

    let transport = Transport::builder()
        .config(TransportConfig::default())
        .build()
        .expect("transport");
    let p = builder
        .with_transport(transport)
        .build()
        .await
        .expect("provider");
    let id = "w-env";
    let mut w = Worker::new(
        WorkerSpec {
            worker_id: id.into(),
            pool_id: "env/pool".into(),
            provider_id: "aws".into(),
            launch_config_id: "lc".into(),
            launch: json!({
                "region": "eu-west-1",
                "ImageId": "ami-0123456789abcdef0",
                "InstanceType": "t3.small"
            }),
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "env".into(),
                pool_id: "env/pool".into(),
                worker_id: id.into(),
                provider_id: "aws".into(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    );
    p.create(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("create with credentials from the environment");
    assert_eq!(w.phase, Phase::Running);
    // The request was signed for eu-west-1 with the environment's key: the
    // mock files the instance under that key's account and region.
    let live: serde_json::Value = reqwest::get(format!("{}/_mock/resources?cloud=aws", mock.url()))
        .await
        .expect("resources")
        .json()
        .await
        .expect("json");
    assert_eq!(live.as_array().map(Vec::len), Some(1), "{live}");
    assert_eq!(
        live[0]["partition"].as_str(),
        Some(skyfleet_mock::account_for_access_key("AKIDFROMENVIRONMENT").as_str())
    );
    p.remove(&mut w, &SystemClock, Duration::from_secs(10))
        .await
        .expect("remove");
    assert_eq!(w.phase, Phase::Stopped);
}
