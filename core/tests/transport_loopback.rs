//! The whole stack, reqwest client included, against servers on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use http::Request;
use skyfleet_core::transport::{
    body_contains, retry_after, ApiClass, CloudProfile, Key, Limit, Outcome, RequestExt, RetryInfo,
    StopReason, Transport, TransportConfig,
};
use skyfleet_core::ErrorKind;

const EC2_THROTTLE: &str = "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>";

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config() -> TransportConfig {
    TransportConfig::default()
        .with_default_limit(Limit::per_second(1000, 1000))
        .with_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

fn key() -> Key {
    Key::new("test", "acct", "local", ApiClass::Read)
}

fn get(url: &str) -> Request<Bytes> {
    Request::get(url)
        .body(Bytes::new())
        .unwrap()
        .with_key(key())
        .with_operation("Get")
}

#[tokio::test]
async fn transport_ec2_throttle_pauses_then_succeeds() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let h = h.clone();
            async move {
                if h.fetch_add(1, Ordering::SeqCst) == 0 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [("x-amz-retry-after", "300")],
                        EC2_THROTTLE,
                    )
                        .into_response()
                } else {
                    "ok".into_response()
                }
            }
        }),
    );
    let url = serve(app).await;
    let t = Transport::builder().config(config()).build().unwrap();
    // The throttle is in the body, as EC2 sends it: the cloud's profile
    // (registered on the shared transport) reads it.
    let ec2_like = |resp: &http::Response<Bytes>| {
        body_contains(resp.body(), &[b"<Code>RequestLimitExceeded</Code>"]).then(|| {
            Outcome::Throttled {
                retry_after: retry_after(resp.headers()),
            }
        })
    };
    t.register_profile(CloudProfile::new("test").with_classifier(ec2_like))
        .unwrap();
    let start = Instant::now();
    let resp = t.send(get(&format!("{url}/"))).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), b"ok");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let stats = t.metrics().snapshot().get(&key());
    assert_eq!((stats.attempts, stats.retries, stats.throttles), (2, 1, 1));
}

#[tokio::test]
async fn transport_hung_server_is_cut_by_timeouts() {
    let app = axum::Router::new().route(
        "/hang",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            "never"
        }),
    );
    let url = serve(app).await;
    let t = Transport::builder()
        .config(config().with_max_attempts(100).with_timeouts(
            ApiClass::Read,
            Duration::from_millis(200),
            Duration::from_millis(700),
        ))
        .build()
        .unwrap();
    let start = Instant::now();
    let err = t.send(get(&format!("{url}/hang"))).await.unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    let stats = t.metrics().snapshot().get(&key());
    assert!(stats.timeouts >= 3, "{stats:?}");
}

#[tokio::test]
async fn transport_refused_connection_is_transient_and_retried() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let t = Transport::builder()
        .config(config().with_max_attempts(3))
        .build()
        .unwrap();
    // A POST without idempotency token: still retried, nothing was sent.
    let req = Request::post(format!("http://127.0.0.1:{port}/"))
        .body(Bytes::from_static(b"x"))
        .unwrap()
        .with_key(key());
    let err = t.send(req).await.unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::Transient);
    assert_eq!(err.code(), Some("connect"));
    assert!(err.message().contains("attempts exhausted"), "{err}");
    let stats = t.metrics().snapshot().get(&key());
    assert_eq!((stats.attempts, stats.errors), (3, 3));
}

#[tokio::test]
async fn transport_final_answers_are_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/missing",
        axum::routing::get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { StatusCode::NOT_FOUND }
        }),
    );
    let url = serve(app).await;
    let t = Transport::builder().config(config()).build().unwrap();
    let resp = t.send(get(&format!("{url}/missing"))).await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.extensions().get::<RetryInfo>().map(|i| i.stop),
        Some(StopReason::NotRetryable)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// A self-signed certificate, for the custom-root configuration.
const TEST_CA: &str = include_str!("transport_test_ca.pem");

#[tokio::test]
async fn transport_root_certificates_are_checked() {
    assert!(Transport::builder()
        .config(config().with_root_certificate_pem(TEST_CA))
        .build()
        .is_ok());
    let err = Transport::builder()
        .config(config().with_root_certificate_pem("not a certificate"))
        .build()
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &ErrorKind::InvalidConfig {
            field: "root_certificates[0]".to_owned()
        }
    );
}
