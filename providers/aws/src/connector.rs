//! An aws-smithy [`HttpClient`] that sends aws-sdk-ec2's signed requests
//! through skyfleet's shared transport.
//!
//! Without it, the AWS SDK would run its own connection pool, retries (3
//! attempts with its own token bucket) and no limiter at all: EC2 traffic
//! would bypass the per-account limits that every other call respects, and a
//! throttle would be retried by the SDK *and* by whatever retries above it.
//! With it, each EC2 call is one call through the stack: it waits for its
//! key's limiter, pauses the key on `RequestLimitExceeded`, draws retries
//! from the key's budget and shows up in the same metrics.
//!
//! The SDK's own retries must be disabled ([`RetryConfig::disabled`]) so the
//! attempts are not multiplied (3 SDK attempts × 3 transport attempts = 9).
//! The SDK's connect/read timeout settings are not used: the stack's
//! per-attempt and overall timeouts apply instead.
//!
//! Each request's key is `("aws", account, region, class)`, the class read
//! from the `Action` in the form body: `DescribeInstances` and
//! `DescribeInstanceStatus` are [`ApiClass::Poll`] (EC2 gives them their own,
//! smaller bucket, and they are what state polling uses), other `Describe*`,
//! `Get*`, `List*` and `Search*` are [`ApiClass::Read`], `Terminate*` and
//! `Delete*` are [`ApiClass::Delete`], anything else [`ApiClass::Write`].
//! Reads, polls and terminations are marked idempotent (safe to retry after a
//! timeout); so is any call carrying a `ClientToken` (the SDK fills it in for
//! `RunInstances`), which is sent verbatim on every attempt. Requests without
//! an `Action` (credential endpoints) use the provider name `aws-auxiliary`,
//! so they do not spend EC2's quota.
//!
//! Building an EC2 client on the stack:
//!
//! ```no_run
//! # async fn run() -> skyfleet_core::Result<()> {
//! use aws_sdk_ec2::config::{BehaviorVersion, Region, retry::RetryConfig};
//! use skyfleet_aws::TransportConnector;
//! use skyfleet_core::transport::{Transport, TransportConfig};
//!
//! let transport = Transport::builder().config(TransportConfig::default()).build()?;
//! let connector = TransportConnector::new(&transport, "123456789012", "us-east-1");
//! let shared = aws_config::defaults(BehaviorVersion::latest())
//!     .region(Region::new("us-east-1"))
//!     .http_client(connector.clone())
//!     .retry_config(RetryConfig::disabled())
//!     .load()
//!     .await;
//! let ec2_config = aws_sdk_ec2::config::Builder::from(&shared)
//!     .http_client(connector)
//!     .retry_config(RetryConfig::disabled())
//!     .build();
//! let ec2 = aws_sdk_ec2::Client::from_conf(ec2_config);
//! # let _ = ec2; Ok(()) }
//! ```

use std::sync::Arc;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use skyfleet_core::transport::{ApiClass, HttpService, Key, RequestExt, Transport};
use skyfleet_core::{Error, ErrorKind};
use tower::ServiceExt;

/// The provider name in the keys of EC2 calls.
pub const PROVIDER: &str = "aws";

/// The provider name of requests that are not EC2 actions (credentials).
pub const AUXILIARY_PROVIDER: &str = "aws-auxiliary";

/// An aws-smithy [`HttpClient`] and [`HttpConnector`] over a skyfleet
/// transport stack, for one AWS account and region. Cheap to clone.
#[derive(Clone)]
pub struct TransportConnector {
    service: HttpService,
    account: Arc<str>,
    region: Arc<str>,
}

impl std::fmt::Debug for TransportConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConnector")
            .field("account", &self.account)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl TransportConnector {
    /// A connector sending through `transport`, keying calls by `account` and
    /// `region`.
    pub fn new(transport: &Transport, account: &str, region: &str) -> Self {
        crate::profile::register(transport);
        TransportConnector::from_service(transport.service(), account, region)
    }

    /// A connector over any stack of the transport's shape (e.g. the
    /// transport wrapped in more layers).
    pub fn from_service(service: HttpService, account: &str, region: &str) -> Self {
        TransportConnector {
            service,
            account: account.into(),
            region: region.into(),
        }
    }
}

