//! [`AzureBuilder`]: the one way to build an [`AzureProvider`], from a
//! subscription id, the environment, or a config document ([`AzureConfig`],
//! one per subscription, as read from a fleet file).
//!
//! The config is a plain serde document so that a process can rebuild a
//! provider from its configuration alone after a crash: nothing a worker
//! needs lives only in memory. Durations are `Duration`s in the builder;
//! the document keeps its seconds and milliseconds, converted here.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::bootstrap::check_root_url;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{Error, PollPolicy, Result};

use crate::client::ArmClient;
use crate::credential::{Credential, CredentialConfig};
use crate::idempotency as naming;
use crate::launch::AzureLaunch;
use crate::provider::AzureProvider;

/// The public Azure Resource Manager endpoint.
pub const PUBLIC_ENDPOINT: &str = "https://management.azure.com";

/// The configuration of one [`AzureProvider`](crate::AzureProvider): one
/// subscription, its credentials, endpoint and pacing.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The provider id (unique in a fleet), also the `skyfleet-provider` tag.
    #[serde(default = "AzureConfig::default_id")]
    pub id: String,
    /// The subscription every resource lives in.
    pub subscription_id: String,
    /// Resource groups scanned by `list_owned` (orphan sweeps); the first is
    /// also the default group of launch configs that name none.
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// The ARM endpoint (`https://management.azure.com` by default; a mock's
    /// URL in tests). Must be `https`: a bearer token is sent to it.
    #[serde(default = "AzureConfig::default_endpoint")]
    pub endpoint: String,
    /// How tokens are obtained.
    #[serde(default)]
    pub credential: CredentialConfig,
    /// Extra PEM root certificates trusted for ARM (and the token authority),
    /// for private endpoints and test servers.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Transport tuning (timeouts, attempts, rate limits).
    #[serde(default)]
    pub transport: TransportSettings,
    /// How long-running operations are polled: interval bounds, the
    /// operation deadline (default 10 minutes) and the poll error streak.
    #[serde(default)]
    pub poll: PollPolicy,
    /// Seconds between health checks of a running worker (default 60).
    #[serde(default = "AzureConfig::default_health_interval")]
    pub health_interval_s: f64,
    /// Consecutive instance-view 404s tolerated on a VM that exists
    /// (default 2; Taskcluster PR #8315 found them transient).
    #[serde(default = "AzureConfig::default_iv_404s")]
    pub max_instance_view_404s: u32,
    /// Seconds to wait before retrying a delete that ARM refused because a
    /// dependent or another operation still holds the resource (default 5).
    #[serde(default = "AzureConfig::default_busy_retry")]
    pub busy_retry_s: f64,
    /// The manager's API URL (`https://manager.example`), written as
    /// `rootUrl` into each worker's bootstrap document (the VM's
    /// `userData`). Without it, the document has no `rootUrl`.
    #[serde(default)]
    pub root_url: Option<String>,
    /// Seconds a power-state snapshot of the subscription's VMs (one
    /// `statusOnly=true` list) answers running workers' health checks in
    /// batches (default 15; 0 disables it: one instance-view GET per
    /// check). See [`AzureBuilder::with_status_max_age`].
    #[serde(default = "AzureConfig::default_status_max_age")]
    pub status_max_age_s: f64,
}

impl std::fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureConfig")
            .field("id", &self.id)
            .field("subscription_id", &self.subscription_id)
            .field("resource_groups", &self.resource_groups)
            .field("endpoint", &self.endpoint)
            .field("credential", &self.credential)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<pem>"))
            .field("transport", &self.transport)
            .field("poll", &self.poll)
            .field("root_url", &self.root_url)
            .field("status_max_age_s", &self.status_max_age_s)
            .finish_non_exhaustive()
    }
}

/// Transport settings carried in the provider config. Unset values keep the
/// shared transport's defaults for Azure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportSettings {
    /// Per-attempt timeout of every ARM call, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_timeout_ms: Option<u64>,
    /// Overall timeout of every ARM call (retries included), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall_timeout_ms: Option<u64>,
    /// Attempts per call, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Reads (and polls) per second, with the same burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads_per_s: Option<u32>,
    /// Writes and deletes per second, with the same burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes_per_s: Option<u32>,
    /// Calls of one key in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
}

impl AzureConfig {
    fn default_id() -> String {
        "azure".into()
    }
    fn default_endpoint() -> String {
        PUBLIC_ENDPOINT.into()
    }
    fn default_health_interval() -> f64 {
        60.0
    }
    fn default_iv_404s() -> u32 {
        2
    }
    fn default_busy_retry() -> f64 {
        5.0
    }
    fn default_status_max_age() -> f64 {
        crate::chain::DEFAULT_MAX_AGE.as_secs_f64()
    }

