//! The stack a [`Transport`](super::Transport) runs: every layer's logic,
//! in the documented order, in **one future per call**.
//!
//! Composed from the public layers, each call builds one boxed future per
//! layer (six, plus tower's `Retry`, which also clones the request and the
//! rest of the stack per call), moves the request and those futures through
//! every layer, and arms two timers (overall and per attempt). On loopback
//! that was more than 10k instructions per call, run cache-cold between two
//! I/O waits: ~10 % of the round trip. Here the same steps call the same
//! per-layer code (each module keeps its concern and exposes it as small
//! functions: [`RateLimitLayer::bucket`] and friends,
//! [`ConcurrencyLayer::try_acquire`], [`RetryPolicy`],
//! [`timed_out`], the metrics and spans of [`super::metrics`]) from one
//! `async` block:
//!
//! - one allocation for the whole stack (the boxed call future), nothing
//!   moved between layers;
//! - **one timer** per call: the attempt's deadline is the earlier of the
//!   per-attempt and overall deadlines, and which one fired tells the
//!   scope; the same `Sleep` is reset for each attempt and bounds the
//!   backoff and the limiter and semaphore waits by the overall deadline;
//! - no clone of the stack per call: the shared state is behind one `Arc`;
//!   the request is still cloned per attempt (headers and extensions, so
//!   idempotency tokens are identical on every attempt), as the retry policy
//!   keeps the original to decide on and to repeat.
//!
//! Behaviour is the layered stack's: the limiter and semaphore waits are
//! not counted against an attempt but are against the call; a hung attempt
//! is cut (and dropped, closing its connection) and classified `Timeout`; a
//! throttle answer pauses the key before the retry policy sees it; an
//! attempt cut by its timeout is counted in `timeouts`, not as an ended
//! attempt. The public layers stay for users composing their own stack
//! ([`layered`](super::layered) builds the same stack from them).

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Instant as StdInstant;

use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::retry::Policy;
use tower::Service;
use tracing::Instrument;

use super::concurrency::ConcurrencyLayer;
use super::config::{Timeouts, TransportConfig};
use super::key::{Key, KeyMap, RequestExt};
use super::metrics::{attempt_span, attempt_status, call_span, call_status, Counters, Metrics};
use super::rate_limit::{KeyBuckets, RateLimitLayer};
use super::retry::{clone_request, RetryPolicy};
use super::timeout::{timed_out, TimeoutScope};
use crate::{Error, Result};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A stack over some client, behind the `Arc` a [`Transport`](super::Transport)
/// shares (the client's type is erased here).
pub(crate) trait Pipeline: Send + Sync {
    fn call(self: Arc<Self>, req: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>>;
}

/// What the pipeline needs of a key, looked up once per key: each layer
/// keeps its own map, and providers build a fresh `Key` per request, so
/// each of those lookups compares the key's strings.
pub(crate) struct PerKey {
    counters: Arc<Counters>,
    buckets: KeyBuckets,
    semaphore: Arc<Semaphore>,
}

/// The shared state of every layer and the client.
pub(crate) struct Stack<S> {
    /// The per-key cache (entries are never replaced in the layers' maps,
    /// so a cached handle stays the layer's).
    pub(crate) keys: Mutex<KeyMap<Arc<PerKey>>>,
    pub(crate) client: S,
    pub(crate) config: Arc<TransportConfig>,
    pub(crate) metrics: Metrics,
    pub(crate) rate_limit: RateLimitLayer,
    pub(crate) concurrency: ConcurrencyLayer,
    pub(crate) policy: RetryPolicy,
}

impl<S> Pipeline for Stack<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn call(self: Arc<Self>, req: Request<Bytes>) -> BoxFuture<Result<Response<Bytes>>> {
        let key = req.transport_key();
        let span = call_span(&key, req.operation());
        // A disabled span (no subscriber wants it) is not entered per poll.
        if span.is_disabled() {
            Box::pin(self.run(key, req, span))
        } else {
            let outer = span.clone();
            Box::pin(self.run(key, req, span).instrument(outer))
        }
    }
}

