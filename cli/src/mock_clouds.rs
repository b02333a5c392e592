//! Demo scaffolding: the demo's three pools on mock-backed providers (AWS,
//! GCP, Azure on one mock cloud), used by `skyfleet demo` and the fleet
//! benchmarks. Not a production path: credentials are placeholders and the
//! client-side rate limits are lifted.

use std::sync::Arc;
use std::time::Duration;

use skyfleet_aws::AwsBuilder;
use skyfleet_azure::CredentialConfig;
use skyfleet_azure::{AttestationConfig, AzureBuilder, AzureConfig, Secret};
use skyfleet_core::fleet::{Demand, FixedDemand, Fleet, FleetBuilder};
use skyfleet_core::store::WorkerStore;
use skyfleet_core::transport::{Transport, TransportConfig};
use skyfleet_core::{DynProvider, PollPolicy, PoolConfig};
use skyfleet_gcp::{Credentials, GcpBuilder};
use skyfleet_identity::aws::{AwsTrust, SignatureForm};
use skyfleet_identity::gcp::GcpConfig;
use skyfleet_identity::HttpFetch;
use skyfleet_mock::MockCloud;

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

/// A fleet builder over the demo's providers and pools, reading `store` and
/// `demand`; the caller sets the config (and anything else) and builds.
pub fn fleet(
    demo: &[DemoCloud],
    store: Arc<dyn WorkerStore>,
    demand: &FixedDemand,
) -> FleetBuilder {
    fleet_with(demo, store, Arc::new(demand.clone()))
}

/// [`fleet`] with any demand source.
pub fn fleet_with(
    demo: &[DemoCloud],
    store: Arc<dyn WorkerStore>,
    demand: Arc<dyn Demand>,
) -> FleetBuilder {
    let mut b = Fleet::builder().store(store).demand(demand);
    for c in demo {
        b = b.provider(c.provider.clone()).pool(c.pool.clone());
    }
    b
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

async fn arm_put(mock: &MockCloud, path: &str, body: serde_json::Value) -> Result<(), String> {
    mockctl::call_authorized(mock, "PUT", path, Some(body.to_string()))
        .await
        .map(|_| ())
}

/// The ARM requests (path, body) that create what the demo's Azure pool
/// needs before any worker: a resource group and a virtual network with a
/// subnet.
pub fn scaffold_requests() -> Vec<(String, serde_json::Value)> {
    let rg = format!("/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}");
    vec![
        (
            format!("{rg}?api-version=2022-09-01"),
            serde_json::json!({"location": LOCATION}),
        ),
        (
            format!(
                "{rg}/providers/Microsoft.Network/virtualNetworks/demo-vnet?api-version=2023-09-01"
            ),
            serde_json::json!({
                "location": LOCATION,
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [{"name": "workers", "properties": {"addressPrefix": "10.0.0.0/20"}}]
                }
            }),
        ),
    ]
}

/// Creates what the demo's Azure pool needs before any worker
/// ([`scaffold_requests`]) on an in-process mock.
pub async fn scaffold(mock: &MockCloud) -> Result<(), String> {
    for (path, body) in scaffold_requests() {
        arm_put(mock, &path, body).await?;
    }
    Ok(())
}

