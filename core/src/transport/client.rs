//! [`ReqwestService`]: the bottom of the stack, a reqwest 0.13 (rustls)
//! client as a tower `Service<http::Request<Bytes>>`.
//!
//! It only moves bytes: every status is an `Ok` response (the layers above
//! decide what a 503 means), and only failures without a response are
//! errors: connection failures are [`ErrorKind::Transient`] with code
//! `connect` (nothing was sent, so any request may be retried) or `io`
//! (something may have been sent), reqwest's own timeouts are
//! [`ErrorKind::Timeout`].
//!
//! The stack takes any service of the same shape in its place
//! ([`TransportBuilder::build_with`](super::TransportBuilder::build_with)),
//! which is how tests substitute an in-process fake.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::config::TransportConfig;
use crate::{Error, ErrorKind, Result};

/// A reqwest client as a tower service.
#[derive(Debug, Clone)]
pub struct ReqwestService {
    client: reqwest::Client,
}

impl ReqwestService {
    /// Wraps an existing client.
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestService { client }
    }

    /// Builds a rustls client with `config`'s connect timeout and extra root
    /// certificates. An unparsable certificate is
    /// [`ErrorKind::InvalidConfig`] at `root_certificates[i]`.
    pub fn from_config(config: &TransportConfig) -> Result<Self> {
        let mut certs = Vec::new();
        for (i, pem) in config.root_certificates.iter().enumerate() {
            let parsed = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::invalid_config(format!("root_certificates[{i}]"), format!("bad PEM: {e}"))
            })?;
            if parsed.is_empty() {
                return Err(Error::invalid_config(
                    format!("root_certificates[{i}]"),
                    "no certificate in PEM",
                ));
            }
            certs.extend(parsed);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_max_idle_per_host(config.max_concurrency);
        if !certs.is_empty() {
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| {
            Error::invalid_config(
                "root_certificates",
                format!("cannot build HTTP client: {e}"),
            )
            .with_source(e)
        })?;
        Ok(ReqwestService { client })
    }

    /// The wrapped client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

fn classify_reqwest(e: reqwest::Error) -> Error {
    let (kind, code) = if e.is_timeout() {
        (ErrorKind::Timeout, "timeout")
    } else if e.is_connect() {
        (ErrorKind::Transient, "connect")
    } else if e.is_builder() {
        (ErrorKind::Internal, "request")
    } else {
        (ErrorKind::Transient, "io")
    };
    Error::new(kind, format!("HTTP transport: {e}"))
        .with_code(code)
        .with_source(e)
}

impl Service<Request<Bytes>> for ReqwestService {
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let req = reqwest::Request::try_from(req).map_err(|e| {
                Error::new(ErrorKind::Internal, format!("invalid request: {e}"))
                    .with_code("request")
                    .with_source(e)
            })?;
            let mut resp = client.execute(req).await.map_err(classify_reqwest)?;
            let mut out = Response::new(Bytes::new());
            *out.status_mut() = resp.status();
            *out.version_mut() = resp.version();
            *out.headers_mut() = std::mem::take(resp.headers_mut());
            *out.body_mut() = resp.bytes().await.map_err(classify_reqwest)?;
            Ok(out)
        })
    }
}