/// The `Action` field of an EC2 query-protocol form body.
pub fn ec2_action(body: &[u8]) -> Option<&str> {
    body.split(|b| *b == b'&')
        .find_map(|field| field.strip_prefix(b"Action="))
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|v| !v.is_empty())
}

/// The [`ApiClass`] of an EC2 action (see the module doc).
pub fn ec2_class(action: &str) -> ApiClass {
    if action == "DescribeInstances" || action == "DescribeInstanceStatus" {
        ApiClass::Poll
    } else if ["Describe", "Get", "List", "Search"]
        .iter()
        .any(|p| action.starts_with(p))
    {
        ApiClass::Read
    } else if action.starts_with("Terminate") || action.starts_with("Delete") {
        ApiClass::Delete
    } else {
        ApiClass::Write
    }
}

fn to_connector_error(e: Error) -> ConnectorError {
    match e.kind() {
        ErrorKind::Timeout => ConnectorError::timeout(Box::new(e)),
        ErrorKind::Transient => ConnectorError::io(Box::new(e)),
        _ => ConnectorError::other(Box::new(e), None),
    }
}

impl TransportConnector {
    fn prepare(&self, request: HttpRequest) -> Result<http::Request<Bytes>, ConnectorError> {
        let request = request
            .try_into_http1x()
            .map_err(|e| ConnectorError::user(Box::new(e)))?;
        let (parts, body) = request.into_parts();
        let body = match body.bytes() {
            Some(b) => Bytes::copy_from_slice(b),
            None => {
                return Err(ConnectorError::user(
                    "streaming request bodies are not supported by the skyfleet transport".into(),
                ))
            }
        };
        let mut req = http::Request::from_parts(parts, body);
        let action = ec2_action(req.body()).map(str::to_owned);
        req = match action {
            Some(action) => {
                let class = ec2_class(&action);
                let req = req.with_key(Key::new(
                    PROVIDER,
                    self.account.clone(),
                    self.region.clone(),
                    class,
                ));
                let req = if class != ApiClass::Write || action.starts_with("Terminate") {
                    req.idempotent()
                } else {
                    req
                };
                req.with_operation(action)
            }
            None => {
                let class = ApiClass::from_method(req.method());
                req.with_key(Key::new(
                    AUXILIARY_PROVIDER,
                    self.account.clone(),
                    self.region.clone(),
                    class,
                ))
            }
        };
        Ok(req)
    }
}

impl HttpConnector for TransportConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let req = match self.prepare(request) {
            Ok(r) => r,
            Err(e) => return HttpConnectorFuture::ready(Err(e)),
        };
        let service = self.service.clone();
        HttpConnectorFuture::new(async move {
            let resp = service.oneshot(req).await.map_err(to_connector_error)?;
            let resp = resp.map(SdkBody::from);
            HttpResponse::try_from(resp).map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

impl HttpClient for TransportConnector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_classes() {
        assert_eq!(
            ec2_action(b"Action=RunInstances&Version=2016-11-15"),
            Some("RunInstances")
        );
        assert_eq!(
            ec2_action(b"Version=1&Action=DescribeImages"),
            Some("DescribeImages")
        );
        assert_eq!(ec2_action(b"Version=1"), None);
        assert_eq!(ec2_class("DescribeInstances"), ApiClass::Poll);
        assert_eq!(ec2_class("DescribeImages"), ApiClass::Read);
        assert_eq!(ec2_class("GetConsoleOutput"), ApiClass::Read);
        assert_eq!(ec2_class("TerminateInstances"), ApiClass::Delete);
        assert_eq!(ec2_class("RunInstances"), ApiClass::Write);
        assert_eq!(ec2_class("CreateTags"), ApiClass::Write);
    }
}
