//! [`AwsBuilder`]: the one way to construct an [`AwsProvider`]: regions,
//! endpoint, credentials, step timings, transport and clock, validated at
//! [`AwsBuilder::build`] with errors naming the bad field.
//!
//! Credentials come from aws-config's default chain (environment, shared
//! profile, SSO, web identity, IMDS) unless static credentials are given,
//! which is what tests against a mock or moto do. The EC2 endpoint can be
//! overridden here or with `AWS_ENDPOINT_URL_EC2` (then `AWS_ENDPOINT_URL`),
//! for mocks and other EC2-compatible endpoints.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::SharedHttpClient;
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::provider::bootstrap::check_root_url;
use skyfleet_core::transport::Transport;
use skyfleet_core::{Error, Result};

use crate::client::{sdk_config, Ec2};
use crate::connector::TransportConnector;
use crate::credential::CredentialsSource;
use crate::identity::Identity;
use crate::provider::AwsProvider;
use skyfleet_identity::aws::AwsTrust;

/// How often the provider looks at workers, and how long it tolerates
/// EC2's eventual consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Interval between looks at a pending or terminating instance.
    pub poll_interval: Duration,
    /// Interval between looks at a running instance.
    pub check_interval: Duration,
    /// How long after a launch an instance may be missing from
    /// DescribeInstances (eventual consistency) before it counts as gone.
    pub not_found_grace: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            poll_interval: Duration::from_secs(5),
            check_interval: Duration::from_secs(60),
            not_found_grace: Duration::from_secs(120),
        }
    }
}

/// A factory of one HTTP client per region (for custom stacks).
type HttpClients = Arc<dyn Fn(&str) -> SharedHttpClient + Send + Sync>;

/// The validated settings a built provider keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The provider id (`aws`, `aws-prod`), unique within a fleet.
    pub(crate) provider_id: String,
    /// The account label used in transport keys.
    pub(crate) account: String,
    /// The regions workers may be launched in; one client per region.
    pub(crate) regions: Vec<String>,
    /// An EC2 endpoint URL overriding AWS's.
    pub(crate) endpoint_url: Option<String>,
    /// Where credentials come from.
    pub(crate) credentials: CredentialsSource,
    /// The shared-config profile for the default chain.
    pub(crate) profile: Option<String>,
    /// Step timings.
    pub(crate) timings: Timings,
    /// The manager's API URL, written into each worker's UserData
    /// (`rootUrl`); checked and without a trailing slash once built.
    pub(crate) root_url: Option<String>,
}

/// Builds an [`AwsProvider`] (one account, several regions).
///
/// ```
/// use skyfleet_aws::AwsBuilder;
/// let builder = AwsBuilder::new()
///     .with_regions(["us-east-1", "eu-west-1"])
///     .with_endpoint_url("http://127.0.0.1:5055")
///     .with_static_credentials("AKIDTEST", "SECRETTEST", None);
/// assert!(builder.validate().is_ok());
/// assert!(!format!("{builder:?}").contains("SECRETTEST"));
/// ```
#[derive(Clone)]
pub struct AwsBuilder {
    settings: Settings,
    transport: Option<Transport>,
    clock: Arc<dyn Clock>,
    http: Option<HttpClients>,
    identity_trust: Option<AwsTrust>,
    account_id: Option<String>,
}

impl fmt::Debug for AwsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsBuilder")
            .field("settings", &self.settings)
            .field("transport", &self.transport.is_some())
            .field("http_clients", &self.http.is_some())
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

impl Default for AwsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsBuilder {
    /// A builder for provider `aws` with no region yet, the default
    /// credential chain, AWS's own endpoints, default timings, a transport
    /// of its own and the system clock.
    pub fn new() -> Self {
        AwsBuilder {
            settings: Settings {
                provider_id: "aws".into(),
                account: "default".into(),
                regions: Vec::new(),
                endpoint_url: None,
                credentials: CredentialsSource::DefaultChain,
                profile: None,
                timings: Timings::default(),
                root_url: None,
            },
            transport: None,
            clock: Arc::new(SystemClock),
            http: None,
            identity_trust: None,
            account_id: None,
        }
    }