/// A demo pool. With `registering`, its workers run agents: they get a
/// worker config, heartbeat every second (a 6 s heartbeat timeout) and are
/// drained after 10 s idle.
fn pool(
    id: &str,
    provider: &str,
    max: u32,
    mut launch: serde_json::Value,
    registering: bool,
) -> Result<PoolConfig, String> {
    let lifecycle = if registering {
        // Azure's launch config spells it in snake case.
        let key = if provider == "azure" {
            "worker_config"
        } else {
            "workerConfig"
        };
        if let Some(l) = launch.as_object_mut() {
            l.insert(key.into(), serde_json::json!({"demo": {"pool": id}}));
        }
        serde_json::json!({
            "provisioning_deadline": 600, "registration_timeout": 120,
            "heartbeat_timeout": 6, "idle_timeout": 10, "drain_timeout": 60
        })
    } else {
        serde_json::json!({"provisioning_deadline": 600})
    };
    serde_json::from_value(serde_json::json!({
        "pool_id": id,
        "provider_id": provider,
        "max_capacity": max,
        "launch_configs": [{"id": "default", "launch": launch}],
        "lifecycle": lifecycle
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

/// What the demo's providers need so that workers can register: the
/// manager's worker API URL, written into each VM's bootstrap document, and
/// the identity trust the mock publishes at `/_mock/trust` (its AWS signing
/// certificate, Google JWKS URL and Azure attestation root), so each
/// provider verifies the mock's proofs as it would a real cloud's and
/// trusts nothing else.
#[derive(Debug, Clone)]
pub struct WorkerApi {
    /// The manager's root URL (`http://127.0.0.1:PORT` in the demo).
    pub root_url: String,
    /// The body of `GET /_mock/trust`.
    pub trust: serde_json::Value,
}

impl WorkerApi {
    /// Reads the trust of `mock`, for workers registering at `root_url`.
    pub async fn read(mock: &MockCloud, root_url: impl Into<String>) -> Result<Self, String> {
        let trust = mockctl::call_authorized(mock, "GET", "/_mock/trust", None).await?;
        Ok(WorkerApi {
            root_url: root_url.into(),
            trust,
        })
    }

    fn field(&self, pointer: &str) -> Result<&str, String> {
        self.trust
            .pointer(pointer)
            .and_then(|v| v.as_str())
            .ok_or_else(|| format!("`/_mock/trust` has no `{pointer}`"))
    }
}

/// The demo's pools on a mock at `url` whose certificate is `ca_pem`,
/// assuming [`scaffold`] ran; their workers cannot register (no worker API).
pub async fn demo_clouds_at(url: &str, ca_pem: &str) -> Result<Vec<DemoCloud>, String> {
    build(url, ca_pem, None).await
}

/// The demo's pools on a mock at `url` whose certificate is `ca_pem`, with
/// workers registering at `api` (see [`WorkerApi`]).
async fn build(url: &str, ca_pem: &str, api: Option<&WorkerApi>) -> Result<Vec<DemoCloud>, String> {
    let t = mock_transport(ca_pem)?;
    let mut aws = AwsBuilder::new()
        .with_regions(["us-east-1"])
        .with_endpoint_url(url)
        .with_static_credentials("AKIDSKYFLEETDEMO", "demo-secret", None)
        .with_timings(skyfleet_aws::Timings {
            poll_interval: Duration::from_millis(200),
            ..skyfleet_aws::Timings::default()
        })
        .with_transport(t.clone());
    if let Some(api) = api {
        let pem = api.field("/aws/certificate_pem")?;
        let trust = AwsTrust::empty()
            .with_certificate(SignatureForm::Rsa, "us-east-1", pem)
            .map_err(|e| format!("the mock's AWS certificate: {e}"))?;
        aws = aws.with_root_url(&api.root_url).with_identity_trust(trust);
    }
    let aws = aws
        .build()
        .await
        .map_err(|e| format!("aws provider: {e}"))?;
    let mut gcp = GcpBuilder::new(PROJECT)
        .with_id("gcp")
        .with_endpoint(url)
        .with_credentials(Credentials::static_token("demo-token"))
        .with_zones([ZONE])
        .with_poll(poll())
        .with_check_intervals(Duration::from_secs(30), Duration::from_millis(100))
        .with_transport(t.clone());
    if let Some(api) = api {
        let fetch = HttpFetch::with_extra_roots_pem(Duration::from_secs(5), ca_pem.as_bytes())
            .map_err(|e| format!("JWKS fetcher: {e}"))?;
        // Workers ask for tokens whose audience is the manager's root URL.
        let identity = GcpConfig::new(&api.root_url)
            .with_jwks_url(api.field("/gcp/jwks_url")?)
            .with_fetcher(Arc::new(fetch));
        gcp = gcp.with_root_url(&api.root_url).with_identity(identity);
    }
    let gcp = gcp.build().map_err(|e| format!("gcp provider: {e}"))?;
    let mut az = AzureConfig::new(SUBSCRIPTION);
    az.resource_groups = vec![RESOURCE_GROUP.into()];
    az.endpoint = url.trim_end_matches('/').to_string();
    az.credential = CredentialConfig::StaticToken {
        token: Secret::new("demo-token"),
    };
    az.ca_pem = Some(ca_pem.to_string());
    az.poll = poll();
    az.health_interval_s = 30.0;
    az.busy_retry_s = 0.5;
    let mut azure = AzureBuilder::from_config(az).with_transport(t);
    if let Some(api) = api {
        let attestation = AttestationConfig::new()
            .with_roots_pem(api.field("/azure/root_pem")?)
            .map_err(|e| format!("the mock's Azure root: {e}"))?
            // The mock's signer names no issuer URL to fetch.
            .without_aia();
        azure = azure
            .with_root_url(&api.root_url)
            .with_attestation(attestation);
    }
    let azure = azure.build().map_err(|e| format!("azure provider: {e}"))?;
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
                api.is_some(),
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
                    // Without a service account, a VM gets no identity token.
                    "serviceAccount": {"email": "default"},
                    "disks": [{"boot": true, "autoDelete": true,
                               "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}]
                }),
                api.is_some(),
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
                api.is_some(),
            )?,
            mock_cloud: "azure",
        },
    ])
}

/// The demo's pools on an in-process mock (scaffolding included).
pub async fn demo_clouds(mock: &MockCloud, _workers: u32) -> Result<Vec<DemoCloud>, String> {
    in_process(mock, None).await
}

/// The demo's pools on an in-process mock (scaffolding included), with
/// workers registering at `api`.
pub async fn demo_clouds_with_api(
    mock: &MockCloud,
    api: &WorkerApi,
) -> Result<Vec<DemoCloud>, String> {
    in_process(mock, Some(api)).await
}

async fn in_process(mock: &MockCloud, api: Option<&WorkerApi>) -> Result<Vec<DemoCloud>, String> {
    scaffold(mock).await?;
    let pem = mock
        .cert_pem()
        .ok_or("the demo's mock must serve TLS (Azure clients need it)")?;
    build(mock.url(), pem, api).await
}