/// How an attempt's wait ended.
enum Waited<T> {
    Done(T),
    /// The timer fired first.
    Elapsed,
}

/// Polls `fut`, then `timer`: the first ready wins (like tokio's `Timeout`,
/// a result that is ready when the deadline passes is kept).
fn race<'a, F: Future>(
    mut fut: Pin<&'a mut F>,
    mut timer: Pin<&'a mut Sleep>,
) -> impl Future<Output = Waited<F::Output>> + 'a {
    poll_fn(move |cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Waited::Done(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Waited::Elapsed);
        }
        Poll::Pending
    })
}

impl<S> Stack<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    /// The whole call: call metrics and overall timeout around retry, rate
    /// limit, concurrency, attempt timeout and attempt metrics, in that
    /// order, for each attempt.
    ///
    /// One function, not one per layer, and written so that little is held
    /// across its awaits: its future is allocated on every call, and one
    /// small enough for the allocator's per-thread cache (about 1 KiB)
    /// costs a fraction of a larger one.
    ///
    /// Not an `async fn`: its parameters would be stored twice in the
    /// future (as arguments, then as locals); an `async move` block uses
    /// what it captures in place (928 bytes here, 1,240 as an `async fn`).
    #[allow(clippy::manual_async_fn)]
    fn run(
        self: Arc<Self>,
        key: Key,
        mut req: Request<Bytes>,
        span: tracing::Span,
    ) -> impl Future<Output = Result<Response<Bytes>>> + Send {
        async move {
            // Clock reads are shared where the instants coincide: the call's
            // start is the first attempt's when nothing had to wait, and an
            // attempt's end is the call's when it is the last.
            let call_started = StdInstant::now();
            let now = Instant::now();
            let per = self.per_key(&key);
            let counters = &per.counters;
            let t: Timeouts = self.config.timeouts(key.class());
            let overall = now + t.overall;
            let mut policy = self.policy.clone();
            // The call's one timer, created at the first attempt's deadline.
            let mut timer = pin!(None::<Sleep>);
            let mut waited_since_start = false;
            loop {
                // Rate limit, then concurrency: fast paths take a token and a
                // permit without waiting; waits are bounded by the call only
                // and boxed (only the slow path pays for them, and they would
                // grow every call's future).
                let bucket = self
                    .rate_limit
                    .bucket_in(&per.buckets, &key, req.operation());
                if !self.rate_limit.try_acquire(&bucket) {
                    waited_since_start = true;
                    let mut wait = Box::pin(self.rate_limit.acquire(&bucket));
                    if let Waited::Elapsed = race(wait.as_mut(), set(timer.as_mut(), overall)).await
                    {
                        return self.finish(
                            &span,
                            counters,
                            call_started,
                            None,
                            self.overall_timeout(&key, &req, t),
                        );
                    }
                }
                let permit = match ConcurrencyLayer::try_acquire_on(&per.semaphore) {
                    Some(permit) => permit,
                    None => {
                        let sem = per.semaphore.clone();
                        waited_since_start = true;
                        let mut wait = Box::pin(ConcurrencyLayer::acquire(sem));
                        match race(wait.as_mut(), set(timer.as_mut(), overall)).await {
                            Waited::Done(Ok(permit)) => permit,
                            Waited::Done(Err(e)) => {
                                return self.finish(&span, counters, call_started, None, Err(e))
                            }
                            Waited::Elapsed => {
                                return self.finish(
                                    &span,
                                    counters,
                                    call_started,
                                    None,
                                    self.overall_timeout(&key, &req, t),
                                )
                            }
                        }
                    }
                };
                // The attempt, under the earlier of its two deadlines.
                let (started, attempt_deadline) = if waited_since_start {
                    (StdInstant::now(), Instant::now() + t.attempt)
                } else {
                    (call_started, now + t.attempt)
                };
                let (deadline, scope) = if attempt_deadline < overall {
                    (attempt_deadline, TimeoutScope::Attempt)
                } else {
                    (overall, TimeoutScope::Overall)
                };
                let number = req.attempt();
                Metrics::attempt_started_on(counters);
                let attempt = attempt_span(number);
                let exchange = self.exchange(&req, &attempt);
                let (mut res, ended) =
                    match race(pin!(exchange), set(timer.as_mut(), deadline)).await {
                        Waited::Done(res) => {
                            let ended = StdInstant::now();
                            let status = attempt_status(&attempt, &res);
                            let seconds = ended.duration_since(started).as_secs_f64();
                            Metrics::attempt_ended(counters, status, seconds);
                            (res, Some(ended))
                        }
                        Waited::Elapsed if scope == TimeoutScope::Overall => {
                            return self.finish(
                                &span,
                                counters,
                                call_started,
                                None,
                                self.overall_timeout(&key, &req, t),
                            );
                        }
                        Waited::Elapsed => {
                            let e = timed_out(
                                &self.metrics,
                                &key,
                                req.operation(),
                                number,
                                TimeoutScope::Attempt,
                                t.attempt,
                            );
                            (Err(e), None)
                        }
                    };
                drop(permit);
                self.rate_limit.observe(&key, &bucket, &res);
                let Some(backoff) = policy.retry(&mut req, &mut res) else {
                    return self.finish(&span, counters, call_started, ended, res);
                };
                drop(res);
                waited_since_start = true;
                let mut backoff = Box::pin(backoff);
                if let Waited::Elapsed = race(backoff.as_mut(), set(timer.as_mut(), overall)).await
                {
                    return self.finish(
                        &span,
                        counters,
                        call_started,
                        None,
                        self.overall_timeout(&key, &req, t),
                    );
                }
            }
        }
    }

    fn per_key(&self, key: &Key) -> Arc<PerKey> {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(per) = keys.get(key) {
            return per.clone();
        }
        let per = Arc::new(PerKey {
            counters: self.metrics.counters(key),
            buckets: self.rate_limit.key_buckets(key),
            semaphore: self.concurrency.semaphore(key),
        });
        keys.insert(key.clone(), per.clone());
        per
    }

    /// Records the end of a call (span status, calls counter, latency up to
    /// `ended`, now when `None`) and returns its result.
    fn finish(
        &self,
        span: &tracing::Span,
        counters: &Counters,
        started: StdInstant,
        ended: Option<StdInstant>,
        res: Result<Response<Bytes>>,
    ) -> Result<Response<Bytes>> {
        let ended = ended.unwrap_or_else(StdInstant::now);
        let status = call_status(span, &res);
        Metrics::call_ended(
            counters,
            status,
            ended.duration_since(started).as_secs_f64(),
        );
        res
    }

    /// The error of a call cut by its overall deadline.
    fn overall_timeout(
        &self,
        key: &Key,
        req: &Request<Bytes>,
        t: Timeouts,
    ) -> Result<Response<Bytes>> {
        Err(timed_out(
            &self.metrics,
            key,
            req.operation(),
            req.attempt(),
            TimeoutScope::Overall,
            t.overall,
        ))
    }

    /// One HTTP exchange through the client, in the attempt's span, with a
    /// clone of `req` (the retry policy keeps the original). The clone is
    /// taken once the client is ready and moved straight into it, so the
    /// call's future holds one request, not three.
    async fn exchange(
        &self,
        req: &Request<Bytes>,
        span: &tracing::Span,
    ) -> Result<Response<Bytes>> {
        let mut client = self.client.clone();
        poll_fn(|cx| client.poll_ready(cx)).await?;
        let req = clone_request(req);
        // A disabled span (no subscriber wants it) is not entered per poll.
        if span.is_disabled() {
            client.call(req).await
        } else {
            let fut = {
                let _entered = span.enter();
                client.call(req)
            };
            fut.instrument(span.clone()).await
        }
    }
}

/// The call's timer, (re)armed for `deadline`.
fn set(mut timer: Pin<&mut Option<Sleep>>, deadline: Instant) -> Pin<&mut Sleep> {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) if sleep.deadline() == deadline => {}
        Some(sleep) => sleep.reset(deadline),
        None => timer.set(Some(tokio::time::sleep_until(deadline))),
    }
    timer.as_pin_mut().expect("the timer was just set")
}
