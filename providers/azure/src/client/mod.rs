//! [`ArmClient`]: ARM requests over the shared transport.
//!
//! Every request carries a transport [`Key`] (provider `azure`, the
//! subscription, the worker's region, and the API class: read, write,
//! delete or poll), so rate limits, retry budgets and throttle pauses are
//! shared per subscription and class as ARM meters them, and an operation
//! name (`VirtualMachines_CreateOrUpdate`) for metrics and tracing.
//!
//! Requests are built in one shape ([`ArmClient::request`]: method and URL,
//! then body, class, region and operation), and long-running operations
//! are followed by [`ArmOperation`] (the `lro` module).
//!
//! The bearer token is only ever sent to the configured endpoint: an
//! operation URL from a response header that points elsewhere is refused
//! rather than followed.

use std::sync::Arc;

use http::Method;
use serde::de::DeserializeOwned;
use skyfleet_core::provider::support::{ApiRequest, ApiResponse, Secret};
use skyfleet_core::transport::{ApiClass, Key, Transport};
use skyfleet_core::{Error, ErrorKind, Result};

use crate::classify;
use crate::credential::Credential;

mod lro;

#[cfg(feature = "testing")]
pub use lro::PollOutcome;
pub(crate) use lro::{poll_status, reclassify, shown_poll_error};
pub use lro::{ArmOperation, PollKind, Started};

/// The kinds of resource the chain creates, with their ARM types and the
/// api-versions used (checked against the REST specs; see
/// `reference/azure-arm.md` §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIp,
    /// `Microsoft.Network/networkInterfaces`.
    Nic,
    /// `Microsoft.Compute/disks`.
    Disk,
    /// `Microsoft.Compute/virtualMachines`.
    Vm,
}

impl ResourceType {
    /// All types, in teardown-listing order.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Vm,
        ResourceType::Nic,
        ResourceType::PublicIp,
        ResourceType::Disk,
    ];

    /// `{namespace}/{type}`.
    pub fn arm_type(self) -> &'static str {
        match self {
            ResourceType::PublicIp => "Microsoft.Network/publicIPAddresses",
            ResourceType::Nic => "Microsoft.Network/networkInterfaces",
            ResourceType::Disk => "Microsoft.Compute/disks",
            ResourceType::Vm => "Microsoft.Compute/virtualMachines",
        }
    }

    /// The api-version used for this type.
    pub fn api_version(self) -> &'static str {
        match self {
            ResourceType::PublicIp | ResourceType::Nic => "2024-05-01",
            ResourceType::Disk => "2024-03-02",
            ResourceType::Vm => "2024-07-01",
        }
    }

    /// The REST spec's operation-id prefix (`VirtualMachines`).
    pub fn op_prefix(self) -> &'static str {
        match self {
            ResourceType::PublicIp => "PublicIPAddresses",
            ResourceType::Nic => "NetworkInterfaces",
            ResourceType::Disk => "Disks",
            ResourceType::Vm => "VirtualMachines",
        }
    }

    /// A short name for messages and `OwnedResource::kind`.
    pub fn kind_name(self) -> &'static str {
        match self {
            ResourceType::PublicIp => "publicIPAddress",
            ResourceType::Nic => "networkInterface",
            ResourceType::Disk => "disk",
            ResourceType::Vm => "virtualMachine",
        }
    }

    /// The type of an ARM id, if it is one of ours.
    pub fn from_id(id: &str) -> Option<ResourceType> {
        let lower = id.to_ascii_lowercase();
        ResourceType::ALL.into_iter().find(|t| {
            lower.contains(&format!(
                "/providers/{}/",
                t.arm_type().to_ascii_lowercase()
            ))
        })
    }
}

/// An ARM answer: core's [`ApiResponse`] (status, headers, the whole body);
/// [`ArmAnswer`] adds what ARM's error body says.
pub type ArmResponse = ApiResponse;

/// What a non-success ARM answer's error body says.
pub trait ArmAnswer {
    /// The body parsed as `T`; a garbled body is an [`ErrorKind::Internal`]
    /// error with code `GarbledResponse` naming `what` (see `garbled`).
    fn arm_json<T: DeserializeOwned>(&self, what: &str) -> Result<T>;

    /// This (non-success) answer as a classified error.
    fn error(&self, what: &str) -> Error;

    /// The ARM error code of a non-success answer, if any.
    fn error_code(&self) -> Option<String>;
}

impl ArmAnswer for ApiResponse {
    fn arm_json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| garbled(what, self.status, &e.to_string()))
    }

    fn error(&self, what: &str) -> Error {
        classify::from_response(self.status, &self.body, self.retry_after(), what)
    }

    fn error_code(&self) -> Option<String> {
        classify::parse_error_body(&self.body).map(|(c, _)| c)
    }
}

/// An error for a response ARM should never send (bad JSON, missing fields).
pub fn garbled(what: &str, status: u16, detail: &str) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("{what}: garbled ARM response (HTTP {status}): {detail}"),
    )
    .with_code("GarbledResponse")
    .with_provider("azure")
}

/// ARM requests for one subscription.
#[derive(Debug, Clone)]
pub struct ArmClient {
    transport: Transport,
    base: String,
    subscription: String,
    credential: Arc<Credential>,
}

/// One ARM request being built: method and URL first, then the body, the
/// API class, the region and the operation name, then [`ArmRequest::send`].
#[derive(Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct ArmRequest<'a> {
    client: &'a ArmClient,
    method: Method,
    url: &'a str,
    body: Option<&'a serde_json::Value>,
    class: ApiClass,
    region: &'a str,
    operation: String,
}