    /// A builder read from the environment: regions from
    /// `SKYFLEET_AWS_REGIONS` (comma-separated), else `AWS_REGION`, else
    /// `AWS_DEFAULT_REGION`; the endpoint from `AWS_ENDPOINT_URL_EC2`, else
    /// `AWS_ENDPOINT_URL`; the profile from `AWS_PROFILE`; credentials from
    /// the default chain. Fails, naming the field, when what it read is
    /// not valid (no region, say).
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let regions: Vec<String> = match var("SKYFLEET_AWS_REGIONS") {
            Some(list) => list
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect(),
            None => var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .into_iter()
                .collect(),
        };
        let mut builder = AwsBuilder::new().with_regions(regions);
        builder.settings.endpoint_url =
            var("AWS_ENDPOINT_URL_EC2").or_else(|| var("AWS_ENDPOINT_URL"));
        builder.settings.profile = var("AWS_PROFILE");
        builder.validate()?;
        Ok(builder)
    }

    /// Sets the provider id (`aws`, `aws-prod`), unique within a fleet.
    pub fn with_id(mut self, provider_id: impl Into<String>) -> Self {
        self.settings.provider_id = provider_id.into();
        self
    }

    /// Sets the regions workers may be launched in (one client each).
    pub fn with_regions<I, S>(mut self, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.settings.regions = regions.into_iter().map(Into::into).collect();
        self
    }

    /// Overrides the EC2 endpoint (mock, moto, other EC2-compatible clouds).
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.settings.endpoint_url = Some(url.into());
        self
    }

    /// Uses fixed credentials instead of the default chain.
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.settings.credentials =
            CredentialsSource::fixed(access_key_id, secret_access_key, session_token);
        self
    }

    /// Sets where credentials come from.
    pub fn with_credentials(mut self, credentials: CredentialsSource) -> Self {
        self.settings.credentials = credentials;
        self
    }

    /// Uses a shared-config profile with the default chain.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.settings.profile = Some(profile.into());
        self
    }

    /// Sets the account label of transport keys (rate limits, budgets and
    /// metrics are kept per account and region). Default `default`.
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.settings.account = account.into();
        self
    }

    /// Sets the step timings.
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.settings.timings = timings;
        self
    }

    /// Sends every EC2 call through `transport` (share one among providers
    /// to share its limits); default: a transport of its own.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Uses `clock` for deadlines and graces (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends each region's calls through the HTTP client `http(region)`
    /// makes, instead of the transport's connector (for custom stacks).
    pub fn with_http_clients<F>(mut self, http: F) -> Self
    where
        F: Fn(&str) -> SharedHttpClient + Send + Sync + 'static,
    {
        self.http = Some(Arc::new(http));
        self
    }

    /// Checks instance identity documents with the certificates of `trust`
    /// (default: AWS's published RSA and RSA-2048 certificates, bundled;
    /// add a newer region's, or a mock's, here).
    pub fn with_identity_trust(mut self, trust: AwsTrust) -> Self {
        self.identity_trust = Some(trust);
        self
    }

    /// The account workers run in: instance identity documents must name
    /// it (12 digits).
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = Some(account_id.into());
        self
    }

    /// The manager's API URL (`https://manager.example`), written as
    /// `rootUrl` into each worker's bootstrap document (its UserData), so
    /// the worker's agent knows where to register. Without one, the
    /// document has no `rootUrl`.
    pub fn with_root_url(mut self, root_url: impl Into<String>) -> Self {
        self.settings.root_url = Some(root_url.into());
        self
    }

    /// The provider id.
    pub fn id(&self) -> &str {
        &self.settings.provider_id
    }

    /// The regions.
    pub fn regions(&self) -> &[String] {
        &self.settings.regions
    }

    /// The EC2 endpoint override, if any.
    pub fn endpoint_url(&self) -> Option<&str> {
        self.settings.endpoint_url.as_deref()
    }

    /// Where credentials come from.
    pub fn credentials(&self) -> &CredentialsSource {
        &self.settings.credentials
    }

    /// The shared-config profile, if any.
    pub fn profile(&self) -> Option<&str> {
        self.settings.profile.as_deref()
    }

    /// The step timings.
    pub fn timings(&self) -> Timings {
        self.settings.timings
    }

    /// Checks the settings; errors are `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<()> {
        let s = &self.settings;
        if s.provider_id.trim().is_empty() {
            return Err(Error::invalid_config("provider_id", "must not be empty"));
        }
        if s.regions.is_empty() {
            return Err(Error::invalid_config(
                "regions",
                "at least one region is required (set AWS_REGION or list regions)",
            ));
        }
        for (i, r) in s.regions.iter().enumerate() {
            if !is_region_name(r) {
                return Err(Error::invalid_config(
                    format!("regions[{i}]"),
                    format!("`{r}` is not a region name such as us-east-1"),
                ));
            }
        }
        if let Some(url) = &s.endpoint_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.parse::<http::Uri>().is_ok();
            if !ok {
                return Err(Error::invalid_config(
                    "endpoint_url",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
        }
        s.credentials.validate()?;
        if let Some(url) = &s.root_url {
            check_root_url("root_url", url)?;
        }
        if let Some(a) = &self.account_id {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Error::invalid_config(
                    "account_id",
                    format!("`{a}` is not a 12-digit AWS account id"),
                ));
            }
        }
        let t = &s.timings;
        for (name, d) in [
            ("timings.poll_interval", t.poll_interval),
            ("timings.check_interval", t.check_interval),
        ] {
            if d.is_zero() {
                return Err(Error::invalid_config(name, "must be greater than zero"));
            }
        }
        Ok(())
    }

    /// The provider: one aws-sdk-ec2 client per region, each sending
    /// through the transport (built here when none was given) or the
    /// [`with_http_clients`](Self::with_http_clients) factory.
    pub async fn build(mut self) -> Result<AwsProvider> {
        self.validate()?;
        if let Some(url) = &self.settings.root_url {
            self.settings.root_url = Some(check_root_url("root_url", url)?);
        }
        let http: HttpClients = match self.http {
            Some(h) => h,
            None => {
                let transport = match self.transport {
                    Some(t) => t,
                    None => Transport::builder().build()?,
                };
                let account = self.settings.account.clone();
                Arc::new(move |region: &str| {
                    SharedHttpClient::new(TransportConnector::new(&transport, &account, region))
                })
            }
        };
        let mut clients = HashMap::new();
        for region in &self.settings.regions {
            let sdk = sdk_config(&self.settings, region, http(region)).await;
            clients.insert(region.clone(), Ec2::new(sdk));
        }
        let identity = Identity::new(
            self.identity_trust.unwrap_or_else(AwsTrust::bundled),
            self.account_id,
        );
        Ok(AwsProvider::from_parts(
            self.settings,
            clients,
            self.clock,
            identity,
        ))
    }
}

