//! `serve` over a real socket: TLS with a self-signed certificate, the
//! peer address as the rate-limit source, plain HTTP, shutdown.

mod common;

use std::time::Duration;

use common::*;
use skyfleet_api::{serve, TlsFiles};
use skyfleet_core::protocol::{paths, Action, HeartbeatResponse};
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), skyfleet_api::ServeError>>,
}

async fn start(tls: Option<TlsFiles>, config: skyfleet_api::ApiConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (app, _) = app(config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, tls, app, shutdown.clone()));
    Server {
        base: format!("{scheme}://localhost:{}", addr.port()),
        shutdown,
        task,
    }
}

fn client(ca_pem: Option<&str>) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .resolve("localhost", "127.0.0.1:0".parse().unwrap());
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).unwrap();
        builder = builder.tls_certs_only(certs);
    }
    builder.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_over_tls_and_rate_limits_by_peer() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let server = start(Some(TlsFiles::new(&cert, &key)), roomy().with_rate(1, 2)).await;
    let client = client(Some(&certified.cert.pem()));

    let url = format!("{}{}", server.base, paths::HEARTBEAT);
    let beat = || {
        client
            .post(&url)
            .bearer_auth(SECRET)
            .header("content-type", "application/json")
            .body(heartbeat(WORKER, 1))
            .send()
    };
    let resp = beat().await.unwrap();
    assert_eq!(resp.status(), 200);
    let hb: HeartbeatResponse = resp.json().await.unwrap();
    assert_eq!(hb.action, Action::Continue);
    assert_eq!(beat().await.unwrap().status(), 200);
    // The peer (127.0.0.1) is the source: its burst of 2 is spent.
    let resp = beat().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let e = error_body(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        &resp.bytes().await.unwrap(),
    );
    assert_eq!(e.code, skyfleet_core::protocol::ErrorCode::RateLimited);

    // A client that does not trust the certificate cannot talk to it.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(untrusting.post(&url).body("{}").send().await.is_err());

    server.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_serves_and_stops_on_shutdown() {
    let server = start(None, roomy()).await;
    let client = client(None);
    let resp = client
        .post(format!("{}{}", server.base, paths::DRAINED))
        .bearer_auth(SECRET)
        .body(worker_body(WORKER))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(format!("{}{}", server.base, paths::DRAINED))
        .body(worker_body(WORKER))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.bytes().await.unwrap(),
        skyfleet_api::UNAUTHORIZED_BODY.as_bytes()
    );

    server.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(10), server.task).await;
    assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    // Nothing listens any more.
    let after = client
        .post(format!("{}{}", server.base, paths::DRAINED))
        .body(worker_body(WORKER))
        .send()
        .await;
    assert!(after.is_err());
}