impl<'a> ArmRequest<'a> {
    /// A JSON body.
    pub fn json(mut self, body: &'a serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// The API class ARM meters it in (default: read).
    pub fn class(mut self, class: ApiClass) -> Self {
        self.class = class;
        self
    }

    /// The region of the transport key (default: none).
    pub fn region(mut self, region: &'a str) -> Self {
        self.region = region;
        self
    }

    /// The REST spec's operation name, for metrics and tracing.
    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = operation.into();
        self
    }

    /// Sends it. Any status is an `Ok` answer; only failures without one
    /// (timeouts, connection errors, token errors) are `Err`.
    pub async fn send(self) -> Result<ArmResponse> {
        self.client.execute(self).await
    }
}

impl ArmClient {
    /// A client for `subscription` at `endpoint` over `transport`.
    pub(crate) fn new(
        endpoint: &str,
        subscription: &str,
        transport: Transport,
        credential: Arc<Credential>,
    ) -> Self {
        crate::profile::register(&transport);
        ArmClient {
            transport,
            base: endpoint.trim_end_matches('/').to_string(),
            subscription: subscription.to_string(),
            credential,
        }
    }

    /// A request of `method` to `url` (on this client's endpoint).
    pub fn request<'a>(&'a self, method: Method, url: &'a str) -> ArmRequest<'a> {
        ArmRequest {
            client: self,
            method,
            url,
            body: None,
            class: ApiClass::Read,
            region: "",
            operation: String::new(),
        }
    }

    /// PATCH of resource `id` (of type `ty`) setting its tags to `tags`
    /// (ARM's PATCH replaces the whole tag set, so callers pass the merged
    /// set). A success is 200, or 202 when ARM applies it asynchronously;
    /// either way the call is done with.
    pub async fn patch_tags(
        &self,
        id: &str,
        ty: ResourceType,
        region: &str,
        tags: &serde_json::Value,
    ) -> Result<()> {
        let url = self.id_url(id, ty);
        let op = format!("{}_Update", ty.op_prefix());
        let body = serde_json::json!({ "tags": tags });
        let resp = self
            .request(Method::PATCH, &url)
            .class(ApiClass::Write)
            .region(region)
            .operation(&op)
            .json(&body)
            .send()
            .await?;
        if resp.is_success() {
            Ok(())
        } else {
            Err(resp.error(&op))
        }
    }

    /// The subscription id.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The ARM id of a resource.
    pub fn resource_id(&self, rg: &str, ty: ResourceType, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/{}/{name}",
            self.subscription,
            ty.arm_type()
        )
    }

    /// The absolute URL of a resource (with its api-version).
    pub fn resource_url(&self, rg: &str, ty: ResourceType, name: &str) -> String {
        self.id_url(&self.resource_id(rg, ty, name), ty)
    }

    /// The absolute URL of an ARM id of type `ty`.
    pub fn id_url(&self, id: &str, ty: ResourceType) -> String {
        format!("{}{id}?api-version={}", self.base, ty.api_version())
    }

    /// The instance view URL of VM `name` in `rg`.
    pub fn instance_view_url(&self, rg: &str, name: &str) -> String {
        format!(
            "{}{}/instanceView?api-version={}",
            self.base,
            self.resource_id(rg, ResourceType::Vm, name),
            ResourceType::Vm.api_version()
        )
    }

    /// The list URL of every resource of `ty` in `rg`.
    pub fn list_url(&self, rg: &str, ty: ResourceType) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{rg}/providers/{}?api-version={}",
            self.base,
            self.subscription,
            ty.arm_type(),
            ty.api_version()
        )
    }

    /// The subscription-wide VM list with each VM's instance view statuses
    /// (`VirtualMachines_ListAll` with `statusOnly=true`).
    pub fn vm_status_list_url(&self) -> String {
        format!(
            "{}/subscriptions/{}/providers/{}?api-version={}&statusOnly=true",
            self.base,
            self.subscription,
            ResourceType::Vm.arm_type(),
            ResourceType::Vm.api_version()
        )
    }

    /// Checks that `url` is on the configured endpoint (the token goes
    /// nowhere else).
    pub fn check_url(&self, url: &str) -> Result<()> {
        let ok = url
            .strip_prefix(&self.base)
            .is_some_and(|rest| rest.starts_with('/'));
        if ok {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "refusing to follow an operation URL outside the ARM endpoint {}: {url}",
                    self.base
                ),
            )
            .with_code("ForeignUrl")
            .with_provider("azure"))
        }
    }

    async fn execute(&self, req: ArmRequest<'_>) -> Result<ArmResponse> {
        let ArmRequest {
            method,
            url,
            body,
            class,
            region,
            operation,
            ..
        } = req;
        self.check_url(url)?;
        let token = Secret::new(self.credential.token().await?);
        let mut api = ApiRequest::new(method, url)
            .bearer(&token)
            .key(Key::new(
                "azure",
                self.subscription.as_str(),
                region.to_string(),
                class,
            ))
            .operation(operation.clone());
        if let Some(v) = body {
            api = api.json(v.clone());
        }
        api.send(&self.transport).await.map_err(|e| {
            let kind = e.kind().clone();
            let code = e.code().unwrap_or("transport").to_string();
            Error::new(kind, format!("{operation}: {}", e.message()))
                .with_code(code)
                .with_provider("azure")
                .with_source(e)
        })
    }
}
