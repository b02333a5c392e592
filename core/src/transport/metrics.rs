//! Observability: a tracing span per call and per attempt, `metrics` crate
//! counters and histograms per key and status, and an in-process
//! [`Metrics`] handle whose [`Metrics::snapshot`] tests and benches read.
//!
//! Metric names ([`crate::metrics_catalogue`]; labels `provider`, `account`, `region`, `class`, plus
//! `status` where it applies; export them with any `metrics` recorder, e.g. a
//! Prometheus exporter):
//!
//! - `skyfleet_transport_calls_total` (`status`: the final HTTP status or the
//!   error kind) and `skyfleet_transport_call_seconds`;
//! - `skyfleet_transport_attempts_total` and `skyfleet_transport_attempt_seconds`;
//! - `skyfleet_transport_retries_total`, `skyfleet_transport_throttles_total`,
//!   `skyfleet_transport_timeouts_total` (`scope`: `attempt` or `overall`),
//!   `skyfleet_transport_retry_budget_exhausted_total`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;

use super::key::{Key, KeyMap, RequestExt};
use crate::metrics_catalogue as names;
use crate::Error;

/// The counters and metric handles of one key.
#[derive(Debug)]
pub(crate) struct Counters {
    /// The key's labels, built once (the strings are shared, not copied).
    labels: Vec<metrics::Label>,
    calls: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    throttles: AtomicU64,
    timeouts: AtomicU64,
    budget_exhausted: AtomicU64,
    errors: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// `metrics` handles per status, registered on first use: building a
    /// metric key (labels and hash) on every call would cost more than the
    /// rest of the stack. A key sees a handful of statuses, so a linear scan
    /// beats hashing.
    handles: Mutex<Vec<Handle>>,
}

type Handle = ((Series, Status), (metrics::Counter, metrics::Histogram));

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Series {
    Call,
    Attempt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Status {
    Http(u16),
    Named(&'static str),
}

impl Counters {
    fn observe(&self, series: Series, status: Status, seconds: f64) {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        let id = (series, status);
        let i = match handles.iter().position(|(h, _)| *h == id) {
            Some(i) => i,
            None => {
                handles.push((id, self.register(series, status)));
                handles.len() - 1
            }
        };
        let (counter, histogram) = &handles[i].1;
        counter.increment(1);
        histogram.record(seconds);
    }

    fn register(&self, series: Series, status: Status) -> (metrics::Counter, metrics::Histogram) {
        {
            let value = match status {
                Status::Http(s) => s.to_string(),
                Status::Named(n) => n.to_owned(),
            };
            let l = with_label(self, "status", value);
            match series {
                Series::Call => (
                    metrics::counter!(names::TRANSPORT_CALLS, l.clone()),
                    metrics::histogram!(names::TRANSPORT_CALL_SECONDS, l),
                ),
                Series::Attempt => (
                    metrics::counter!(names::TRANSPORT_ATTEMPTS, l.clone()),
                    metrics::histogram!(names::TRANSPORT_ATTEMPT_SECONDS, l),
                ),
            }
        }
    }
}

/// The counters of one key at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStats {
    /// Calls made (each may take several attempts).
    pub calls: u64,
    /// HTTP exchanges attempted.
    pub attempts: u64,
    /// Retries started by the retry policy.
    pub retries: u64,
    /// Throttle answers seen (each pauses the key).
    pub throttles: u64,
    /// Attempts or calls cut by a timeout.
    pub timeouts: u64,
    /// Retries refused because the key's retry budget was empty.
    pub budget_exhausted: u64,
    /// Attempts that ended in an error without an HTTP response (connection
    /// errors; attempts cut by a timeout are counted in `timeouts`).
    pub errors: u64,
    /// Attempts per HTTP status received.
    pub statuses: BTreeMap<u16, u64>,
}

impl KeyStats {
    fn add(&mut self, o: &KeyStats) {
        self.calls += o.calls;
        self.attempts += o.attempts;
        self.retries += o.retries;
        self.throttles += o.throttles;
        self.timeouts += o.timeouts;
        self.budget_exhausted += o.budget_exhausted;
        self.errors += o.errors;
        for (s, n) in &o.statuses {
            *self.statuses.entry(*s).or_default() += n;
        }
    }
}

/// The counters of every key seen, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Per key.
    pub keys: BTreeMap<Key, KeyStats>,
}

impl MetricsSnapshot {
    /// The counters of `key` (zero when never seen).
    pub fn get(&self, key: &Key) -> KeyStats {
        self.keys.get(key).cloned().unwrap_or_default()
    }