    /// A config for `subscription_id` with every default.
    pub fn new(subscription_id: impl Into<String>) -> Self {
        AzureConfig {
            id: Self::default_id(),
            subscription_id: subscription_id.into(),
            resource_groups: Vec::new(),
            endpoint: Self::default_endpoint(),
            credential: CredentialConfig::default(),
            ca_pem: None,
            transport: TransportSettings::default(),
            poll: PollPolicy::default(),
            health_interval_s: Self::default_health_interval(),
            max_instance_view_404s: Self::default_iv_404s(),
            busy_retry_s: Self::default_busy_retry(),
            root_url: None,
            status_max_age_s: Self::default_status_max_age(),
        }
    }

    /// Parses a JSON config document and validates it.
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let c: AzureConfig = serde_json::from_value(value)
            .map_err(|e| Error::invalid_config("azure", format!("bad provider config: {e}")))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the config, naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.id.trim().is_empty() {
            return Err(Error::invalid_config("id", "must not be empty"));
        }
        if !is_arm_segment(&self.subscription_id) {
            return Err(Error::invalid_config(
                "subscription_id",
                "must be a non-empty subscription id (letters, digits, '-')",
            ));
        }
        for (i, rg) in self.resource_groups.iter().enumerate() {
            if !naming::valid_resource_group(rg) {
                return Err(Error::invalid_config(
                    format!("resource_groups[{i}]"),
                    format!("`{rg}` is not a valid resource group name"),
                ));
            }
        }
        if !self.endpoint.starts_with("https://") {
            return Err(Error::invalid_config(
                "endpoint",
                "must be an https:// URL (a bearer token is sent to it)",
            ));
        }
        self.poll.validate()?;
        if !(self.health_interval_s.is_finite() && self.health_interval_s > 0.0) {
            return Err(Error::invalid_config("health_interval_s", "must be > 0"));
        }
        if !(self.busy_retry_s.is_finite() && self.busy_retry_s > 0.0) {
            return Err(Error::invalid_config("busy_retry_s", "must be > 0"));
        }
        // An hour is far past any useful age: a snapshot that old would hide
        // a deleted VM for as long.
        if !(self.status_max_age_s.is_finite() && (0.0..=3600.0).contains(&self.status_max_age_s)) {
            return Err(Error::invalid_config(
                "status_max_age_s",
                "must be between 0 (no snapshot) and 3600 seconds",
            ));
        }
        self.credential.validate()?;
        if let Some(url) = &self.root_url {
            check_root_url("root_url", url)?;
        }
        Ok(())
    }

    /// The endpoint without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.endpoint.trim_end_matches('/')
    }

    pub(crate) fn health_interval(&self) -> Duration {
        Duration::try_from_secs_f64(self.health_interval_s).unwrap_or(Duration::from_secs(60))
    }

    pub(crate) fn status_max_age(&self) -> Duration {
        Duration::try_from_secs_f64(self.status_max_age_s).unwrap_or(crate::chain::DEFAULT_MAX_AGE)
    }

    pub(crate) fn busy_retry(&self) -> Duration {
        Duration::try_from_secs_f64(self.busy_retry_s).unwrap_or(Duration::from_secs(5))
    }
}

fn is_arm_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// What the chain needs of the config, validated, durations resolved.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Resource groups scanned by `list_owned`; the first is the default.
    pub resource_groups: Vec<String>,
    /// How long-running operations are polled.
    pub poll: PollPolicy,
    /// Between health checks of a running worker.
    pub health_interval: Duration,
    /// Before retrying a delete ARM refused as busy.
    pub busy_retry: Duration,
    /// Consecutive instance-view 404s tolerated on a VM that exists.
    pub max_instance_view_404s: u32,
    /// How long a power-state snapshot is shared (zero: none).
    pub status_max_age: Duration,
    /// The manager's API URL written into each worker's bootstrap document.
    pub root_url: Option<String>,
}

impl Settings {
    /// The resource group of a launch config: its own, else the provider's
    /// first.
    pub fn resource_group_for(&self, launch: &AzureLaunch) -> Result<String> {
        launch
            .resource_group
            .clone()
            .or_else(|| self.resource_groups.first().cloned())
            .ok_or_else(|| {
                Error::invalid_config(
                    "launch.resource_group",
                    "no resource group: set launch.resource_group or the provider's resource_groups",
                )
            })
    }
}

