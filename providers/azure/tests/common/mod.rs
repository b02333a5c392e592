//! Test harness: a TLS mock cloud with a resource group, a virtual network
//! and a subnet, and helpers to build providers and workers against it.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use skyfleet_azure::{AzureBuilder, AzureConfig, AzureProvider, CredentialConfig, Secret};
use skyfleet_core::clock::SystemClock;
use skyfleet_core::provider::apply_step;
use skyfleet_core::testing::fixtures;
use skyfleet_core::{Phase, PollPolicy, Provider, Worker};
use skyfleet_mock::MockCloud;

pub const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
pub const RG: &str = "workers";
pub const LOCATION: &str = "eastus";
pub const MANAGER: &str = "mgr-test";

pub struct Env {
    pub mock: MockCloud,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_scaled(0.01).await
    }

    pub async fn start_scaled(scale: f64) -> Env {
        let mock = MockCloud::builder()
            .tls(true)
            .time_scale(scale)
            .start()
            .await
            .expect("mock starts");
        let pem = mock.cert_pem().expect("tls cert").to_string();
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_merge(certs)
            .build()
            .unwrap();
        let env = Env { mock, http };
        env.seed().await;
        env
    }

    async fn put(&self, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.mock.url());
        let r = self
            .http
            .put(url)
            .bearer_auth("test")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    async fn seed(&self) {
        self.put(
            &format!("/subscriptions/{SUB}/resourceGroups/{RG}?api-version=2021-04-01"),
            json!({"location": LOCATION}),
        )
        .await;
        self.put(
            &format!(
                "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2024-05-01"
            ),
            json!({"location": LOCATION, "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.0.0/24"}}]}}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    pub fn subnet_id() -> String {
        format!(
            "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"
        )
    }

    /// The provider config: static token, the mock's CA, fast polls.
    pub fn config(&self) -> AzureConfig {
        let mut c = AzureConfig::new(SUB);
        c.endpoint = self.mock.url().to_string();
        c.resource_groups = vec![RG.into()];
        c.credential = CredentialConfig::StaticToken {
            token: Secret::new("test-token"),
        };
        c.ca_pem = self.mock.cert_pem().map(str::to_string);
        c.poll = PollPolicy {
            min_interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(300),
            default_interval: Duration::from_millis(50),
            deadline: Duration::from_secs(60),
            max_consecutive_errors: 5,
        };
        c.transport.attempt_timeout_ms = Some(5_000);
        c.transport.overall_timeout_ms = Some(20_000);
        c.busy_retry_s = 0.2;
        c
    }

    pub fn provider(&self) -> AzureProvider {
        AzureBuilder::from_config(self.config())
            .build()
            .expect("provider")
    }

    /// Every ARM resource of ours (not the group or the network).
    pub async fn ours(&self) -> Vec<Value> {
        let url = format!("{}/_mock/resources?cloud=azure", self.mock.url());
        let all: Vec<Value> = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            // A refused listing fails the test; it never reads as "none".
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        all.into_iter()
            .filter(|r| {
                !matches!(
                    r["kind"].as_str(),
                    Some("resourceGroup") | Some("virtualNetwork")
                )
            })
            .collect()
    }

    pub async fn count(&self, kind: &str) -> usize {
        self.ours()
            .await
            .iter()
            .filter(|r| r["kind"].as_str() == Some(kind))
            .count()
    }

    pub async fn set_faults(&self, rules: Value) {
        let url = format!("{}/_mock/faults", self.mock.url());
        let r = self.http.put(url).json(&rules).send().await.unwrap();
        assert!(
            r.status().is_success(),
            "faults: {}",
            r.text().await.unwrap()
        );
    }

    pub async fn stats(&self) -> Value {
        let url = format!("{}/_mock/stats", self.mock.url());
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

pub fn launch(public_ip: bool, data_disks: usize) -> Value {
    let disks: Vec<Value> = (0..data_disks).map(|_| json!({"size_gb": 16})).collect();
    json!({
        "location": LOCATION,
        "vm_size": "Standard_D2s_v5",
        "subnet_id": Env::subnet_id(),
        "public_ip": public_ip,
        "data_disks": disks,
        "custom_data": "#cloud-config\n",
        "ssh_public_key": "ssh-ed25519 AAAA test",
    })
}

/// The explicit OS disk: created from the image before the VM, attached.
pub fn explicit_os_launch() -> Value {
    let mut l = launch(false, 1);
    l["os_disk"] = json!({"explicit": true, "size_gb": 40});
    l["image"] = json!({"publisher": "Canonical", "offer": "ubuntu-24_04-lts",
        "sku": "server", "version": "24.04.202501010"});
    l
}

pub fn worker(id: &str, launch: Value) -> Worker {
    fixtures::worker(id)
        .provider(skyfleet_core::provider::names::AZURE)
        .manager(MANAGER)
        .launch(launch)
        .build_now()
}

/// Steps `w` (sleeping as asked) until its phase is in `until` or final;
/// returns the step errors seen.
pub async fn drive(p: &dyn Provider, w: &mut Worker, until: &[Phase]) -> Vec<skyfleet_core::Error> {
    use skyfleet_core::clock::Clock;
    let clock = SystemClock;
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    let mut errors = 0;
    let mut seen = Vec::new();
    while !(until.contains(&w.phase) || w.phase.is_final()) {
        assert!(std::time::Instant::now() < give_up, "stuck: {w:#?}");
        let wait = skyfleet_core::clock::until(clock.now(), w.next_check_at);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        match p.step(w).await {
            Ok(s) => {
                errors = 0;
                apply_step(w, &s, clock.now());
            }
            Err(e) => {
                errors += 1;
                assert!(errors < 20, "too many step errors, last: {e}");
                w.next_check_at = clock.now() + Duration::from_millis(100);
                seen.push(e);
            }
        }
    }
    seen
}
