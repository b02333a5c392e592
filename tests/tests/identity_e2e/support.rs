//! What the three clouds' end-to-end identity tests share: the mock over
//! TLS, a transport and HTTP client trusting its certificate, a wall clock
//! the test can move (for `exp` / `expiresOn`), the trust `/_mock/trust`
//! publishes, a plain HTTP client for the metadata service (as an agent on
//! the VM has), driving workers with the conformance suite's `drive`, and
//! the assertions on rejections.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use skyfleet_core::clock::Clock;
use skyfleet_core::transport::{ApiClass, Limit, Transport, TransportConfig};
use skyfleet_core::{DesiredState, Error, ErrorKind, Phase, Provider, Worker};
use skyfleet_mock::MockCloud;
use skyfleet_tests::{drive, CloudInspector, MockCloudKind, MockInspector, Subject};
use time::OffsetDateTime;

/// The one outward message of every rejection.
pub const REJECTED: &str = "signature validation error";

/// The system clock moved by an offset the test sets: the providers read
/// it when they verify, so a proof can be made to outlive its `exp`.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset_s: AtomicI64,
}

impl ShiftedClock {
    /// Moves the clock `d` ahead of the system's.
    pub fn shift(&self, d: Duration) {
        let s = i64::try_from(d.as_secs()).expect("a test shift fits");
        self.offset_s.store(s, Ordering::SeqCst);
    }

    /// Back to the system time.
    pub fn reset(&self) {
        self.offset_s.store(0, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.offset_s.load(Ordering::SeqCst))
    }
}

/// A mock over TLS, VM creation scaled down.
pub async fn mock_tls() -> MockCloud {
    MockCloud::builder()
        .tls(true)
        .time_scale(0.01)
        .start()
        .await
        .expect("the mock starts")
}

/// The mock's certificate (it is over TLS).
pub fn ca_pem(mock: &MockCloud) -> String {
    mock.cert_pem()
        .expect("a TLS mock has a certificate")
        .to_string()
}

/// A client for the mock's API and control calls, trusting its certificate.
pub fn api_client(mock: &MockCloud) -> reqwest::Client {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem(mock).as_bytes()).expect("PEM");
    reqwest::Client::builder()
        .tls_certs_merge(certs)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A transport trusting the mock, with limits far above what a test needs.
pub fn transport(mock: &MockCloud, provider: &str) -> Transport {
    let mut c = TransportConfig::default()
        .with_root_certificate_pem(ca_pem(mock).into_bytes())
        .with_backoff(Duration::from_millis(10), Duration::from_millis(200));
    for class in ApiClass::ALL {
        c = c.with_limit(provider, class, Limit::per_second(5000, 5000));
    }
    Transport::builder()
        .config(c)
        .build()
        .expect("transport config is valid")
}

/// `GET /_mock/trust`.
pub async fn trust(mock: &MockCloud) -> Value {
    control(mock, reqwest::Method::GET, "/_mock/trust").await
}

/// `POST /_mock/trust/rotate`, answering the new trust.
pub async fn rotate(mock: &MockCloud) -> Value {
    control(mock, reqwest::Method::POST, "/_mock/trust/rotate").await
}

async fn control(mock: &MockCloud, method: reqwest::Method, path: &str) -> Value {
    let resp = api_client(mock)
        .request(method, format!("{}{path}", mock.url()))
        .send()
        .await
        .expect("control call");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    resp.json().await.expect("JSON")
}

/// The client an agent on the VM has: plain HTTP to the metadata service
/// (never a proxy: the services refuse proxied requests), short timeouts.
pub fn imds_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A GET of the metadata service that must answer 2xx; the body.
pub async fn imds_get(url: &str, headers: &[(&str, &str)]) -> String {
    let (status, body) = imds_try(reqwest::Method::GET, url, headers).await;
    assert!((200..300).contains(&status), "GET {url}: {status} {body}");
    body
}

