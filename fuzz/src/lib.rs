//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! Everything runs in-process and without a socket: the mock cloud's axum
//! router is driven with `tower::ServiceExt::oneshot`, and the providers
//! talk to it (or to scripted answers) through a transport built with
//! `Transport::builder().build_with(..)` over an in-process service.
//!
//! Inputs are small text formats so that the seed corpora are readable
//! real requests and answers (see `fuzz/README.md`):
//!
//! - a request: `METHOD URI` on the first line, `Name: value` header
//!   lines, an empty line, then the body;
//! - an answer: the status on the first line, header lines, an empty line,
//!   then the body;
//! - several of either in one input are separated by a line `--`.

mod record;
use record::{record_answer, record_request, record_state};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body_util::BodyExt;
use skyfleet_core::clock::Clock;
use time::OffsetDateTime;
use tower::ServiceExt;

/// The single-threaded runtime every target runs in, built once. Its clock
/// is paused: a sleep (a throttle pause, a backoff, a timeout) auto-advances
/// as soon as nothing else can run, so no input makes the fuzzer wait.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    })
}

/// A fresh mock cloud (every cloud, the body limit, the control API) at time
/// scale 0: asynchronous operations finish as soon as they are asked
/// about. A fresh one per input keeps runs deterministic.
pub fn mock_router() -> axum::Router {
    let ctx = skyfleet_mock::Ctx::new(7);
    ctx.set_time_scale(0.0).expect("0 is a valid time scale");
    let shared = skyfleet_mock::app::Shared::new(ctx);
    skyfleet_mock::app::router(shared)
}

/// Splits an input on lines that are exactly `--`.
pub fn split_parts(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < data.len() {
        let line_start = i == 0 || data[i - 1] == b'\n';
        if line_start && data[i..].starts_with(b"--\n") {
            parts.push(&data[start..i.saturating_sub(1).max(start)]);
            i += 3;
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(&data[start..]);
    parts
}

/// Splits `head\n\nbody` (or `\r\n\r\n`); a missing blank line means no body.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    for (i, w) in data.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&data[..i], &data[i + 2..]);
        }
    }
    (data, &[])
}

/// Parses `Name: value` lines into headers, skipping lines that are not
/// valid headers.
fn parse_headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    headers
}

/// A request read from the text format.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// The method.
    pub method: Method,
    /// The URI as written (path and query).
    pub uri: http::Uri,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Parses one request; `None` when the first line is not `METHOD URI`.
pub fn parse_request(part: &[u8]) -> Option<RawRequest> {
    let (head, body) = split_head(part);
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let space = first.iter().position(|&b| b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let uri = http::Uri::try_from(&first[space + 1..]).ok()?;
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return None;
    }
    Some(RawRequest {
        method,
        uri,
        headers: parse_headers(lines),
        body: Bytes::copy_from_slice(body),
    })
}

/// An answer read from the text format.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

/// Parses one answer; a first line that is not a status becomes 200.
pub fn parse_answer(part: &[u8]) -> RawAnswer {
    let (head, body) = split_head(part);
    let mut lines = head.split(|&b| b == b'\n');
    let status = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.trim().parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .unwrap_or(200);
    RawAnswer {
        status,
        headers: parse_headers(lines),
        body: Bytes::copy_from_slice(body),
    }
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// Sends `req` through `router` in process.
pub async fn send(router: &axum::Router, req: RawRequest) -> Answer {
    let mut builder = Request::builder().method(req.method).uri(req.uri);
    if let Some(h) = builder.headers_mut() {
        *h = req.headers;
    }
    let req = builder
        .body(Body::from(req.body))
        .expect("method, URI and headers were validated");
    let resp = router
        .clone()
        .oneshot(req)
        .await
        .expect("axum routers are infallible");
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .expect("the mock's bodies are in memory")
        .to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A manually advanced wall clock, starting at a fixed instant so runs are
/// reproducible.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock at 2026-01-01T00:00:00Z.
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(
            OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("a valid timestamp"),
        )))
    }

    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where the in-process HTTP service sends a provider's requests.
#[derive(Clone)]
pub enum Backend {
    /// The mock cloud's router.
    Mock(axum::Router),
    /// Scripted answers, in order; once they run out every request gets a
    /// connection error.
    Script(Arc<Mutex<std::collections::VecDeque<RawAnswer>>>),
}

/// The innermost service of a fuzzing transport (in place of reqwest).
#[derive(Clone)]
pub struct InProcess(pub Backend);

