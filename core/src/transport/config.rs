//! [`TransportConfig`]: limits, timeouts, backoff and budget, with per-cloud
//! defaults calibrated on the published limits.
//!
//! The defaults are deliberately at or just under what each cloud publishes,
//! so a fleet that keeps to them is not throttled in steady state; they are
//! all overridable because real accounts get raised limits and because other
//! tools may share the same account's quota.
//!
//! | provider | class | default | published limit |
//! |---|---|---|---|
//! | `aws` | read | 20/s, burst 100 | non-mutating bucket 100, refill 20/s |
//! | `aws` | poll | 10/s, burst 50 | `DescribeInstances` unfiltered bucket 50, refill 10/s |
//! | `aws` | write | 5/s, burst 50 | mutating bucket 50, refill 5/s |
//! | `aws` | delete | 5/s, burst 100 | `TerminateInstances` bucket 100, refill 5/s |
//! | `aws` | op `RunInstances`, `StartInstances` | 2/s, burst 5 | bucket 5, refill 2/s |
//! | `aws` | op `CreateTags`, `DeleteTags` | 10/s, burst 100 | bucket 100, refill 10/s |
//! | `azure` | read, poll | 25/s, burst 250 | reads bucket 250, refill 25/s |
//! | `azure` | write, delete | 10/s, burst 200 | writes/deletes bucket 200, refill 10/s |
//! | `gcp` | every class | 1440/min, burst 60 | 1500/min per group, synchronised windows |
//!
//! ARM polls are reads, so the `azure` poll class shares the read bucket
//! ([`TransportConfig::with_shared_bucket`]); GCE deletes are mutations and
//! share the write group. GCE counts per fixed, synchronised minute, which a
//! GCRA cannot mirror exactly, so its defaults are chosen such that any 60 s
//! window admits at most `60 + 24 × 60 = 1500` calls: never more than the
//! published group limit, whichever way the windows fall.

use std::collections::HashMap;
use std::time::Duration;

use super::key::ApiClass;
use crate::{Error, Result};

/// A rate limit: `count` calls per `per`, with bursts of up to `burst` calls.
///
/// This is a token bucket (GCRA) of capacity `burst` refilled at
/// `count / per`; the clouds publish theirs in exactly these terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Calls admitted per `per` in steady state.
    pub count: u32,
    /// The period `count` is measured over.
    pub per: Duration,
    /// The largest burst admitted after a quiet period.
    pub burst: u32,
}

impl Limit {
    /// `count` calls per second, bursts of `burst`.
    pub const fn per_second(count: u32, burst: u32) -> Limit {
        Limit {
            count,
            per: Duration::from_secs(1),
            burst,
        }
    }

    /// `count` calls per minute, bursts of `burst`.
    pub const fn per_minute(count: u32, burst: u32) -> Limit {
        Limit {
            count,
            per: Duration::from_secs(60),
            burst,
        }
    }

    /// The steady rate in calls per second.
    pub fn rate_per_second(&self) -> f64 {
        if self.per.is_zero() {
            return 0.0;
        }
        f64::from(self.count) / self.per.as_secs_f64()
    }

    /// The time between two tokens (`per / count`).
    pub fn replenish_interval(&self) -> Duration {
        if self.count == 0 {
            return Duration::MAX;
        }
        self.per / self.count
    }

    fn validate(&self, field: &str) -> Result<()> {
        if self.count == 0 {
            return Err(Error::invalid_config(
                format!("{field}.count"),
                "a rate limit must admit at least one call per period",
            ));
        }
        if self.per.is_zero() {
            return Err(Error::invalid_config(
                format!("{field}.per"),
                "a rate limit period must be longer than zero",
            ));
        }
        if self.replenish_interval().is_zero() {
            return Err(Error::invalid_config(
                format!("{field}.count"),
                "rate too high: more than one call per nanosecond",
            ));
        }
        if self.burst == 0 {
            return Err(Error::invalid_config(
                format!("{field}.burst"),
                "a burst of zero would never admit a call",
            ));
        }
        Ok(())
    }
}

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
/// Start from [`TransportConfig::default`] (which carries the per-cloud
/// defaults of the module doc) and override with the `with_*` builders;
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
    pub(crate) root_certificates: Vec<Vec<u8>>,
}

