//! [`Limit`]: a rate limit as the clouds publish theirs.

use std::time::Duration;

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

    pub(crate) fn validate(&self, field: &str) -> Result<()> {
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
