//! Parity of the two ways to run the transport stack: the production
//! pipeline ([`Transport::send`], `pipeline.rs`) and the same stack composed
//! from the public tower layers ([`transport::layered`]). One scenario
//! exercises every concern (throttle pause, retry budget, per-attempt and
//! overall timeouts, concurrency limit); both paths must make the same
//! attempts at the same (virtual) times and end every call the same way.
//!
//! Randomness is switched off (backoff min = max, no limiter jitter) and the
//! clock is tokio's paused one, so each run is deterministic.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use skyfleet_core::transport::{
    self, ApiClass, Attempt, Budget, Key, KeyStats, Limit, RequestExt, RetryInfo, StopReason,
    Transport, TransportConfig,
};
use skyfleet_core::Error;
use tokio::time::Instant;
use tower::ServiceExt;

/// Which way the scenario's calls go through the stack.
#[derive(Debug, Clone, Copy)]
enum Path {
    Pipeline,
    Layered,
}

/// One attempt as the fake cloud saw it: the phase (the key's region), the
/// attempt number the stack stamped on it, and when (ms since the start).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeenAttempt {
    at_ms: u128,
    phase: String,
    attempt: Option<u32>,
}

/// How one call ended: the status and retry info, or the error's kind and
/// code, and when (ms since the start).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CallEnd {
    phase: &'static str,
    at_ms: u128,
    outcome: Result<(u16, u32, String), (String, Option<String>)>,
}

/// Everything observable about one run.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    attempts: Vec<SeenAttempt>,
    calls: Vec<CallEnd>,
    stats: Vec<(&'static str, KeyStats)>,
    max_in_flight: usize,
}

/// The phases, one key (region) each so their budgets and pauses are apart.
const THROTTLE: &str = "throttle";
const ATTEMPT_TIMEOUT: &str = "attempt-timeout";
const BUDGET: &str = "budget";
const OVERALL_TIMEOUT: &str = "overall-timeout";
const CONCURRENCY: &str = "concurrency";
const PHASES: [&str; 5] = [
    THROTTLE,
    ATTEMPT_TIMEOUT,
    BUDGET,
    OVERALL_TIMEOUT,
    CONCURRENCY,
];

fn key(phase: &str) -> Key {
    Key::new("test", "acct", phase, ApiClass::Read)
}

fn config() -> TransportConfig {
    TransportConfig::default()
        .with_default_limit(Limit::per_second(1000, 1000))
        .with_backoff(Duration::from_millis(100), Duration::from_millis(100))
        .with_limiter_jitter(Duration::ZERO)
        .with_max_attempts(10)
        .with_max_concurrency(2)
        .with_timeouts(
            ApiClass::Read,
            Duration::from_secs(2),
            Duration::from_secs(5),
        )
        .with_retry_budget(Budget {
            capacity: 10,
            retry_cost: 5,
            timeout_cost: 5,
            success_refund: 1,
        })
}

/// The fake cloud: what each phase's n-th attempt gets.
#[derive(Clone, Default)]
struct Cloud {
    start: Arc<Mutex<Option<Instant>>>,
    seen: Arc<Mutex<Vec<SeenAttempt>>>,
    in_flight: Arc<Mutex<(usize, usize)>>,
}

