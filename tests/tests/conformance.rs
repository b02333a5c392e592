//! The provider conformance suite, run against every provider: one test
//! function each.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::PollPolicy;
use skyfleet_mock::MockCloud;
use skyfleet_static::StaticProvider;
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
    let config = skyfleet_gcp::GcpConfig::new("conformance")
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
    let provider = skyfleet_gcp::GcpProvider::new(config).expect("valid config");
    run_all(&Subject {
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
    })
    .await;
}

#[tokio::test]
async fn static_conforms() {
    let provider = StaticProvider::new("static").with_check_interval(Duration::from_secs(60));
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
