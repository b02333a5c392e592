//! Providers by kind: from `fleet.toml` sections, and the demo's three mock
//! clouds.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use skyfleet_aws::{AwsConfig, AwsProvider};
use skyfleet_azure::credential::CredentialConfig;
use skyfleet_azure::{AzureConfig, AzureProvider, SecretString};
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{DynProvider, PollPolicy, PoolConfig};
use skyfleet_gcp::{Credentials, GcpBuilder};
use skyfleet_mock::MockCloud;

use crate::config::ProviderSection;
use crate::mockctl;

/// The mock's global time scale in the demo: a 60 s VM creation takes 1.2 s.
pub const DEMO_TIME_SCALE: f64 = 0.02;

const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000d3e00";
const RESOURCE_GROUP: &str = "skyfleet-demo";
const LOCATION: &str = "westeurope";
const PROJECT: &str = "skyfleet-demo";
const ZONE: &str = "europe-west1-b";

/// One pool on one provider of the demo.
pub struct DemoCloud {
    /// The provider.
    pub provider: DynProvider,
    /// Its pool.
    pub pool: PoolConfig,
    /// The mock's name for the cloud (`aws`, `azure`, `gcp`).
    pub mock_cloud: &'static str,
}

fn poll() -> PollPolicy {
    PollPolicy {
        min_interval: Duration::from_millis(50),
        max_interval: Duration::from_secs(2),
        default_interval: Duration::from_millis(100),
        deadline: Duration::from_secs(300),
        max_consecutive_errors: 8,
    }
}

/// AWS settings in `fleet.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AwsSection {
    regions: Vec<String>,
    #[serde(default)]
    endpoint_url: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    access_key_id: Option<String>,
    #[serde(default)]
    secret_access_key: Option<String>,
    #[serde(default)]
    ca_pem_file: Option<String>,
}

/// GCP settings in `fleet.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GcpSection {
    project: String,
    #[serde(default)]
    zones: Vec<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    service_account_file: Option<String>,
    #[serde(default)]
    static_token: Option<String>,
    #[serde(default)]
    ca_pem_file: Option<String>,
}

fn transport(ca_pem: Option<&str>) -> Result<Transport, String> {
    let mut cfg = TransportConfig::default();
    if let Some(pem) = ca_pem {
        cfg = cfg.with_root_certificate_pem(pem.as_bytes().to_vec());
    }
    Transport::builder()
        .config(cfg)
        .build()
        .map_err(|e| e.to_string())
}

fn read_pem(path: &Option<String>) -> Result<Option<String>, String> {
    path.as_ref()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("ca_pem_file {p}: {e}")))
        .transpose()
}

fn settings<T: serde::de::DeserializeOwned>(section: &ProviderSection) -> Result<T, String> {
    let v = serde_json::Value::Object(section.settings.clone());
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        format!("at `{path}`: {}", e.into_inner())
    })
}

