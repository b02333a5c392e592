//! Talking to an in-process mock cloud's control API (`/_mock/...`) without
//! going over the network: requests go straight into its router.

use bytes::Bytes;
use http_body_util::BodyExt;
use skyfleet_mock::MockCloud;
use tower::ServiceExt;

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

/// How many of `resources` are extra copies for a worker that already has
/// one (grouped by the `skyfleet-worker` tag; untagged resources are not
/// counted): what a lost or replayed create would leave behind.
pub fn duplicates_per_worker(resources: &[Resource]) -> usize {
    let mut per: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for r in resources {
        if let Some(w) = r["tags"]["skyfleet-worker"].as_str() {
            *per.entry(w).or_default() += 1;
        }
    }
    per.values().map(|n| n - 1).sum()
}

/// Request statistics.
pub async fn stats(mock: &MockCloud) -> Result<serde_json::Value, String> {
    call(mock, "GET", "/_mock/stats", None).await
}

/// Replaces the fault rules.
pub async fn set_faults(mock: &MockCloud, rules: &serde_json::Value) -> Result<(), String> {
    call(mock, "PUT", "/_mock/faults", Some(rules.to_string()))
        .await
        .map(|_| ())
}
