//! [`TransportConfig`]: limits, timeouts, backoff and budget.
//!
//! The defaults are cloud-neutral: every key draws on
//! [`TransportConfig::with_default_limit`]'s bucket (10/s, bursts of 50)
//! until its cloud's [`CloudProfile`] is registered, which each provider
//! does on the transport it is given, with the limits its cloud publishes
//! (the tables are in each provider's `profile` module). Explicit settings
//! here (`with_limit`, `with_operation_limit`, `with_shared_bucket`) take
//! precedence over a profile's, because real accounts get raised limits and
//! other tools may share the same account's quota.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::Response;

use super::classify::{classify_response, Outcome};
use super::key::ApiClass;
pub use super::limit::Limit;
use super::profile::{CloudProfile, Profiles};
use crate::{Error, Result};

/// The two timeouts of an [`ApiClass`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long one attempt (one HTTP exchange) may take.
    pub attempt: Duration,
    /// How long the whole call may take, retries, backoff and limiter waits
    /// included.
    pub overall: Duration,
}

/// Retry backoff: exponential with decorrelated jitter between `min` and `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay, and the lower bound of every delay.
    pub min: Duration,
    /// The upper bound of every delay.
    pub max: Duration,
    /// Attempts per call, the first included (1 disables retries).
    pub max_attempts: u32,
}

/// A retry budget per key, like the AWS SDK's token bucket: each retry takes
/// `retry_cost` tokens (`timeout_cost` after a timeout), each success gives
/// back `success_refund` (or the cost of the retry that succeeded), up to
/// `capacity`. An empty bucket means no retries for that key until calls
/// succeed again, so a failing cloud sees at most `capacity / retry_cost`
/// retries in addition to the first attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The bucket size (and its initial content).
    pub capacity: u32,
    /// Tokens taken by a retry after a throttle, 5xx or connection error.
    pub retry_cost: u32,
    /// Tokens taken by a retry after a timeout.
    pub timeout_cost: u32,
    /// Tokens given back by a first-attempt success.
    pub success_refund: u32,
}

impl Default for Budget {
    /// The AWS SDK's values: capacity 500, retry cost 5, timeout cost 10,
    /// refund 1.
    fn default() -> Self {
        Budget {
            capacity: 500,
            retry_cost: 5,
            timeout_cost: 10,
            success_refund: 1,
        }
    }
}

/// Everything the transport stack is configured with.
///
/// Start from [`TransportConfig::default`] (cloud-neutral, see the module
/// doc), add cloud profiles and override with the `with_*` builders;
/// [`TransportConfig::validate`] (called when the stack is built) refuses
/// invalid values with [`crate::ErrorKind::InvalidConfig`] naming the field.
///
/// ```
/// use std::time::Duration;
/// use skyfleet_core::transport::{ApiClass, Limit, TransportConfig};
/// let config = TransportConfig::default()
///     .with_limit("aws", ApiClass::Write, Limit::per_second(2, 10))
///     .with_timeouts(ApiClass::Read, Duration::from_secs(5), Duration::from_secs(30));
/// assert!(config.validate().is_ok());
/// let bad = TransportConfig::default().with_limit("gcp", ApiClass::Read, Limit::per_second(0, 1));
/// assert!(bad.validate().is_err());
/// ```
#[derive(Debug, Clone)]
pub struct TransportConfig {
    // Nested maps, so lookups by `&str` need no allocation on the hot path.
    pub(crate) limits: HashMap<String, [Option<Limit>; 4]>,
    pub(crate) operation_limits: HashMap<String, HashMap<String, Limit>>,
    pub(crate) shared_buckets: HashMap<String, [Option<ApiClass>; 4]>,
    pub(crate) default_limit: Limit,
    pub(crate) timeouts: [Timeouts; 4],
    pub(crate) backoff: Backoff,
    pub(crate) budget: Budget,
    pub(crate) max_concurrency: usize,
    pub(crate) max_throttle_pause: Duration,
    pub(crate) default_throttle_pause: Duration,
    pub(crate) limiter_jitter: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) root_certificates: Vec<Vec<u8>>,
    pub(crate) profiles: Profiles,
}

pub(crate) fn class_index(class: ApiClass) -> usize {
    match class {
        ApiClass::Read => 0,
        ApiClass::Write => 1,
        ApiClass::Delete => 2,
        ApiClass::Poll => 3,
    }
}

/// The default limit on a response body's size (16 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