/// Builds a provider from a `[providers.ID]` section.
pub async fn from_config(id: &str, section: &ProviderSection) -> Result<DynProvider, String> {
    match section.kind.as_str() {
        "testing" => Ok(Arc::new(TestingProvider::new(
            id,
            TestingCloud::new(TestingConfig::default()),
        ))),
        "aws" => {
            let s: AwsSection = settings(section)?;
            let mut c = AwsConfig::new(id, s.regions);
            if let Some(u) = s.endpoint_url {
                c = c.with_endpoint_url(u);
            }
            if let Some(p) = s.profile {
                c = c.with_profile(p);
            }
            if let (Some(k), Some(sk)) = (s.access_key_id, s.secret_access_key) {
                c = c.with_static_credentials(k, sk, None);
            }
            let t = transport(read_pem(&s.ca_pem_file)?.as_deref())?;
            Ok(Arc::new(
                AwsProvider::new(c, &t).await.map_err(|e| e.to_string())?,
            ))
        }
        "gcp" => {
            let s: GcpSection = settings(section)?;
            let mut c = GcpBuilder::new(s.project).with_id(id).with_zones(s.zones);
            if let Some(e) = s.endpoint {
                c = c.with_endpoint(e);
            }
            c = c.with_credentials(match (s.static_token, s.service_account_file) {
                (Some(t), _) => Credentials::static_token(t),
                (None, Some(f)) => Credentials::ServiceAccountFile(f.into()),
                (None, None) => Credentials::Auto,
            });
            let t = transport(read_pem(&s.ca_pem_file)?.as_deref())?;
            c = c.with_transport(t);
            Ok(Arc::new(c.build().map_err(|e| e.to_string())?))
        }
        "azure" => {
            let mut v = section.settings.clone();
            v.insert("id".into(), serde_json::Value::String(id.into()));
            let c: AzureConfig = serde_path_to_error::deserialize(serde_json::Value::Object(v))
                .map_err(|e| {
                    let path = e.path().to_string();
                    format!("at `{path}`: {}", e.into_inner())
                })?;
            Ok(Arc::new(AzureProvider::new(c).map_err(|e| e.to_string())?))
        }
        "static" => {
            if let Some(k) = section.settings.keys().next() {
                return Err(format!("at `{k}`: static providers take no settings"));
            }
            Ok(Arc::new(skyfleet_static::StaticBuilder::new(id).build()))
        }
        other => Err(format!(
            "unknown provider kind `{other}` (expected testing, aws, gcp, azure or static)"
        )),
    }
}

async fn arm_put(mock: &MockCloud, path: &str, body: serde_json::Value) -> Result<(), String> {
    mockctl::call_authorized(mock, "PUT", path, Some(body.to_string()))
        .await
        .map(|_| ())
}

/// Creates what the demo's Azure pool needs before any worker: a resource
/// group and a virtual network with a subnet.
pub async fn scaffold(mock: &MockCloud) -> Result<(), String> {
    let rg = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}");
    arm_put(
        mock,
        &format!("{rg}?api-version=2022-09-01"),
        serde_json::json!({"location": LOCATION}),
    )
    .await?;
    arm_put(
        mock,
        &format!(
            "{rg}/providers/Microsoft.Network/virtualNetworks/demo-vnet?api-version=2023-09-01"
        ),
        serde_json::json!({
            "location": LOCATION,
            "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "workers", "properties": {"addressPrefix": "10.0.0.0/20"}}]
            }
        }),
    )
    .await
}

fn pool(
    id: &str,
    provider: &str,
    max: u32,
    launch: serde_json::Value,
) -> Result<PoolConfig, String> {
    serde_json::from_value(serde_json::json!({
        "pool_id": id,
        "provider_id": provider,
        "max_capacity": max,
        "launch_configs": [{"id": "default", "launch": launch}],
        "lifecycle": {"provisioning_deadline": 600}
    }))
    .map_err(|e| e.to_string())
}

/// The transport for the mock: the client-side rate limits calibrated on
/// the real clouds' published limits (EC2's 2 RunInstances per second, ARM's
/// 10 writes per second) are lifted, so a demo or a 2,000-worker soak
/// measures the fleet rather than AWS's launch quota. The mock's own
/// throttling, when switched on, still applies.
fn mock_transport(ca_pem: &str) -> Result<Transport, String> {
    use skyfleet_core::transport::{ApiClass, Limit};
    let open = Limit::per_second(10_000, 10_000);
    let mut cfg = TransportConfig::default()
        .with_root_certificate_pem(ca_pem.as_bytes().to_vec())
        .with_max_concurrency(512);
    for provider in ["aws", "gcp", "azure"] {
        for class in [
            ApiClass::Read,
            ApiClass::Write,
            ApiClass::Delete,
            ApiClass::Poll,
        ] {
            cfg = cfg.with_limit(provider, class, open);
        }
    }
    for op in ["RunInstances", "StartInstances", "CreateTags", "DeleteTags"] {
        cfg = cfg.with_operation_limit("aws", op, open);
    }
    Transport::builder()
        .config(cfg)
        .build()
        .map_err(|e| e.to_string())
}

