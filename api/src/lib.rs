//! skyfleet's worker API: the HTTP server a fleet's workers register and
//! heartbeat with.
//!
//! The API is an [`axum::Router`] over a [`WorkerService`] (the fleet
//! runtime implements it; tests use fakes), built by [`router`]. Mount it in
//! your own server, or run it with [`serve`] (plain HTTP or rustls TLS).
//!
//! ```no_run
//! # async fn run(service: std::sync::Arc<dyn skyfleet_api::WorkerService>) -> Result<(), Box<dyn std::error::Error>> {
//! use skyfleet_api::{router, serve, ApiConfig, TlsFiles};
//! use tokio_util::sync::CancellationToken;
//!
//! let app = router(service, ApiConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let tls = TlsFiles::new("cert.pem", "key.pem");
//! serve(listener, Some(tls), app, CancellationToken::new()).await?;
//! # Ok(()) }
//! ```
//!
//! # Endpoints
//!
//! `POST` at [`paths`](skyfleet_core::protocol::paths), JSON bodies from
//! [`skyfleet_core::protocol`], at most
//! [`MAX_BODY_BYTES`](skyfleet_core::protocol::MAX_BODY_BYTES):
//!
//! | path | body | secret | answer |
//! |---|---|---|---|
//! | `REGISTER` | [`RegisterRequest`] | no (the proof) | [`RegisterResponse`] |
//! | `REREGISTER` | [`ReregisterRequest`](skyfleet_core::protocol::ReregisterRequest) | `Authorization: Bearer` | [`ReregisterResponse`] |
//! | `HEARTBEAT` | [`HeartbeatRequest`] | `Authorization: Bearer` | [`HeartbeatResponse`] |
//! | `DRAINED` | [`DrainedRequest`](skyfleet_core::protocol::DrainedRequest) | `Authorization: Bearer` | [`DrainedResponse`] |
//!
//! # Errors
//!
//! Every error answer is an [`ErrorBody`](skyfleet_core::protocol::ErrorBody)
//! with a stable code. Unknown workers, wrong, expired or missing secrets
//! and proofs that do not hold all get the same `401` with the same bytes
//! ([`UNAUTHORIZED_BODY`]), so a caller cannot tell which check failed.
//! Service errors map by [`ErrorKind`](skyfleet_core::ErrorKind):
//! `IdentityRejected`, `NotFound`, `Unauthenticated`, `PermissionDenied` ->
//! `401 unauthorized`; `Conflict`, `AlreadyExists` -> `409 conflict`;
//! `InvalidConfig` -> `400 bad_request` naming the field; `Throttled`,
//! `Timeout`, `Transient` -> `503 unavailable` (with `Retry-After` when
//! known); anything else -> `500 internal` with a generic message (the error
//! is logged at debug level). Malformed JSON is `400 bad_request` naming the
//! category, field path and position, never a value from the body; an
//! oversized body is `413 bad_request`; unknown paths `404` and other
//! methods `405`, both `bad_request`.
//!
//! # Rate limits
//!
//! Each endpoint allows each source [`ApiConfig::per_source_per_second`]
//! requests a second with bursts of [`ApiConfig::burst`]; beyond, `429
//! rate_limited` with `Retry-After` in whole seconds. The source is the TCP
//! peer's address (the `/64` network for IPv6), read from
//! [`axum::extract::ConnectInfo<SocketAddr>`](axum::extract::ConnectInfo):
//! [`serve`] provides it. **Behind a reverse proxy the peer is the proxy**,
//! so all workers share its budget; raise the limits or rate-limit at the
//! proxy. **When the router is mounted without `ConnectInfo`** (for example
//! `axum::serve(listener, app)` rather than
//! `app.into_make_service_with_connect_info::<SocketAddr>()`), every request
//! counts against one shared bucket per endpoint. Each endpoint remembers at
//! most [`ApiConfig::max_tracked_sources`] sources: when full, sources idle
//! long enough to have a fresh bucket are forgotten, and if none are, new
//! sources share one overflow bucket until room frees up.
//!
//! # Secrets
//!
//! The worker secret travels in the `Authorization` header and is handed to
//! the service as a [`Secret`], whose `Debug` and `Display` are redacted.
//! Log lines carry the endpoint, the worker id (escaped and cut to 64
//! characters), the status and the code: never a header, a body, a secret
//! or a proof.

#![warn(missing_docs)]

mod config;
mod fleet;
mod handlers;
mod rate_limit;
mod refusal;
mod serve;

use std::sync::Arc;

use async_trait::async_trait;
use skyfleet_core::protocol::{
    DrainedResponse, HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse,
    ReregisterResponse,
};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::Result;

pub use config::ApiConfig;
pub use refusal::UNAUTHORIZED_BODY;
pub use serve::{serve, TlsFiles, HANDSHAKE_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS};

/// What the worker API calls: the fleet's side of each endpoint.
///
/// The fleet runtime implements it; an embedder can call the same methods
/// directly. Errors are classified by
/// [`ErrorKind`](skyfleet_core::ErrorKind) (see the crate docs for the
/// answer each kind gets); a failed identity check should be
/// [`Error::identity_rejected`](skyfleet_core::Error::identity_rejected), an
/// unknown worker or a wrong secret `NotFound` or `Unauthenticated`: the
/// API answers all of them alike.
#[async_trait]
pub trait WorkerService: Send + Sync + 'static {
    /// A worker's first call, with its cloud's proof.
    async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse>;

    /// Renews the secret of `worker_id`, authenticated by its current
    /// `secret`.
    async fn reregister(&self, worker_id: &str, secret: &Secret) -> Result<ReregisterResponse>;

    /// A heartbeat, authenticated by `secret`.
    async fn heartbeat(&self, secret: &Secret, req: HeartbeatRequest) -> Result<HeartbeatResponse>;

    /// The worker's confirmation that it holds no work.
    async fn drained(&self, worker_id: &str, secret: &Secret) -> Result<DrainedResponse>;
}

/// Why an [`ApiConfig`] or a server setting was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A limit is out of range.
    #[error("invalid worker API config: `{field}` {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why [`serve`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A certificate or key file could not be read.
    #[error("cannot read the TLS {what} file {path}: {source}")]
    ReadFile {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate or key file holds no usable PEM item of its kind.
    #[error("the TLS {what} file {path} holds no PEM {what}")]
    NoPem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
    },
    /// rustls refused the certificate and key (a mismatched pair, an
    /// unsupported key type).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// The worker API as a router over `service`, with `config`'s limits.
///
/// Limits below their minimum (see [`ApiConfig::validate`]) are raised to
/// it; validate the config first to refuse them instead. For per-source
/// rate limits, serve it with `ConnectInfo<SocketAddr>` (see the crate
/// docs); [`serve`] does.
pub fn router(service: Arc<dyn WorkerService>, config: ApiConfig) -> axum::Router {
    handlers::router(service, &config)
}
