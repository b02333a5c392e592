//! [`RateLimitLayer`]: GCRA limits per key, shared by every clone, with
//! pause-on-throttle.
//!
//! tower's own `RateLimit` keeps its state in each service value, so every
//! clone of a client gets a fresh allowance: ten clones of a "5 req/s" client
//! send 50 req/s. Clouds meter per account, region and class, not per client
//! value, so here all state lives behind one `Arc` created with the layer:
//! every service the layer (or any clone of it) produces draws on the same
//! [`governor`] limiter for a given key.
//!
//! Waiting callers sleep until the limiter's next slot plus a small random
//! jitter, so callers woken together do not all hit the limiter at the same
//! instant.
//!
//! When a response says the cloud throttled us (see
//! [`TransportConfig::classify`]), the whole key is
//! **paused** until the delay the cloud named (clamped to
//! [`TransportConfig::with_max_throttle_pause`](super::TransportConfig::with_max_throttle_pause)),
//! like a queue pause: the other callers of that key wait instead of each
//! learning about the throttle by being throttled. Other keys are untouched.
//!
//! The limiter reads tokio's clock, so tests with a paused clock
//! (`tokio::time::pause`) are deterministic.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::ops::Add;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use http::{Request, Response};
use rand::Rng;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

use super::classify::Outcome;
use super::config::{Limit, TransportConfig};
use super::key::{Key, KeyMap, RequestExt};
use super::metrics::Metrics;
use crate::log_gate::LogGate;
use crate::Error;

/// A [`governor`] time reference on tokio's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LimiterInstant(Instant);

impl Add<Nanos> for LimiterInstant {
    type Output = LimiterInstant;
    fn add(self, n: Nanos) -> LimiterInstant {
        LimiterInstant(self.0 + Duration::from(n))
    }
}

impl Reference for LimiterInstant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_duration_since(earlier.0))
    }

    fn saturating_sub(&self, d: Nanos) -> Self {
        match self.0.checked_sub(Duration::from(d)) {
            Some(i) => LimiterInstant(i),
            None => *self,
        }
    }
}

/// A [`governor`] clock reading `tokio::time::Instant::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimiterClock;

impl Clock for LimiterClock {
    type Instant = LimiterInstant;
    fn now(&self) -> LimiterInstant {
        LimiterInstant(Instant::now())
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<LimiterInstant>>;

/// Which bucket a request draws on: its key with the class replaced by the
/// bucket class, plus the operation when it has its own limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketId {
    key: Key,
    operation: Option<String>,
}

/// One GCRA bucket and its pause (shared by every caller of its keys).
pub(crate) struct Bucket {
    limiter: Gcra,
    paused_until: Mutex<Option<Instant>>,
}

impl Bucket {
    fn new(limit: Limit) -> Bucket {
        // Validation (TransportConfig::validate) guarantees count, per and
        // burst are non-zero; the fallbacks only keep this total.
        let quota = Quota::with_period(limit.replenish_interval())
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN));
        Bucket {
            limiter: RateLimiter::direct_with_clock(quota, LimiterClock),
            paused_until: Mutex::new(None),
        }
    }

    fn paused_until(&self) -> Option<Instant> {
        *self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn pause_until(&self, until: Instant) {
        let mut p = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if p.is_none_or(|cur| cur < until) {
            *p = Some(until);
        }
    }
}

#[derive(Default)]
struct Buckets {
    /// The buckets, by identity.
    by_id: HashMap<BucketId, Arc<Bucket>>,
    /// Cache: a request key to its class bucket and whether its provider
    /// has operations with their own limits, so the hot path is one lookup
    /// (on the key's precomputed hash) with no allocation; only the
    /// providers with per-operation limits look the operation up as well.
    by_key: KeyMap<KeyBuckets>,
}

/// A key's class bucket, and whether its provider has per-operation limits.
pub(crate) struct KeyBuckets {
    class: Arc<Bucket>,
    has_operation_limits: bool,
}