impl Cloud {
    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = Error,
        Future = impl Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static {
        let cloud = self.clone();
        tower::service_fn(move |req: Request<Bytes>| {
            let cloud = cloud.clone();
            async move {
                let phase = req.transport_key().region().to_string();
                let n = {
                    let start = cloud.start.lock().unwrap().expect("started");
                    let mut seen = cloud.seen.lock().unwrap();
                    let n = seen.iter().filter(|s| s.phase == phase).count();
                    seen.push(SeenAttempt {
                        at_ms: start.elapsed().as_millis(),
                        phase: phase.clone(),
                        attempt: req.extensions().get::<Attempt>().map(|a| a.0),
                    });
                    n
                };
                let status = match phase.as_str() {
                    // A throttle naming its pause, then success.
                    THROTTLE if n == 0 => {
                        return Ok(Response::builder()
                            .status(429)
                            .header("retry-after", "3")
                            .body(Bytes::new())
                            .unwrap());
                    }
                    // A hung first attempt, then success.
                    ATTEMPT_TIMEOUT if n == 0 => std::future::pending().await,
                    // Always unavailable: retries until the budget is spent.
                    BUDGET => 503,
                    // Always hung: attempts until the overall timeout.
                    OVERALL_TIMEOUT => std::future::pending().await,
                    // Slow successes, to fill the concurrency limit.
                    CONCURRENCY => {
                        {
                            let mut f = cloud.in_flight.lock().unwrap();
                            f.0 += 1;
                            f.1 = f.1.max(f.0);
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        cloud.in_flight.lock().unwrap().0 -= 1;
                        200
                    }
                    _ => 200,
                };
                Ok(Response::builder()
                    .status(status)
                    .body(Bytes::new())
                    .unwrap())
            }
        })
    }
}

/// How a run sends one request (the pipeline, or the layered service).
type SendFn = Arc<
    dyn Fn(Request<Bytes>) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, Error>> + Send>>
        + Send
        + Sync,
>;

fn get(phase: &str) -> Request<Bytes> {
    Request::get("http://fake.invalid/x")
        .body(Bytes::new())
        .unwrap()
        .with_key(key(phase))
        .with_operation("Get")
}

async fn call(send: &SendFn, phase: &'static str, start: Instant) -> CallEnd {
    let result = send(get(phase)).await;
    let outcome = match result {
        Ok(resp) => {
            let info = resp
                .extensions()
                .get::<RetryInfo>()
                .copied()
                .unwrap_or(RetryInfo {
                    attempts: 0,
                    stop: StopReason::Succeeded,
                });
            Ok((resp.status().as_u16(), info.attempts, info.stop.to_string()))
        }
        Err(e) => Err((e.kind().name().to_string(), e.code().map(str::to_string))),
    };
    CallEnd {
        phase,
        at_ms: start.elapsed().as_millis(),
        outcome,
    }
}

/// Runs the scenario through `path` on a fresh transport and cloud.
async fn run(path: Path) -> Trace {
    let cloud = Cloud::default();
    let t = Transport::builder()
        .config(config())
        .build_with(cloud.service())
        .unwrap();
    let send: SendFn = match path {
        Path::Pipeline => {
            let t = t.clone();
            Arc::new(move |req| {
                let t = t.clone();
                Box::pin(async move { t.send(req).await })
            })
        }
        Path::Layered => {
            let svc = transport::layered(&t, cloud.service());
            Arc::new(move |req| Box::pin(svc.clone().oneshot(req)))
        }
    };
    let start = Instant::now();
    *cloud.start.lock().unwrap() = Some(start);
    let mut calls = Vec::new();
    // Sequential phases: each call's timing follows from the last.
    calls.push(call(&send, THROTTLE, start).await);
    calls.push(call(&send, ATTEMPT_TIMEOUT, start).await);
    calls.push(call(&send, BUDGET, start).await);
    calls.push(call(&send, BUDGET, start).await);
    calls.push(call(&send, OVERALL_TIMEOUT, start).await);
    // Five concurrent calls on one key, at most two in flight.
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let send = send.clone();
            tokio::spawn(async move { call(&send, CONCURRENCY, start).await })
        })
        .collect();
    for task in tasks {
        calls.push(task.await.unwrap());
    }
    let mut attempts = cloud.seen.lock().unwrap().clone();
    attempts.sort();
    let snapshot = t.metrics().snapshot();
    let stats = PHASES.iter().map(|p| (*p, snapshot.get(&key(p)))).collect();
    let max_in_flight = cloud.in_flight.lock().unwrap().1;
    Trace {
        attempts,
        calls,
        stats,
        max_in_flight,
    }
}

#[tokio::test(start_paused = true)]
async fn transport_pipeline_and_layered_stack_agree() {
    let pipeline = run(Path::Pipeline).await;
    let layered = run(Path::Layered).await;

    // The scenario did what it is meant to exercise (on the pipeline; the
    // layered stack is then compared as a whole).
    let call = |phase: &str| -> Vec<&CallEnd> {
        pipeline.calls.iter().filter(|c| c.phase == phase).collect()
    };
    let throttled = call(THROTTLE)[0];
    assert_eq!(throttled.outcome, Ok((200, 2, "succeeded".into())));
    assert!(throttled.at_ms >= 3000, "{throttled:?}");
    assert_eq!(
        call(ATTEMPT_TIMEOUT)[0].outcome,
        Ok((200, 2, "succeeded".into()))
    );
    let budget = call(BUDGET);
    assert_eq!(
        budget[0].outcome,
        Ok((503, 3, "retry budget exhausted".into()))
    );
    assert_eq!(budget[1].outcome.as_ref().map(|o| o.1), Ok(1));
    assert_eq!(
        call(OVERALL_TIMEOUT)[0].outcome,
        Err(("timeout".into(), Some("call_timeout".into())))
    );
    assert_eq!(pipeline.max_in_flight, 2);
    assert!(call(CONCURRENCY)
        .iter()
        .all(|c| c.outcome == Ok((200, 1, "succeeded".into()))));
    let stats = |phase: &str| {
        pipeline
            .stats
            .iter()
            .find(|s| s.0 == phase)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(stats(THROTTLE).throttles, 1);
    assert_eq!(stats(ATTEMPT_TIMEOUT).timeouts, 1);
    assert_eq!(stats(BUDGET).budget_exhausted, 2);

    // Same attempts (phase, number, time), same outcomes, same counters.
    assert_eq!(pipeline.attempts, layered.attempts);
    assert_eq!(pipeline.calls, layered.calls);
    assert_eq!(pipeline.stats, layered.stats);
    assert_eq!(pipeline.max_in_flight, layered.max_in_flight);
}
