//! [`GcpBuilder`]: the one way to construct a [`GcpProvider`], validating
//! every setting up front and naming the bad field.

use std::sync::Arc;
use std::time::Duration;

use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::bootstrap::check_root_url;
use skyfleet_core::provider::names::GCP;
use skyfleet_core::transport::Transport;
use skyfleet_core::{Error, PollPolicy, Result};

use crate::credential::{Credentials, TokenSource};
use crate::identity::Identity;
use crate::launch::valid_name;
use crate::provider::GcpProvider;
use skyfleet_identity::gcp::{GcpConfig, ServiceAccount};

/// The public Compute Engine endpoint (without `/compute/v1`).
pub const DEFAULT_ENDPOINT: &str = "https://compute.googleapis.com";

/// Builds a [`GcpProvider`].
///
/// ```
/// use std::time::Duration;
/// use skyfleet_gcp::{Credentials, GcpBuilder};
/// let provider = GcpBuilder::new("my-project")
///     .with_endpoint("http://127.0.0.1:8080")
///     .with_credentials(Credentials::static_token("test"))
///     .with_zones(["us-central1-a"])
///     .with_check_intervals(Duration::from_secs(60), Duration::from_secs(5))
///     .build();
/// assert!(provider.is_ok());
/// assert!(GcpBuilder::new("Not A Project").build().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct GcpBuilder {
    id: String,
    project: String,
    endpoint: String,
    credentials: Credentials,
    zones: Vec<String>,
    poll: PollPolicy,
    check_interval: Duration,
    boot_check_interval: Duration,
    not_found_grace: u32,
    transport: Option<Transport>,
    clock: Arc<dyn Clock>,
    identity: Option<GcpConfig>,
    service_account: Option<ServiceAccount>,
    root_url: Option<String>,
}

/// What the step machine reads of the built configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The provider id, put on every instance's labels.
    pub(crate) id: String,
    /// How zone operations are polled and when they are given up.
    pub(crate) poll: PollPolicy,
    /// How often a running worker is checked.
    pub(crate) check_interval: Duration,
    /// How often a booting instance is checked.
    pub(crate) boot_check_interval: Duration,
    /// `instances.get` 404s in a row taken for read-after-write lag.
    pub(crate) not_found_grace: u32,
    /// The wall clock (deadlines are persisted as wall time).
    pub(crate) clock: Arc<dyn Clock>,
    /// The manager's API URL written into each worker's bootstrap document.
    pub(crate) root_url: Option<String>,
}

impl GcpBuilder {
    /// A builder for `project` with the defaults: provider id `gcp`, the
    /// public endpoint, credentials by discovery ([`Credentials::Auto`]), no
    /// zones, operations polled every 1-10 s for at most 600 s, running
    /// workers checked every 60 s and booting ones every 5 s, 3 404s of
    /// grace after an insert, a transport of its own, the system clock.
    pub fn new(project: impl Into<String>) -> Self {
        GcpBuilder {
            id: GCP.into(),
            project: project.into(),
            endpoint: DEFAULT_ENDPOINT.into(),
            credentials: Credentials::Auto,
            zones: Vec::new(),
            poll: PollPolicy {
                min_interval: Duration::from_secs(1),
                max_interval: Duration::from_secs(10),
                default_interval: Duration::from_secs(2),
                deadline: Duration::from_secs(600),
                max_consecutive_errors: 5,
            },
            check_interval: Duration::from_secs(60),
            boot_check_interval: Duration::from_secs(5),
            not_found_grace: 3,
            transport: None,
            clock: Arc::new(SystemClock),
            identity: None,
            service_account: None,
            root_url: None,
        }
    }