struct Shared {
    config: Arc<TransportConfig>,
    metrics: Metrics,
    buckets: Mutex<Buckets>,
    /// One throttle warning per key per minute, however many throttles.
    warnings: LogGate,
}

impl Shared {
    fn bucket(&self, key: &Key, operation: &str) -> Arc<Bucket> {
        {
            let b = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(k) = b.by_key.get(key) {
                if operation.is_empty() || !k.has_operation_limits {
                    return k.class.clone();
                }
            }
        }
        if let Some(limit) = self.config.operation_limit(key.provider(), operation) {
            let id = BucketId {
                key: key.clone(),
                operation: Some(operation.to_owned()),
            };
            let mut b = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            return b
                .by_id
                .entry(id)
                .or_insert_with(|| Arc::new(Bucket::new(limit)))
                .clone();
        }
        let mut b = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = b.by_key.get(key) {
            return k.class.clone();
        }
        let (class, limit) = self.config.limit_for(key.provider(), key.class());
        let id = BucketId {
            key: key.with_class(class),
            operation: None,
        };
        let bucket = b
            .by_id
            .entry(id)
            .or_insert_with(|| Arc::new(Bucket::new(limit)))
            .clone();
        let has_operation_limits = self.has_operation_limits(key);
        b.by_key.insert(
            key.clone(),
            KeyBuckets {
                class: bucket.clone(),
                has_operation_limits,
            },
        );
        bucket
    }

    fn has_operation_limits(&self, key: &Key) -> bool {
        self.config.has_operation_limits(key.provider())
    }

    fn jitter(&self) -> Duration {
        let max = self.config.limiter_jitter;
        if max.is_zero() {
            return Duration::ZERO;
        }
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }

    /// Takes a token now if the bucket is neither paused nor empty.
    fn try_acquire(&self, bucket: &Bucket) -> bool {
        if let Some(until) = bucket.paused_until() {
            if until > Instant::now() {
                return false;
            }
        }
        bucket.limiter.check().is_ok()
    }

    /// Waits until the bucket is neither paused nor empty, then takes a token.
    async fn acquire(&self, bucket: &Bucket) {
        loop {
            if let Some(until) = bucket.paused_until() {
                if until > Instant::now() {
                    tokio::time::sleep_until(until + self.jitter()).await;
                    continue;
                }
            }
            match bucket.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let wait = not_until.wait_time_from(LimiterClock.now());
                    tokio::time::sleep(wait + self.jitter()).await;
                }
            }
        }
    }

    /// After an attempt: a throttle answer pauses the bucket, and the
    /// class bucket too when the operation has its own (an operation with
    /// its own bucket still belongs to its class).
    fn observe(&self, key: &Key, bucket: &Arc<Bucket>, res: &Result<Response<Bytes>, Error>) {
        let Ok(resp) = res else { return };
        let Outcome::Throttled { retry_after } = self.config.classify(key.provider(), resp) else {
            return;
        };
        self.throttled(key, bucket, retry_after);
        let class_bucket = self.bucket(key, "");
        if !Arc::ptr_eq(&class_bucket, bucket) {
            class_bucket.pause_until(
                Instant::now()
                    + retry_after
                        .unwrap_or(self.config.default_throttle_pause)
                        .min(self.config.max_throttle_pause),
            );
        }
    }

    fn throttled(&self, key: &Key, bucket: &Bucket, retry_after: Option<Duration>) {
        let pause = retry_after
            .unwrap_or(self.config.default_throttle_pause)
            .min(self.config.max_throttle_pause);
        if let Some(held_back) = self.warnings.admit(&key.to_string()) {
            tracing::warn!(
                target: "skyfleet::transport",
                event = "transport.throttled",
                provider = key.provider(),
                account = key.account(),
                region = key.region(),
                class = key.class().as_str(),
                pause_ms = pause.as_millis() as u64,
                held_back,
                "throttled by the cloud: pausing this key (one line per key per minute; \
                 held_back counts the throttles not logged since the last line)"
            );
        }
        self.metrics.record_throttle(key);
        bucket.pause_until(Instant::now() + pause);
    }
}

