//! The HTTP client of the metadata services: plain HTTP, never through a
//! proxy (the services refuse proxied requests), a timeout on every
//! request, bounded retries of transient failures.

use std::time::Duration;

use reqwest::{RequestBuilder, StatusCode};

use super::{Cloud, MetadataError};
use crate::retry::RetryPolicy;

/// A client of one cloud's metadata service.
#[derive(Debug, Clone)]
pub(crate) struct MetadataClient {
    http: reqwest::Client,
    cloud: Cloud,
    retry: RetryPolicy,
}

impl MetadataClient {
    /// A client whose requests each time out after `timeout`.
    pub(crate) fn new(
        cloud: Cloud,
        retry: RetryPolicy,
        timeout: Duration,
    ) -> Result<Self, MetadataError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| MetadataError::Malformed {
                cloud,
                what: "HTTP client",
                reason: e.to_string(),
            })?;
        Ok(MetadataClient { http, cloud, retry })
    }

    /// One attempt, no retry (probes): the response, or `None` when
    /// nothing answered in time.
    pub(crate) async fn once(
        &self,
        build: impl FnOnce(&reqwest::Client) -> RequestBuilder,
    ) -> Option<reqwest::Response> {
        build(&self.http).send().await.ok()
    }

    /// The body of a 2xx answer to the request `build` makes, retrying
    /// connection errors, timeouts, 5xx and 429 within the retry policy.
    pub(crate) async fn fetch(
        &self,
        what: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Vec<u8>, MetadataError> {
        let mut backoff = self.retry.start();
        loop {
            let req = build(&self.http);
            let url = req
                .try_clone()
                .and_then(|r| r.build().ok())
                .map(|r| without_query(r.url().as_str()))
                .unwrap_or_default();
            let failure = match req.send().await {
                Ok(resp) if resp.status().is_success() => match resp.bytes().await {
                    Ok(body) => return Ok(body.to_vec()),
                    Err(e) => MetadataError::Unreachable {
                        cloud: self.cloud,
                        what,
                        url,
                        reason: format!("reading the body: {e}"),
                    },
                },
                Ok(resp) => {
                    let status = resp.status();
                    let err = MetadataError::Status {
                        cloud: self.cloud,
                        what,
                        url,
                        status: status.as_u16(),
                    };
                    if !transient(status) {
                        return Err(err);
                    }
                    err
                }
                Err(e) => MetadataError::Unreachable {
                    cloud: self.cloud,
                    what,
                    url,
                    reason: crate::describe_http_error(&e),
                },
            };
            match backoff.next_delay(None) {
                Some(d) => {
                    tracing::debug!(error = %failure, delay_ms = d.as_millis() as u64, "metadata request failed; retrying");
                    tokio::time::sleep(d).await;
                }
                None => return Err(failure),
            }
        }
    }

    /// [`fetch`](Self::fetch) as UTF-8 text.
    pub(crate) async fn fetch_text(
        &self,
        what: &'static str,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<String, MetadataError> {
        let body = self.fetch(what, build).await?;
        String::from_utf8(body).map_err(|_| MetadataError::Malformed {
            cloud: self.cloud,
            what,
            reason: "not UTF-8 text".into(),
        })
    }

    /// A malformed-answer error of this client's cloud.
    pub(crate) fn malformed(&self, what: &'static str, reason: impl Into<String>) -> MetadataError {
        MetadataError::Malformed {
            cloud: self.cloud,
            what,
            reason: reason.into(),
        }
    }

    /// The cloud.
    pub(crate) fn cloud(&self) -> Cloud {
        self.cloud
    }
}

/// Whether a status is worth retrying.
fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// A URL without its query (which may carry an audience or nonce).
fn without_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}
