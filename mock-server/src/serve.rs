//! The accept loop: hyper 1 over plain TCP or rustls, one task per
//! connection, honouring [`DropConnection`](crate::ctx::DropConnection)
//! (close the socket without an answer) and shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::ctx::DropConnection;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What one client may hold of the server: connections, time and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; further clients wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// How long a connection may sit between requests, or take to send a
    /// request's headers, before it is closed.
    pub idle_timeout: Duration,
    /// How long a client may take to send a request's body; past it the
    /// request is answered 408 and the connection closed.
    pub body_read_timeout: Duration,
    /// The largest request body read; a larger one is answered 413.
    pub max_body_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The error a connection's service returns to make hyper close the socket
/// without writing a response.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose (reset fault)")
    }
}

impl std::error::Error for Dropped {}

/// Accepts connections until `shutdown` changes or its sender is dropped,
/// at most `limits.max_connections` at once.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut shutdown: watch::Receiver<()>,
    limits: ServerLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A free slot first: at the cap, new clients wait in the backlog.
        let slot = tokio::select! {
            _ = shutdown.changed() => return,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                // The semaphore is never closed; stop serving if it were.
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Usually EMFILE or a connection reset before accept: back
                // off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, app, shutdown, false, limits).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, app, shutdown, true, limits).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// Serves one connection (keep-alive) until it closes or shutdown. Requests
/// that came over TLS carry the [`crate::gce::Https`] marker, so links the
/// mock writes (GCE selfLinks) name the scheme the client used.
async fn connection<S>(
    stream: S,
    app: Router,
    mut shutdown: watch::Receiver<()>,
    https: bool,
    limits: ServerLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            let mut req = match read_body(req, &limits).await {
                Ok(req) => req,
                Err(resp) => return Ok(resp),
            };
            if https {
                req.extensions_mut().insert(crate::gce::Https);
            }
            let resp = match app.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            if resp.extensions().get::<DropConnection>().is_some() {
                Err(Dropped)
            } else {
                Ok::<_, Dropped>(resp)
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Runs from the end of one exchange to the next request's headers:
        // the idle timeout of a keep-alive connection, too.
        .header_read_timeout(limits.idle_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = shutdown.changed() => {}
    }
}

/// The request with its body read whole, within the body read timeout and
/// size limit; or the answer when the client was too slow (408, closing
/// the connection) or sent too much (413).
async fn read_body(
    req: hyper::Request<Incoming>,
    limits: &ServerLimits,
) -> Result<hyper::Request<Body>, axum::response::Response> {
    use axum::response::IntoResponse;
    use http_body_util::{BodyExt, Limited};
    let (parts, body) = req.into_parts();
    // A snapshot restore may be larger than the server's limit (up to its own).
    let max = if parts.uri.path() == "/_mock/snapshot" {
        limits.max_body_bytes.max(crate::snapshot::BODY_LIMIT)
    } else {
        limits.max_body_bytes
    };
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(limits.body_read_timeout, read).await {
        Ok(Ok(collected)) => Ok(hyper::Request::from_parts(
            parts,
            Body::from(collected.to_bytes()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err((
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max} bytes"),
        )
            .into_response()),
        Ok(Err(e)) => Err((
            http::StatusCode::BAD_REQUEST,
            format!("reading the request body: {e}"),
        )
            .into_response()),
        Err(_) => Err((
            http::StatusCode::REQUEST_TIMEOUT,
            [(http::header::CONNECTION, "close")],
            format!(
                "request body not received within {} s",
                limits.body_read_timeout.as_secs_f64()
            ),
        )
            .into_response()),
    }
}