fn class_index(class: ApiClass) -> usize {
    match class {
        ApiClass::Read => 0,
        ApiClass::Write => 1,
        ApiClass::Delete => 2,
        ApiClass::Poll => 3,
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        use ApiClass::*;
        let mut limits: HashMap<String, [Option<Limit>; 4]> = HashMap::new();
        let mut set = |p: &str, c: ApiClass, l: Limit| {
            limits.entry(p.to_owned()).or_default()[class_index(c)] = Some(l);
        };
        set("aws", Read, Limit::per_second(20, 100));
        set("aws", Poll, Limit::per_second(10, 50));
        set("aws", Write, Limit::per_second(5, 50));
        set("aws", Delete, Limit::per_second(5, 100));
        set("azure", Read, Limit::per_second(25, 250));
        set("azure", Poll, Limit::per_second(25, 250));
        set("azure", Write, Limit::per_second(10, 200));
        set("azure", Delete, Limit::per_second(10, 200));
        for c in ApiClass::ALL {
            set("gcp", c, Limit::per_minute(1440, 60));
        }
        let mut aws_ops = HashMap::new();
        for op in ["RunInstances", "StartInstances"] {
            aws_ops.insert(op.to_owned(), Limit::per_second(2, 5));
        }
        for op in ["CreateTags", "DeleteTags"] {
            aws_ops.insert(op.to_owned(), Limit::per_second(10, 100));
        }
        let mut operation_limits = HashMap::new();
        operation_limits.insert("aws".to_owned(), aws_ops);
        let mut shared_buckets: HashMap<String, [Option<ApiClass>; 4]> = HashMap::new();
        shared_buckets.entry("azure".to_owned()).or_default()[class_index(Poll)] = Some(Read);
        shared_buckets.entry("gcp".to_owned()).or_default()[class_index(Delete)] = Some(Write);
        let t = |attempt: u64, overall: u64| Timeouts {
            attempt: Duration::from_secs(attempt),
            overall: Duration::from_secs(overall),
        };
        TransportConfig {
            limits,
            operation_limits,
            shared_buckets,
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
            root_certificates: Vec::new(),
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
    /// (ARM polls are reads), or on their own again when `class == into`.
    pub fn with_shared_bucket(mut self, provider: &str, class: ApiClass, into: ApiClass) -> Self {
        let slot =
            &mut self.shared_buckets.entry(provider.to_owned()).or_default()[class_index(class)];
        *slot = (class != into).then_some(into);
        self
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

    /// Adds PEM root certificates (one or several) trusted in addition to the
    /// platform's, for private endpoints and test servers.
    pub fn with_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// The limit applying to `class` calls of `provider`, and the class whose
    /// bucket they draw on.
    pub fn limit_for(&self, provider: &str, class: ApiClass) -> (ApiClass, Limit) {
        let bucket_class = self
            .shared_buckets
            .get(provider)
            .and_then(|s| s[class_index(class)])
            .unwrap_or(class);
        let limit = self
            .limits
            .get(provider)
            .and_then(|l| l[class_index(bucket_class)])
            .unwrap_or(self.default_limit);
        (bucket_class, limit)
    }

    /// The limit of `operation` of `provider` when it has its own bucket.
    pub fn operation_limit(&self, provider: &str, operation: &str) -> Option<Limit> {
        if operation.is_empty() {
            return None;
        }
        self.operation_limits.get(provider)?.get(operation).copied()
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn defaults_are_valid_and_calibrated() {
        let c = TransportConfig::default();
        c.validate().unwrap();
        assert_eq!(
            c.limit_for("azure", ApiClass::Read),
            (ApiClass::Read, Limit::per_second(25, 250))
        );
        assert_eq!(
            c.limit_for("azure", ApiClass::Poll),
            (ApiClass::Read, Limit::per_second(25, 250))
        );
        assert_eq!(
            c.limit_for("azure", ApiClass::Delete).1,
            Limit::per_second(10, 200)
        );
        assert_eq!(
            c.operation_limit("aws", "RunInstances"),
            Some(Limit::per_second(2, 5))
        );
        let gcp = c.limit_for("gcp", ApiClass::Read).1;
        // Any 60 s window admits burst + rate * 60 calls: at most the published 1500/min.
        assert!(f64::from(gcp.burst) + gcp.rate_per_second() * 60.0 <= 1500.0);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let d = TransportConfig::default;
        assert_eq!(
            field(
                d().with_limit("aws", ApiClass::Read, Limit::per_second(0, 5))
                    .validate()
            ),
            "limits.aws.read.count"
        );
        assert_eq!(
            field(
                d().with_limit("aws", ApiClass::Write, Limit::per_second(5, 0))
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
                d().with_operation_limit("aws", "RunInstances", Limit::per_minute(3, 0))
                    .validate()
            ),
            "operation_limits.aws.RunInstances.burst"
        );
    }
}