/// Applies the per-key limits of a [`TransportConfig`]; every service it
/// produces, and every clone of those, shares one set of limiters.
#[derive(Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer").finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A layer with the limits of `config`, counting throttles in `metrics`.
    pub fn new(config: Arc<TransportConfig>, metrics: Metrics) -> Self {
        RateLimitLayer {
            shared: Arc::new(Shared {
                config,
                metrics,
                buckets: Mutex::new(Buckets::default()),
                warnings: LogGate::default(),
            }),
        }
    }

    /// `key`'s class bucket and whether its provider has operations with
    /// their own buckets: what [`RateLimitLayer::bucket_in`] needs, for
    /// callers that cache it per key (the pipeline of a `Transport`).
    pub(crate) fn key_buckets(&self, key: &Key) -> KeyBuckets {
        KeyBuckets {
            class: self.shared.bucket(key, ""),
            has_operation_limits: self.shared.has_operation_limits(key),
        }
    }

    /// The bucket a request with `key` and `operation` draws on, from the
    /// key's cached `buckets`: no lookup unless the operation may have its
    /// own.
    pub(crate) fn bucket_in(
        &self,
        buckets: &KeyBuckets,
        key: &Key,
        operation: &str,
    ) -> Arc<Bucket> {
        if operation.is_empty() || !buckets.has_operation_limits {
            buckets.class.clone()
        } else {
            self.shared.bucket(key, operation)
        }
    }

    /// Takes a token now if `bucket` is neither paused nor empty.
    pub(crate) fn try_acquire(&self, bucket: &Bucket) -> bool {
        self.shared.try_acquire(bucket)
    }

    /// Waits until `bucket` is neither paused nor empty, then takes a token.
    pub(crate) async fn acquire(&self, bucket: &Bucket) {
        self.shared.acquire(bucket).await
    }

    /// Pauses the key's buckets if `res` is a throttle answer.
    pub(crate) fn observe(
        &self,
        key: &Key,
        bucket: &Arc<Bucket>,
        res: &Result<Response<Bytes>, Error>,
    ) {
        self.shared.observe(key, bucket, res)
    }

    /// Pauses `key` (all its callers) for `pause`, clamped like a throttle's.
    pub fn pause(&self, key: &Key, pause: Duration) {
        let bucket = self.shared.bucket(key, "");
        let pause = pause.min(self.shared.config.max_throttle_pause);
        bucket.pause_until(Instant::now() + pause);
    }

    /// How long `key` remains paused, if it is.
    pub fn paused_for(&self, key: &Key) -> Option<Duration> {
        let until = self.shared.bucket(key, "").paused_until()?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
#[derive(Clone)]
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit").finish_non_exhaustive()
    }
}

impl<S> Service<Request<Bytes>> for RateLimit<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // Readiness depends on the request's key, so the wait for a token
        // happens in `call`; the inner service's readiness is passed on so
        // that `call` may use it at once when a token is there.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let shared = self.shared.clone();
        let key = req.transport_key();
        let bucket = shared.bucket(&key, req.operation());
        // Fast path (a token is there, the usual case below the limit): call
        // the inner service, which `poll_ready` made ready, right away. Only
        // a caller that must wait takes a clone of the inner service (which
        // `oneshot` drives to readiness after the wait): cloning the rest of
        // the stack on every call was a measurable share of its cost.
        let call = if shared.try_acquire(&bucket) {
            Ok(self.inner.call(req))
        } else {
            Err((self.inner.clone(), req))
        };
        Box::pin(async move {
            let res = match call {
                Ok(fut) => fut.await,
                Err((inner, req)) => {
                    shared.acquire(&bucket).await;
                    inner.oneshot(req).await
                }
            };
            shared.observe(&key, &bucket, &res);
            res
        })
    }
}
