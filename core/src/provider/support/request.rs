//! [`ApiRequest`]: the one request shape of REST clouds (ARM, Compute
//! Engine) over the shared [`Transport`]: method and URL, a body, then the
//! quota key, API class and operation name attached by builder methods, then
//! [`ApiRequest::send`]. A call reads the same way on every cloud:
//!
//! ```no_run
//! # async fn run(transport: &skyfleet_core::transport::Transport) -> skyfleet_core::Result<()> {
//! use http::Method;
//! use skyfleet_core::provider::support::{ApiRequest, Secret};
//! use skyfleet_core::transport::{ApiClass, Key};
//! let key = Key::new("gcp", "my-project", "europe-west1-b", ApiClass::Write);
//! let resp = ApiRequest::new(Method::POST, "https://compute.googleapis.com/compute/v1/projects/p/zones/z/instances")
//!     .json(serde_json::json!({ "name": "w-1" }))
//!     .bearer(&Secret::new("token"))
//!     .key(key)
//!     .class(ApiClass::Write)
//!     .operation("compute.instances.insert")
//!     .idempotent()
//!     .send(transport)
//!     .await?;
//! if !resp.is_success() { /* the cloud's classify maps the body to an Error */ }
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method};
use serde::de::DeserializeOwned;

use super::secret::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{retry_after, ApiClass, Key, RequestExt, Transport};

/// A request being built (see the module doc).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: Method,
    url: String,
    body: Option<(Bytes, &'static str)>,
    json: Option<serde_json::Value>,
    headers: Vec<(HeaderName, String)>,
    bearer: Option<Secret>,
    key: Option<Key>,
    class: Option<ApiClass>,
    operation: Cow<'static, str>,
    idempotent: bool,
}

impl ApiRequest {
    /// A `method` request to `url`, without a body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        ApiRequest {
            method,
            url: url.into(),
            body: None,
            json: None,
            headers: Vec::new(),
            bearer: None,
            key: None,
            class: None,
            operation: Cow::Borrowed(""),
            idempotent: false,
        }
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json(mut self, body: serde_json::Value) -> Self {
        self.json = Some(body);
        self.body = None;
        self
    }

    /// A body of `content_type`.
    pub fn body(mut self, body: Bytes, content_type: &'static str) -> Self {
        self.body = Some((body, content_type));
        self.json = None;
        self
    }

    /// Adds a header (`Accept: application/json` is always sent).
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Authenticates with a bearer token.
    pub fn bearer(mut self, token: &Secret) -> Self {
        self.bearer = Some(token.clone());
        self
    }

    /// The transport's quota key (provider, account, region, class).
    pub fn key(mut self, key: Key) -> Self {
        self.key = Some(key);
        self
    }

    /// The API class, replacing the key's (default: the key's, or the
    /// method's when there is no key).
    pub fn class(mut self, class: ApiClass) -> Self {
        self.class = Some(class);
        self
    }

    /// The operation name, for tracing, metrics and per-operation limits.
    pub fn operation(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.operation = name.into();
        self
    }

    /// Marks the request safe to repeat (it carries an idempotency token).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `http` request the transport sends.
    pub fn build(self) -> Result<http::Request<Bytes>> {
        let what = if self.operation.is_empty() {
            self.url.clone()
        } else {
            self.operation.to_string()
        };
        let bad = |e: &dyn std::fmt::Display| {
            Error::internal(format!("{what}: cannot build the request: {e}")).with_code("request")
        };
        let (body, content_type) = match (self.json, self.body) {
            (Some(v), _) => (
                Bytes::from(serde_json::to_vec(&v)?),
                Some("application/json"),
            ),
            (None, Some((b, t))) => (b, Some(t)),
            (None, None) => (Bytes::new(), None),
        };
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(t) = content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(t));
        }
        if let Some(token) = &self.bearer {
            let mut v = HeaderValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| bad(&"the token is not a valid header value"))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        for (name, value) in self.headers {
            let v = HeaderValue::try_from(value).map_err(|e| bad(&e))?;
            headers.append(name, v);
        }
        let mut req = http::Request::builder()
            .method(self.method.clone())
            .uri(&self.url)
            .body(body)
            .map_err(|e| bad(&e))?;
        *req.headers_mut() = headers;
        let key = match (self.key, self.class) {
            (Some(k), Some(c)) if k.class() != c => Some(k.with_class(c)),
            (Some(k), _) => Some(k),
            (None, Some(c)) => Some(Key::unkeyed(&self.method).with_class(c)),
            (None, None) => None,
        };
        if let Some(k) = key {
            req = req.with_key(k);
        }
        if !self.operation.is_empty() {
            req = req.with_operation(self.operation);
        }
        if self.idempotent {
            req = req.idempotent();
        }
        Ok(req)
    }

    /// Sends the request through `transport`. Every status is an answer
    /// (`Ok`); only failures without a response are errors.
    pub async fn send(self, transport: &Transport) -> Result<ApiResponse> {
        let resp = transport.send(self.build()?).await?;
        let (parts, body) = resp.into_parts();
        Ok(ApiResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
}

/// A cloud's answer: status, headers, body.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl ApiResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The delay the response asked for (`Retry-After` and ms variants).
    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// A header as a trimmed string, if present, ASCII and not empty.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// The body parsed as `T`; a garbled body is an [`ErrorKind::Internal`]
    /// error with code `GarbledResponse` naming `what`.
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("{what}: garbled response (HTTP {}): {e}", self.status),
            )
            .with_code("GarbledResponse")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::names;

    #[test]
    fn builds_key_class_operation_and_headers() {
        let key = Key::new(names::GCP, "p", "z", ApiClass::Read);
        let req = ApiRequest::new(Method::POST, "https://cloud.example/v1/things")
            .json(serde_json::json!({"a": 1}))
            .bearer(&Secret::new("tok"))
            .header(HeaderName::from_static("x-extra"), "1")
            .key(key)
            .class(ApiClass::Write)
            .operation("things.insert")
            .idempotent()
            .build()
            .unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.body().as_ref(), br#"{"a":1}"#);
        assert_eq!(req.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(req.headers()[AUTHORIZATION], "Bearer tok");
        assert!(req.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(req.headers()["x-extra"], "1");
        assert_eq!(req.transport_key().class(), ApiClass::Write);
        assert_eq!(req.transport_key().provider(), names::GCP);
        assert_eq!(req.operation(), "things.insert");
        assert!(crate::transport::is_idempotent(&req));
    }

    #[test]
    fn no_body_no_content_type() {
        let req = ApiRequest::new(Method::GET, "https://cloud.example/")
            .build()
            .unwrap();
        assert!(req.body().is_empty());
        assert!(req.headers().get(CONTENT_TYPE).is_none());
        assert_eq!(req.operation(), "");
    }

    #[test]
    fn garbled_json_is_named() {
        let r = ApiResponse {
            status: 200,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{"),
        };
        let e = r.json::<serde_json::Value>("things.get").unwrap_err();
        assert_eq!(e.code(), Some("GarbledResponse"));
        assert!(r.is_success());
    }
}
