//! Provision one Azure worker through the public API, as a user would,
//! against the mock cloud (TLS, Azure AD token endpoint included), then
//! remove it.
//!
//! ```text
//! cargo run -p skyfleet-azure --example azure_chain
//! ```
//!
//! Against real Azure, drop the mock: set `endpoint` to the default, pick a
//! credential (`CredentialConfig::Environment` reads the usual `AZURE_*`
//! variables), and point `subnet_id` at a real subnet.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use skyfleet_azure::{AzureBuilder, CredentialConfig, Secret};
use skyfleet_core::clock::SystemClock;
use skyfleet_core::{Lifecycle, OwnershipTags, Provider, ProviderExt, Worker, WorkerSpec};
use skyfleet_mock::MockCloud;

const SUB: &str = "00000000-0000-0000-0000-000000000001";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A mock cloud on a free port, serving HTTPS with its own certificate;
    // operations take a tenth of their real time.
    let mock = MockCloud::builder()
        .tls(true)
        .time_scale(0.1)
        .start()
        .await?;
    let ca = mock.cert_pem().unwrap_or_default().to_string();
    println!("mock cloud at {}", mock.url());

    // The network a worker joins (in real life: created once by an admin).
    let http = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(ca.as_bytes())?)
        .build()?;
    let base = format!("{}/subscriptions/{SUB}/resourceGroups/workers", mock.url());
    http.put(format!("{base}?api-version=2021-04-01"))
        .bearer_auth("admin")
        .json(&json!({"location": "eastus"}))
        .send()
        .await?
        .error_for_status()?;
    http.put(format!(
        "{base}/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2024-05-01"
    ))
    .bearer_auth("admin")
    .json(&json!({"location": "eastus", "properties": {
        "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
        "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}))
    .send()
    .await?
    .error_for_status()?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The provider: a service principal authenticating at the mock's Azure
    // AD endpoint through azure_identity, ARM at the mock, the mock's CA.
    let provider = AzureBuilder::new(SUB)
        .with_endpoint(mock.url())
        .with_resource_groups(["workers"])
        .with_ca_pem(ca)
        .with_credential(CredentialConfig::ClientSecret {
            tenant_id: "00000000-0000-0000-0000-0000000000te".into(),
            client_id: "skyfleet-example".into(),
            client_secret: Secret::new("not-a-real-secret"),
            authority_host: Some(mock.url().to_string()),
        })
        .build()?;

    // A pool's launch config, checked before any worker uses it.
    let launch = json!({
        "location": "eastus",
        "vm_size": "Standard_D2s_v5",
        "subnet_id": format!("/subscriptions/{SUB}/resourceGroups/workers/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
        "public_ip": true,
        "data_disks": [{"size_gb": 64}],
        "custom_data": "#cloud-config\nruncmd: [echo hello]\n",
    });
    provider.validate(&launch)?;

    let mut worker = Worker::new(
        WorkerSpec {
            worker_id: "example-1".into(),
            pool_id: "ci/linux".into(),
            provider_id: "azure".into(),
            launch_config_id: "eastus-d2".into(),
            launch,
            capacity: 1,
            lifecycle: Lifecycle::default(),
            tags: OwnershipTags {
                manager_id: "example".into(),
                pool_id: "ci/linux".into(),
                worker_id: "example-1".into(),
                provider_id: "azure".into(),
                store_id: None,
                extra: BTreeMap::new(),
            },
        },
        time::OffsetDateTime::now_utc(),
    );
    let clock = SystemClock;
    provider
        .create(&mut worker, &clock, Duration::from_secs(120))
        .await?;
    println!("worker {} is {:?}", worker.id(), worker.phase);
    println!(
        "provider state: {}",
        serde_json::to_string_pretty(&worker.provider_state)?
    );

    provider
        .remove(&mut worker, &clock, Duration::from_secs(120))
        .await?;
    println!("worker {} is {:?}", worker.id(), worker.phase);
    let left: Vec<serde_json::Value> = http
        .get(format!("{}/_mock/resources?cloud=azure", mock.url()))
        .send()
        .await?
        .json()
        .await?;
    let ours = left
        .iter()
        .filter(|r| r["tags"]["skyfleet-manager"] == "example")
        .count();
    println!("resources of ours left in the cloud: {ours}");
    Ok(())
}