impl Default for TransportConfig {
    fn default() -> Self {
        let t = |attempt: u64, overall: u64| Timeouts {
            attempt: Duration::from_secs(attempt),
            overall: Duration::from_secs(overall),
        };
        TransportConfig {
            limits: HashMap::new(),
            operation_limits: HashMap::new(),
            shared_buckets: HashMap::new(),
            default_limit: Limit::per_second(10, 50),
            // read, write, delete, poll
            timeouts: [t(30, 120), t(60, 300), t(60, 300), t(30, 120)],
            backoff: Backoff {
                min: Duration::from_millis(100),
                max: Duration::from_secs(20),
                max_attempts: 3,
            },
            budget: Budget::default(),
            max_concurrency: 64,
            max_throttle_pause: Duration::from_secs(120),
            default_throttle_pause: Duration::from_secs(1),
            limiter_jitter: Duration::from_millis(5),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            root_certificates: Vec::new(),
            profiles: Profiles::default(),
        }
    }
}

impl TransportConfig {
    /// Sets the limit of `class` calls for `provider`.
    pub fn with_limit(mut self, provider: &str, class: ApiClass, limit: Limit) -> Self {
        self.limits.entry(provider.to_owned()).or_default()[class_index(class)] = Some(limit);
        self
    }

    /// Gives `operation` of `provider` its own bucket (per account and region)
    /// with `limit`, as EC2 does for `RunInstances`.
    pub fn with_operation_limit(mut self, provider: &str, operation: &str, limit: Limit) -> Self {
        self.operation_limits
            .entry(provider.to_owned())
            .or_default()
            .insert(operation.to_owned(), limit);
        self
    }

    /// Makes `class` calls of `provider` draw on the bucket of `into`
    /// (ARM polls are reads), or on their own again when `class == into`
    /// (whatever the provider's profile says).
    pub fn with_shared_bucket(mut self, provider: &str, class: ApiClass, into: ApiClass) -> Self {
        self.shared_buckets.entry(provider.to_owned()).or_default()[class_index(class)] =
            Some(into);
        self
    }

    /// Adds (or replaces) the profile of a cloud (see [`CloudProfile`]).
    pub fn with_profile(self, profile: CloudProfile) -> Self {
        self.profiles.register(profile);
        self
    }

    /// Validates `profile` and adds (or replaces) it; see
    /// [`Transport::register_profile`](super::Transport::register_profile).
    pub(crate) fn register_profile(&self, profile: CloudProfile) -> Result<()> {
        profile.validate()?;
        self.profiles.register(profile);
        Ok(())
    }

    /// The registered profile of `provider`, if any.
    pub fn profile(&self, provider: &str) -> Option<std::sync::Arc<CloudProfile>> {
        self.profiles.get(provider)
    }

    /// What a response of `provider` means: its profile's classifier first,
    /// then the neutral [`classify_response`].
    pub fn classify(&self, provider: &str, resp: &Response<Bytes>) -> Outcome {
        self.profiles
            .with(provider, |p| p.and_then(|p| p.classify(resp)))
            .unwrap_or_else(|| classify_response(resp))
    }

    /// Whether some operation of `provider` has its own bucket.
    pub fn has_operation_limits(&self, provider: &str) -> bool {
        self.operation_limits
            .get(provider)
            .is_some_and(|ops| !ops.is_empty())
            || self.profiles.with(provider, |p| {
                p.is_some_and(CloudProfile::has_operation_limits)
            })
    }

    /// The limit for providers and classes without one of their own.
    pub fn with_default_limit(mut self, limit: Limit) -> Self {
        self.default_limit = limit;
        self
    }

    /// Sets the per-attempt and overall timeouts of `class`.
    pub fn with_timeouts(mut self, class: ApiClass, attempt: Duration, overall: Duration) -> Self {
        self.timeouts[class_index(class)] = Timeouts { attempt, overall };
        self
    }

