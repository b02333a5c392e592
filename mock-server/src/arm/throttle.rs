//! ARM's subscription token buckets (reads, writes, deletes) and the
//! `x-ms-ratelimit-remaining-subscription-*` counts they report.
//!
//! The buckets live here rather than in `Ctx::take_token` because ARM reports
//! how many requests are left on every response, which needs the bucket level.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::delay::Delay;

use super::config::{ArmThrottle, BucketLimit};
use super::error::ArmError;

/// The request class a bucket counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// GET.
    Reads,
    /// PUT, PATCH, POST.
    Writes,
    /// DELETE.
    Deletes,
}

impl Class {
    /// The header that reports what is left of this class.
    pub fn remaining_header(self) -> &'static str {
        match self {
            Class::Reads => "x-ms-ratelimit-remaining-subscription-reads",
            Class::Writes => "x-ms-ratelimit-remaining-subscription-writes",
            Class::Deletes => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    /// The word ARM's throttle message uses.
    pub fn word(self) -> &'static str {
        match self {
            Class::Reads => "read",
            Class::Writes => "write",
            Class::Deletes => "delete",
        }
    }

    fn limit(self, t: &ArmThrottle) -> BucketLimit {
        match self {
            Class::Reads => t.reads,
            Class::Writes => t.writes,
            Class::Deletes => t.deletes,
        }
    }
}

/// The most buckets kept (subscriptions x classes).
const MAX_BUCKETS: usize = 30_000;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// All subscriptions' buckets.
#[derive(Default)]
pub struct Throttle {
    buckets: Mutex<HashMap<(String, Class), Bucket>>,
}

impl Throttle {
    /// Takes one token for `class` in `subscription`. `Ok(remaining)` when
    /// allowed; `Err(wait)` when the bucket is empty. With throttling off,
    /// always `Ok(burst - 1)` and no state is kept.
    pub fn take(
        &self,
        subscription: &str,
        class: Class,
        cfg: &ArmThrottle,
    ) -> Result<u64, Duration> {
        let limit = class.limit(cfg);
        let burst = limit.burst as f64;
        if !cfg.enabled {
            return Ok(limit.burst.saturating_sub(1));
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(&(subscription.to_string(), class)) {
            // Bounded memory: forget the buckets that have refilled (they
            // would start full anyway), or all of them as a last resort.
            map.retain(|(_, c), b| {
                let l = c.limit(cfg);
                b.tokens + now.duration_since(b.at).as_secs_f64() * l.refill_per_s.max(0.0)
                    < l.burst as f64
            });
            if map.len() >= MAX_BUCKETS {
                map.clear();
            }
        }
        let b = match map.get_mut(&(subscription.to_string(), class)) {
            Some(b) => b,
            None => map
                .entry((subscription.to_string(), class))
                .or_insert(Bucket {
                    tokens: burst,
                    at: now,
                }),
        };
        let rate = if limit.refill_per_s.is_finite() && limit.refill_per_s > 0.0 {
            limit.refill_per_s
        } else {
            0.0
        };
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(b.tokens.floor() as u64)
        } else {
            let wait = if rate > 0.0 {
                (1.0 - b.tokens) / rate
            } else {
                60.0
            };
            Err(Duration::from_secs(wait.max(1.0).ceil() as u64))
        }
    }

    /// Takes one token for `class` in `subscription` (any case): the
    /// remaining count, or ARM's 429 `SubscriptionRequestsThrottled`.
    pub fn admit(
        &self,
        subscription: &str,
        class: Class,
        cfg: &ArmThrottle,
    ) -> Result<u64, ArmError> {
        self.take(&subscription.to_ascii_lowercase(), class, cfg)
            .map_err(|wait| {
                let mut e = ArmError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "SubscriptionRequestsThrottled",
                    format!(
                        "Number of '{}' requests for subscription '{subscription}' exceeded the limit. Please try again after \
                         '{}' seconds.",
                        class.word(),
                        wait.as_secs().max(1)
                    ),
                );
                // The buckets refill on the real clock, so the wait is not
                // scaled: a scaled one would only earn another 429.
                e.retry_after = Some(Delay::real(wait));
                e
            })
    }

    /// Forgets the buckets of one subscription, or all.
    pub fn reset(&self, subscription: Option<&str>) {
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match subscription {
            Some(s) => map.retain(|k, _| !k.0.eq_ignore_ascii_case(s)),
            None => map.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(burst: u64) -> ArmThrottle {
        let mut c = ArmThrottle {
            enabled: true,
            ..ArmThrottle::default()
        };
        c.writes = BucketLimit {
            burst,
            refill_per_s: 0.001,
        };
        c
    }

    #[test]
    fn buckets_count_down_refuse_and_stay_bounded() {
        let t = Throttle::default();
        let c = cfg(2);
        assert_eq!(t.take("s", Class::Writes, &c), Ok(1));
        assert_eq!(t.take("s", Class::Writes, &c), Ok(0));
        assert!(t.take("s", Class::Writes, &c).unwrap_err() >= Duration::from_secs(1));
        assert_eq!(
            t.take("s", Class::Reads, &c),
            Ok(249),
            "classes are separate"
        );
        let off = ArmThrottle::default();
        assert_eq!(
            t.take("s", Class::Writes, &off),
            Ok(199),
            "off: never refused"
        );
        for i in 0..(MAX_BUCKETS + 10) {
            let _ = t.take(&format!("sub{i}"), Class::Writes, &c);
        }
        assert!(t.buckets.lock().unwrap().len() <= MAX_BUCKETS);
        t.reset(None);
        assert!(t.buckets.lock().unwrap().is_empty());
    }
}
