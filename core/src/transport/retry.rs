//! [`RetryPolicy`]: a tower retry policy with decorrelated-jitter backoff, a
//! per-key retry budget and `Retry-After` support.
//!
//! What is retried:
//!
//! - throttles (429, EC2 `RequestLimitExceeded`, GCE `rateLimitExceeded`) and
//!   `503`: the cloud did not do the work, any request may be repeated;
//! - connection failures before anything was sent (error code `connect`);
//! - other 5xx (except 501), timeouts and mid-exchange connection errors,
//!   only for idempotent requests ([`is_idempotent`]): a `POST` that timed
//!   out may have been executed, and repeating it without an idempotency token
//!   could launch a second instance.
//!
//! How long to wait: exponential backoff with "decorrelated jitter"
//! (`next = random(min, 3 × previous)`, capped at `max`), which spreads
//! retries of callers that failed together; never less than the
//! `Retry-After` the cloud named (itself clamped like the limiter's pause).
//!
//! How much: at most `max_attempts` attempts per call, and every retry draws
//! on a **budget shared per key** (a token bucket like the AWS SDK's: capacity
//! 500, 5 tokens a retry, 10 after a timeout, successes refund). While a
//! cloud fails everything nothing is refunded, so the number of attempts it
//! receives is bounded by `calls + capacity / retry_cost`, however many
//! callers there are: no retry storm.
//!
//! The request is cloned for each attempt: the body (`Bytes`, shared, not
//! copied) and headers are identical, so idempotency tokens (EC2
//! `ClientToken`, GCE `requestId`, `Idempotency-Key`) are sent verbatim on
//! every attempt. The final response carries a [`RetryInfo`] extension, and
//! the transport's [`Outcome`] of it (read with the cloud's profile).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use rand::Rng;
use tower::retry::Policy;

use super::classify::{retry_after, Outcome};
use super::config::{Budget, TransportConfig};
use super::key::{is_idempotent, Attempt, Key, KeyMap, RequestExt};
use super::metrics::Metrics;
use crate::{Error, ErrorKind};

/// Why the retry loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The last attempt succeeded.
    Succeeded,
    /// The last answer is final (a 4xx, or a failure unsafe to repeat).
    NotRetryable,
    /// The call used all its attempts.
    AttemptsExhausted,
    /// The key's retry budget was empty.
    BudgetExhausted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Succeeded => "succeeded",
            StopReason::NotRetryable => "not retryable",
            StopReason::AttemptsExhausted => "attempts exhausted",
            StopReason::BudgetExhausted => "retry budget exhausted",
        })
    }
}

/// Attached to the final response of a call (as a response extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryInfo {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// Why there was no further attempt.
    pub stop: StopReason,
}

/// A retry budget per key, shared by every clone (see the module doc).
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: Budget,
    tokens: Arc<Mutex<KeyMap<u32>>>,
}

impl RetryBudget {
    /// A budget with `config`'s capacity and costs; every key starts full.
    pub fn new(config: Budget) -> Self {
        RetryBudget {
            config,
            tokens: Arc::new(Mutex::new(KeyMap::default())),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket, if it holds that many.
    pub fn try_withdraw(&self, key: &Key, cost: u32) -> bool {
        let mut map = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        let t = map.entry(key.clone()).or_insert(self.config.capacity);
        if *t >= cost {
            *t -= cost;
            true
        } else {
            false
        }
    }

    /// Gives `amount` tokens back to `key`'s bucket, up to its capacity.
    pub fn refund(&self, key: &Key, amount: u32) {
        let mut map = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = map.get_mut(key) {
            *t = t.saturating_add(amount).min(self.config.capacity);
        }
    }

    /// The tokens `key` holds now.
    pub fn available(&self, key: &Key) -> u32 {
        let map = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key).copied().unwrap_or(self.config.capacity)
    }
}

#[derive(Debug)]
struct Shared {
    config: Arc<TransportConfig>,
    budget: RetryBudget,
    metrics: Metrics,
}

/// The tower retry policy of the stack. Cloned per call by tower's `Retry`;
/// the budget and metrics are shared.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    shared: Arc<Shared>,
    attempt: u32,
    prev_delay: Duration,
    last_cost: u32,
}