    /// The sum over every key.
    pub fn total(&self) -> KeyStats {
        let mut t = KeyStats::default();
        for s in self.keys.values() {
            t.add(s);
        }
        t
    }
}

/// The shared, cloneable in-process counters of a transport stack. Every
/// layer that observes an event records it here; every clone sees the same
/// numbers.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    keys: Arc<Mutex<KeyMap<Arc<Counters>>>>,
}

fn key_labels(key: &Key) -> Vec<metrics::Label> {
    let [provider, account, region] = key.shared_parts();
    vec![
        metrics::Label::new("provider", provider.clone()),
        metrics::Label::new("account", account.clone()),
        metrics::Label::new("region", region.clone()),
        metrics::Label::new("class", key.class().as_str()),
    ]
}

fn with_label(c: &Counters, name: &'static str, value: String) -> Vec<metrics::Label> {
    let mut l = Vec::with_capacity(c.labels.len() + 1);
    l.extend(c.labels.iter().cloned());
    l.push(metrics::Label::new(name, value));
    l
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Empty counters.
    pub fn new() -> Self {
        Metrics::default()
    }

    pub(crate) fn counters(&self, key: &Key) -> Arc<Counters> {
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is still usable.
        let mut map = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(key) {
            return c.clone();
        }
        let c = Arc::new(Counters {
            labels: key_labels(key),
            calls: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            budget_exhausted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            statuses: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(Vec::new()),
        });
        map.insert(key.clone(), c.clone());
        c
    }

    /// A copy of every key's counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let map = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = map
            .iter()
            .map(|(k, c)| {
                let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let stats = KeyStats {
                    calls: l(&c.calls),
                    attempts: l(&c.attempts),
                    retries: l(&c.retries),
                    throttles: l(&c.throttles),
                    timeouts: l(&c.timeouts),
                    budget_exhausted: l(&c.budget_exhausted),
                    errors: l(&c.errors),
                    statuses: c
                        .statuses
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                };
                (k.clone(), stats)
            })
            .collect();
        MetricsSnapshot { keys }
    }

    pub(crate) fn record_call(&self, key: &Key, status: Result<u16, &'static str>, seconds: f64) {
        Metrics::call_ended(&self.counters(key), status, seconds);
    }

    /// Counts a call of `c`'s key that ended with `status` (the HTTP status
    /// or the error kind) after `seconds`.
    pub(crate) fn call_ended(c: &Counters, status: Result<u16, &'static str>, seconds: f64) {
        bump(&c.calls);
        let status = match status {
            Ok(s) => Status::Http(s),
            Err(name) => Status::Named(name),
        };
        c.observe(Series::Call, status, seconds);
    }

    fn attempt_started(&self, key: &Key) -> Arc<Counters> {
        let c = self.counters(key);
        Metrics::attempt_started_on(&c);
        c
    }

    /// Counts an attempt of `c`'s key as started.
    pub(crate) fn attempt_started_on(c: &Counters) {
        bump(&c.attempts);
    }

    /// Counts an attempt that ended with an HTTP `status` (`None`: an error
    /// without a response) after `seconds`. An attempt cut by its timeout
    /// never ends here: it is counted in `timeouts`.
    pub(crate) fn attempt_ended(c: &Counters, status: Option<u16>, seconds: f64) {
        let status = match status {
            Some(s) => {
                *c.statuses
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(s)
                    .or_default() += 1;
                Status::Http(s)
            }
            None => {
                bump(&c.errors);
                Status::Named("error")
            }
        };
        c.observe(Series::Attempt, status, seconds);
    }

    pub(crate) fn record_retry(&self, key: &Key) {
        let c = self.counters(key);
        bump(&c.retries);
        metrics::counter!(names::TRANSPORT_RETRIES, c.labels.clone()).increment(1);
    }

    pub(crate) fn record_throttle(&self, key: &Key) {
        let c = self.counters(key);
        bump(&c.throttles);
        metrics::counter!(names::TRANSPORT_THROTTLES, c.labels.clone()).increment(1);
    }

    pub(crate) fn record_timeout(&self, key: &Key, scope: &'static str) {
        let c = self.counters(key);
        bump(&c.timeouts);
        let l = with_label(&c, "scope", scope.to_owned());
        metrics::counter!(names::TRANSPORT_TIMEOUTS, l).increment(1);
    }

    pub(crate) fn record_budget_exhausted(&self, key: &Key) {
        let c = self.counters(key);
        bump(&c.budget_exhausted);
        metrics::counter!(names::TRANSPORT_BUDGET_EXHAUSTED, c.labels.clone()).increment(1);
    }
}