impl tower::Service<Request<Bytes>> for InProcess {
    type Response = Response<Bytes>;
    type Error = skyfleet_core::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = skyfleet_core::Result<Response<Bytes>>> + Send>,
    >;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<skyfleet_core::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let backend = self.0.clone();
        Box::pin(async move {
            let answer = match backend {
                Backend::Mock(router) => {
                    // The absolute URI is kept: the mock builds the
                    // operation URLs it hands out from its host.
                    let (parts, body) = req.into_parts();
                    let raw = RawRequest {
                        method: parts.method,
                        uri: parts.uri,
                        headers: parts.headers,
                        body,
                    };
                    record_request(&raw);
                    let a = send(&router, raw).await;
                    let answer = RawAnswer {
                        status: a.status,
                        headers: a.headers,
                        body: a.body,
                    };
                    record_answer(&answer);
                    answer
                }
                Backend::Script(answers) => {
                    let next = answers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front();
                    match next {
                        Some(a) => a,
                        None => {
                            return Err(skyfleet_core::Error::new(
                                skyfleet_core::ErrorKind::Transient,
                                "fuzz script: no more answers (connection refused)",
                            ))
                        }
                    }
                }
            };
            let mut resp = Response::builder()
                .status(answer.status)
                .body(answer.body)
                .map_err(|e| skyfleet_core::Error::internal(format!("response: {e}")))?;
            *resp.headers_mut() = answer.headers;
            Ok(resp)
        })
    }
}

/// A transport over `backend` with one attempt per call and short pauses
/// (the clock is paused anyway) and no rate limit worth the name.
pub fn transport(backend: Backend) -> skyfleet_core::transport::Transport {
    use skyfleet_core::transport::{Limit, TransportConfig};
    skyfleet_core::transport::Transport::builder()
        .config(
            TransportConfig::default()
                .with_max_attempts(1)
                .with_backoff(Duration::from_millis(1), Duration::from_millis(5))
                .with_max_throttle_pause(Duration::from_millis(10))
                .with_default_throttle_pause(Duration::from_millis(10))
                .with_default_limit(Limit::per_second(1_000_000, 1_000_000)),
        )
        .build_with(InProcess(backend))
        .expect("a valid transport config")
}

/// Checks that `text` is well-formed XML and returns its document.
pub fn parse_xml(text: &str) -> Result<roxmltree::Document<'_>, roxmltree::Error> {
    roxmltree::Document::parse(text)
}

/// The first child element of `node` named `name`.
pub fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The subscription the Azure targets use.
pub const AZURE_SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000f022";

/// The Azure endpoint the targets configure (never resolved: requests go to
/// the in-process backend).
pub const AZURE_ENDPOINT: &str = "https://management.fuzz.invalid";

/// The Compute Engine endpoint the targets configure.
pub const GCE_ENDPOINT: &str = "https://compute.fuzz.invalid";

/// An Azure provider (subscription [`AZURE_SUBSCRIPTION`], resource group
/// `rg`, a static token) over `backend`, on `clock`.
pub fn azure_provider(backend: Backend, clock: Arc<ManualClock>) -> skyfleet_azure::AzureProvider {
    let mut az = skyfleet_azure::AzureConfig::new(AZURE_SUBSCRIPTION);
    az.id = "azure".into();
    az.resource_groups = vec!["rg".into()];
    az.endpoint = AZURE_ENDPOINT.to_string();
    az.credential = skyfleet_azure::CredentialConfig::StaticToken {
        token: skyfleet_azure::Secret::new("t"),
    };
    skyfleet_azure::AzureBuilder::from_config(az)
        .with_transport(transport(backend))
        .with_clock(clock)
        .build()
        .expect("a valid Azure config")
}

/// The Azure launch config the targets use: a public IP, one data disk and
/// the VM in the mock's `vnet/default` subnet.
pub fn azure_launch() -> serde_json::Value {
    serde_json::json!({
        "location": "eastus",
        "vm_size": "Standard_D2s_v5",
        "subnet_id": format!("/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default"),
        "public_ip": true,
        "data_disks": [{"size_gb": 8}],
    })
}

