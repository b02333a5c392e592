//! Provisions one Compute Engine worker as a user would, against the mock
//! started in-process (point `with_endpoint` at the real endpoint, or leave
//! the default, and use `Credentials::Auto` for a real project).
//!
//! ```text
//! cargo run -p skyfleet-gcp --example gce_worker
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::{
    Lifecycle, OwnershipScope, OwnershipTags, PollPolicy, Provider, ProviderExt, Worker, WorkerSpec,
};
use skyfleet_gcp::{Credentials, GcpBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A mock Compute Engine where a 15 s boot takes 150 ms.
    let mock = skyfleet_mock::MockCloud::builder()
        .time_scale(0.01)
        .start()
        .await?;
    println!("mock Compute Engine at {}", mock.url());

    let provider = GcpBuilder::new("example-project")
        .with_endpoint(mock.url())
        .with_credentials(Credentials::static_token("example-token"))
        .with_zones(["europe-west1-b"])
        .with_poll(PollPolicy {
            min_interval: Duration::from_millis(50),
            max_interval: Duration::from_secs(2),
            default_interval: Duration::from_millis(100),
            deadline: Duration::from_secs(120),
            max_consecutive_errors: 5,
        })
        .with_check_intervals(Duration::from_secs(60), Duration::from_millis(100))
        .build()?;

    let launch = json!({
        "zone": "europe-west1-b",
        "machineType": "e2-standard-4",
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12",
                                        "diskSizeGb": "50"}}],
        "spot": true,
        "serviceAccount": {"email": "worker@example-project.iam.gserviceaccount.com"},
        "metadata": {"startup-script": "#!/bin/sh\necho starting the worker"},
        "labels": {"team": "ci"}
    });
    // Validate the launch config before any worker uses it.
    provider.validate(&launch)?;

    let mut worker = Worker::new(
        WorkerSpec {
            worker_id: "example-worker-1".into(),
            pool_id: "ci/linux-spot".into(),
            provider_id: provider.id().to_string(),
            launch_config_id: "spot-e2".into(),
            launch,
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "example-manager".into(),
                pool_id: "ci/linux-spot".into(),
                worker_id: "example-worker-1".into(),
                provider_id: provider.id().to_string(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        SystemClock.now(),
    );

    provider
        .create(&mut worker, &SystemClock, Duration::from_secs(60))
        .await?;
    println!(
        "worker {} is {:?}; provider state: {}",
        worker.id(),
        worker.phase,
        worker.provider_state
    );

    let owned = provider
        .list_owned(&OwnershipScope {
            manager_id: "example-manager".into(),
            provider_id: provider.id().to_string(),
        })
        .await?;
    for r in &owned {
        println!("owned: {} (worker {:?})", r.id, r.worker_id);
    }

    provider
        .remove(&mut worker, &SystemClock, Duration::from_secs(60))
        .await?;
    println!("worker {} is {:?}", worker.id(), worker.phase);
    Ok(())
}
