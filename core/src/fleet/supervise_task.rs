//! Supervision of the fleet's long-running tasks (a pool's provisioner, a
//! provider's scanner supervisor, the orphan sweeper) and of single steps.
//!
//! A panic in one of these loops used to end it silently: the pool stopped
//! being provisioned and nothing said so. [`supervise`] runs a task from a
//! factory and, when it panics, logs the panic at `error`, counts it in
//! `skyfleet_task_panics_total{task}`, waits a bounded exponential backoff
//! and starts a fresh one, until the fleet is cancelled. [`CatchPanic`]
//! turns a panic inside a future into an `Err` carrying its message, so a
//! provider step that panics becomes a step error (the worker is retried
//! with backoff, not lost with its lease).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::events;
use crate::metrics_catalogue as names;

/// How a supervised task is restarted after a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    /// The wait before the first restart.
    pub(crate) min: Duration,
    /// The longest wait; the wait doubles per panic in a row up to it.
    pub(crate) max: Duration,
    /// A task that ran this long before panicking was healthy: its next
    /// restart waits `min` again.
    pub(crate) healthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// The wait after a panic, given the previous wait (`None`: first panic
    /// or after a healthy run). Doubles, never above `max`.
    fn next(&self, previous: Option<Duration>) -> Duration {
        match previous {
            None => self.min.min(self.max),
            Some(d) => d.saturating_mul(2).min(self.max),
        }
    }
}

/// Runs the task `make` builds until it returns or `cancel` fires; each
/// time it panics, logs and counts the panic (`task` names it in the log
/// line and the metric's label), waits per `policy` and runs a new one. A
/// task that returns normally is not restarted.
pub(crate) async fn supervise<F, Fut>(
    task: String,
    policy: RestartPolicy,
    cancel: CancellationToken,
    mut make: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut wait: Option<Duration> = None;
    loop {
        let started = Instant::now();
        let Err(panic) = CatchPanic::new(make()).await else {
            return;
        };
        metrics::counter!(names::TASK_PANICS, "task" => task.clone()).increment(1);
        if cancel.is_cancelled() {
            tracing::error!(
                target: events::TARGET, event = "task.panicked", task = task.as_str(),
                panic = panic.as_str(), "a fleet task panicked while stopping"
            );
            return;
        }
        if started.elapsed() >= policy.healthy_after {
            wait = None;
        }
        let delay = policy.next(wait);
        wait = Some(delay);
        tracing::error!(
            target: events::TARGET, event = "task.panicked", task = task.as_str(),
            panic = panic.as_str(), restart_in_s = delay.as_secs_f64(),
            "a fleet task panicked: restarting it"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// A future that answers its inner future's output, or `Err` with the
/// panic's message if polling it panicked. The inner future is not polled
/// again after a panic.
pub(crate) struct CatchPanic<F> {
    inner: Option<Pin<Box<F>>>,
}

impl<F: Future> CatchPanic<F> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: F) -> Self {
        CatchPanic {
            inner: Some(Box::pin(inner)),
        }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err("polled again after it panicked".into()));
        };
        // Unwind safety: after a panic the inner future is dropped below and
        // never polled again, so no state it left half-updated is observed
        // through it; shared state it touched is behind poison-tolerant
        // locks or atomics.
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                self.inner = None;
                Poll::Ready(Ok(v))
            }
            Err(payload) => {
                self.inner = None;
                Poll::Ready(Err(panic_message(payload.as_ref())))
            }
        }
    }
}

/// Counts and logs a provider step (of `workers` workers) that panicked;
/// answers the message of the error each of its workers gets.
pub(crate) fn step_panicked(provider: &str, workers: usize, panic: &str) -> String {
    metrics::counter!(names::STEP_PANICS, "provider" => provider.to_string()).increment(1);
    tracing::error!(
        target: events::TARGET, event = "step.panicked", provider, workers, panic,
        "a provider step panicked: its workers are retried with backoff"
    );
    format!("the step panicked: {panic}")
}

/// The message of a panic payload (`panic!("...")` gives a `&str` or a
/// `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_restart_wait_doubles_up_to_its_cap() {
        let p = RestartPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(300),
        };
        let mut wait = None;
        let mut seen = Vec::new();
        for _ in 0..9 {
            let d = p.next(wait);
            seen.push(d.as_secs());
            wait = Some(d);
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Saturating: a huge wait does not overflow.
        assert_eq!(p.next(Some(Duration::MAX)), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_twice_is_restarted_until_it_finishes() {
        let runs = Arc::new(AtomicUsize::new(0));
        let started = tokio::time::Instant::now();
        let r = runs.clone();
        supervise(
            "test".into(),
            RestartPolicy::default(),
            CancellationToken::new(),
            move || {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("boom");
                    }
                }
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // Waited 1 s then 2 s between the runs.
        assert_eq!(started.elapsed().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_during_the_backoff_ends_supervision() {
        let cancel = CancellationToken::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let c = cancel.clone();
        supervise("test".into(), RestartPolicy::default(), cancel, move || {
            let (r, c) = (r.clone(), c.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                // Cancelled while the supervisor waits to restart.
                let c2 = c.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    c2.cancel();
                });
                panic!("always");
            }
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_future_gives_its_message() {
        let r = CatchPanic::new(async { panic!("step {} exploded", 7) }).await;
        assert_eq!(r.unwrap_err(), "step 7 exploded");
        let ok = CatchPanic::new(async { 5 }).await;
        assert_eq!(ok.unwrap(), 5);
    }
}