/// Creates the resource group `rg` and `vnet/default` in a fresh mock, as
/// the Azure chain expects them to exist.
pub async fn azure_network(router: &axum::Router) {
    let base = format!("/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/rg");
    for (path, body) in [
        (
            format!("{base}?api-version=2024-07-01"),
            serde_json::json!({"location": "eastus"}),
        ),
        (
            format!(
                "{base}/providers/Microsoft.Network/virtualNetworks/vnet?api-version=2024-05-01"
            ),
            serde_json::json!({"location": "eastus", "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                "subnets": [{"name": "default", "properties": {"addressPrefix": "10.0.1.0/24"}}]}}),
        ),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t"),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let a = send(
            router,
            RawRequest {
                method: Method::PUT,
                uri: path.parse().expect("a valid path"),
                headers,
                body: Bytes::from(body.to_string()),
            },
        )
        .await;
        assert!(
            a.status < 300,
            "mock setup {path}: {} {:?}",
            a.status,
            a.body
        );
    }
}

/// A Compute Engine provider (project `fuzz-project`, zone
/// `europe-west1-b`, a static token) over `backend`, on `clock`.
pub fn gcp_provider(backend: Backend, clock: Arc<ManualClock>) -> skyfleet_gcp::GcpProvider {
    skyfleet_gcp::GcpBuilder::new("fuzz-project")
        .with_id("gcp")
        .with_endpoint(GCE_ENDPOINT)
        .with_credentials(skyfleet_gcp::Credentials::static_token("t"))
        .with_zones(["europe-west1-b"])
        .with_transport(transport(backend))
        .with_clock(clock)
        .build()
        .expect("a valid GCP config")
}

/// The Compute Engine launch config the targets use.
pub fn gcp_launch() -> serde_json::Value {
    serde_json::json!({
        "zone": "europe-west1-b",
        "machineType": "e2-small",
        "disks": [{"boot": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
    })
}

/// A worker `w-fuzz` of pool `p` on `provider`, created at `now`, with
/// `state` as its provider state, asked to be removed when `removing`.
pub fn worker(
    provider: &str,
    launch: serde_json::Value,
    state: serde_json::Value,
    removing: bool,
    now: OffsetDateTime,
) -> skyfleet_core::Worker {
    use skyfleet_core::testing::fixtures;
    use skyfleet_core::{DesiredState, Phase};
    let mut w = fixtures::worker("w-fuzz")
        .pool("p")
        .provider(provider)
        .manager("m")
        .launch(launch)
        .build(now);
    w.provider_state = state;
    if removing {
        w.desired = DesiredState::Removed;
        if !w.provider_state.is_null() {
            w.phase = Phase::Stopping;
        }
    }
    w
}

/// Steps `worker` up to `max` times on `provider`, applying each step the
/// way the fleet does and advancing `clock` to the next check. After every
/// step, `check` sees the worker. Errors end the loop (the fleet would retry
/// later from the same state); every error must have a message.
pub async fn drive(
    provider: &dyn skyfleet_core::Provider,
    worker: &mut skyfleet_core::Worker,
    clock: &ManualClock,
    max: usize,
    mut check: impl FnMut(&skyfleet_core::Worker),
) {
    use skyfleet_core::Phase;
    for _ in 0..max {
        match provider.step(worker).await {
            Ok(step) => {
                skyfleet_core::provider::apply_step(worker, &step, clock.now());
                record_state(&worker.provider_state);
                check(worker);
                if matches!(step.phase, Phase::Stopped | Phase::Failed) {
                    return;
                }
                clock.advance(
                    step.next_check_in.min(Duration::from_secs(3600)) + Duration::from_secs(1),
                );
            }
            Err(e) => {
                assert!(
                    !e.message().is_empty(),
                    "{}: an error without a message: {e:?}",
                    provider.id()
                );
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_on_dash_lines() {
        let parts = split_parts(b"a\nb\n--\nc\n--\n");
        assert_eq!(parts, vec![&b"a\nb"[..], &b"c"[..], &b""[..]]);
        assert_eq!(split_parts(b"--\nx"), vec![&b""[..], &b"x"[..]]);
    }

    #[test]
    fn requests_parse() {
        let r = parse_request(b"PUT /a?b=c\nAuthorization: Bearer t\n\n{}").unwrap();
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.uri, "/a?b=c");
        assert_eq!(r.headers["authorization"], "Bearer t");
        assert_eq!(&r.body[..], b"{}");
        assert!(parse_request(b"GET http://x/\n\n").is_none());
    }

    #[test]
    fn answers_parse() {
        let a = parse_answer(b"202\nRetry-After: 3\n\n{\"a\":1}");
        assert_eq!(a.status, 202);
        assert_eq!(a.headers["retry-after"], "3");
        assert_eq!(&a.body[..], b"{\"a\":1}");
        assert_eq!(parse_answer(b"garbage").status, 200);
    }
}

pub mod identity;
pub use identity::{b64, gcp_jwks};