/// Whether `r` looks like an AWS region name (`us-east-1`, `eu-central-2`,
/// `us-gov-west-1`).
pub(crate) fn is_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.contains('-')
        && r.starts_with(|c: char| c.is_ascii_lowercase())
        && r.ends_with(|c: char| c.is_ascii_digit())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: Error) -> String {
        match e.kind() {
            skyfleet_core::ErrorKind::InvalidConfig { field } => field.clone(),
            k => panic!("unexpected kind {k:?}"),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let ok = AwsBuilder::new().with_regions(["us-east-1"]);
        assert!(ok.validate().is_ok());
        let no_regions = AwsBuilder::new();
        assert_eq!(field(no_regions.validate().unwrap_err()), "regions");
        let bad_region = AwsBuilder::new().with_regions(["us-east-1", "Mars"]);
        assert_eq!(field(bad_region.validate().unwrap_err()), "regions[1]");
        let bad_url = ok.clone().with_endpoint_url("localhost:5000");
        assert_eq!(field(bad_url.validate().unwrap_err()), "endpoint_url");
        let empty_secret = ok.clone().with_static_credentials("AKID", "", None);
        assert_eq!(
            field(empty_secret.validate().unwrap_err()),
            "credentials.secret_access_key"
        );
        let bad_account = ok.clone().with_account_id("12345");
        assert_eq!(field(bad_account.validate().unwrap_err()), "account_id");
        let bad_root = ok.clone().with_root_url("manager.example");
        assert_eq!(field(bad_root.validate().unwrap_err()), "root_url");
        let no_id = ok.clone().with_id(" ");
        assert_eq!(field(no_id.validate().unwrap_err()), "provider_id");
        let zero = ok.with_timings(Timings {
            poll_interval: Duration::ZERO,
            ..Timings::default()
        });
        assert_eq!(field(zero.validate().unwrap_err()), "timings.poll_interval");
    }

    #[test]
    fn secrets_are_redacted() {
        let c = AwsBuilder::new()
            .with_regions(["us-east-1"])
            .with_static_credentials("AKID", "very-secret", Some("session-secret".into()));
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("session-secret"), "{shown}");
        assert!(shown.contains("AKID"));
    }
}
