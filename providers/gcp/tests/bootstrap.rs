//! A worker created by the GCP provider finds out who it is from its
//! instance's metadata service: the instance attribute `taskcluster`
//! (`Metadata-Flavor: Google`), read with a plain HTTP client and parsed
//! with core's [`Bootstrap::parse`]; it names exactly the worker and the
//! provider's configured root URL.

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_core::clock::SystemClock;
use skyfleet_core::provider::bootstrap::GCE_METADATA_KEY;
use skyfleet_core::testing::fixtures;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{Bootstrap, ErrorKind, Phase, PollPolicy, ProviderExt, Worker};
use skyfleet_gcp::{Credentials, GcpBuilder};
use skyfleet_mock::MockCloud;

const PROJECT: &str = "skyfleet-test";
const ZONE: &str = "us-central1-a";
const ROOT_URL: &str = "https://manager.example";

fn transport() -> Transport {
    let mut c = TransportConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200));
    for class in ApiClass::ALL {
        c = c.with_limit("gcp", class, Limit::per_second(5000, 5000));
    }
    Transport::builder().config(c).build().unwrap()
}

fn builder(url: &str) -> GcpBuilder {
    GcpBuilder::new(PROJECT)
        .with_id("gcp-test")
        .with_endpoint(url)
        .with_credentials(Credentials::static_token("test-token"))
        .with_zones([ZONE])
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(10),
            max_interval: Duration::from_millis(100),
            default_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(30),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_secs(60), Duration::from_millis(20))
        .with_transport(transport())
}

fn worker(id: &str) -> Worker {
    fixtures::worker(id)
        .pool("ci/linux")
        .provider("gcp-test")
        .launch_config("lc-3")
        .launch(json!({
            "zone": ZONE,
            "machineType": "e2-small",
            "disks": [{"boot": true, "autoDelete": true,
                       "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
            "metadata": {"startup-script": "echo hello"},
            "workerConfig": {"shell": "bash"}
        }))
        .build_now()
}

/// `instance/attributes/{key}` of the worker's instance, as its agent
/// reads it.
async fn attribute(
    mock: &MockCloud,
    worker_id: &str,
    key: &str,
    flavor: bool,
) -> reqwest::Response {
    let url = format!(
        "{}/_imds/gcp/{PROJECT}/{ZONE}/{worker_id}-vm/computeMetadata/v1/instance/attributes/{key}",
        mock.imds_url()
    );
    let mut req = reqwest::Client::new().get(url);
    if flavor {
        req = req.header("Metadata-Flavor", "Google");
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn each_worker_reads_its_own_identity_from_its_metadata() {
    let mock = MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .unwrap();
    let p = builder(mock.url()).with_root_url(ROOT_URL).build().unwrap();
    let mut workers = Vec::new();
    for id in ["w-boot-1", "w-boot-2"] {
        let mut w = worker(id);
        p.create(&mut w, &SystemClock, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(w.phase, Phase::Running);
        workers.push(w);
    }
    for w in &workers {
        let resp = attribute(&mock, w.id(), GCE_METADATA_KEY, true).await;
        assert_eq!(resp.status(), 200);
        let doc = Bootstrap::parse(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(doc.root_url, ROOT_URL);
        assert_eq!(doc.worker_id, w.id());
        assert_eq!(doc.worker_pool_id, "ci/linux");
        assert_eq!(doc.provider_id, "gcp-test");
        assert_eq!(doc.worker_group, "us-central1");
        assert_eq!(doc.launch_config_id, "lc-3");
        assert_eq!(doc.worker_config, json!({"shell": "bash"}));
        assert!(doc.extra.is_empty(), "{:?}", doc.extra);
        // The launch config's own metadata is still there.
        let script = attribute(&mock, w.id(), "startup-script", true).await;
        assert_eq!(script.text().await.unwrap(), "echo hello");
    }
    // Without the header, the metadata server refuses, as GCE's does.
    let refused = attribute(&mock, workers[0].id(), GCE_METADATA_KEY, false).await;
    assert_eq!(refused.status(), 403);
    // Gone with the instance.
    let mut w = workers.remove(0);
    p.remove(&mut w, &SystemClock, Duration::from_secs(30))
        .await
        .unwrap();
    let gone = attribute(&mock, w.id(), GCE_METADATA_KEY, true).await;
    assert_eq!(gone.status(), 404);
    mock.shutdown().await;
}

#[tokio::test]
async fn registering_workers_need_a_service_account_for_their_identity_token() {
    let mut l = worker("w-sa").spec.launch;
    l.as_object_mut().unwrap().remove("serviceAccount");
    // No worker API: nothing to prove, nothing required.
    let p = builder("http://127.0.0.1:9").build().unwrap();
    assert!(skyfleet_core::Provider::validate(&p, &l).is_ok());
    let p = builder("http://127.0.0.1:9")
        .with_root_url(ROOT_URL)
        .build()
        .unwrap();
    let e = skyfleet_core::Provider::validate(&p, &l).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "launch.serviceAccount"),
        "{e}"
    );
    assert!(e.to_string().contains("identity token"), "{e}");
    l["serviceAccount"] = json!({"email": "default"});
    assert!(skyfleet_core::Provider::validate(&p, &l).is_ok());
}

#[tokio::test]
async fn the_bootstrap_key_is_reserved_and_the_root_url_checked() {
    let mut l = worker("w-x").spec.launch;
    l["metadata"][GCE_METADATA_KEY] = Value::from("{}");
    let p = builder("http://127.0.0.1:9").build().unwrap();
    let e = skyfleet_core::Provider::validate(&p, &l).unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "launch.metadata.taskcluster"),
        "{e}"
    );
    let e = builder("http://127.0.0.1:9")
        .with_root_url("https://user:pw@manager.example")
        .build()
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "root_url"),
        "{e}"
    );
}