impl RetryPolicy {
    /// A policy with `config`'s backoff and budget, counting in `metrics`.
    pub fn new(config: Arc<TransportConfig>, metrics: Metrics) -> Self {
        let budget = RetryBudget::new(config.budget());
        RetryPolicy::with_budget(config, budget, metrics)
    }

    /// A policy drawing on an existing (shared) `budget`.
    pub fn with_budget(
        config: Arc<TransportConfig>,
        budget: RetryBudget,
        metrics: Metrics,
    ) -> Self {
        let min = config.backoff().min;
        RetryPolicy {
            shared: Arc::new(Shared {
                config,
                budget,
                metrics,
            }),
            attempt: 1,
            prev_delay: min,
            last_cost: 0,
        }
    }

    /// The shared budget.
    pub fn budget(&self) -> &RetryBudget {
        &self.shared.budget
    }

    fn next_backoff(&mut self) -> Duration {
        let b = self.shared.config.backoff();
        let upper = self.prev_delay.saturating_mul(3).max(b.min);
        let lo = b.min.as_nanos();
        let hi = upper.as_nanos();
        let pick = if hi > lo {
            rand::rng().random_range(lo..=hi)
        } else {
            lo
        };
        let d = Duration::from_nanos(u64::try_from(pick).unwrap_or(u64::MAX)).min(b.max);
        self.prev_delay = d;
        d
    }
}

/// What the policy makes of one attempt's result.
struct Verdict {
    retryable: bool,
    retry_after: Option<Duration>,
    cost: u32,
}

fn verdict(
    req: &Request<Bytes>,
    result: &Result<Response<Bytes>, Error>,
    outcome: Option<Outcome>,
    budget: &Budget,
) -> Option<Verdict> {
    let idempotent = is_idempotent(req);
    let v = |retryable, retry_after, cost| {
        Some(Verdict {
            retryable,
            retry_after,
            cost,
        })
    };
    match result {
        Ok(resp) => match outcome.unwrap_or(Outcome::Success) {
            Outcome::Success => None,
            Outcome::Final => v(false, None, 0),
            Outcome::Throttled { retry_after } => v(true, retry_after, budget.retry_cost),
            Outcome::Transient => v(
                resp.status() == StatusCode::SERVICE_UNAVAILABLE || idempotent,
                retry_after(resp.headers()),
                budget.retry_cost,
            ),
        },
        Err(e) => match e.kind() {
            ErrorKind::Throttled { retry_after } => v(true, *retry_after, budget.retry_cost),
            ErrorKind::Timeout => v(idempotent, None, budget.timeout_cost),
            ErrorKind::Transient => v(
                idempotent || e.code() == Some("connect"),
                None,
                budget.retry_cost,
            ),
            _ => v(false, None, 0),
        },
    }
}

fn annotate(
    result: &mut Result<Response<Bytes>, Error>,
    outcome: Option<Outcome>,
    info: RetryInfo,
) {
    match result {
        Ok(resp) => {
            resp.extensions_mut().insert(info);
            if let Some(o) = outcome {
                resp.extensions_mut().insert(o);
            }
        }
        Err(e) => {
            if info.attempts == 1 && info.stop == StopReason::NotRetryable {
                return;
            }
            let old = std::mem::replace(e, Error::internal(""));
            let mut new = Error::new(
                old.kind().clone(),
                format!(
                    "{} (after {} attempt(s); retries stopped: {})",
                    old.message(),
                    info.attempts,
                    info.stop
                ),
            );
            if let Some(c) = old.code() {
                new = new.with_code(c.to_owned());
            }
            if let Some(p) = old.provider() {
                new = new.with_provider(p.to_owned());
            }
            *e = new.with_source(old);
        }
    }
}

