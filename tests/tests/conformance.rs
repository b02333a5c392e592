//! The provider conformance suite, run against every provider: one test
//! function each.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::PollPolicy;
use skyfleet_mock::MockCloud;
use skyfleet_static::StaticBuilder;
use skyfleet_tests::behind_your_back::{self, Backstage};
use skyfleet_tests::{
    run_all, MockCloudKind, MockInspector, StaticInspector, Subject, TestingInspector,
};

/// A transport with limits far above what the tests need, and short
/// backoffs, so the suite measures the provider rather than the limiter.
fn fast_transport(provider: &str) -> Transport {
    let mut c = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200));
    for class in ApiClass::ALL {
        c = c.with_limit(provider, class, Limit::per_second(5000, 5000));
    }
    Transport::builder()
        .config(c)
        .build()
        .expect("transport config is valid")
}

async fn mock() -> MockCloud {
    MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .expect("the mock starts")
}

#[tokio::test]
async fn testing_provider_conforms() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let provider = TestingProvider::new("testing", cloud.clone());
    run_all(&Subject {
        name: "testing".into(),
        provider: Arc::new(provider),
        inspector: Arc::new(TestingInspector { cloud }),
        launch: json!({"size": "small"}),
        manager_id: "conformance".into(),
        resources_per_worker: 1,
        deadline: Duration::from_secs(20),
    })
    .await;
}

#[tokio::test]
async fn gcp_conforms_on_the_mock() {
    let mock = mock().await;
    let config = skyfleet_gcp::GcpBuilder::new("conformance")
        .with_endpoint(mock.url())
        .with_credentials(skyfleet_gcp::Credentials::static_token("test-token"))
        .with_zones(["us-central1-a"])
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(30),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_secs(60), Duration::from_millis(20))
        .with_transport(fast_transport("gcp"));
    let provider = config.build().expect("valid config");
    let subject = Subject {
        name: "gcp".into(),
        provider: Arc::new(provider),
        inspector: Arc::new(MockInspector::new(
            mock.url(),
            "conformance-gcp",
            MockCloudKind::gcp(),
        )),
        launch: json!({
            "zone": "us-central1-a",
            "machineType": "e2-small",
            "disks": [{"boot": true, "autoDelete": true,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]
        }),
        manager_id: "conformance-gcp".into(),
        resources_per_worker: 1,
        deadline: Duration::from_secs(30),
    };
    run_all(&subject).await;
    let backstage = Backstage::new(mock.url(), &MockCloudKind::gcp(), "conformance-gcp");
    behind_your_back::run_all(&subject, &backstage).await;
}

#[tokio::test]
async fn static_conforms() {
    let provider = StaticBuilder::new("static")
        .with_check_interval(Duration::from_secs(60))
        .build();
    run_all(&Subject {
        name: "static".into(),
        provider: Arc::new(provider.clone()),
        inspector: Arc::new(StaticInspector { provider }),
        launch: json!({}),
        manager_id: "conformance-static".into(),
        resources_per_worker: 0,
        deadline: Duration::from_secs(10),
    })
    .await;
}

#[tokio::test]
async fn aws_conforms_on_the_mock() {
    let mock = MockCloud::builder()
        .time_scale(0.01)
        .start()
        .await
        .expect("the mock starts");
    let transport = fast_transport("aws");
    let provider = skyfleet_aws::AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(mock.url())
        .with_static_credentials("AKIDSKYFLEETTEST", "not-a-real-secret", None)
        .with_timings(skyfleet_aws::Timings {
            poll_interval: Duration::from_millis(20),
            check_interval: Duration::from_secs(5),
            not_found_grace: Duration::from_millis(800),
        })
        .with_transport(transport.clone())
        .build()
        .await
        .expect("valid config");
    let subject = Subject {
        name: "aws".into(),
        provider: Arc::new(provider),
        inspector: Arc::new(MockInspector::new(
            mock.url(),
            "conformance-aws",
            MockCloudKind::aws(),
        )),
        launch: json!({
            "region": "us-east-1",
            "ImageId": "ami-0123456789abcdef0",
            "InstanceType": "t3.micro"
        }),
        manager_id: "conformance-aws".into(),
        resources_per_worker: 1,
        deadline: Duration::from_secs(30),
    };
    run_all(&subject).await;
    let backstage = Backstage::new(mock.url(), &MockCloudKind::aws(), "conformance-aws");
    behind_your_back::run_all(&subject, &backstage).await;
}

#[tokio::test]
async fn azure_conforms_on_the_mock() {
    const SUB: &str = "00000000-0000-0000-0000-0000000000cf";
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(0.01)
        .start()
        .await
        .expect("the mock starts");
    let pem = mock
        .cert_pem()
        .expect("a TLS mock has a certificate")
        .to_string();
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).expect("PEM");
    let http = reqwest::Client::builder()
        .tls_certs_merge(certs)
        .build()
        .expect("client");
    // The resource group and network the workers go into.
    let base = format!("{}/subscriptions/{SUB}/resourceGroups/workers", mock.url());
    for (path, body) in [
        (
            format!("{base}?api-version=2021-04-01"),
            json!({"location": "eastus"}),
        ),
        (
            format!(
                "{base}/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2024-05-01"
            ),
            json!({"location": "eastus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}),
        ),
    ] {
        let r = http
            .put(path)
            .bearer_auth("test")
            .json(&body)
            .send()
            .await
            .expect("seed");
        assert!(r.status().is_success(), "seed: {}", r.status());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut config = skyfleet_azure::AzureConfig::new(SUB);
    config.endpoint = mock.url().to_string();
    config.resource_groups = vec!["workers".into()];
    config.credential = skyfleet_azure::CredentialConfig::StaticToken {
        token: skyfleet_azure::Secret::new("test-token"),
    };
    config.ca_pem = Some(pem);
    config.poll = PollPolicy {
        min_interval: Duration::from_millis(20),
        max_interval: Duration::from_millis(300),
        default_interval: Duration::from_millis(50),
        deadline: Duration::from_secs(60),
        max_consecutive_errors: 5,
    };
    config.busy_retry_s = 0.2;
    let provider = skyfleet_azure::AzureBuilder::from_config(config)
        .build()
        .expect("valid config");
    let subject = Subject {
        name: "azure".into(),
        provider: Arc::new(provider),
        inspector: Arc::new(
            MockInspector::new(mock.url(), "conformance-azure", MockCloudKind::azure())
                .with_client(http.clone()),
        ),
        launch: json!({
            "location": "eastus",
            "vm_size": "Standard_D2s_v5",
            "subnet_id": format!("/subscriptions/{SUB}/resourceGroups/workers/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
            "public_ip": false,
            "data_disks": [],
            "ssh_public_key": "ssh-ed25519 AAAA conformance",
        }),
        manager_id: "conformance-azure".into(),
        // The NIC, the VM and its OS disk (no public IP asked for). The OS
        // disk, made by ARM with the VM, carries the ownership tags too
        // (PATCHed on once the VM exists), so it is listed and counted.
        resources_per_worker: 3,
        deadline: Duration::from_secs(60),
    };
    run_all(&subject).await;
    let backstage =
        Backstage::new(mock.url(), &MockCloudKind::azure(), "conformance-azure").with_client(http);
    behind_your_back::run_all(&subject, &backstage).await;
}
