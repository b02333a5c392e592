//! The transport stack over an in-process fake cloud, on tokio's paused
//! clock: every wait and timeout below is virtual, so these run in
//! milliseconds and are deterministic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use skyfleet_core::transport::{
    ApiClass, Budget, Key, Limit, RequestExt, RetryInfo, StopReason, Transport, TransportConfig,
};
use skyfleet_core::{Error, ErrorKind};
use tokio::time::Instant;

/// What the fake does with one request.
enum Answer {
    Status(u16, Vec<(&'static str, &'static str)>),
    Hang,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    key: Key,
    body: Bytes,
    headers: http::HeaderMap,
}

type Script = Arc<dyn Fn(&Request<Bytes>, usize) -> Answer + Send + Sync>;

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

impl Fake {
    fn new(script: impl Fn(&Request<Bytes>, usize) -> Answer + Send + Sync + 'static) -> Self {
        Fake {
            seen: Arc::default(),
            script: Arc::new(script),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Bytes>,
        Response = Response<Bytes>,
        Error = Error,
        Future = impl Send + 'static,
    > + Clone
           + Send
           + 'static {
        let fake = self.clone();
        tower::service_fn(move |req: Request<Bytes>| {
            let fake = fake.clone();
            async move {
                let n = {
                    let mut seen = fake.seen.lock().unwrap();
                    seen.push(Seen {
                        at: Instant::now(),
                        key: req.transport_key(),
                        body: req.body().clone(),
                        headers: req.headers().clone(),
                    });
                    seen.len() - 1
                };
                match (fake.script)(&req, n) {
                    Answer::Status(code, headers) => {
                        let mut b = Response::builder().status(code);
                        for (k, v) in headers {
                            b = b.header(k, v);
                        }
                        Ok(b.body(Bytes::new()).unwrap())
                    }
                    Answer::Hang => std::future::pending().await,
                }
            }
        })
    }
}

fn key(class: ApiClass) -> Key {
    Key::new("test", "acct", "region-1", class)
}

fn get(k: Key) -> Request<Bytes> {
    Request::get("http://fake.invalid/x")
        .body(Bytes::new())
        .unwrap()
        .with_key(k)
        .with_operation("Get")
}

fn config() -> TransportConfig {
    TransportConfig::default()
        .with_default_limit(Limit::per_second(1000, 1000))
        .with_backoff(Duration::from_millis(100), Duration::from_secs(2))
        .with_limiter_jitter(Duration::from_millis(1))
}

fn ok() -> Answer {
    Answer::Status(200, vec![])
}

#[tokio::test(start_paused = true)]
async fn transport_retry_after_is_honoured() {
    let fake = Fake::new(|_, n| {
        if n == 0 {
            Answer::Status(429, vec![("retry-after", "7")])
        } else {
            ok()
        }
    });
    let t = Transport::builder()
        .config(config())
        .build_with(fake.service())
        .unwrap();
    let resp = t.send(get(key(ApiClass::Read))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.extensions().get::<RetryInfo>(),
        Some(&RetryInfo {
            attempts: 2,
            stop: StopReason::Succeeded
        })
    );
    let seen = fake.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(gap >= Duration::from_secs(7), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(8), "retried after {gap:?}");
    let stats = t.metrics().snapshot().get(&key(ApiClass::Read));
    assert_eq!(
        (stats.calls, stats.attempts, stats.retries, stats.throttles),
        (1, 2, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn transport_malformed_retry_after_is_ignored() {
    let fake = Fake::new(|_, n| {
        if n == 0 {
            Answer::Status(429, vec![("retry-after", "in a while")])
        } else {
            ok()
        }
    });
    let t = Transport::builder()
        .config(config().with_default_throttle_pause(Duration::from_secs(3)))
        .build_with(fake.service())
        .unwrap();
    let resp = t.send(get(key(ApiClass::Read))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = fake.seen();
    // No delay named: the key pauses for the default throttle pause.
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(3) && gap < Duration::from_secs(4),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn transport_retry_after_is_clamped() {
    let fake = Fake::new(|_, n| {
        if n == 0 {
            Answer::Status(429, vec![("retry-after", "86400")])
        } else {
            ok()
        }
    });
    let t = Transport::builder()
        .config(config().with_max_throttle_pause(Duration::from_secs(120)))
        .build_with(fake.service())
        .unwrap();
    t.send(get(key(ApiClass::Read))).await.unwrap();
    let seen = fake.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(120) && gap < Duration::from_secs(121),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn transport_throttle_pauses_its_key_and_no_other() {
    // The first request of the read class is throttled for 30 s; nothing else is.
    let fake = Fake::new(|req, _| {
        if req.transport_key().class() == ApiClass::Read && req.headers().contains_key("first") {
            Answer::Status(429, vec![("retry-after", "30")])
        } else {
            ok()
        }
    });
    let t = Transport::builder()
        .config(config().with_max_attempts(1))
        .build_with(fake.service())
        .unwrap();
    let start = Instant::now();
    let mut first = get(key(ApiClass::Read));
    first.headers_mut().insert("first", "1".parse().unwrap());
    let resp = t.send(first).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(
        t.rate_limiter().paused_for(&key(ApiClass::Read)),
        Some(Duration::from_secs(30))
    );

    // Another caller of the same key, on another clone, waits out the pause;
    // a caller of another class (another key) goes at once.
    let same = {
        let t = t.clone();
        tokio::spawn(async move { t.send(get(key(ApiClass::Read))).await })
    };
    let other = {
        let t = t.clone();
        tokio::spawn(async move {
            t.send(get(Key::new("test", "acct", "region-2", ApiClass::Read)))
                .await
        })
    };
    let write = {
        let t = t.clone();
        tokio::spawn(async move { t.send(get(key(ApiClass::Write))).await })
    };
    assert_eq!(other.await.unwrap().unwrap().status(), 200);
    assert_eq!(write.await.unwrap().unwrap().status(), 200);
    assert_eq!(same.await.unwrap().unwrap().status(), 200);
    let seen = fake.seen();
    assert_eq!(seen.len(), 4);
    for s in &seen[1..] {
        let at = s.at - start;
        if s.key == key(ApiClass::Read) {
            assert!(at >= Duration::from_secs(30), "same key went after {at:?}");
        } else {
            assert!(
                at < Duration::from_millis(10),
                "other key went after {at:?}"
            );
        }
    }
    assert_eq!(
        t.metrics().snapshot().get(&key(ApiClass::Read)).throttles,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn transport_retries_stop_when_the_budget_is_spent() {
    let fake = Fake::new(|_, _| Answer::Status(503, vec![]));
    let budget = Budget {
        capacity: 10,
        retry_cost: 5,
        timeout_cost: 10,
        success_refund: 1,
    };
    let t = Transport::builder()
        .config(config().with_max_attempts(10).with_retry_budget(budget))
        .build_with(fake.service())
        .unwrap();
    let k = key(ApiClass::Read);
    // Capacity 10, cost 5: two retries in all, then none.
    let r1 = t.send(get(k.clone())).await.unwrap();
    assert_eq!(
        r1.extensions().get::<RetryInfo>(),
        Some(&RetryInfo {
            attempts: 3,
            stop: StopReason::BudgetExhausted
        })
    );
    let r2 = t.send(get(k.clone())).await.unwrap();
    assert_eq!(r2.extensions().get::<RetryInfo>().unwrap().attempts, 1);
    assert_eq!(fake.seen().len(), 4);
    let err = skyfleet_core::transport::error_for_status(r2).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Transient);
    assert!(err.message().contains("retry budget exhausted"), "{err}");
    let stats = t.metrics().snapshot().get(&k);
    assert_eq!((stats.retries, stats.budget_exhausted), (2, 2));
    // Another key has its own budget.
    let r3 = t.send(get(key(ApiClass::Poll))).await.unwrap();
    assert_eq!(r3.extensions().get::<RetryInfo>().unwrap().attempts, 3);
}

#[tokio::test(start_paused = true)]
async fn transport_success_refunds_the_budget() {
    let fake = Fake::new(|_, n| {
        if n % 2 == 0 {
            Answer::Status(503, vec![])
        } else {
            ok()
        }
    });
    let budget = Budget {
        capacity: 10,
        retry_cost: 5,
        timeout_cost: 10,
        success_refund: 1,
    };
    let t = Transport::builder()
        .config(config().with_retry_budget(budget))
        .build_with(fake.service())
        .unwrap();
    let k = key(ApiClass::Read);
    for _ in 0..5 {
        // 503 then 200: the retry's cost is refunded by its success.
        assert_eq!(t.send(get(k.clone())).await.unwrap().status(), 200);
    }
    assert_eq!(t.retry_budget().available(&k), 10);
}

#[tokio::test(start_paused = true)]
async fn transport_attempt_timeout_cuts_a_hung_call_and_retries_it() {
    let fake = Fake::new(|_, n| if n == 0 { Answer::Hang } else { ok() });
    let t = Transport::builder()
        .config(config().with_timeouts(
            ApiClass::Read,
            Duration::from_secs(2),
            Duration::from_secs(60),
        ))
        .build_with(fake.service())
        .unwrap();
    let start = Instant::now();
    let resp = t.send(get(key(ApiClass::Read))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = fake.seen();
    assert!(seen[1].at - start >= Duration::from_secs(2));
    let stats = t.metrics().snapshot().get(&key(ApiClass::Read));
    assert_eq!((stats.timeouts, stats.attempts, stats.retries), (1, 2, 1));
}

#[tokio::test(start_paused = true)]
async fn transport_overall_timeout_cuts_the_whole_call() {
    let fake = Fake::new(|_, _| Answer::Hang);
    let t = Transport::builder()
        .config(config().with_max_attempts(100).with_timeouts(
            ApiClass::Read,
            Duration::from_secs(2),
            Duration::from_secs(5),
        ))
        .build_with(fake.service())
        .unwrap();
    let start = Instant::now();
    let err = t.send(get(key(ApiClass::Read))).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert_eq!(err.code(), Some("call_timeout"));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(fake.seen().len() >= 2);
}

#[tokio::test(start_paused = true)]
async fn transport_non_idempotent_timeout_is_not_retried() {
    let fake = Fake::new(|_, _| Answer::Hang);
    let t = Transport::builder()
        .config(config().with_timeouts(
            ApiClass::Write,
            Duration::from_secs(2),
            Duration::from_secs(60),
        ))
        .build_with(fake.service())
        .unwrap();
    let req = Request::post("http://fake.invalid/launch")
        .body(Bytes::from_static(b"Action=RunInstances"))
        .unwrap()
        .with_key(key(ApiClass::Write));
    let err = t.send(req).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert_eq!(err.code(), Some("attempt_timeout"));
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn transport_idempotency_keys_are_identical_across_attempts() {
    let fake = Fake::new(|_, n| if n < 2 { Answer::Hang } else { ok() });
    let t = Transport::builder()
        .config(config().with_timeouts(
            ApiClass::Write,
            Duration::from_secs(1),
            Duration::from_secs(60),
        ))
        .build_with(fake.service())
        .unwrap();
    let body = Bytes::from_static(b"Action=RunInstances&ClientToken=0f6c2a1e-token&MaxCount=1");
    let req = Request::post("http://fake.invalid/")
        .header("idempotency-key", "k-123")
        .body(body.clone())
        .unwrap()
        .with_key(key(ApiClass::Write))
        .with_operation("RunInstances");
    let resp = t.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.body, body);
        assert_eq!(s.headers.get("idempotency-key").unwrap(), "k-123");
    }
}

#[tokio::test(start_paused = true)]
async fn transport_limit_is_shared_by_every_clone() {
    let fake = Fake::new(|_, _| ok());
    let t = Transport::builder()
        .config(config().with_limit("test", ApiClass::Read, Limit::per_second(10, 1)))
        .build_with(fake.service())
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                t.send(get(key(ApiClass::Read))).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // 40 calls at 10/s with a burst of 1: 3.9 s at least, whatever the clones.
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(3900), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4200), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn transport_concurrency_is_limited_per_key() {
    let in_flight = Arc::new(Mutex::new((0usize, 0usize)));
    let fake = Fake::new(|_, _| Answer::Hang);
    let _ = fake;
    let f = in_flight.clone();
    let svc = tower::service_fn(move |_req: Request<Bytes>| {
        let f = f.clone();
        async move {
            {
                let mut g = f.lock().unwrap();
                g.0 += 1;
                g.1 = g.1.max(g.0);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            f.lock().unwrap().0 -= 1;
            Ok::<_, Error>(Response::new(Bytes::new()))
        }
    });
    let t = Transport::builder()
        .config(config().with_max_concurrency(2))
        .build_with(svc)
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.send(get(key(ApiClass::Read))).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(in_flight.lock().unwrap().1, 2);
}

#[tokio::test]
async fn transport_invalid_limits_are_refused_at_construction() {
    let fake = Fake::new(|_, _| ok());
    let bad = [
        (
            config().with_limit("aws", ApiClass::Read, Limit::per_second(0, 10)),
            "limits.aws.read.count",
        ),
        (
            config().with_limit("azure", ApiClass::Write, Limit::per_second(10, 0)),
            "limits.azure.write.burst",
        ),
        (
            config().with_backoff(Duration::from_secs(5), Duration::from_secs(1)),
            "backoff.max",
        ),
    ];
    for (cfg, field) in bad {
        let err = Transport::builder()
            .config(cfg)
            .build_with(fake.service())
            .unwrap_err();
        assert_eq!(
            err.kind(),
            &ErrorKind::InvalidConfig {
                field: field.to_owned()
            }
        );
    }
}