/// The transport config an [`AzureConfig`] asks for: the shared defaults
/// with its overrides and its CA.
fn transport_config(config: &AzureConfig) -> TransportConfig {
    let t = &config.transport;
    let mut tc = TransportConfig::default();
    if t.attempt_timeout_ms.is_some() || t.overall_timeout_ms.is_some() {
        for class in ApiClass::ALL {
            let cur = tc.timeouts(class);
            let attempt = t
                .attempt_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(cur.attempt);
            let overall = t
                .overall_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(cur.overall)
                .max(attempt);
            tc = tc.with_timeouts(class, attempt, overall);
        }
    }
    if let Some(n) = t.max_attempts {
        tc = tc.with_max_attempts(n);
    }
    if let Some(r) = t.reads_per_s {
        tc = tc
            .with_limit("azure", ApiClass::Read, Limit::per_second(r, r))
            .with_limit("azure", ApiClass::Poll, Limit::per_second(r, r));
    }
    if let Some(w) = t.writes_per_s {
        tc = tc
            .with_limit("azure", ApiClass::Write, Limit::per_second(w, w))
            .with_limit("azure", ApiClass::Delete, Limit::per_second(w, w));
    }
    if let Some(c) = t.max_concurrency {
        tc = tc.with_max_concurrency(c);
    }
    if let Some(pem) = &config.ca_pem {
        tc = tc.with_root_certificate_pem(pem.as_bytes().to_vec());
    }
    tc
}

/// Builds an [`AzureProvider`].
///
/// ```no_run
/// # async fn demo() -> skyfleet_core::Result<()> {
/// use skyfleet_azure::AzureBuilder;
/// let provider = AzureBuilder::new("00000000-0000-0000-0000-000000000000")
///     .with_resource_groups(["workers"])
///     .build()?;
/// # let _ = provider; Ok(()) }
/// ```
#[derive(Debug)]
pub struct AzureBuilder {
    config: AzureConfig,
    transport: Option<Transport>,
    credential: Option<Arc<Credential>>,
    clock: Arc<dyn Clock>,
    attestation: Option<skyfleet_identity::azure::AzureConfig>,
}

impl AzureBuilder {
    /// A builder for `subscription_id` with every default.
    pub fn new(subscription_id: impl Into<String>) -> Self {
        Self::from_config(AzureConfig::new(subscription_id))
    }

