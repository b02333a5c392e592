//! [`ApiConfig`]: the worker API's limits.

use std::time::Duration;

use crate::ConfigError;

/// The limits of the worker API [`router`](crate::router).
///
/// Every endpoint has its own rate limit per source (a GCRA bucket per source
/// address per endpoint): `per_source_per_second` requests a second on
/// average, with bursts of up to `burst`. Each endpoint tracks at most
/// `max_tracked_sources` sources; see [`crate::router`] for what happens
/// beyond that.
///
/// ```
/// use skyfleet_api::ApiConfig;
/// let config = ApiConfig::default().with_rate(2, 10).with_max_tracked_sources(1000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Sustained requests a second allowed per source per endpoint.
    pub per_source_per_second: u32,
    /// Requests a source may make at once before the sustained rate applies.
    pub burst: u32,
    /// How many sources each endpoint's limiter remembers at most.
    pub max_tracked_sources: usize,
    /// How long one request may take from the end of its headers to its
    /// answer, body upload included (a slow client or a hung store gets
    /// `503 unavailable`).
    pub request_timeout: Duration,
}

impl Default for ApiConfig {
    /// 5 requests a second per source per endpoint, bursts of 20, 10 000
    /// sources per endpoint, 30 s per request. A worker heartbeats every few
    /// tens of seconds, so a NAT hiding a few hundred workers stays under it.
    fn default() -> Self {
        ApiConfig {
            per_source_per_second: 5,
            burst: 20,
            max_tracked_sources: 10_000,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl ApiConfig {
    /// Sets the sustained rate and the burst.
    pub fn with_rate(mut self, per_source_per_second: u32, burst: u32) -> Self {
        self.per_source_per_second = per_source_per_second;
        self.burst = burst;
        self
    }

    /// Sets how many sources each endpoint remembers at most.
    pub fn with_max_tracked_sources(mut self, max: usize) -> Self {
        self.max_tracked_sources = max;
        self
    }

    /// Sets the per-request time limit.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Checks that every limit is usable: a rate, burst and source bound of
    /// at least 1, and a request timeout between 1 ms and 1 hour.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.per_source_per_second == 0 {
            return Err(ConfigError::Invalid {
                field: "per_source_per_second",
                reason: "must be at least 1",
            });
        }
        if self.burst == 0 {
            return Err(ConfigError::Invalid {
                field: "burst",
                reason: "must be at least 1",
            });
        }
        if self.max_tracked_sources == 0 {
            return Err(ConfigError::Invalid {
                field: "max_tracked_sources",
                reason: "must be at least 1",
            });
        }
        if self.request_timeout < Duration::from_millis(1)
            || self.request_timeout > Duration::from_secs(3600)
        {
            return Err(ConfigError::Invalid {
                field: "request_timeout",
                reason: "must be between 1 ms and 1 hour",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused_by_name() {
        assert!(ApiConfig::default().validate().is_ok());
        let e = ApiConfig::default().with_rate(0, 1).validate().unwrap_err();
        assert!(e.to_string().contains("per_source_per_second"), "{e}");
        let e = ApiConfig::default().with_rate(1, 0).validate().unwrap_err();
        assert!(e.to_string().contains("burst"), "{e}");
        let e = ApiConfig::default()
            .with_max_tracked_sources(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("max_tracked_sources"), "{e}");
        let e = ApiConfig::default()
            .with_request_timeout(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("request_timeout"), "{e}");
    }
}
