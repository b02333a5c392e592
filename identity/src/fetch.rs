//! [`Fetch`]: how a verifier gets trust material from the network (Google's
//! key set, an Azure intermediate certificate from its AIA URL), and
//! [`HttpFetch`], the default over reqwest: a 5 s timeout, no redirects, a
//! size cap.
//!
//! Tests and benchmarks give a fetcher of their own (answers from memory,
//! counted), so the caches' behaviour (at most one refetch a minute, a
//! failed fetch that changes nothing) is checked without a network.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// The default timeout of one fetch.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes a fetch reads (a key set, a certificate).
pub const MAX_FETCH_BYTES: usize = 256 * 1024;

/// Why a fetch failed (for logs; a verifier turns it into
/// [`Reason::KeysUnavailable`](crate::Reason::KeysUnavailable) or keeps what
/// it had).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError(String);

impl FetchError {
    /// A fetch error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        FetchError(message.into())
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FetchError {}

/// Gets the body of a URL. Implementations bound the time and size of a
/// fetch and never follow redirects (an allow-listed URL must not lead
/// elsewhere).
#[async_trait]
pub trait Fetch: Send + Sync + fmt::Debug {
    /// The body of `url` when it answered 2xx.
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError>;
}

/// The default [`Fetch`]: reqwest with a timeout ([`FETCH_TIMEOUT`] unless
/// set), no redirects and a body of at most [`MAX_FETCH_BYTES`].
#[derive(Debug, Clone)]
pub struct HttpFetch {
    client: reqwest::Client,
    max_bytes: usize,
}

impl HttpFetch {
    /// A fetcher with the default timeout.
    pub fn new() -> Result<Self, FetchError> {
        Self::with_timeout(FETCH_TIMEOUT)
    }

    /// A fetcher whose every fetch gives up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Result<Self, FetchError> {
        Self::build(timeout, None)
    }

    /// A fetcher that also trusts the CA certificates in `pem` (PEM text,
    /// one or more): for a JWKS or AIA host behind a private CA, or a test
    /// cloud's self-signed certificate. The system's roots stay trusted.
    pub fn with_extra_roots_pem(timeout: Duration, pem: &[u8]) -> Result<Self, FetchError> {
        Self::build(timeout, Some(pem))
    }

    fn build(timeout: Duration, extra_roots_pem: Option<&[u8]>) -> Result<Self, FetchError> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| FetchError::new(format!("extra roots: bad PEM: {e}")))?;
            if certs.is_empty() {
                return Err(FetchError::new("extra roots: no certificate in the PEM"));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| FetchError::new(format!("HTTP client: {e}")))?;
        Ok(HttpFetch {
            client,
            max_bytes: MAX_FETCH_BYTES,
        })
    }
}

#[async_trait]
impl Fetch for HttpFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::new(format!("GET {url}: {e}")))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::new(format!("GET {url}: HTTP {status}")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::new(format!("GET {url}: {e}")))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(FetchError::new(format!(
                    "GET {url}: body over {} bytes",
                    self.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_redirects_and_errors() {
        // A one-shot HTTP server on loopback answering a redirect.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            for _ in 0..2 {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        let f = HttpFetch::with_timeout(Duration::from_secs(2)).unwrap();
        let e = f.get(&format!("http://{addr}/cert")).await.unwrap_err();
        assert!(e.to_string().contains("302"), "{e}");
        let e = f.get(&format!("http://{addr}/cert")).await.unwrap_err();
        assert!(e.to_string().contains("302"), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn extra_roots_must_be_certificates() {
        let e =
            HttpFetch::with_extra_roots_pem(Duration::from_secs(1), b"no PEM here").unwrap_err();
        assert!(e.to_string().contains("extra roots"), "{e}");
    }
}