    /// A builder from the environment: `AZURE_SUBSCRIPTION_ID`, the
    /// comma-separated `SKYFLEET_AZURE_RESOURCE_GROUPS`, and credentials
    /// picked from the environment the way Azure's SDKs do.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut b = Self::new(var("AZURE_SUBSCRIPTION_ID").unwrap_or_default());
        if let Some(groups) = var("SKYFLEET_AZURE_RESOURCE_GROUPS") {
            b = b.with_resource_groups(groups.split(',').map(str::trim));
        }
        b
    }

    /// A builder from a config document.
    pub fn from_config(config: AzureConfig) -> Self {
        AzureBuilder {
            config,
            transport: None,
            credential: None,
            clock: Arc::new(SystemClock),
            attestation: None,
        }
    }

    /// Verifies workers' attested data documents with `config` (default:
    /// Microsoft's roots, intermediates fetched from the allow-listed AIA
    /// hosts, signer `metadata.azure.com`).
    pub fn with_attestation(mut self, config: skyfleet_identity::azure::AzureConfig) -> Self {
        self.attestation = Some(config);
        self
    }

    /// The provider id (default `azure`).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.config.id = id.into();
        self
    }

    /// The manager's API URL (see [`AzureConfig::root_url`]).
    pub fn with_root_url(mut self, root_url: impl Into<String>) -> Self {
        self.config.root_url = Some(root_url.into());
        self
    }

    /// The resource groups `list_owned` scans; the first is the default of
    /// launch configs that name none.
    pub fn with_resource_groups<S: Into<String>>(
        mut self,
        groups: impl IntoIterator<Item = S>,
    ) -> Self {
        self.config.resource_groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// The ARM endpoint (an `https` URL).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.config.endpoint = endpoint.into();
        self
    }

    /// How tokens are obtained.
    pub fn with_credential(mut self, credential: CredentialConfig) -> Self {
        self.config.credential = credential;
        self
    }

    /// A ready token source, instead of the configured credential.
    pub fn with_token_source(mut self, credential: Arc<Credential>) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Extra PEM root certificates trusted for ARM and the token authority.
    pub fn with_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.config.ca_pem = Some(pem.into());
        self
    }

    /// How long-running operations are polled.
    pub fn with_poll_policy(mut self, poll: PollPolicy) -> Self {
        self.config.poll = poll;
        self
    }

    /// Between health checks of a running worker (default 60 s).
    pub fn with_health_interval(mut self, interval: Duration) -> Self {
        self.config.health_interval_s = interval.as_secs_f64();
        self
    }

    /// Before retrying a delete ARM refused as busy (default 5 s).
    pub fn with_busy_retry(mut self, wait: Duration) -> Self {
        self.config.busy_retry_s = wait.as_secs_f64();
        self
    }

    /// How long a power-state snapshot of the subscription's VMs answers
    /// running workers' health checks in [`Provider::step_many`]
    /// (default 15 s; [`Duration::ZERO`] disables it: one instance-view GET
    /// per check). At most 3600 s.
    ///
    /// [`Provider::step_many`]: skyfleet_core::Provider::step_many
    pub fn with_status_max_age(mut self, max_age: Duration) -> Self {
        self.config.status_max_age_s = max_age.as_secs_f64();
        self
    }

    /// Consecutive instance-view 404s tolerated (default 2).
    pub fn with_max_instance_view_404s(mut self, n: u32) -> Self {
        self.config.max_instance_view_404s = n;
        self
    }

    /// Transport tuning of the transport the builder makes.
    pub fn with_transport_settings(mut self, settings: TransportSettings) -> Self {
        self.config.transport = settings;
        self
    }

    /// An existing transport (to share its limits and budgets with other
    /// providers of the same account), instead of one made from the config.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The clock of deadlines and schedules (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The transport config the builder's transport would have: the shared
    /// defaults with the config's overrides and CA (for callers that wrap
    /// the transport's service).
    pub fn transport_config(&self) -> TransportConfig {
        transport_config(&self.config)
    }

    /// Validates the config (errors name the field) and builds the provider.
    pub fn build(self) -> Result<AzureProvider> {
        let c = self.config;
        c.validate()?;
        let transport = match self.transport {
            Some(t) => t,
            None => Transport::builder().config(transport_config(&c)).build()?,
        };
        let credential = match self.credential {
            Some(cred) => cred,
            None => Arc::new(Credential::from_config(&c.credential, c.ca_pem.as_deref())?),
        };
        let attestation =
            skyfleet_identity::azure::AzureVerifier::new(self.attestation.unwrap_or_default())
                .map_err(crate::identity::config_error)?;
        let client = ArmClient::new(c.base_url(), &c.subscription_id, transport, credential);
        let settings = Settings {
            resource_groups: c.resource_groups.clone(),
            poll: c.poll.clone(),
            health_interval: c.health_interval(),
            busy_retry: c.busy_retry(),
            max_instance_view_404s: c.max_instance_view_404s,
            status_max_age: c.status_max_age(),
            root_url: match &c.root_url {
                Some(url) => Some(check_root_url("root_url", url)?),
                None => None,
            },
        };
        Ok(AzureProvider::from_parts(
            c.id,
            settings,
            client,
            self.clock,
            attestation,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skyfleet_core::ErrorKind;

    #[test]
    fn provider_config_validation() {
        let mut c = AzureConfig::new("sub-1");
        c.validate().unwrap();
        c.endpoint = "http://x".into();
        assert!(matches!(
            c.validate().unwrap_err().kind(),
            ErrorKind::InvalidConfig { field } if field == "endpoint"
        ));
        let c = AzureConfig::from_json(json!({"subscription_id": "s", "resource_groups": ["rg"]}))
            .unwrap();
        assert_eq!(c.base_url(), PUBLIC_ENDPOINT);
    }
    #[test]
    fn the_builder_validates_and_names_the_field() {
        let e = AzureBuilder::new("sub-1")
            .with_endpoint("http://x")
            .build()
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "endpoint"));
        let e = AzureBuilder::new("sub-1")
            .with_busy_retry(Duration::ZERO)
            .build()
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "busy_retry_s"));
        let e = AzureBuilder::new("sub-1")
            .with_root_url("manager.example")
            .build()
            .unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "root_url"));
        let e = AzureBuilder::new("sub-1")
            .with_status_max_age(Duration::from_secs(3601))
            .build()
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "status_max_age_s")
        );
    }

    #[test]
    fn status_max_age_defaults_to_15_s_and_zero_is_allowed() {
        let c = AzureConfig::from_json(json!({"subscription_id": "s"})).unwrap();
        assert_eq!(c.status_max_age(), Duration::from_secs(15));
        let c =
            AzureConfig::from_json(json!({"subscription_id": "s", "status_max_age_s": 0})).unwrap();
        assert_eq!(c.status_max_age(), Duration::ZERO);
        let e = AzureConfig::from_json(json!({"subscription_id": "s", "status_max_age_s": -1}))
            .unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "status_max_age_s")
        );
    }
}
