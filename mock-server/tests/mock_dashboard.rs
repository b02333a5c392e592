//! The dashboard's server side over real sockets and in process: the page
//! and its files, the live event stream (bounded per client), and the
//! control API's protection (loopback Host headers, the control token, the
//! refusal to open to the network without one). The page itself is tested
//! in a real browser by the `skyfleet-tests-browser` crate.

use std::io::{Read, Write};
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use skyfleet_mock::{MockCloud, MockError};
use tower::ServiceExt;

const TOKEN: &str = "control-token-for-tests-0123";
const AUTH: &str =
    "AWS4-HMAC-SHA256 Credential=AKIDDASH/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";

async fn start() -> MockCloud {
    MockCloud::builder()
        .time_scale(0.001)
        .start()
        .await
        .unwrap()
}

/// Sends raw HTTP/1.1 (so the Host header is exactly what the test says);
/// answers the status and the body.
fn raw(mock: &MockCloud, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(mock.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn dashboard_page_and_files_are_served_with_a_strict_csp() {
    let mock = start().await;
    let http = reqwest::Client::new();
    let page = http.get(mock.dashboard_url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/_mock/ui/js/main.js">"#));

    for (file, kind) in [
        ("js/main.js", "text/javascript"),
        ("js/journal.js", "text/javascript"),
        ("dashboard.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = http
            .get(format!("{}/_mock/ui/{file}", mock.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}"
        );
    }
    let r = http
        .get(format!("{}/_mock/ui/js/nope.js", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("no such dashboard file"));
}

// Multi-threaded: `raw` blocks its thread while the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_api_answers_only_loopback_hosts_when_bound_to_loopback() {
    let mock = start().await;
    let port = mock.addr().port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".into(),
    ] {
        let (status, body) = raw(&mock, &get("/_mock/health", &host, ""));
        assert_eq!(status, 200, "{host}: {body}");
    }
    // DNS rebinding: a page on evil.example resolved to 127.0.0.1.
    for path in [
        "/_mock/health",
        "/_mock/resources",
        "/_mock/ui",
        "/_mock/events",
    ] {
        let (status, body) = raw(&mock, &get(path, &format!("evil.example:{port}"), ""));
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("only loopback hosts") && body.contains("evil.example"),
            "{body}"
        );
    }
    let reset = "POST /_mock/reset HTTP/1.1\r\nHost: rebound.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(&mock, reset).0, 403);
    let (status, _) = raw(
        &mock,
        "GET /_mock/health HTTP/1.0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 403, "no Host header at all");
    // The cloud APIs are not the control API's business.
    let ec2 = format!(
        "GET /?Action=DescribeRegions&Version=2016-11-15 HTTP/1.1\r\nHost: ec2.evil.example\r\nAuthorization: {AUTH}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = raw(&mock, &ec2);
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn control_token_is_required_on_every_control_call_but_not_on_the_clouds() {
    let mock = MockCloud::builder()
        .time_scale(0.001)
        .control_token(TOKEN)
        .start()
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let base = mock.url();
    for (path, method) in [
        ("/_mock/health", "GET"),
        ("/_mock/faults", "GET"),
        ("/_mock/faults", "DELETE"),
        ("/_mock/reset", "POST"),
        ("/_mock/config", "GET"),
        ("/_mock/events", "GET"),
    ] {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        let r = http
            .request(m.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} without a token");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer realm=\"skyfleet-mock\""
        );
        let r = http
            .request(m.clone(), format!("{base}{path}"))
            .bearer_auth("control-token-for-tests-0124")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} {path} with a wrong token");
        let body = r.text().await.unwrap();
        assert!(
            body.contains("does not match") && !body.contains(TOKEN),
            "{body}"
        );
    }
    let r = http
        .get(format!("{base}/_mock/faults"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The page and its files hold no data: the page asks for the token.
    let r = http.get(mock.dashboard_url()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The clouds keep their own authentication.
    let r = http
        .post(format!("{base}/"))
        .header("authorization", AUTH)
        .form(&[("Action", "DescribeRegions"), ("Version", "2016-11-15")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn non_loopback_listening_needs_a_valid_control_token() {
    let err = MockCloud::builder()
        .allow_non_loopback(true)
        .start()
        .await
        .err()
        .unwrap();
    assert!(matches!(err, MockError::ControlTokenRequired), "{err}");
    let err = MockCloud::builder()
        .control_token("short")
        .start()
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, MockError::Config(m) if m.contains("16 to 512") && !m.contains("short")),
        "{err}"
    );
    let builder = MockCloud::builder().control_token(TOKEN);
    assert!(!format!("{builder:?}").contains(TOKEN));
    let mock = builder.allow_non_loopback(true).start().await.unwrap();
    assert_eq!(
        reqwest::get(format!("{}/_mock/health", mock.url()))
            .await
            .unwrap()
            .status(),
        401
    );
}

/// Runs the binary to its end, killing it (and failing) after 30 s: a
/// binary that does not refuse would otherwise serve forever.
fn output_within_30s(cmd: &mut std::process::Command) -> std::process::Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the binary did not exit within 30 s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn binary_refuses_allow_non_loopback_without_a_token_and_reads_it_from_the_environment() {
    use std::io::{BufRead, BufReader};
    let exe = env!("CARGO_BIN_EXE_skyfleet-mock");
    let out = output_within_30s(
        std::process::Command::new(exe)
            .args(["--listen", "127.0.0.1:0", "--allow-non-loopback"])
            .env_remove("SKYFLEET_MOCK_CONTROL_TOKEN"),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--control-token"), "{stderr}");

    let out = output_within_30s(std::process::Command::new(exe).args([
        "--listen",
        "127.0.0.1:0",
        "--control-token",
        "tiny-secret",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("control token") && !stderr.contains("tiny-secret"),
        "{stderr}"
    );

    let mut child = std::process::Command::new(exe)
        .args(["--listen", "127.0.0.1:0"])
        .env("SKYFLEET_MOCK_CONTROL_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Kept open until the child is killed: the mock writes a second line.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let url = line.trim().to_string();
    let call = |token: Option<&str>| {
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(s, "{}", get("/_mock/health", addr, &auth)).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out[9..12].to_string()
    };
    let without = call(None);
    let with = call(Some(TOKEN));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    assert_eq!((without.as_str(), with.as_str()), ("401", "200"));
}

/// Reads SSE blocks from a streaming response until `n` events arrived.
async fn read_events(resp: &mut reqwest::Response, n: usize) -> Vec<(String, String)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("the stream is open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.into();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.into();
                }
            }
            if !event.is_empty() {
                out.push((event, data));
            }
        }
    }
    out
}

#[tokio::test]
async fn event_stream_carries_journal_entries_and_control_changes_in_order() {
    let mock = start().await;
    let http = reqwest::Client::new();
    let base = mock.url();
    let ec2 = |action: &'static str| {
        http.post(format!("{base}/"))
            .header("authorization", AUTH)
            .form(&[("Action", action), ("Version", "2016-11-15")])
            .send()
    };
    ec2("DescribeRegions").await.unwrap();
    let mut stream = http
        .get(format!("{base}/_mock/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let hello = read_events(&mut stream, 1).await;
    assert_eq!(hello[0].0, "hello");
    let hello: serde_json::Value = serde_json::from_str(&hello[0].1).unwrap();
    assert_eq!(
        hello["seq"], 1,
        "the entry before the stream is in the journal"
    );
    assert_eq!(hello["buffer"], 256);

    ec2("DescribeRegions").await.unwrap();
    ec2("NoSuchAction").await.unwrap();
    http.put(format!("{base}/_mock/faults"))
        .body("[]")
        .send()
        .await
        .unwrap();
    let events = read_events(&mut stream, 3).await;
    let first: serde_json::Value = serde_json::from_str(&events[0].1).unwrap();
    let second: serde_json::Value = serde_json::from_str(&events[1].1).unwrap();
    assert_eq!(events[0].0, "request");
    assert_eq!(
        (first["seq"].as_u64(), first["operation"].as_str()),
        (Some(2), Some("DescribeRegions"))
    );
    assert_eq!(
        (second["seq"].as_u64(), second["status"].as_u64()),
        (Some(3), Some(400))
    );
    assert_eq!(events[2].0, "control");
    assert!(
        events[2].1.contains(r#""path":"/_mock/faults""#),
        "{}",
        events[2].1
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_the_number_of_streams_is_capped() {
    use skyfleet_mock::ui::feed::{CLIENT_BUFFER, MAX_CLIENTS};
    let shared = skyfleet_mock::app::Shared::new(skyfleet_mock::Ctx::new(1));
    let router = skyfleet_mock::app::router(shared.clone());
    let request = |uri: &str| {
        http::Request::get(uri)
            .header("host", "127.0.0.1")
            .header("authorization", AUTH)
            .body(Body::empty())
            .unwrap()
    };
    // A stream whose body nobody reads.
    let slow = router
        .clone()
        .oneshot(request("/_mock/events"))
        .await
        .unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(shared.recorder.feed().clients(), 1);
    for _ in 0..CLIENT_BUFFER + 10 {
        let r = router
            .clone()
            .oneshot(request("/?Action=DescribeRegions&Version=2016-11-15"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(shared.recorder.feed().dropped_slow(), 1);
    // What it holds is bounded: the hello, then its buffer, then the end.
    let body = tokio::time::timeout(Duration::from_secs(5), slow.into_body().collect())
        .await
        .expect("a dropped client's stream ends")
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(text.matches("event: hello").count(), 1);
    assert_eq!(text.matches("event: request").count(), CLIENT_BUFFER);
    assert_eq!(shared.recorder.feed().clients(), 0);

    let mut open = Vec::new();
    for _ in 0..MAX_CLIENTS {
        let r = router
            .clone()
            .oneshot(request("/_mock/events"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let refused = router
        .clone()
        .oneshot(request("/_mock/events"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    drop(open);
    let again = router
        .clone()
        .oneshot(request("/_mock/events"))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}
