//! A mock cloud speaking the EC2 Query, Azure Resource Manager and Compute
//! Engine wire protocols on one address, with simulated asynchronous
//! lifecycles, throttling, fault injection and a control API.
//!
//! Start it in-process on a free port and point official SDK clients at
//! [`MockCloud::url`]:
//!
//! ```no_run
//! # async fn demo() -> Result<(), skyfleet_mock::MockError> {
//! let mock = skyfleet_mock::MockCloud::builder()
//!     .seed(7)
//!     .time_scale(0.001) // a 60 s VM creation takes 60 ms
//!     .start()
//!     .await?;
//! println!("EC2 endpoint: {}", mock.url());
//! // The server stops when `mock` is dropped.
//! # Ok(()) }
//! ```
//!
//! Routing: `POST /` is EC2; `/subscriptions/...` and the Azure token
//! endpoints are ARM; `/compute/v1/...` and `POST /token` are Compute
//! Engine; `/_imds/{aws,gcp,azure}/...` are each VM's instance-metadata
//! service (plain HTTP: under TLS they are also on [`MockCloud::imds_url`]);
//! `/_mock/...` is the control API (see the crate README), and `/_mock/ui`
//! its dashboard ([`MockCloud::dashboard_url`]).
//!
//! The public API is the builder ([`MockCloud::builder`]), the
//! configuration ([`MockConfig`] and the [`config`] module), the running
//! server's handle with its router ([`MockCloud::router`]) and fault context
//! ([`Ctx`]). The per-cloud internals are public only with the `testing`
//! feature, for the mock's own tests, examples and fuzz targets; they are not
//! a stable API.

#![warn(missing_docs)]

/// Declares an internal module: public with the `testing` feature (not a
/// stable API), private otherwise.
macro_rules! internal {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "testing")]
            pub mod $name;
            #[cfg(not(feature = "testing"))]
            mod $name;
        )*
    };
}

internal!(app, arm, capacity, control, ctx, ec2, gce, imds, journal, tls);
internal!(consistency, control_guard, delay, faults, out_of_band, ui);
internal!(snapshot);
mod bounded;
pub mod config;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::config::MockConfig;
pub use crate::ctx::{Cloud, Ctx, DropConnection, FaultEffect, FaultRule, ResourceView};
pub use crate::ec2::account_for_access_key;
pub use crate::imds::{TrustError, TrustKeys};
pub use crate::serve::ServerLimits;

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The address is not a loopback address and non-loopback was not allowed.
    #[error(
        "refusing to listen on {0}: it is not a loopback address (the mock has no authentication; allow it explicitly)"
    )]
    NonLoopback(SocketAddr),
    /// The TLS certificate or configuration could not be made.
    #[error("TLS: {0}")]
    Tls(String),
    /// The configuration was refused.
    #[error("configuration: {0}")]
    Config(String),
    /// The trust keys (`--trust-keys DIR`) could not be loaded.
    #[error("trust keys: {0}")]
    Trust(#[from] TrustError),
    /// Non-loopback listening was allowed without a control token: the
    /// control API would be open to the network.
    #[error(
        "a control token is required when non-loopback listening is allowed (anyone who can reach the mock could reset it)"
    )]
    ControlTokenRequired,
    /// The state file (`--state FILE`) could not be read, was refused, or
    /// could not be written.
    #[error("{0}")]
    State(String),
}

/// Builds and starts a [`MockCloud`].
#[derive(Clone)]
pub struct MockCloudBuilder {
    seed: u64,
    time_scale: f64,
    tls: bool,
    listen: SocketAddr,
    allow_non_loopback: bool,
    control_token: Option<String>,
    config: MockConfig,
    trust_keys: Option<PathBuf>,
    limits: ServerLimits,
    state_file: Option<PathBuf>,
}

impl std::fmt::Debug for MockCloudBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockCloudBuilder")
            .field("seed", &self.seed)
            .field("time_scale", &self.time_scale)
            .field("tls", &self.tls)
            .field("listen", &self.listen)
            .field("allow_non_loopback", &self.allow_non_loopback)
            .field(
                "control_token",
                &self.control_token.as_ref().map(|_| "<redacted>"),
            )
            .field("config", &self.config)
            .field("trust_keys", &self.trust_keys)
            .field("limits", &self.limits)
            .field("state_file", &self.state_file)
            .finish()
    }
}

impl Default for MockCloudBuilder {
    fn default() -> Self {
        MockCloudBuilder {
            seed: 0,
            time_scale: 1.0,
            tls: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_non_loopback: false,
            control_token: None,
            config: MockConfig::default(),
            trust_keys: None,
            limits: ServerLimits::default(),
            state_file: None,
        }
    }
}

