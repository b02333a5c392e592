//! Storm: a local server answers 503 to everything for 10 s while 50 callers
//! hit it at once. The retry budget bounds what the server receives.
//!
//! The bound: the first attempt of each call is free; every retry takes
//! `retry_cost` tokens from the key's bucket of `capacity`, and only
//! successes refund. While the server fails everything there is no success,
//! so it receives at most `callers + capacity / retry_cost` attempts,
//! here `50 + 100 / 5 = 70`, instead of `50 × max_attempts = 200` without a
//! budget. Callers whose retry is refused get the 503 back at once, marked
//! "retry budget exhausted"; callers whose backoff outlasts the storm succeed.
//!
//! Real time (about 18 s): the server is a real socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use http::Request;
use skyfleet_core::transport::{
    error_for_status, ApiClass, Budget, Key, Limit, RequestExt, Transport, TransportConfig,
};
use skyfleet_core::ErrorKind;

const CALLERS: usize = 50;
const STORM: Duration = Duration::from_secs(10);
const CAPACITY: u32 = 100;
const RETRY_COST: u32 = 5;
const MAX_ATTEMPTS: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_storm_stays_within_the_retry_budget() {
    let failed = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let (f, s) = (failed.clone(), served.clone());
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let (f, s) = (f.clone(), s.clone());
            async move {
                if start.elapsed() < STORM {
                    f.fetch_add(1, Ordering::SeqCst);
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    s.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = TransportConfig::default()
        .with_default_limit(Limit::per_second(1000, 1000))
        .with_max_attempts(MAX_ATTEMPTS)
        // Decorrelated jitter from 6 s: a first retry lands in [6 s, 16 s],
        // so some land after the storm and some inside it.
        .with_backoff(Duration::from_secs(6), Duration::from_secs(16))
        .with_retry_budget(Budget {
            capacity: CAPACITY,
            retry_cost: RETRY_COST,
            timeout_cost: 10,
            success_refund: 1,
        })
        .with_timeouts(
            ApiClass::Read,
            Duration::from_secs(5),
            Duration::from_secs(40),
        );
    let t = Transport::builder().config(config).build().unwrap();
    let key = Key::new("test", "acct", "local", ApiClass::Read);

    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let t = t.clone();
        let req = Request::get(format!("http://{addr}/"))
            .body(Bytes::new())
            .unwrap()
            .with_key(key.clone());
        tasks.push(tokio::spawn(async move {
            let resp = t.send(req).await?;
            error_for_status(resp)
        }));
    }
    let (mut ok, mut errors) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                ok += 1;
            }
            Err(e) => {
                // A clear error: transient, saying why retries stopped.
                assert_eq!(e.kind(), &ErrorKind::Transient, "{e}");
                assert!(
                    e.message().contains("retry budget exhausted")
                        || e.message().contains("attempts exhausted"),
                    "{e}"
                );
                errors += 1;
            }
        }
    }
    let failed = failed.load(Ordering::SeqCst);
    let served = served.load(Ordering::SeqCst);
    let bound = CALLERS + (CAPACITY / RETRY_COST) as usize;
    eprintln!(
        "storm: {failed} attempts answered 503, {served} answered 200; \
         {ok} callers succeeded, {errors} got errors; bound {bound}"
    );
    assert_eq!(ok + errors, CALLERS);
    assert!(
        failed <= bound,
        "{failed} attempts during the storm > {bound}"
    );
    assert!(
        failed + served <= bound,
        "{} attempts in all > {bound}",
        failed + served
    );
    assert_eq!(served, ok);
    assert!(ok > 0, "no caller outlasted the storm");
    assert!(errors > 0, "the budget never ran out");
    let stats = t.metrics().snapshot().get(&key);
    assert_eq!(stats.attempts as usize, failed + served);
    assert_eq!(stats.calls as usize, CALLERS);
}
