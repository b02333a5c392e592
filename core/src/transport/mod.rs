//! Shared transport: the tower stack every provider's HTTP calls flow through.
//!
//! Worker managers fail in recognisable ways: calls that hang for minutes,
//! 429 storms, retry layers stacked on retry layers multiplying attempts, one
//! cloud's slowness starving another. This module answers all of them with
//! one reusable stack, built by [`Transport::builder`], outermost first:
//!
//! ```text
//! call metrics/span -> timeout(overall) -> retry(policy, budget)
//!   -> rate limit(shared, keyed, pause-on-throttle) -> concurrency(per key)
//!   -> timeout(per attempt) -> attempt metrics/span -> client (reqwest)
//! ```
//!
//! Why this order: the rate limit sits *inside* the retry so that every
//! attempt, not every call, pays for a token (a retry is load on the cloud
//! like any other call); the per-attempt timeout sits inside the limiter and
//! semaphore so waiting for a slot is not counted against an attempt, while
//! the overall timeout bounds everything, waits included. Only one layer
//! retries: the AWS SDK's own retries are disabled when it runs on this stack
//! (see `skyfleet_aws::connector`).
//!
//! Every layer's state (limiters, pauses, semaphores, retry budgets,
//! counters) lives behind `Arc`s created once per [`Transport`]: clones of
//! the transport, or of its [`HttpService`], share it. tower's own
//! `RateLimit` does not (its state is per service value), which is why this
//! module has its own [`RateLimitLayer`].
//!
//! State is keyed per [`Key`]: provider, account (subscription, project),
//! region and [`ApiClass`], the granularity at which the clouds meter.
//! Providers set it on each request:
//!
//! ```no_run
//! # async fn run() -> skyfleet_core::Result<()> {
//! use bytes::Bytes;
//! use skyfleet_core::transport::{error_for_status, ApiClass, Key, RequestExt, Transport, TransportConfig};
//!
//! let transport = Transport::builder()
//!     .config(TransportConfig::default())
//!     .build()?;
//! let req = http::Request::get("https://management.azure.com/subscriptions/s/providers?api-version=2022-12-01")
//!     .body(Bytes::new())
//!     .map_err(|e| skyfleet_core::Error::internal(e.to_string()))?
//!     .with_key(Key::new("azure", "s", "westeurope", ApiClass::Read))
//!     .with_operation("providers.list");
//! let resp = error_for_status(transport.send(req).await?)?;
//! # let _ = resp; Ok(()) }
//! ```
//!
//! [`Transport::send`] runs these layers' logic in one future per call
//! (`pipeline.rs`: each layer's concern stays in its module, which the
//! pipeline calls), because composed as tower services they cost one boxed
//! future each, tower's `Retry` cloned the stack per call, and the two
//! timeouts armed two timers: about 10 % of a loopback round trip in CPU
//! alone. [`Transport::service`] is that stack as a
//! `tower::util::BoxCloneSyncService` ([`HttpService`]: a `BoxCloneService`
//! that is also `Sync`, so a provider can share it by reference), so users
//! can wrap it in their own layers; [`layered`] composes the same stack from
//! the public layers over a transport's shared state, for users who replace
//! or add a layer in the middle.

mod classify;
mod client;
mod concurrency;
mod config;
mod key;
mod limit;
mod metrics;
mod pipeline;
mod profile;
mod rate_limit;
mod retry;
mod timeout;

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::retry::RetryLayer;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceBuilder};

use pipeline::{Pipeline, Stack};

pub use classify::{
    body_contains, classify_response, error_for_status, parse_retry_after, retry_after, Outcome,
    BODY_SCAN_LIMIT, MAX_SERVER_DELAY,
};
pub use client::ReqwestService;
pub use concurrency::{Concurrency, ConcurrencyLayer};
pub use config::{Backoff, Budget, Limit, Timeouts, TransportConfig, DEFAULT_MAX_BODY_BYTES};
pub use key::{is_idempotent, ApiClass, Attempt, Idempotent, Key, OperationName, RequestExt};
pub use metrics::{
    AttemptMetrics, AttemptMetricsLayer, CallMetrics, CallMetricsLayer, KeyStats, Metrics,
    MetricsSnapshot,
};
pub use profile::{Classifier, CloudProfile};
pub use rate_limit::{LimiterClock, LimiterInstant, RateLimit, RateLimitLayer};
pub use retry::{RetryBudget, RetryInfo, RetryPolicy, StopReason};
pub use timeout::{Timeout, TimeoutLayer, TimeoutScope};

use crate::{Error, Result};

/// The type-erased, cloneable (and `Sync`) service every provider calls.
pub type HttpService = BoxCloneSyncService<Request<Bytes>, Response<Bytes>, Error>;

/// Builds a [`Transport`].
#[derive(Debug, Default)]
pub struct TransportBuilder {
    config: TransportConfig,
    metrics: Option<Metrics>,
}

impl TransportBuilder {
    /// Uses `config` (default: [`TransportConfig::default`]).
    pub fn config(mut self, config: TransportConfig) -> Self {
        self.config = config;
        self
    }

    /// Records into existing `metrics` (to aggregate several stacks);
    /// default: a fresh [`Metrics`].
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Adds (or replaces) a cloud's profile (see [`CloudProfile`]).
    pub fn profile(mut self, profile: CloudProfile) -> Self {
        self.config = self.config.with_profile(profile);
        self
    }

    /// Validates the config and builds the stack over a reqwest client.
    pub fn build(self) -> Result<Transport> {
        self.config.validate()?;
        let client = ReqwestService::from_config(&self.config)?;
        self.build_with(client)
    }

