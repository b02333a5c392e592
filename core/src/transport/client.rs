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
    max_body: usize,
}

impl ReqwestService {
    /// Wraps an existing client; bodies are read up to
    /// [`DEFAULT_MAX_BODY_BYTES`](super::config::DEFAULT_MAX_BODY_BYTES).
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestService {
            client,
            max_body: super::config::DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Reads response bodies up to `max` bytes (see
    /// [`TransportConfig::with_max_body_bytes`]).
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body = max;
        self
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
        Ok(ReqwestService {
            client,
            max_body: config.max_body_bytes,
        })
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
        let max_body = self.max_body;
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
            *out.body_mut() = read_body(&mut resp, max_body).await?;
            Ok(out)
        })
    }
}

fn too_large(what: String) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("response body too large: {what}"),
    )
    .with_code("BodyTooLarge")
}

/// The body of `resp`, at most `max` bytes: a longer `Content-Length` is
/// refused before anything is read, a longer stream when it passes `max`.
async fn read_body(resp: &mut reqwest::Response, max: usize) -> Result<Bytes> {
    let max64 = u64::try_from(max).unwrap_or(u64::MAX);
    if let Some(len) = resp.content_length() {
        if len > max64 {
            return Err(too_large(format!(
                "Content-Length {len} exceeds the limit of {max} bytes"
            )));
        }
    }
    let cap = resp
        .content_length()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(0)
        .min(max);
    let mut body = bytes::BytesMut::with_capacity(cap);
    while let Some(chunk) = resp.chunk().await.map_err(classify_reqwest)? {
        if chunk.len() > max - body.len() {
            return Err(too_large(format!("more than the limit of {max} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every connection with `answer`, then closes.
    async fn serve(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = sock.read(&mut buf).await;
                    let _ = sock.write_all(&answer).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        format!("http://{addr}/")
    }

    async fn get(url: &str, max: usize) -> Result<Response<Bytes>> {
        let mut svc = ReqwestService::new(reqwest::Client::new()).with_max_body_bytes(max);
        let req = Request::get(url).body(Bytes::new()).unwrap();
        svc.call(req).await
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_by_length_or_by_stream() {
        // Content-Length says too much: refused before reading.
        let url =
            serve(b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\nabc".to_vec()).await;
        let e = get(&url, 1024).await.unwrap_err();
        assert_eq!(e.code(), Some("BodyTooLarge"), "{e}");
        assert!(e.to_string().contains("99999999999"), "{e}");
        // No length, a stream that does not stop at the limit.
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..8 {
            chunked.extend_from_slice(b"200\r\n");
            chunked.extend_from_slice(&[b'x'; 0x200]);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let url = serve(chunked).await;
        let e = get(&url, 1024).await.unwrap_err();
        assert_eq!(e.code(), Some("BodyTooLarge"), "{e}");
        // Within the limit: read whole.
        let r = get(&url, 8 * 0x200).await.unwrap();
        assert_eq!(r.body().len(), 8 * 0x200);
    }
}
