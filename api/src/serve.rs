//! [`serve`]: the accept loop, hyper 1 over plain TCP or rustls, each
//! request carrying its peer's address as `ConnectInfo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::ServeError;

/// How long a client may take to send a request's headers (and, on a kept
/// alive connection, to start the next request).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many connections are served at once; further clients wait in the
/// listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long open connections get to finish their request after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The PEM files of a TLS server: a certificate chain (leaf first) and its
/// private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain file.
    pub cert: PathBuf,
    /// The private key file. Its contents are never logged or shown in an
    /// error.
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files at `cert` and `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// Reads both files into a rustls acceptor (HTTP/1.1 only, aws-lc-rs).
    fn acceptor(&self) -> Result<TlsAcceptor, ServeError> {
        let cert_pem = read(&self.cert, "certificate")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(std::result::Result::ok)
            .collect();
        if certs.is_empty() {
            return Err(ServeError::NoPem {
                what: "certificate",
                path: self.cert.clone(),
            });
        }
        let key_pem = read(&self.key, "private key")?;
        // The PEM error is dropped on purpose: the key file's contents stay
        // out of every message.
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| ServeError::NoPem {
            what: "private key",
            path: self.key.clone(),
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Serves `router` on `listener` until `shutdown` is cancelled: plain HTTP/1.1
/// without `tls`, HTTPS with it. Each request carries its peer's
/// `ConnectInfo<SocketAddr>` (the [`crate::router`] rate limits by it).
///
/// Bounds: [`HANDSHAKE_TIMEOUT`] per TLS handshake, [`HEADER_READ_TIMEOUT`]
/// per request head, [`MAX_CONNECTIONS`] at once; the router's own
/// [`request_timeout`](crate::ApiConfig::request_timeout) bounds each
/// request after its head. On shutdown it stops accepting, asks open
/// connections to close after their current request and waits up to 5 s
/// for them.
///
/// Which address to listen on is the caller's choice: `skyfleet run`
/// defaults to loopback.
///
/// # Errors
///
/// Only at start, when the TLS files cannot be read or do not form a
/// usable certificate and key.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsFiles>,
    router: Router,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let acceptor = tls.as_ref().map(TlsFiles::acceptor).transpose()?;
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE or a reset before accept: back off briefly
                // instead of spinning.
                tracing::warn!(error = %e, "worker API: accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => connection(stream, peer, router, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, peer, router, shutdown).await,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "worker API: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!("worker API: TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Connections saw the same cancellation and are closing; give them a
    // bounded time, then drop the rest.
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!(
            left = connections.len(),
            "worker API: connections still open at shutdown were dropped"
        );
        connections.abort_all();
    }
    Ok(())
}

/// Serves one connection (keep-alive) until it closes, or until shutdown
/// lets its current request finish.
async fn connection<S>(stream: S, peer: SocketAddr, router: Router, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            router.oneshot(req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "worker API: connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "worker API: connection ended with an error");
    }
}