    /// A builder from the environment: the project from
    /// `GOOGLE_CLOUD_PROJECT` (or `CLOUDSDK_CORE_PROJECT`), the endpoint from
    /// `SKYFLEET_GCP_ENDPOINT` when set, credentials by discovery.
    pub fn from_env() -> Result<Self> {
        let project = std::env::var("GOOGLE_CLOUD_PROJECT")
            .or_else(|_| std::env::var("CLOUDSDK_CORE_PROJECT"))
            .map_err(|_| {
                Error::invalid_config(
                    "project",
                    "set GOOGLE_CLOUD_PROJECT (or CLOUDSDK_CORE_PROJECT) to the project id",
                )
            })?;
        let mut b = GcpBuilder::new(project);
        if let Ok(e) = std::env::var("SKYFLEET_GCP_ENDPOINT") {
            b.endpoint = e;
        }
        Ok(b)
    }

    /// Sets the provider id (default `gcp`), put on every instance's labels.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the endpoint (scheme and host, without `/compute/v1`; the mock's
    /// URL in tests).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Sets where tokens come from.
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets the zones swept by
    /// [`list_owned`](skyfleet_core::Provider::list_owned), besides those
    /// seen in launch configs.
    pub fn with_zones<I, S>(mut self, zones: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.zones = zones.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how zone operations are polled (Compute sends no `Retry-After`:
    /// the handle backs off within these bounds) and when they are given up.
    pub fn with_poll(mut self, poll: PollPolicy) -> Self {
        self.poll = poll;
        self
    }

    /// Sets how often running and booting (`PROVISIONING`, `STAGING`)
    /// workers are checked.
    pub fn with_check_intervals(mut self, running: Duration, booting: Duration) -> Self {
        self.check_interval = running;
        self.boot_check_interval = booting;
        self
    }

    /// Sets how many `instances.get` 404s in a row after a successful insert
    /// are taken for read-after-write lag rather than a vanished instance.
    pub fn with_not_found_grace(mut self, grace: u32) -> Self {
        self.not_found_grace = grace;
        self
    }

    /// Sends every call through `transport` (share one among providers to
    /// share rate limits; default: one built from the default config).
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Uses `clock` for deadlines.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Verifies instances' identity tokens with `config` (its audience is
    /// the manager's root URL; Google's JWKS unless set). Without it, the
    /// audience is the [root URL](Self::with_root_url) with Google's JWKS,
    /// and without either,
    /// [`verify_identity`](skyfleet_core::Provider::verify_identity) fails
    /// with `InvalidConfig`.
    pub fn with_identity(mut self, config: GcpConfig) -> Self {
        self.identity = Some(config);
        self
    }

    /// The manager's API URL (`https://manager.example`), written as
    /// `rootUrl` into each worker's bootstrap document (the instance
    /// metadata item `taskcluster`), so the worker's agent knows where to
    /// register; also the identity tokens' audience unless
    /// [`with_identity`](Self::with_identity) sets one. Without it, the
    /// document has no `rootUrl`.
    pub fn with_root_url(mut self, root_url: impl Into<String>) -> Self {
        self.root_url = Some(root_url.into());
        self
    }

    /// Tokens must be for this service account (its numeric id, the
    /// token's `sub`, or its email).
    pub fn with_worker_service_account(mut self, account: ServiceAccount) -> Self {
        self.service_account = Some(account);
        self
    }

    /// Checks the settings, naming the bad field.
    fn validate(&self) -> Result<()> {
        if self.id.is_empty() {
            return Err(Error::invalid_config("id", "must not be empty"));
        }
        if !valid_project(&self.project) {
            return Err(Error::invalid_config(
                "project",
                format!(
                    "`{}` is not a project id (6-30 of a-z, 0-9 and '-')",
                    self.project
                ),
            ));
        }
        let e = self.endpoint.trim_end_matches('/');
        if !(e.starts_with("https://") || e.starts_with("http://")) || e.contains('?') {
            return Err(Error::invalid_config(
                "endpoint",
                format!("`{}` must be an http(s) URL without a query", self.endpoint),
            ));
        }
        if e.starts_with("http://") && !is_loopback_url(e) {
            // Bearer tokens go with every call: plain HTTP only to this machine.
            return Err(Error::invalid_config(
                "endpoint",
                format!(
                    "`{}`: plain http:// is allowed only for a loopback host \
                     (127.0.0.1, ::1, localhost); use https://",
                    self.endpoint
                ),
            ));
        }
        for (i, z) in self.zones.iter().enumerate() {
            if !valid_name(z) {
                return Err(Error::invalid_config(
                    format!("zones[{i}]"),
                    format!("`{z}` is not a zone name"),
                ));
            }
        }
        if self.check_interval.is_zero() || self.boot_check_interval.is_zero() {
            return Err(Error::invalid_config(
                "check_interval",
                "check intervals must be greater than zero",
            ));
        }
        self.poll.validate()
    }

    /// The provider (the transport is built when none was given).
    pub fn build(self) -> Result<GcpProvider> {
        self.validate()?;
        let root_url = match &self.root_url {
            Some(url) => Some(check_root_url("root_url", url)?),
            None => None,
        };
        let transport = match self.transport {
            Some(t) => t,
            None => Transport::builder().build()?,
        };
        // Taskcluster's audience is its root URL: the natural default.
        let identity = match self
            .identity
            .or_else(|| root_url.clone().map(GcpConfig::new))
        {
            Some(config) => Some(Identity::new(config, self.service_account)?),
            None => None,
        };
        let tokens = TokenSource::new(self.credentials);
        let settings = Settings {
            id: self.id,
            poll: self.poll,
            check_interval: self.check_interval,
            boot_check_interval: self.boot_check_interval,
            not_found_grace: self.not_found_grace,
            clock: self.clock,
            root_url,
        };
        Ok(GcpProvider::assemble(
            settings,
            transport,
            tokens,
            &self.endpoint,
            &self.project,
            self.zones,
            identity,
        ))
    }
}

/// Whether `p` looks like a project id (lenient on length for emulators).
fn valid_project(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 100
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
}

/// Whether `url`'s host is a loopback address or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let Ok(u) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = u.host() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::ErrorKind;

    fn field(b: GcpBuilder) -> String {
        match b.build().unwrap_err().kind() {
            ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let ok = || GcpBuilder::new("my-project").with_endpoint("http://127.0.0.1:9");
        assert!(ok().build().is_ok());
        assert_eq!(field(ok().with_id("")), "id");
        assert_eq!(field(GcpBuilder::new("Bad Project")), "project");
        assert_eq!(field(ok().with_endpoint("ftp://x")), "endpoint");
        assert_eq!(field(ok().with_zones(["us-central1-a", "US"])), "zones[1]");
        assert_eq!(
            field(ok().with_check_intervals(Duration::ZERO, Duration::from_secs(1))),
            "check_interval"
        );
        assert_eq!(field(ok().with_root_url("/relative")), "root_url");
        assert_eq!(
            field(ok().with_identity(GcpConfig::new(""))),
            "identity.gcp.audience"
        );
    }

    #[test]
    fn plain_http_endpoint_is_refused_unless_loopback() {
        let b = |e: &str| GcpBuilder::new("my-project").with_endpoint(e);
        for e in [
            "http://127.0.0.1:9",
            "http://127.3.4.5",
            "http://[::1]:8600/",
            "http://localhost:8600",
            "https://compute.example.com",
        ] {
            assert!(b(e).build().is_ok(), "{e}");
        }
        for e in [
            "http://compute.googleapis.com",
            "http://10.0.0.1:8600",
            "http://localhost.evil.com",
            "http://127.0.0.1.nip.io",
            "http://localhost@evil.example.com",
        ] {
            assert_eq!(field(b(e)), "endpoint", "{e}");
        }
    }

    #[test]
    fn debug_hides_credentials() {
        let b = GcpBuilder::new("p").with_credentials(Credentials::static_token("tok-123"));
        let s = format!("{b:?}");
        assert!(!s.contains("tok-123"), "{s}");
    }
}
