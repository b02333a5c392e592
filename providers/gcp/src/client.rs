//! [`ComputeClient`]: the few Compute Engine REST methods the provider uses,
//! over the shared transport, with bearer tokens and Google's error JSON.
//!
//! Every call is core's one request shape, [`ApiRequest`]: method and URL, a
//! body, then the transport key `("gcp", project, zone)`, the API class and
//! the discovery method id as its operation name, so rate limits, retries and
//! metrics are per project, zone and kind of call; [`ComputeClient::send`]
//! adds the bearer token and reads Google's answer. Mutations carry a
//! `requestId`, which also tells the transport they are safe to retry.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use serde_json::Value;
use skyfleet_core::provider::names::GCP;
use skyfleet_core::provider::support::ApiRequest;
use skyfleet_core::transport::{ApiClass, Key, Transport};
use skyfleet_core::{Error, ErrorKind, Result};
use uuid::Uuid;

use crate::classify;
use crate::credential::TokenSource;

/// A zone operation, as much of it as the provider reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneOperation {
    /// The operation's name (what `zoneOperations.get` takes).
    pub name: String,
    /// `PENDING`, `RUNNING` or `DONE`.
    pub status: String,
    /// The target's numeric id (a string in JSON).
    #[serde(default)]
    pub target_id: Option<String>,
    /// The error of a failed operation.
    #[serde(default)]
    pub error: Option<OperationErrors>,
}

/// `error` of a failed operation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OperationErrors {
    /// The errors; the first decides the classification.
    #[serde(default)]
    pub errors: Vec<OperationError>,
}

/// One error of a failed operation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OperationError {
    /// `ZONE_RESOURCE_POOL_EXHAUSTED`, `QUOTA_EXCEEDED`, ...
    #[serde(default)]
    pub code: String,
    /// The message.
    #[serde(default)]
    pub message: String,
}

impl ZoneOperation {
    /// Whether the operation has ended.
    pub fn is_done(&self) -> bool {
        self.status == "DONE"
    }

    /// The first error of a failed operation, as `(code, message)`.
    pub fn failure(&self) -> Option<(String, String)> {
        let errs = &self.error.as_ref()?.errors;
        match errs.first() {
            Some(e) => Some((e.code.clone(), e.message.clone())),
            None => Some(("UNKNOWN".into(), "operation failed without details".into())),
        }
    }
}

