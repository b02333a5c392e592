//! A worker created by the AWS provider finds out who it is from its
//! instance's metadata service: IMDSv2 token, then `/latest/user-data`,
//! read with a plain HTTP client and parsed with core's
//! [`Bootstrap::parse`]; it names exactly the worker and the provider's
//! configured root URL.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_aws::{AwsBuilder, AwsProvider, Timings};
use skyfleet_core::clock::SystemClock;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{Bootstrap, BootstrapError, ErrorKind, Phase, ProviderExt, Worker};
use skyfleet_mock::MockCloud;

const ROOT_URL: &str = "https://manager.example/api";

fn transport() -> Transport {
    let fast = Limit::per_second(10_000, 10_000);
    let mut config = TransportConfig::default()
        .with_operation_limit("aws", "RunInstances", fast)
        .with_backoff(Duration::from_millis(5), Duration::from_millis(50));
    for class in ApiClass::ALL {
        config = config.with_limit("aws", class, fast);
    }
    Transport::builder().config(config).build().unwrap()
}

fn builder(url: &str) -> AwsBuilder {
    AwsBuilder::new()
        .with_id("aws-test")
        .with_regions(["us-east-1"])
        .with_endpoint_url(url)
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_millis(800),
        })
        .with_transport(transport())
}

fn worker(id: &str) -> Worker {
    fixtures::worker(id)
        .pool("proj/linux")
        .provider("aws-test")
        .launch_config("lc-7")
        .launch(json!({
            "region": "us-east-1",
            "ImageId": "ami-0123456789abcdef0",
            "InstanceType": "t3.micro",
            "workerConfig": {"capacity": 2},
            "additionalUserData": {"site": "lab", "workerId": "forged"}
        }))
        .build_now()
}

/// The instance's UserData, as its agent reads it: an IMDSv2 token, then
/// `/latest/user-data` with it.
async fn user_data(mock: &MockCloud, instance_id: &str) -> reqwest::Response {
    let http = reqwest::Client::new();
    let base = format!("{}/_imds/aws/{instance_id}", mock.imds_url());
    let token = http
        .put(format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token = token.text().await.unwrap();
    http.get(format!("{base}/latest/user-data"))
        .header("X-aws-ec2-metadata-token", token)
        .send()
        .await
        .unwrap()
}

async fn create(p: &AwsProvider, id: &str) -> (Worker, String) {
    let mut w = worker(id);
    p.create(&mut w, &SystemClock, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(w.phase, Phase::Running);
    let instance = AwsProvider::instance_id(&w).expect("instance id");
    (w, instance)
}

#[tokio::test]
async fn each_worker_reads_its_own_identity_from_user_data() {
    let mock = MockCloud::builder().time_scale(0.01).start().await.unwrap();
    let p = builder(mock.url())
        .with_root_url(format!("{ROOT_URL}/"))
        .build()
        .await
        .unwrap();
    let (w1, i1) = create(&p, "w-boot-1").await;
    let (w2, i2) = create(&p, "w-boot-2").await;
    for (w, instance) in [(&w1, &i1), (&w2, &i2)] {
        let resp = user_data(&mock, instance).await;
        assert_eq!(resp.status(), 200);
        let raw = resp.bytes().await.unwrap();
        let doc = Bootstrap::parse(&raw).unwrap();
        assert_eq!(doc.root_url, ROOT_URL, "trailing slash dropped");
        assert_eq!(doc.worker_id, w.spec.worker_id);
        assert_eq!(doc.worker_pool_id, "proj/linux");
        assert_eq!(doc.provider_id, "aws-test");
        assert_eq!(doc.worker_group, "us-east-1");
        assert_eq!(doc.launch_config_id, "lc-7");
        assert_eq!(doc.worker_config, json!({"capacity": 2}));
        assert_eq!(doc.extra.get("site"), Some(&Value::from("lab")));
        assert_eq!(doc.extra.len(), 1, "{:?}", doc.extra);
    }
    // The metadata is the instance's own: no user data once it is gone.
    let mut w1 = w1;
    p.remove(&mut w1, &SystemClock, Duration::from_secs(30))
        .await
        .unwrap();
    let gone = user_data_status(&mock, &i1).await;
    assert_ne!(gone, 200, "a terminated instance serves no user data");
    mock.shutdown().await;
}

async fn user_data_status(mock: &MockCloud, instance_id: &str) -> u16 {
    let url = format!(
        "{}/_imds/aws/{instance_id}/latest/api/token",
        mock.imds_url()
    );
    reqwest::Client::new()
        .put(url)
        .header("X-aws-ec2-metadata-token-ttl-seconds", "60")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn without_a_root_url_the_agent_is_told_what_is_missing() {
    let mock = MockCloud::builder().time_scale(0.01).start().await.unwrap();
    let p = builder(mock.url()).build().await.unwrap();
    let (_w, instance) = create(&p, "w-boot-3").await;
    let raw = user_data(&mock, &instance).await.bytes().await.unwrap();
    let doc: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(doc["workerId"], "w-boot-3");
    assert_eq!(
        Bootstrap::parse(&raw).unwrap_err(),
        BootstrapError::Missing { field: "rootUrl" }
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn a_bad_root_url_is_refused_at_build() {
    for bad in [
        "manager.example",
        "ftp://manager.example",
        "https://m.example/?x=1",
    ] {
        let e = builder("http://127.0.0.1:9")
            .with_root_url(bad)
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "root_url"),
            "{bad}: {e}"
        );
    }
}
