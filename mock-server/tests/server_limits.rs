//! The mock's HTTP server bounds what one client can hold: a body sent too
//! slowly is answered 408, an idle connection is closed, connections over
//! the cap wait for a free slot; and configured durations saturate instead
//! of panicking.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use skyfleet_mock::{MockCloud, ServerLimits};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDLIMITS/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";

async fn mock(limits: ServerLimits) -> MockCloud {
    MockCloud::builder()
        .server_limits(limits)
        .start()
        .await
        .expect("start the mock")
}

/// Reads what the server sends until it closes or `limit` passes.
fn read_for(s: &mut TcpStream, limit: Duration) -> (String, bool) {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

fn health_request(s: &mut TcpStream) {
    s.write_all(b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_sent_too_slowly_is_answered_408_and_the_connection_closed() {
    let m = mock(ServerLimits {
        body_read_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    })
    .await;
    let addr = m.addr();
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        // 100 bytes announced, 10 sent.
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: mock\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\nAction=Des",
        )
        .unwrap();
        read_for(&mut s, Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed, "the connection stays open: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_size_limit_is_answered_413() {
    let m = mock(ServerLimits {
        max_body_bytes: 1024,
        ..ServerLimits::default()
    })
    .await;
    let r = reqwest::Client::new()
        .post(m.url())
        .header("authorization", AUTH)
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let m = mock(ServerLimits {
        idle_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    })
    .await;
    let addr = m.addr();
    let (closed, took) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let (_, closed) = read_for(&mut s, Duration::from_secs(5));
        (closed, started.elapsed())
    })
    .await
    .unwrap();
    assert!(closed, "still open after 5 s");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let m = mock(ServerLimits {
        max_connections: 2,
        idle_timeout: Duration::from_secs(30),
        ..ServerLimits::default()
    })
    .await;
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        // The third waits in the backlog: no answer while both are held.
        let mut third = TcpStream::connect(addr).unwrap();
        health_request(&mut third);
        let (answer, _) = read_for(&mut third, Duration::from_millis(500));
        assert!(answer.is_empty(), "served over the cap: {answer}");
        drop(held);
        let (answer, _) = read_for(&mut third, Duration::from_secs(5));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_time_scale_and_durations_saturate_instead_of_panicking() {
    let m = mock(ServerLimits::default()).await;
    let http = reqwest::Client::new();
    let config = r#"{"time_scale": 1e300, "aws": {"launch_ms": 18446744073709551615}}"#;
    let r = http
        .put(format!("{}/_mock/config", m.url()))
        .body(config)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = http
        .post(m.url())
        .header("authorization", AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=RunInstances&Version=2016-11-15&ImageId=ami-12345678&MinCount=1&MaxCount=1")
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<instanceId>i-"), "{body}");
    // Still pending (ready in ten years), and the mock still answers.
    let r = http
        .post(m.url())
        .header("authorization", AUTH)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("Action=DescribeInstances&Version=2016-11-15")
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("<name>pending</name>"), "{body}");
}