    /// Validates the config and builds the stack over `client`, any service
    /// of the same shape (an in-process fake, a hyper client, a client with
    /// extra layers such as request signing).
    pub fn build_with<S>(self, client: S) -> Result<Transport>
    where
        S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.config.validate()?;
        let config = Arc::new(self.config);
        let metrics = self.metrics.unwrap_or_default();
        let rate_limit = RateLimitLayer::new(config.clone(), metrics.clone());
        let concurrency = ConcurrencyLayer::new(config.max_concurrency());
        let policy = RetryPolicy::new(config.clone(), metrics.clone());
        let budget = policy.budget().clone();
        let stack = Stack {
            keys: Default::default(),
            client,
            config: config.clone(),
            metrics: metrics.clone(),
            rate_limit: rate_limit.clone(),
            concurrency: concurrency.clone(),
            policy,
        };
        Ok(Transport {
            stack: Arc::new(stack),
            metrics,
            rate_limit,
            concurrency,
            budget,
            config,
        })
    }
}

/// The stack of [`Transport`] composed from the public layers (tower's
/// `Retry` with [`RetryPolicy`] in the middle), sharing the state of
/// `transport` (limiters, semaphores, budget, counters): the starting point
/// for a stack with a layer replaced or added in the middle. Same behaviour
/// as [`Transport::send`], which runs the same steps in one future per call
/// instead of one per layer (see `pipeline.rs`), at about twice the
/// per-call CPU.
pub fn layered<S>(transport: &Transport, client: S) -> HttpService
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let config = transport.config.clone();
    let metrics = transport.metrics.clone();
    let policy =
        RetryPolicy::with_budget(config.clone(), transport.budget.clone(), metrics.clone());
    let service = ServiceBuilder::new()
        .layer(CallMetricsLayer::new(metrics.clone()))
        .layer(TimeoutLayer::new(
            config.clone(),
            metrics.clone(),
            TimeoutScope::Overall,
        ))
        .layer(RetryLayer::new(policy))
        .layer(transport.rate_limit.clone())
        .layer(transport.concurrency.clone())
        .layer(TimeoutLayer::new(
            config.clone(),
            metrics.clone(),
            TimeoutScope::Attempt,
        ))
        .layer(AttemptMetricsLayer::new(metrics))
        .service(client);
    BoxCloneSyncService::new(service)
}

/// The assembled stack and handles on its shared state. Cheap to clone;
/// clones share limiters, budgets and counters.
#[derive(Clone)]
pub struct Transport {
    stack: Arc<dyn Pipeline>,
    metrics: Metrics,
    rate_limit: RateLimitLayer,
    concurrency: ConcurrencyLayer,
    budget: RetryBudget,
    config: Arc<TransportConfig>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A builder with the default config.
    pub fn builder() -> TransportBuilder {
        TransportBuilder::default()
    }

    /// A clone of the stack as a boxed service (to wrap in more layers).
    pub fn service(&self) -> HttpService {
        BoxCloneSyncService::new(self.clone())
    }

    /// Sends one request through the stack.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>> {
        self.stack.clone().call(req).await
    }

    /// The shared counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The shared rate limiter (to inspect or impose pauses).
    pub fn rate_limiter(&self) -> &RateLimitLayer {
        &self.rate_limit
    }

    /// The shared per-key semaphores.
    pub fn concurrency(&self) -> &ConcurrencyLayer {
        &self.concurrency
    }

    /// The shared retry budget.
    pub fn retry_budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The validated config.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// Teaches the transport (and every clone of it) a cloud: its default
    /// limits, per-operation limits, shared buckets and response classifier.
    /// Each provider registers its own on the transport it is given, so one
    /// transport can serve several providers. Idempotent: registering a
    /// profile again replaces it with itself. Keys already used keep the
    /// limiter they were given, so register before the first call (a
    /// provider does so when it is built). An invalid limit is
    /// [`ErrorKind::InvalidConfig`](crate::ErrorKind::InvalidConfig) naming
    /// it, and nothing is registered.
    pub fn register_profile(&self, profile: CloudProfile) -> Result<()> {
        self.config.register_profile(profile)
    }
}

impl Service<Request<Bytes>> for Transport {
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = <HttpService as Service<Request<Bytes>>>::Future;

    /// Always ready: readiness depends on the request's key, so the waits
    /// (rate limit, concurrency, the client's own readiness) are in the
    /// call's future, bounded by its overall timeout.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        self.stack.clone().call(req)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    /// The stack composed from the public layers behaves like the pipeline
    /// and shares the transport's state: a 503 is retried, the response
    /// carries its `RetryInfo`, and the counters are the transport's.
    #[tokio::test(start_paused = true)]
    async fn layered_stack_retries_and_shares_state() {
        let calls = Arc::new(AtomicUsize::new(0));
        let fake = {
            let calls = calls.clone();
            tower::service_fn(move |_req: Request<Bytes>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    let mut resp = Response::new(Bytes::new());
                    if n == 0 {
                        *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    Ok::<_, Error>(resp)
                }
            })
        };
        let config = TransportConfig::default()
            .with_backoff(Duration::from_millis(10), Duration::from_millis(20));
        let transport = Transport::builder()
            .config(config)
            .build_with(fake.clone())
            .unwrap();
        let key = Key::new("test", "a", "r", ApiClass::Read);
        let req = Request::get("http://localhost/")
            .body(Bytes::new())
            .unwrap()
            .with_key(key.clone());
        let resp = layered(&transport, fake).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.extensions().get::<RetryInfo>().map(|i| i.attempts),
            Some(2)
        );
        let stats = transport.metrics().snapshot().get(&key);
        assert_eq!((stats.calls, stats.attempts, stats.retries), (1, 2, 1));
    }
}