impl MockCloudBuilder {
    /// Connection cap, idle and body read timeouts, body size limit of the
    /// HTTP server (default [`ServerLimits::default`]).
    pub fn server_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Seeds the RNG behind ids and probabilistic fault rules (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the global time scale (default 1.0). A `time_scale` in
    /// [`MockCloudBuilder::config`] wins over this.
    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    /// Serves HTTPS with a fresh self-signed certificate for `127.0.0.1` and
    /// `localhost` (see [`MockCloud::cert_pem`]). Default off.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Allows a non-loopback listen address. Off by default; when on, a
    /// [`control_token`](MockCloudBuilder::control_token) is required, or
    /// [`start`](MockCloudBuilder::start) fails with
    /// [`MockError::ControlTokenRequired`].
    pub fn allow_non_loopback(mut self, allow: bool) -> Self {
        self.allow_non_loopback = allow;
        self
    }

    /// Protects the control API (`/_mock/...`) with a bearer token: every
    /// call must carry `Authorization: Bearer TOKEN` or gets 401 (the
    /// dashboard asks for it once per browser session). 16 to 512 visible
    /// ASCII characters. The cloud APIs are unaffected.
    ///
    /// Whatever the token, a mock bound to a loopback address answers
    /// control calls only for loopback `Host` headers (403 otherwise), so a
    /// web page cannot reach it through DNS rebinding.
    pub fn control_token(mut self, token: impl Into<String>) -> Self {
        self.control_token = Some(token.into());
        self
    }

    /// The initial configuration (same document as `PUT /_mock/config`).
    pub fn config(mut self, config: MockConfig) -> Self {
        self.config = config;
        self
    }

    /// Signs identity documents with the keys in `dir` instead of fresh
    /// ones (file names in [`TrustKeys`]; `--trust-keys DIR`), so a test
    /// suite can pin what it trusts across mock starts.
    pub fn trust_keys(mut self, dir: impl Into<PathBuf>) -> Self {
        self.trust_keys = Some(dir.into());
        self
    }

    /// Starts from the snapshot in `path` (see the crate README's
    /// "Snapshots"; `--state FILE`): [`start`](MockCloudBuilder::start)
    /// loads it before listening and fails with [`MockError::State`] when
    /// it cannot be read or is refused. A missing file is fine: the mock
    /// starts empty. [`MockCloud::save_state`] writes it back.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Binds, starts serving in the background and returns the handle.
    /// Must be called within a Tokio runtime.
    pub async fn start(self) -> Result<MockCloud, MockError> {
        if !self.listen.ip().is_loopback() && !self.allow_non_loopback {
            return Err(MockError::NonLoopback(self.listen));
        }
        let token = match self.control_token {
            Some(t) => Some(control_guard::ControlToken::new(t).map_err(MockError::Config)?),
            None if self.allow_non_loopback => return Err(MockError::ControlTokenRequired),
            None => None,
        };
        let ctx = Ctx::new(self.seed);
        ctx.set_time_scale(self.time_scale)
            .map_err(MockError::Config)?;
        let trust = match &self.trust_keys {
            Some(dir) => Some(imds::trust::Trust::pinned(TrustKeys::load(dir)?)?),
            None => None,
        };
        let shared = app::Shared::with_trust(ctx.clone(), trust);
        shared.set_control_access(control_guard::ControlAccess {
            loopback_hosts_only: self.listen.ip().is_loopback(),
            token,
        });
        // ARM hands out absolute operation URLs and must know their scheme.
        shared.arm.set_tls(self.tls);
        shared
            .apply_config(self.config)
            .map_err(MockError::Config)?;
        let tls = if self.tls {
            Some(tls::self_signed().map_err(MockError::Tls)?)
        } else {
            None
        };
        if let Some(path) = &self.state_file {
            if let Some(r) = snapshot::load_file(path).map_err(MockError::State)? {
                snapshot::restore(&shared, r);
            }
        }
        let listener = TcpListener::bind(self.listen)
            .await
            .map_err(|source| MockError::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: self.listen,
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        shared.imds.set_address(&url, addr.ip());
        let router = app::router(shared.clone());
        let (shutdown, shutdown_rx) = watch::channel(());
        // The metadata services are plain HTTP, as the real ones are: a
        // TLS mock serves them on a second, plain listener too.
        let imds_url = if tls.is_some() {
            let bind = SocketAddr::new(addr.ip(), 0);
            let plain = TcpListener::bind(bind)
                .await
                .map_err(|source| MockError::Bind { addr: bind, source })?;
            let plain_addr = plain
                .local_addr()
                .map_err(|source| MockError::Bind { addr: bind, source })?;
            tokio::spawn(serve::serve(
                plain,
                None,
                app::imds_router(shared.clone()),
                shutdown_rx.clone(),
                self.limits,
            ));
            format!("http://{plain_addr}")
        } else {
            url.clone()
        };
        let (cert_pem, acceptor) = match tls {
            Some(t) => (Some(t.cert_pem), Some(t.acceptor)),
            None => (None, None),
        };
        tokio::spawn(capacity::run_ticker(shared.clone(), shutdown_rx.clone()));
        let task = tokio::spawn(serve::serve(
            listener,
            acceptor,
            router.clone(),
            shutdown_rx,
            self.limits,
        ));
        Ok(MockCloud {
            url,
            imds_url,
            addr,
            cert_pem,
            shared,
            router,
            shutdown: Some(shutdown),
            task,
        })
    }
}

/// A running mock cloud. Dropping it stops the server and closes its
/// connections.
pub struct MockCloud {
    url: String,
    imds_url: String,
    addr: SocketAddr,
    cert_pem: Option<String>,
    shared: Arc<app::Shared>,
    router: axum::Router,
    shutdown: Option<watch::Sender<()>>,
    task: JoinHandle<()>,
}

impl MockCloud {
    /// A builder with the defaults: seed 0, time scale 1, plain HTTP on
    /// `127.0.0.1:0`.
    pub fn builder() -> MockCloudBuilder {
        MockCloudBuilder::default()
    }

    /// The base URL, `http://127.0.0.1:PORT` (or `https://` with TLS). It is
    /// the endpoint for every cloud's client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The base URL of the instance-metadata services, always plain HTTP
    /// (`http://127.0.0.1:PORT`): [`MockCloud::url`] without TLS, a second
    /// listener's with it. Each VM's metadata is under
    /// `/_imds/aws/{instance-id}`, `/_imds/gcp/{project}/{zone}/{instance}`
    /// and `/_imds/azure/{vmId}`.
    pub fn imds_url(&self) -> &str {
        &self.imds_url
    }

    /// The dashboard's address, `URL/_mock/ui`: a page showing resources,
    /// requests, fault rules and configuration, updated live.
    pub fn dashboard_url(&self) -> String {
        format!("{}/_mock/ui", self.url)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The self-signed certificate in PEM, when serving TLS.
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The shared context (time scale, faults, throttles).
    pub fn ctx(&self) -> &Ctx {
        &self.shared.ctx
    }

    /// The application router, to drive in-process without a socket (for
    /// example with `tower::ServiceExt::oneshot`). A response carrying
    /// [`DropConnection`] is one the socket server would not send.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Applies a configuration document, as `PUT /_mock/config` does.
    pub fn set_config(&self, config: MockConfig) -> Result<(), MockError> {
        self.shared.apply_config(config).map_err(MockError::Config)
    }

    /// The configuration in force, as `GET /_mock/config` answers it.
    pub fn config(&self) -> MockConfig {
        self.shared.config()
    }

    /// The whole cloud state as a snapshot (JSON), as
    /// `POST /_mock/snapshot` answers it.
    pub fn snapshot(&self) -> Result<Vec<u8>, MockError> {
        snapshot::take(&self.shared)
            .map_err(|e| MockError::State(format!("cannot take a snapshot: {e}")))
    }

    /// Replaces the whole cloud state with a snapshot's, as
    /// `PUT /_mock/snapshot` does; nothing changes when it is refused.
    pub fn restore(&self, body: &[u8]) -> Result<(), MockError> {
        let r = snapshot::parse(body).map_err(|e| MockError::State(e.to_string()))?;
        snapshot::restore(&self.shared, r);
        Ok(())
    }

    /// Writes a snapshot to `path` atomically (a temporary file in the same
    /// directory, renamed over `path`).
    pub fn save_state(&self, path: &std::path::Path) -> Result<(), MockError> {
        snapshot::save_file(&self.shared, path).map_err(MockError::State)
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.shared.imds.shutdown();
        self.shutdown.take();
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockCloud {
    fn drop(&mut self) {
        // Dropping the sender wakes the accept loops and every connection.
        self.shared.imds.shutdown();
        self.shutdown.take();
        self.task.abort();
    }
}

/// The current time as RFC 3339 with milliseconds, UTC (`...T00:00:00.000Z`).
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

/// Formats a time as RFC 3339 with milliseconds, UTC.
pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