/// The `skyfleet.transport.call` span of a call.
pub(crate) fn call_span(key: &Key, operation: &str) -> tracing::Span {
    tracing::debug_span!(
        "skyfleet.transport.call",
        provider = key.provider(),
        account = key.account(),
        region = key.region(),
        class = key.class().as_str(),
        operation,
        status = tracing::field::Empty,
    )
}

/// The `skyfleet.transport.attempt` span of attempt number `attempt`.
pub(crate) fn attempt_span(attempt: u32) -> tracing::Span {
    tracing::debug_span!(
        "skyfleet.transport.attempt",
        attempt,
        status = tracing::field::Empty,
    )
}

/// A call's final status (the HTTP status or the error kind), recorded on
/// its span.
pub(crate) fn call_status(
    span: &tracing::Span,
    res: &Result<Response<Bytes>, Error>,
) -> Result<u16, &'static str> {
    let status = match res {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(e.kind().name()),
    };
    match status {
        Ok(s) => span.record("status", s),
        Err(name) => span.record("status", name),
    };
    status
}

/// An attempt's HTTP status (`None`: an error), recorded on its span.
pub(crate) fn attempt_status(
    span: &tracing::Span,
    res: &Result<Response<Bytes>, Error>,
) -> Option<u16> {
    let status = res.as_ref().ok().map(|r| r.status().as_u16());
    match status {
        Some(s) => span.record("status", s),
        None => span.record("status", "error"),
    };
    status
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Boxes `fut`, entering `span` on every poll unless the span is disabled
/// (no subscriber wants it, as with the default `error` filter): entering
/// and leaving a disabled span on each of a call's polls does nothing but
/// costs instructions, and this runs twice per call.
fn instrument<F>(fut: F, span: tracing::Span) -> BoxFuture<F::Output>
where
    F: Future + Send + 'static,
{
    if span.is_disabled() {
        Box::pin(fut)
    } else {
        Box::pin(fut.instrument(span))
    }
}

/// Outermost layer: one `skyfleet.transport.call` span per call (provider,
/// account, region, class, operation, final status), the calls counter and
/// the whole-call latency.
#[derive(Debug, Clone)]
pub struct CallMetricsLayer {
    metrics: Metrics,
}

impl CallMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        CallMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;
    fn layer(&self, inner: S) -> CallMetrics<S> {
        CallMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`CallMetricsLayer`].
#[derive(Debug, Clone)]
pub struct CallMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<Request<Bytes>> for CallMetrics<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = BoxFuture<Result<Response<Bytes>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let key = req.transport_key();
        let span = call_span(&key, req.operation());
        let metrics = self.metrics.clone();
        let fut = {
            let _e = span.enter();
            self.inner.call(req)
        };
        let span2 = span.clone();
        let body = async move {
            let start = Instant::now();
            let res = fut.await;
            let status = call_status(&span2, &res);
            metrics.record_call(&key, status, start.elapsed().as_secs_f64());
            res
        };
        instrument(body, span)
    }
}

/// Innermost layer (just above the client): one `skyfleet.transport.attempt`
/// span per HTTP exchange (attempt number, status), the attempts counter per
/// status and the attempt latency.
#[derive(Debug, Clone)]
pub struct AttemptMetricsLayer {
    metrics: Metrics,
}

impl AttemptMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        AttemptMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for AttemptMetricsLayer {
    type Service = AttemptMetrics<S>;
    fn layer(&self, inner: S) -> AttemptMetrics<S> {
        AttemptMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`AttemptMetricsLayer`].
#[derive(Debug, Clone)]
pub struct AttemptMetrics<S> {
    inner: S,
    metrics: Metrics,
}

impl<S> Service<Request<Bytes>> for AttemptMetrics<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = BoxFuture<Result<Response<Bytes>, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let key = req.transport_key();
        let span = attempt_span(req.attempt());
        let counters = self.metrics.attempt_started(&key);
        let fut = {
            let _e = span.enter();
            self.inner.call(req)
        };
        let span2 = span.clone();
        let body = async move {
            let start = Instant::now();
            let res = fut.await;
            let status = attempt_status(&span2, &res);
            Metrics::attempt_ended(&counters, status, start.elapsed().as_secs_f64());
            res
        };
        instrument(body, span)
    }
}