/// The demo's pools on a mock at `url` whose certificate is `ca_pem`,
/// assuming [`scaffold`] ran.
pub async fn demo_clouds_at(url: &str, ca_pem: &str) -> Result<Vec<DemoCloud>, String> {
    let t = mock_transport(ca_pem)?;
    let aws = AwsProvider::new(
        AwsConfig::new("aws", ["us-east-1"])
            .with_endpoint_url(url)
            .with_static_credentials("AKIDSKYFLEETDEMO", "demo-secret", None)
            .with_timings(skyfleet_aws::Timings {
                poll_interval: Duration::from_millis(200),
                ..skyfleet_aws::Timings::default()
            }),
        &t,
    )
    .await
    .map_err(|e| format!("aws provider: {e}"))?;
    let gcp = GcpBuilder::new(PROJECT)
        .with_id("gcp")
        .with_endpoint(url)
        .with_credentials(Credentials::static_token("demo-token"))
        .with_zones([ZONE])
        .with_poll(poll())
        .with_check_intervals(Duration::from_secs(30), Duration::from_millis(100))
        .with_transport(t.clone())
        .build()
        .map_err(|e| format!("gcp provider: {e}"))?;
    let mut az = AzureConfig::new(SUBSCRIPTION);
    az.resource_groups = vec![RESOURCE_GROUP.into()];
    az.endpoint = url.trim_end_matches('/').to_string();
    az.credential = CredentialConfig::StaticToken {
        token: SecretString::new("demo-token"),
    };
    az.ca_pem = Some(ca_pem.to_string());
    az.poll = poll();
    az.health_interval_s = 30.0;
    az.busy_retry_s = 0.5;
    let azure = AzureProvider::with_transport(az, t).map_err(|e| format!("azure provider: {e}"))?;
    let subnet = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Network/virtualNetworks/demo-vnet/subnets/workers"
    );
    let max = 10_000;
    Ok(vec![
        DemoCloud {
            provider: Arc::new(aws),
            pool: pool(
                "demo/aws-linux",
                "aws",
                max,
                serde_json::json!({"region": "us-east-1", "ImageId": "ami-0123456789abcdef0", "InstanceType": "m5.large"}),
            )?,
            mock_cloud: "aws",
        },
        DemoCloud {
            provider: Arc::new(gcp),
            pool: pool(
                "demo/gcp-linux",
                "gcp",
                max,
                serde_json::json!({
                    "zone": ZONE, "machineType": "e2-standard-4",
                    "disks": [{"boot": true, "autoDelete": true,
                               "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]
                }),
            )?,
            mock_cloud: "gcp",
        },
        DemoCloud {
            provider: Arc::new(azure),
            pool: pool(
                "demo/azure-linux",
                "azure",
                max,
                serde_json::json!({"location": LOCATION, "vm_size": "Standard_D2s_v5", "subnet_id": subnet}),
            )?,
            mock_cloud: "azure",
        },
    ])
}

/// The demo's pools on an in-process mock (scaffolding included).
pub async fn demo_clouds(mock: &MockCloud, _workers: u32) -> Result<Vec<DemoCloud>, String> {
    scaffold(mock).await?;
    let pem = mock
        .cert_pem()
        .ok_or("the demo's mock must serve TLS (Azure clients need it)")?;
    demo_clouds_at(mock.url(), pem).await
}

/// Whether a `/_mock/resources` entry is a worker's resource (not the
/// network scaffolding the demo sets up once).
pub fn is_worker_resource(r: &serde_json::Value) -> bool {
    !matches!(
        r["kind"].as_str(),
        Some("resourceGroup" | "virtualNetwork" | "subnet")
    )
}

/// Whether a `/_mock/resources` entry is a VM.
pub fn is_vm(r: &serde_json::Value) -> bool {
    matches!(r["kind"].as_str(), Some("instance" | "virtualMachine"))
}

/// The worker id a resource is tagged (labelled) with.
pub fn worker_tag(r: &serde_json::Value) -> Option<String> {
    r["tags"][skyfleet_core::model::tag::WORKER]
        .as_str()
        .map(str::to_string)
}
