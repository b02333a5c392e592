//! Shared helpers for the EC2 tests: an aws-sdk-ec2 client pointed at the
//! mock through a small reqwest-backed smithy HTTP client (the workspace
//! builds aws-sdk-ec2 without its default HTTP client).

#![allow(dead_code)]

pub mod xmlcheck;

use std::time::Duration;

use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use skyfleet_mock::MockCloud;

/// A smithy HTTP client that sends requests with reqwest.
#[derive(Debug, Clone)]
pub struct ReqwestHttp {
    client: reqwest::Client,
}

impl ReqwestHttp {
    pub fn new() -> Self {
        ReqwestHttp {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(16)
                .build()
                .unwrap(),
        }
    }
}

impl HttpConnector for ReqwestHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        HttpConnectorFuture::new(async move {
            let req: http::Request<SdkBody> = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let (parts, body) = req.into_parts();
            let bytes = body.bytes().map(<[u8]>::to_vec).unwrap_or_default();
            let resp = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes)
                .send()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp
                .bytes()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let mut out = http::Response::new(SdkBody::from(body));
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            HttpResponse::try_from(out).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

impl HttpClient for ReqwestHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// An EC2 client for `mock` signing with access key `akid`, no retries,
/// 2 s attempt timeout.
pub async fn ec2(mock: &MockCloud, akid: &str) -> aws_sdk_ec2::Client {
    ec2_with(mock, akid, 1).await
}

/// Like [`ec2`] with `attempts` total attempts (standard retry mode).
pub async fn ec2_with(mock: &MockCloud, akid: &str, attempts: u32) -> aws_sdk_ec2::Client {
    ec2_custom(mock, akid, attempts, Duration::from_secs(2)).await
}

/// Like [`ec2_with`] with an attempt timeout.
pub async fn ec2_custom(
    mock: &MockCloud,
    akid: &str,
    attempts: u32,
    attempt_timeout: Duration,
) -> aws_sdk_ec2::Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(SharedHttpClient::new(ReqwestHttp::new()))
        .endpoint_url(mock.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(akid, "secret", None, None, "test"))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(attempt_timeout)
                .build(),
        )
        .load()
        .await;
    aws_sdk_ec2::Client::new(&sdk)
}

/// Starts a mock with `time_scale` and the default seed.
pub async fn mock(time_scale: f64) -> MockCloud {
    MockCloud::builder()
        .time_scale(time_scale)
        .start()
        .await
        .unwrap()
}