    /// Sets the backoff bounds.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff.min = min;
        self.backoff.max = max;
        self
    }

    /// Sets the attempts per call, the first included.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.backoff.max_attempts = attempts;
        self
    }

    /// Sets the retry budget of each key.
    pub fn with_retry_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the number of calls of one key in flight at once.
    pub fn with_max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = max;
        self
    }

    /// Sets the longest pause a throttle's `Retry-After` may impose (default
    /// 120 s); longer requests are clamped.
    pub fn with_max_throttle_pause(mut self, max: Duration) -> Self {
        self.max_throttle_pause = max;
        self
    }

    /// Sets the pause after a throttle that named no delay (default 1 s).
    pub fn with_default_throttle_pause(mut self, pause: Duration) -> Self {
        self.default_throttle_pause = pause;
        self
    }

    /// Sets the largest random delay added to a limiter wait (default 5 ms),
    /// which spreads callers woken at the same instant.
    pub fn with_limiter_jitter(mut self, jitter: Duration) -> Self {
        self.limiter_jitter = jitter;
        self
    }

    /// Sets the TCP/TLS connect timeout of the reqwest client.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the largest response body read (default
    /// [`DEFAULT_MAX_BODY_BYTES`]): a longer `Content-Length` is refused
    /// before reading, a longer stream is cut off; either fails the call.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Adds PEM root certificates (one or several) trusted in addition to the
    /// platform's, for private endpoints and test servers.
    pub fn with_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The limit applying to `class` calls of `provider`, and the class whose
    /// bucket they draw on: this config's settings, else the provider's
    /// profile, else the default limit.
    pub fn limit_for(&self, provider: &str, class: ApiClass) -> (ApiClass, Limit) {
        self.profiles.with(provider, |profile| {
            let bucket_class = self
                .shared_buckets
                .get(provider)
                .and_then(|s| s[class_index(class)])
                .or_else(|| profile.and_then(|p| p.shared_bucket(class)))
                .unwrap_or(class);
            let limit = self
                .limits
                .get(provider)
                .and_then(|l| l[class_index(bucket_class)])
                .or_else(|| profile.and_then(|p| p.limit(bucket_class)))
                .unwrap_or(self.default_limit);
            (bucket_class, limit)
        })
    }

    /// The limit of `operation` of `provider` when it has its own bucket
    /// (this config's setting, else the provider's profile).
    pub fn operation_limit(&self, provider: &str, operation: &str) -> Option<Limit> {
        if operation.is_empty() {
            return None;
        }
        if let Some(l) = self
            .operation_limits
            .get(provider)
            .and_then(|ops| ops.get(operation))
        {
            return Some(*l);
        }
        self.profiles
            .with(provider, |p| p.and_then(|p| p.operation_limit(operation)))
    }

    /// The timeouts of `class`.
    pub fn timeouts(&self, class: ApiClass) -> Timeouts {
        self.timeouts[class_index(class)]
    }

    /// The backoff settings.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// The retry budget settings.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// The per-key concurrency limit.
    pub fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// The clamp applied to throttle pauses.
    pub fn max_throttle_pause(&self) -> Duration {
        self.max_throttle_pause
    }

    /// Checks every value, naming the first offending field.
    pub fn validate(&self) -> Result<()> {
        let mut limits: Vec<_> = self.limits.iter().collect();
        limits.sort_by(|a, b| a.0.cmp(b.0));
        for (provider, per_class) in limits {
            for class in ApiClass::ALL {
                if let Some(limit) = per_class[class_index(class)] {
                    limit.validate(&format!("limits.{provider}.{class}"))?;
                }
            }
        }
        let mut ops: Vec<_> = self
            .operation_limits
            .iter()
            .flat_map(|(p, ops)| ops.iter().map(move |(op, l)| (p, op, l)))
            .collect();
        ops.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (provider, op, limit) in ops {
            limit.validate(&format!("operation_limits.{provider}.{op}"))?;
        }
        self.default_limit.validate("default_limit")?;
        for provider in self.profiles.providers() {
            if let Some(p) = self.profiles.get(&provider) {
                p.validate()?;
            }
        }
        for class in ApiClass::ALL {
            let t = self.timeouts(class);
            if t.attempt.is_zero() {
                return Err(Error::invalid_config(
                    format!("timeouts.{class}.attempt"),
                    "a timeout of zero would fail every call",
                ));
            }
            if t.overall.is_zero() {
                return Err(Error::invalid_config(
                    format!("timeouts.{class}.overall"),
                    "a timeout of zero would fail every call",
                ));
            }
        }
        if self.backoff.min.is_zero() {
            return Err(Error::invalid_config(
                "backoff.min",
                "the minimum backoff must be longer than zero",
            ));
        }
        if self.backoff.max < self.backoff.min {
            return Err(Error::invalid_config(
                "backoff.max",
                format!(
                    "the maximum backoff ({:?}) is shorter than the minimum ({:?})",
                    self.backoff.max, self.backoff.min
                ),
            ));
        }
        if self.backoff.max_attempts == 0 {
            return Err(Error::invalid_config(
                "backoff.max_attempts",
                "at least one attempt is needed (1 disables retries)",
            ));
        }
        if self.budget.retry_cost == 0 || self.budget.timeout_cost == 0 {
            return Err(Error::invalid_config(
                "budget.retry_cost",
                "a free retry would make the budget unbounded",
            ));
        }
        if self.max_concurrency == 0 {
            return Err(Error::invalid_config(
                "max_concurrency",
                "a concurrency limit of zero would never admit a call",
            ));
        }
        if self.max_throttle_pause.is_zero() {
            return Err(Error::invalid_config(
                "max_throttle_pause",
                "the throttle pause clamp must be longer than zero",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid_config(
                "connect_timeout",
                "a connect timeout of zero would fail every call",
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::invalid_config(
                "max_body_bytes",
                "a body limit of zero would fail every answer with a body",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::names;
    use crate::ErrorKind;

    fn field(r: Result<()>) -> String {
        match r {
            Err(e) => match e.kind() {
                ErrorKind::InvalidConfig { field } => field.clone(),
                k => panic!("unexpected kind {k:?}"),
            },
            Ok(()) => panic!("accepted"),
        }
    }

    #[test]
    fn defaults_are_valid_and_neutral() {
        let c = TransportConfig::default();
        c.validate().unwrap();
        for p in [names::AWS, names::AZURE, names::GCP, "other"] {
            assert_eq!(
                c.limit_for(p, ApiClass::Poll),
                (ApiClass::Poll, Limit::per_second(10, 50))
            );
            assert_eq!(c.operation_limit(p, "RunInstances"), None);
        }
    }

    #[test]
    fn settings_override_profiles() {
        let profile = CloudProfile::new("c")
            .with_limit(ApiClass::Read, Limit::per_second(25, 250))
            .with_shared_bucket(ApiClass::Poll, ApiClass::Read)
            .with_operation_limit("Run", Limit::per_second(2, 5));
        let c = TransportConfig::default().with_profile(profile);
        assert_eq!(
            c.limit_for("c", ApiClass::Poll),
            (ApiClass::Read, Limit::per_second(25, 250))
        );
        assert_eq!(c.operation_limit("c", "Run"), Some(Limit::per_second(2, 5)));
        assert!(c.has_operation_limits("c"));
        let c = c
            .with_shared_bucket("c", ApiClass::Poll, ApiClass::Poll)
            .with_limit("c", ApiClass::Read, Limit::per_second(1, 1))
            .with_operation_limit("c", "Run", Limit::per_second(3, 3));
        assert_eq!(
            c.limit_for("c", ApiClass::Poll),
            (ApiClass::Poll, Limit::per_second(10, 50))
        );
        assert_eq!(c.limit_for("c", ApiClass::Read).1, Limit::per_second(1, 1));
        assert_eq!(c.operation_limit("c", "Run"), Some(Limit::per_second(3, 3)));
        // A clone is independent of later registrations.
        let copy = c.clone();
        c.register_profile(CloudProfile::new("d")).unwrap();
        assert!(copy.profile("d").is_none() && c.profile("d").is_some());
        let bad = CloudProfile::new("e").with_limit(ApiClass::Write, Limit::per_second(0, 1));
        assert_eq!(field(c.register_profile(bad)), "profiles.e.write.count");
    }

    #[test]
    fn invalid_values_name_their_field() {
        let d = TransportConfig::default;
        assert_eq!(
            field(
                d().with_limit(names::AWS, ApiClass::Read, Limit::per_second(0, 5))
                    .validate()
            ),
            "limits.aws.read.count"
        );
        assert_eq!(
            field(
                d().with_limit(names::AWS, ApiClass::Write, Limit::per_second(5, 0))
                    .validate()
            ),
            "limits.aws.write.burst"
        );
        assert_eq!(
            field(
                d().with_backoff(Duration::from_secs(2), Duration::from_secs(1))
                    .validate()
            ),
            "backoff.max"
        );
        assert_eq!(
            field(d().with_max_concurrency(0).validate()),
            "max_concurrency"
        );
        assert_eq!(
            field(
                d().with_operation_limit(names::AWS, "RunInstances", Limit::per_minute(3, 0))
                    .validate()
            ),
            "operation_limits.aws.RunInstances.burst"
        );
    }
}
