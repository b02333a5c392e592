//! [`TimeoutLayer`]: a deadline per API class, used twice in the stack.
//!
//! The outer instance bounds the whole call (limiter waits, retries and
//! backoff included) so a caller always gets an answer in bounded time; the
//! inner one bounds each HTTP exchange so one hung connection costs one
//! attempt, not the call. Both read their duration from the request's
//! [`ApiClass`](super::ApiClass), because a `RunInstances` may legitimately
//! take longer than a `Describe`. An elapsed deadline drops the inner future
//! (closing the connection) and yields [`ErrorKind::Timeout`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use super::config::TransportConfig;
use super::key::{Key, OperationName, RequestExt};
use super::metrics::Metrics;
use crate::{Error, ErrorKind};

/// Which deadline a [`TimeoutLayer`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutScope {
    /// One HTTP exchange ([`Timeouts::attempt`](super::Timeouts::attempt)).
    Attempt,
    /// The whole call ([`Timeouts::overall`](super::Timeouts::overall)).
    Overall,
}

impl TimeoutScope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TimeoutScope::Attempt => "attempt",
            TimeoutScope::Overall => "overall",
        }
    }
}

/// Cuts calls that exceed their class's deadline.
#[derive(Debug, Clone)]
pub struct TimeoutLayer {
    config: Arc<TransportConfig>,
    metrics: Metrics,
    scope: TimeoutScope,
}

impl TimeoutLayer {
    /// A layer enforcing the `scope` deadlines of `config`, counting
    /// timeouts in `metrics`.
    pub fn new(config: Arc<TransportConfig>, metrics: Metrics, scope: TimeoutScope) -> Self {
        TimeoutLayer {
            config,
            metrics,
            scope,
        }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S> Service<Request<Bytes>> for Timeout<S>
where
    S: Service<Request<Bytes>, Response = Response<Bytes>, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = Response<Bytes>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let key = req.transport_key();
        let t = self.layer.config.timeouts(key.class());
        let scope = self.layer.scope;
        let limit = match scope {
            TimeoutScope::Attempt => t.attempt,
            TimeoutScope::Overall => t.overall,
        };
        // Only the error path reads the operation: clone the extension (a
        // `Cow`, usually borrowed) rather than allocating a `String` per call.
        let operation = req.extensions().get::<OperationName>().cloned();
        let attempt = req.attempt();
        let metrics = self.layer.metrics.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(res) => res,
                Err(_elapsed) => Err(timed_out(
                    &metrics,
                    &key,
                    operation.as_ref().map(OperationName::as_str).unwrap_or(""),
                    attempt,
                    scope,
                    limit,
                )),
            }
        })
    }
}

/// The error (and the metric and log line) of a call or attempt cut by its
/// `scope` deadline of `limit`; shared with the pipeline of
/// [`Transport`](super::Transport), which applies the same deadlines.
pub(crate) fn timed_out(
    metrics: &Metrics,
    key: &Key,
    operation: &str,
    attempt: u32,
    scope: TimeoutScope,
    limit: Duration,
) -> Error {
    metrics.record_timeout(key, scope.as_str());
    tracing::warn!(key = %key, operation, attempt, scope = scope.as_str(),
        limit_ms = limit.as_millis() as u64, "call timed out");
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{} of {operation} ({key}) timed out after {} ms",
            match scope {
                TimeoutScope::Attempt => format!("attempt {attempt}"),
                TimeoutScope::Overall => "call".to_owned(),
            },
            limit.as_millis()
        ),
    )
    .with_provider(key.provider())
    .with_code(match scope {
        TimeoutScope::Attempt => "attempt_timeout",
        TimeoutScope::Overall => "call_timeout",
    })
}
