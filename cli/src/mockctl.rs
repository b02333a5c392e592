//! Talking to an in-process mock cloud's control API (`/_mock/...`) without
//! going over the network: requests go straight into its router.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::BodyExt;
use skyfleet_mock::MockCloud;
use tower::ServiceExt;

use crate::bench::stats::Calls;

/// One live resource, as `/_mock/resources` lists it.
pub type Resource = serde_json::Value;

async fn call(
    mock: &MockCloud,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<serde_json::Value, String> {
    call_authorized(mock, method, path, body).await
}

/// A request with a bearer token (ARM and Compute refuse requests without one).
pub async fn call_authorized(
    mock: &MockCloud,
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<serde_json::Value, String> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", mock.addr().to_string())
        .header("authorization", "Bearer skyfleet-cli")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            body.map(Bytes::from).unwrap_or_default(),
        ))
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let resp = mock
        .router()
        .oneshot(req)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "{method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    if bytes.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: bad JSON: {e}"))
}

/// Every live resource across clouds.
pub async fn resources(mock: &MockCloud) -> Result<Vec<Resource>, String> {
    list(mock, "/_mock/resources").await
}

/// The live resources of one cloud (`aws`, `gcp`, `azure`).
pub async fn resources_of(mock: &MockCloud, cloud: &str) -> Result<Vec<Resource>, String> {
    list(mock, &format!("/_mock/resources?cloud={cloud}")).await
}

async fn list(mock: &MockCloud, path: &str) -> Result<Vec<Resource>, String> {
    match call(mock, "GET", path, None).await? {
        serde_json::Value::Array(v) => Ok(v),
        other => Err(format!("{path}: expected an array, got {other}")),
    }
}

/// Whether a `/_mock/resources` entry is a worker's resource (not the
/// network scaffolding set up once before any worker).
pub fn is_worker_resource(r: &Resource) -> bool {
    !matches!(
        r["kind"].as_str(),
        Some("resourceGroup" | "virtualNetwork" | "subnet")
    )
}

/// Whether a `/_mock/resources` entry is a VM.
pub fn is_vm(r: &Resource) -> bool {
    matches!(r["kind"].as_str(), Some("instance" | "virtualMachine"))
}

/// Whether a listed VM is up (running, and serving its metadata).
pub fn is_up(r: &Resource) -> bool {
    matches!(
        r["state"].as_str(),
        Some("running" | "RUNNING" | "Succeeded")
    )
}

/// The worker id a resource is tagged (labelled) with.
pub fn worker_tag(r: &Resource) -> Option<&str> {
    r["tags"][skyfleet_core::model::tag::WORKER].as_str()
}

/// Per cloud, how many of `resources` are extra copies for a worker that
/// already has one (grouped by the worker tag; untagged resources are not
/// counted): what a lost or replayed create would leave behind.
pub fn duplicates_by_cloud(resources: &[Resource]) -> BTreeMap<String, usize> {
    let mut per: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in resources {
        if let Some(w) = worker_tag(r) {
            *per.entry((r["cloud"].as_str().unwrap_or("?"), w))
                .or_default() += 1;
        }
    }
    let mut out = BTreeMap::new();
    for ((cloud, _), n) in per {
        *out.entry(cloud.to_string()).or_default() += n - 1;
    }
    out
}

/// [`duplicates_by_cloud`] of the VMs alone (a worker's disk, NIC and IP
/// are not copies of its VM).
pub fn vm_duplicates_by_cloud(resources: &[Resource]) -> BTreeMap<String, usize> {
    let vms: Vec<Resource> = resources.iter().filter(|r| is_vm(r)).cloned().collect();
    duplicates_by_cloud(&vms)
}

/// [`duplicates_by_cloud`] summed over clouds.
pub fn duplicates_per_worker(resources: &[Resource]) -> usize {
    duplicates_by_cloud(resources).values().sum()
}

/// The mock's request statistics (`/_mock/stats`).
#[derive(Debug, Clone)]
pub struct Stats(serde_json::Value);

impl Stats {
    /// Reads them now.
    pub async fn read(mock: &MockCloud) -> Result<Stats, String> {
        call(mock, "GET", "/_mock/stats", None).await.map(Stats)
    }

    /// Every request `cloud` (`aws`, `gcp`, `azure`) answered.
    pub fn requests(&self, cloud: &str) -> u64 {
        self.0["by_cloud"][cloud].as_u64().unwrap_or(0)
    }

    /// The requests `cloud` answered, by operation; token requests
    /// (credentials, not the provider's work) excluded.
    pub fn calls(&self, cloud: &str) -> Calls {
        let mut out = Calls::new();
        for o in self.0["operations"].as_array().into_iter().flatten() {
            if o["cloud"] == cloud && o["operation"] != "oauth2.token" {
                let op = o["operation"].as_str().unwrap_or("?").to_string();
                *out.entry(op).or_default() += o["count"].as_u64().unwrap_or(0);
            }
        }
        out
    }
}

/// Replaces the fault rules.
pub async fn set_faults(mock: &MockCloud, rules: &serde_json::Value) -> Result<(), String> {
    call(mock, "PUT", "/_mock/faults", Some(rules.to_string()))
        .await
        .map(|_| ())
}