/// An instance, as much of it as the provider reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// The name.
    pub name: String,
    /// The numeric id (a string in JSON).
    #[serde(default)]
    pub id: Option<String>,
    /// `PROVISIONING`, `STAGING`, `RUNNING`, `STOPPING`, `TERMINATED`, ...
    pub status: String,
    /// The labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The fingerprint of the labels, which `setLabels` must be given.
    #[serde(default)]
    pub label_fingerprint: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default)]
    pub creation_timestamp: Option<String>,
    /// The zone link.
    #[serde(default)]
    pub zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceList {
    #[serde(default)]
    items: Vec<Instance>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// Percent-encodes a query parameter value.
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Compute Engine REST for one project.
#[derive(Debug, Clone)]
pub struct ComputeClient {
    transport: Transport,
    tokens: Arc<TokenSource>,
    project: String,
    base: String,
}

impl ComputeClient {
    /// A client for `project` at `endpoint` (scheme and host).
    pub fn new(
        transport: Transport,
        tokens: Arc<TokenSource>,
        endpoint: &str,
        project: &str,
    ) -> Self {
        crate::profile::register(&transport);
        ComputeClient {
            transport,
            tokens,
            project: project.to_string(),
            base: format!(
                "{}/compute/v1/projects/{project}",
                endpoint.trim_end_matches('/')
            ),
        }
    }

    /// The transport (for its metrics).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The project.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The transport key of calls in `zone` (their class is set per call).
    fn key(&self, zone: &str) -> Key {
        Key::new(GCP, self.project.as_str(), zone, ApiClass::Read)
    }

    /// Sends `req` (operation `op`) with a bearer token: the body of a 2xx,
    /// `None` for a 404, Google's error JSON classified otherwise (a 401
    /// also drops the cached token).
    async fn send(&self, req: ApiRequest, op: &'static str) -> Result<Option<Bytes>> {
        let token = self.tokens.token().await?;
        let resp = req
            .bearer(&token)
            .send(&self.transport)
            .await
            .map_err(|e| e.with_provider(GCP))?;
        if resp.is_success() {
            return Ok(Some(resp.body));
        }
        if resp.status == http::StatusCode::NOT_FOUND.as_u16() {
            return Ok(None);
        }
        if resp.status == http::StatusCode::UNAUTHORIZED.as_u16() {
            self.tokens.invalidate().await;
        }
        Err(classify::api_error(
            op,
            resp.status,
            &resp.body,
            resp.retry_after(),
        ))
    }

    fn parse<T: serde::de::DeserializeOwned>(op: &str, what: &str, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| classify::malformed(op, what, &e))
    }

    fn zone_url(&self, zone: &str) -> String {
        format!("{}/zones/{zone}", self.base)
    }

    /// `instances.insert` with `requestId`; the operation.
    pub async fn insert(
        &self,
        zone: &str,
        body: &Value,
        request_id: Uuid,
    ) -> Result<ZoneOperation> {
        const OP: &str = "compute.instances.insert";
        let url = format!("{}/instances?requestId={request_id}", self.zone_url(zone));
        let req = ApiRequest::new(Method::POST, url)
            .json(body.clone())
            .key(self.key(zone))
            .class(ApiClass::Write)
            .operation(OP);
        match self.send(req, OP).await? {
            Some(b) => Self::parse(OP, "operation", &b),
            None => Err(Error::new(
                ErrorKind::NotFound,
                format!("{OP}: zone {zone} or a resource the instance refers to was not found"),
            )
            .with_provider(GCP)),
        }
    }

    /// `instances.get`; `None` when there is no such instance.
    pub async fn get_instance(&self, zone: &str, name: &str) -> Result<Option<Instance>> {
        const OP: &str = "compute.instances.get";
        let url = format!("{}/instances/{name}", self.zone_url(zone));
        let req = ApiRequest::new(Method::GET, url)
            .key(self.key(zone))
            .class(ApiClass::Read)
            .operation(OP);
        match self.send(req, OP).await? {
            Some(b) => Self::parse(OP, "instance", &b).map(Some),
            None => Ok(None),
        }
    }

    /// `instances.list` with `filter`, every page; an unknown zone is empty.
    pub async fn list_instances(&self, zone: &str, filter: &str) -> Result<Vec<Instance>> {
        const OP: &str = "compute.instances.list";
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/instances?maxResults=500&filter={}",
                self.zone_url(zone),
                encode(filter)
            );
            if let Some(p) = &page {
                url.push_str(&format!("&pageToken={}", encode(p)));
            }
            let req = ApiRequest::new(Method::GET, url)
                .key(self.key(zone))
                .class(ApiClass::Read)
                .operation(OP);
            let Some(b) = self.send(req, OP).await? else {
                return Ok(out);
            };
            let list: InstanceList = Self::parse(OP, "instance list", &b)?;
            out.extend(list.items);
            match list.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) if page.as_deref() != Some(t.as_str()) => page = Some(t),
                _ => return Ok(out),
            }
        }
    }

    /// `instances.delete` (with `requestId` when given); `None` when the
    /// instance does not exist.
    pub async fn delete_instance(
        &self,
        zone: &str,
        name: &str,
        request_id: Option<Uuid>,
    ) -> Result<Option<ZoneOperation>> {
        const OP: &str = "compute.instances.delete";
        let mut url = format!("{}/instances/{name}", self.zone_url(zone));
        if let Some(r) = request_id {
            url.push_str(&format!("?requestId={r}"));
        }
        let req = ApiRequest::new(Method::DELETE, url)
            .key(self.key(zone))
            .class(ApiClass::Delete)
            .operation(OP);
        match self.send(req, OP).await? {
            Some(b) => Self::parse(OP, "operation", &b).map(Some),
            None => Ok(None),
        }
    }

    /// `instances.setLabels`: replaces the instance's labels with
    /// `labels`, if they still have `fingerprint` (else Compute refuses
    /// with 412, classified as a conflict); the operation.
    pub async fn set_labels(
        &self,
        zone: &str,
        name: &str,
        labels: &BTreeMap<String, String>,
        fingerprint: &str,
    ) -> Result<ZoneOperation> {
        const OP: &str = "compute.instances.setLabels";
        let url = format!("{}/instances/{name}/setLabels", self.zone_url(zone));
        let body = serde_json::json!({"labels": labels, "labelFingerprint": fingerprint});
        let req = ApiRequest::new(Method::POST, url)
            .json(body)
            .key(self.key(zone))
            .class(ApiClass::Write)
            .operation(OP);
        match self.send(req, OP).await? {
            Some(b) => Self::parse(OP, "operation", &b),
            None => {
                Err(Error::not_found(format!("{OP}: instance {name} in {zone}")).with_provider(GCP))
            }
        }
    }

    /// `zoneOperations.get`; `None` when Compute no longer knows it.
    pub async fn get_operation(&self, zone: &str, name: &str) -> Result<Option<ZoneOperation>> {
        const OP: &str = "compute.zoneOperations.get";
        let url = format!("{}/operations/{name}", self.zone_url(zone));
        let req = ApiRequest::new(Method::GET, url)
            .key(self.key(zone))
            .class(ApiClass::Poll)
            .operation(OP);
        match self.send(req, OP).await? {
            Some(b) => Self::parse(OP, "operation", &b).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("labels.a = \"b\""), "labels.a%20%3D%20%22b%22");
    }

    #[test]
    fn operation_failure_reads_the_first_error() {
        let op: ZoneOperation = serde_json::from_str(
            r#"{"name":"op","status":"DONE","targetId":"12","error":{"errors":[{"code":"QUOTA_EXCEEDED","message":"m"}]},"httpErrorStatusCode":403}"#,
        )
        .unwrap();
        assert!(op.is_done());
        assert_eq!(op.failure(), Some(("QUOTA_EXCEEDED".into(), "m".into())));
    }
}