/// Any metadata call: status and body.
pub async fn imds_try(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    assert!(url.starts_with("http://"), "metadata is plain HTTP: {url}");
    let mut req = imds_client().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("metadata call");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// A subject for `drive`: the provider, its cloud seen through the mock.
pub fn subject(
    mock: &MockCloud,
    name: &str,
    provider: Arc<dyn Provider>,
    kind: MockCloudKind,
    launch: Value,
) -> Subject {
    let manager_id = format!("e2e-{name}");
    Subject {
        name: name.into(),
        provider,
        inspector: Arc::new(
            MockInspector::new(mock.url(), &manager_id, kind).with_client(api_client(mock)),
        ) as Arc<dyn CloudInspector>,
        launch,
        manager_id,
        resources_per_worker: 1,
        deadline: Duration::from_secs(90),
    }
}

/// A new worker `id` driven by its provider until it runs.
pub async fn running(s: &Subject, id: &str) -> Worker {
    let mut w = s.worker(id);
    let d = drive(s, &mut w, &[Phase::Running], false).await;
    assert!(d.stopped_by.is_none(), "{}: {:?}", s.name, d.stopped_by);
    assert_eq!(w.phase, Phase::Running, "{}: {:?}", s.name, w.last_error);
    w
}

/// Removes `w` through its provider (its VM is deleted).
pub async fn remove(s: &Subject, w: &mut Worker) {
    w.desired = DesiredState::Removed;
    w.next_check_at = OffsetDateTime::now_utc();
    let d = drive(s, w, &[], false).await;
    assert!(d.stopped_by.is_none(), "{}: {:?}", s.name, d.stopped_by);
    assert_eq!(w.phase, Phase::Stopped, "{}", s.name);
    assert_eq!(s.inspector.count_for(w.id()).await.expect("count"), 0);
}

/// The reason of a rejection, checking it is one: kind `IdentityRejected`,
/// the one outward message, nothing of the reason in it.
pub fn reason(result: skyfleet_core::Result<impl std::fmt::Debug>) -> &'static str {
    let e: Error = match result {
        Ok(v) => panic!("accepted, expected a rejection: {v:?}"),
        Err(e) => e,
    };
    assert!(
        matches!(e.kind(), ErrorKind::IdentityRejected { .. }),
        "not a rejection: {e:?}"
    );
    assert_eq!(e.message(), REJECTED);
    let r = e.rejection_reason().expect("a rejection has a reason");
    assert!(!e.to_string().contains(r), "the reason leaks: {e}");
    r
}

/// Positions spread over `len` bytes: the first, several inside, the last.
pub fn positions(len: usize) -> Vec<usize> {
    assert!(len > 16, "{len}");
    let mut p: Vec<usize> = [
        0,
        len / 7,
        len / 3,
        len / 2,
        2 * len / 3,
        6 * len / 7,
        len - 1,
    ]
    .into_iter()
    .collect();
    p.dedup();
    p
}

/// `bytes` with the byte at `at` flipped (every bit).
pub fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0xff;
    b
}

/// A base64 text whose decoded byte at `at` is flipped.
pub fn flip_base64(text: &str, at: usize) -> String {
    let raw = STANDARD.decode(text.trim()).expect("base64");
    STANDARD.encode(flipped(&raw, at))
}

/// The decoded length of a base64 text.
pub fn base64_len(text: &str) -> usize {
    STANDARD.decode(text.trim()).expect("base64").len()
}

/// A JSON document (ASCII) with the character at `at` changed to another
/// printable one: still text, no longer the signed bytes.
pub fn flip_text(text: &str, at: usize) -> String {
    let mut b = text.as_bytes().to_vec();
    assert!(b[at].is_ascii(), "ASCII document");
    b[at] = if b[at] == b'x' { b'y' } else { b'x' };
    String::from_utf8(b).expect("still text")
}

/// A JWT whose segment `seg` (0 header, 1 payload, 2 signature) has the
/// decoded byte at `at` flipped.
pub fn flip_jwt(jwt: &str, seg: usize, at: usize) -> String {
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    assert_eq!(parts.len(), 3, "a JWT");
    let raw = URL_SAFE_NO_PAD.decode(&parts[seg]).expect("base64url");
    parts[seg] = URL_SAFE_NO_PAD.encode(flipped(&raw, at % raw.len()));
    parts.join(".")
}

/// The decoded length of JWT segment `seg`.
pub fn jwt_segment_len(jwt: &str, seg: usize) -> usize {
    let part = jwt.split('.').nth(seg).expect("a JWT segment");
    URL_SAFE_NO_PAD.decode(part).expect("base64url").len()
}

/// A JSON body.
pub fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON: {e}: {body}"))
}

/// The launch of an Azure worker in `rg` on subscription `sub`.
pub fn azure_launch(sub: &str, rg: &str) -> Value {
    json!({
        "location": "eastus",
        "vm_size": "Standard_D2s_v5",
        "subnet_id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
        "public_ip": false,
        "data_disks": [],
        "ssh_public_key": "ssh-ed25519 AAAA identity-e2e",
    })
}
