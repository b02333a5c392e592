//! Provider configuration ([`AwsConfig`]): regions, endpoint, credentials
//! and the step timings.
//!
//! Credentials come from aws-config's default chain (environment, shared
//! profile, SSO, web identity, IMDS) unless static credentials are given,
//! which is what tests against a mock or moto do. The EC2 endpoint can be
//! overridden in the config or with `AWS_ENDPOINT_URL_EC2` (then
//! `AWS_ENDPOINT_URL`), for mocks and other EC2-compatible endpoints.

use std::fmt;
use std::time::Duration;

use skyfleet_core::{Error, Result};

/// A secret string that never shows in `Debug` or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(**redacted**)")
    }
}

/// Where the provider's AWS credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CredentialsSource {
    /// aws-config's default chain: environment, shared config and
    /// credentials files (with `profile` when set), SSO, web identity, ECS
    /// and EC2 instance metadata.
    #[default]
    DefaultChain,
    /// Fixed credentials (tests, mocks, moto).
    Static {
        /// The access key id (not secret: it names the key).
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
        /// A session token, for temporary credentials.
        session_token: Option<Secret>,
    },
}

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

/// The configuration of one AWS provider (one account, several regions).
///
/// ```
/// use skyfleet_aws::AwsConfig;
/// let config = AwsConfig::new("aws", ["us-east-1", "eu-west-1"])
///     .with_endpoint_url("http://127.0.0.1:5055")
///     .with_static_credentials("AKIDTEST", "SECRETTEST", None);
/// assert!(config.validate().is_ok());
/// assert!(!format!("{config:?}").contains("SECRETTEST"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// The provider id (`aws`, `aws-prod`), unique within a fleet.
    pub provider_id: String,
    /// The account label used in transport keys (rate limits, budgets and
    /// metrics are kept per account and region). Default `default`.
    pub account: String,
    /// The regions workers may be launched in; one client per region.
    pub regions: Vec<String>,
    /// An EC2 endpoint URL overriding AWS's (mock, moto, other
    /// EC2-compatible clouds).
    pub endpoint_url: Option<String>,
    /// Where credentials come from.
    pub credentials: CredentialsSource,
    /// The shared-config profile for the default chain.
    pub profile: Option<String>,
    /// Step timings.
    pub timings: Timings,
}

impl AwsConfig {
    /// A config for `provider_id` in `regions`, with the default credential
    /// chain and AWS's own endpoints.
    pub fn new<I, S>(provider_id: impl Into<String>, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AwsConfig {
            provider_id: provider_id.into(),
            account: "default".into(),
            regions: regions.into_iter().map(Into::into).collect(),
            endpoint_url: None,
            credentials: CredentialsSource::DefaultChain,
            profile: None,
            timings: Timings::default(),
        }
    }

    /// A config read from the environment: regions from `SKYFLEET_AWS_REGIONS`
    /// (comma-separated), else `AWS_REGION`, else `AWS_DEFAULT_REGION`; the
    /// endpoint from `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL`; the
    /// profile from `AWS_PROFILE`; credentials from the default chain.
    pub fn from_env(provider_id: impl Into<String>) -> Result<Self> {
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
        let mut config = AwsConfig::new(provider_id, regions);
        config.endpoint_url = var("AWS_ENDPOINT_URL_EC2").or_else(|| var("AWS_ENDPOINT_URL"));
        config.profile = var("AWS_PROFILE");
        config.validate()?;
        Ok(config)
    }

    /// Overrides the EC2 endpoint.
    pub fn with_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Uses fixed credentials instead of the default chain.
    pub fn with_static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        self.credentials = CredentialsSource::Static {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.map(Secret::new),
        };
        self
    }

    /// Uses a shared-config profile with the default chain.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Sets the account label of transport keys.
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    /// Sets the step timings.
    pub fn with_timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Checks the config; errors are `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<()> {
        if self.provider_id.trim().is_empty() {
            return Err(Error::invalid_config("provider_id", "must not be empty"));
        }
        if self.regions.is_empty() {
            return Err(Error::invalid_config(
                "regions",
                "at least one region is required (set AWS_REGION or list regions)",
            ));
        }
        for (i, r) in self.regions.iter().enumerate() {
            if !is_region_name(r) {
                return Err(Error::invalid_config(
                    format!("regions[{i}]"),
                    format!("`{r}` is not a region name such as us-east-1"),
                ));
            }
        }
        if let Some(url) = &self.endpoint_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && url.parse::<http::Uri>().is_ok();
            if !ok {
                return Err(Error::invalid_config(
                    "endpoint_url",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
        }
        if let CredentialsSource::Static {
            access_key_id,
            secret_access_key,
            ..
        } = &self.credentials
        {
            if access_key_id.is_empty() {
                return Err(Error::invalid_config(
                    "credentials.access_key_id",
                    "must not be empty",
                ));
            }
            if secret_access_key.expose().is_empty() {
                return Err(Error::invalid_config(
                    "credentials.secret_access_key",
                    "must not be empty",
                ));
            }
        }
        let t = &self.timings;
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
}

/// Whether `r` looks like an AWS region name (`us-east-1`, `eu-central-2`,
/// `us-gov-west-1`).
pub fn is_region_name(r: &str) -> bool {
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
        let ok = AwsConfig::new("aws", ["us-east-1"]);
        assert!(ok.validate().is_ok());
        let no_regions = AwsConfig::new("aws", Vec::<String>::new());
        assert_eq!(field(no_regions.validate().unwrap_err()), "regions");
        let bad_region = AwsConfig::new("aws", ["us-east-1", "Mars"]);
        assert_eq!(field(bad_region.validate().unwrap_err()), "regions[1]");
        let bad_url = ok.clone().with_endpoint_url("localhost:5000");
        assert_eq!(field(bad_url.validate().unwrap_err()), "endpoint_url");
        let empty_secret = ok.clone().with_static_credentials("AKID", "", None);
        assert_eq!(
            field(empty_secret.validate().unwrap_err()),
            "credentials.secret_access_key"
        );
    }

    #[test]
    fn secrets_are_redacted() {
        let c = AwsConfig::new("aws", ["us-east-1"]).with_static_credentials(
            "AKID",
            "very-secret",
            Some("session-secret".into()),
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(!shown.contains("session-secret"), "{shown}");
        assert!(shown.contains("AKID"));
    }
}
