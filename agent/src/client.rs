//! [`ManagerClient`]: the worker API of the manager (register,
//! reregister, heartbeat, drained) over the bootstrap document's root URL
//! and [`paths`], with the worker secret as
//! `Authorization: Bearer`.
//!
//! Connection errors, timeouts, 5xx and 429 (pausing for `Retry-After`)
//! are retried within a [`RetryPolicy`]; any other error answer is final
//! and decoded from the [`ErrorBody`] into a [`ClientError`] carrying its
//! code. A 401 is [`ClientError::Unauthorized`]: the agent stops there.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyfleet_core::protocol::{
    paths, DrainedRequest, DrainedResponse, ErrorBody, ErrorCode, HeartbeatRequest,
    HeartbeatResponse, RegisterRequest, RegisterResponse, ReregisterRequest, ReregisterResponse,
};
use skyfleet_core::provider::support::Secret;

use crate::retry::RetryPolicy;

/// The timeout of one request to the manager.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call to the manager failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 401: the manager refused the proof or the secret. Final.
    #[error("the manager refused this worker's credentials ({path}: 401 unauthorized: {message})")]
    Unauthorized {
        /// The API path.
        path: &'static str,
        /// The manager's message.
        message: String,
    },
    /// Another final error answer (4xx other than 401 and 429).
    #[error("{path}: HTTP {status}{}: {message}", code.map(|c| format!(" ({c:?})")).unwrap_or_default())]
    Refused {
        /// The API path.
        path: &'static str,
        /// The HTTP status.
        status: u16,
        /// The error code of the body, when it had one.
        code: Option<ErrorCode>,
        /// The manager's message (or the start of the body).
        message: String,
    },
    /// Transient failures outlasted the retry policy.
    #[error("{path}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        /// The API path.
        path: &'static str,
        /// The attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// A 2xx answer that was not the expected JSON.
    #[error("{path}: unexpected answer: {reason}")]
    Decode {
        /// The API path.
        path: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The root URL or HTTP client could not be set up.
    #[error("manager client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The protocol error code, when the manager sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Unauthorized { .. } => Some(ErrorCode::Unauthorized),
            ClientError::Refused { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether the manager refused the credentials (401).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ClientError::Unauthorized { .. })
    }
}

/// A client of the manager's worker API. Its `Debug` holds no secret: the
/// secret is passed to each call.
#[derive(Debug, Clone)]
pub struct ManagerClient {
    http: reqwest::Client,
    root_url: String,
    retry: RetryPolicy,
}

impl ManagerClient {
    /// A client of the manager at `root_url` (the bootstrap's `rootUrl`).
    pub fn new(root_url: &str, retry: RetryPolicy) -> Result<Self, ClientError> {
        let root_url = root_url.trim_end_matches('/').to_string();
        if !(root_url.starts_with("https://") || root_url.starts_with("http://")) {
            return Err(ClientError::Setup(format!(
                "root URL {root_url:?} is not http(s)"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("skyfleet-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(ManagerClient {
            http,
            root_url,
            retry,
        })
    }

    /// The manager's root URL.
    pub fn root_url(&self) -> &str {
        &self.root_url
    }

    /// `POST register`: the proof for a worker config and a secret.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ClientError> {
        self.call(paths::REGISTER, None, req).await
    }

    /// `POST reregister`: a new secret for the current one.
    pub async fn reregister(
        &self,
        secret: &Secret,
        req: &ReregisterRequest,
    ) -> Result<ReregisterResponse, ClientError> {
        self.call(paths::REREGISTER, Some(secret), req).await
    }

    /// `POST heartbeat`: the worker's state for what to do next.
    pub async fn heartbeat(
        &self,
        secret: &Secret,
        req: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        self.call(paths::HEARTBEAT, Some(secret), req).await
    }

    /// `POST drained`: the worker holds no work.
    pub async fn drained(
        &self,
        secret: &Secret,
        req: &DrainedRequest,
    ) -> Result<DrainedResponse, ClientError> {
        self.call(paths::DRAINED, Some(secret), req).await
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &'static str,
        secret: Option<&Secret>,
        body: &Req,
    ) -> Result<Resp, ClientError> {
        let url = format!("{}{path}", self.root_url);
        let mut backoff = self.retry.start();
        loop {
            let mut req = self.http.post(&url).json(body);
            if let Some(s) = secret {
                req = req.bearer_auth(s.expose());
            }
            let (last, hint) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let bytes = resp.bytes().await.map_err(|e| ClientError::Decode {
                        path,
                        reason: crate::describe_http_error(&e),
                    })?;
                    return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
                        path,
                        reason: e.to_string(),
                    });
                }
                Ok(resp) => {
                    let status = resp.status();
                    let hint = retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
                        Ok(b) => (Some(b.code), b.message),
                        Err(_) => (None, clip(&text)),
                    };
                    if status == StatusCode::UNAUTHORIZED {
                        return Err(ClientError::Unauthorized { path, message });
                    }
                    if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) {
                        return Err(ClientError::Refused {
                            path,
                            status: status.as_u16(),
                            code,
                            message,
                        });
                    }
                    (format!("HTTP {}: {message}", status.as_u16()), hint)
                }
                Err(e) => (crate::describe_http_error(&e), None),
            };
            match backoff.next_delay(hint) {
                Some(d) => {
                    tracing::warn!(path, error = %last, retry_in_ms = d.as_millis() as u64, "manager call failed; retrying");
                    tokio::time::sleep(d).await;
                }
                None => {
                    return Err(ClientError::GaveUp {
                        path,
                        attempts: backoff.attempts(),
                        last,
                    })
                }
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the API).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// At most 200 characters of a body, for messages.
fn clip(s: &str) -> String {
    s.trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_their_path_and_code() {
        let e = ClientError::Refused {
            path: paths::REGISTER,
            status: 409,
            code: Some(ErrorCode::Conflict),
            message: "registered already".into(),
        };
        assert_eq!(e.code(), Some(ErrorCode::Conflict));
        let text = e.to_string();
        assert!(
            text.contains("/worker/register") && text.contains("409") && text.contains("Conflict"),
            "{text}"
        );
        let e = ClientError::Unauthorized {
            path: paths::HEARTBEAT,
            message: "nope".into(),
        };
        assert!(e.is_unauthorized());
        assert!(e.to_string().contains("401"), "{e}");
    }

    #[test]
    fn retry_after_reads_seconds_and_roots_must_be_http() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
        assert!(ManagerClient::new("ftp://m.example", RetryPolicy::default()).is_err());
        let c = ManagerClient::new("https://m.example/", RetryPolicy::default()).unwrap();
        assert_eq!(c.root_url(), "https://m.example");
    }
}