impl Policy<Request<Bytes>, Response<Bytes>, Error> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Bytes>,
        result: &mut Result<Response<Bytes>, Error>,
    ) -> Option<Self::Future> {
        let key = req.transport_key();
        let budget_cfg = self.shared.config.budget();
        // The cloud's reading of the answer (its profile's classifier),
        // kept on the final response for `error_for_status`.
        let outcome = match result {
            Ok(resp) => Some(self.shared.config.classify(key.provider(), resp)),
            Err(_) => None,
        };
        let stop = |result: &mut Result<Response<Bytes>, Error>, attempts, stop| {
            annotate(result, outcome, RetryInfo { attempts, stop });
            None
        };
        let Some(v) = verdict(req, result, outcome, &budget_cfg) else {
            let refund = if self.attempt > 1 {
                self.last_cost
            } else {
                budget_cfg.success_refund
            };
            self.shared.budget.refund(&key, refund);
            return stop(result, self.attempt, StopReason::Succeeded);
        };
        if !v.retryable {
            return stop(result, self.attempt, StopReason::NotRetryable);
        }
        if self.attempt >= self.shared.config.backoff().max_attempts {
            return stop(result, self.attempt, StopReason::AttemptsExhausted);
        }
        if !self.shared.budget.try_withdraw(&key, v.cost) {
            self.shared.metrics.record_budget_exhausted(&key);
            tracing::warn!(key = %key, operation = req.operation(), "retry budget exhausted");
            return stop(result, self.attempt, StopReason::BudgetExhausted);
        }
        self.last_cost = v.cost;
        let mut delay = self.next_backoff();
        if let Some(ra) = v.retry_after {
            delay = delay.max(ra.min(self.shared.config.max_throttle_pause()));
        }
        self.attempt += 1;
        req.extensions_mut().insert(Attempt(self.attempt));
        self.shared.metrics.record_retry(&key);
        tracing::debug!(key = %key, operation = req.operation(), attempt = self.attempt,
            delay_ms = delay.as_millis() as u64, "retrying");
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, req: &Request<Bytes>) -> Option<Request<Bytes>> {
        Some(clone_request(req))
    }
}

/// A copy of `req` for one attempt: the body is shared, not copied; headers
/// and extensions are cloned, so idempotency tokens are sent verbatim.
pub(crate) fn clone_request(req: &Request<Bytes>) -> Request<Bytes> {
    let mut clone = Request::new(req.body().clone());
    *clone.method_mut() = req.method().clone();
    *clone.uri_mut() = req.uri().clone();
    *clone.version_mut() = req.version();
    *clone.headers_mut() = req.headers().clone();
    *clone.extensions_mut() = req.extensions().clone();
    clone
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::names;
    use crate::transport::ApiClass;

    #[test]
    fn budget_withdraws_and_refunds_up_to_capacity() {
        let b = RetryBudget::new(Budget {
            capacity: 10,
            retry_cost: 5,
            timeout_cost: 10,
            success_refund: 1,
        });
        let k = Key::new(names::AWS, "a", "r", ApiClass::Read);
        assert!(b.try_withdraw(&k, 5));
        assert!(b.try_withdraw(&k, 5));
        assert!(!b.try_withdraw(&k, 5));
        b.refund(&k, 3);
        assert_eq!(b.available(&k), 3);
        b.refund(&k, 100);
        assert_eq!(b.available(&k), 10);
        let other = k.with_class(ApiClass::Write);
        assert_eq!(b.available(&other), 10);
    }

    #[test]
    fn backoff_stays_within_bounds() {
        let config = Arc::new(
            TransportConfig::default()
                .with_backoff(Duration::from_millis(100), Duration::from_secs(2)),
        );
        let mut p = RetryPolicy::new(config, Metrics::new());
        for _ in 0..100 {
            let d = p.next_backoff();
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_secs(2));
        }
    }
}
