//! The request pipeline every endpoint shares: rate limit, time limit,
//! bearer secret, size-limited body, strict JSON, the service call, the
//! answer and one log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;
use skyfleet_core::protocol::{
    paths, DrainedRequest, DrainedResponse, HeartbeatRequest, HeartbeatResponse, RegisterRequest,
    RegisterResponse, ReregisterRequest, ReregisterResponse, MAX_BODY_BYTES,
};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::provider::IdentityProof;

use crate::config::ApiConfig;
use crate::rate_limit::{Limiter, Source};
use crate::refusal::{json_response, parse_body, shown, Refusal};
use crate::WorkerService;

/// The longest bearer token accepted (a worker secret is 64 hex digits).
const MAX_SECRET_BYTES: usize = 1024;

/// The four endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Register,
    Reregister,
    Heartbeat,
    Drained,
}

impl Endpoint {
    const ALL: [Endpoint; 4] = [
        Endpoint::Register,
        Endpoint::Reregister,
        Endpoint::Heartbeat,
        Endpoint::Drained,
    ];

    fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Reregister => "reregister",
            Endpoint::Heartbeat => "heartbeat",
            Endpoint::Drained => "drained",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Endpoint::Register => paths::REGISTER,
            Endpoint::Reregister => paths::REREGISTER,
            Endpoint::Heartbeat => paths::HEARTBEAT,
            Endpoint::Drained => paths::DRAINED,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What every handler shares.
struct ApiState {
    service: Arc<dyn WorkerService>,
    /// One limiter per endpoint, in [`Endpoint::ALL`] order.
    limiters: [Limiter; 4],
    request_timeout: Duration,
}

/// Builds the router (see [`crate::router`]).
pub(crate) fn router(service: Arc<dyn WorkerService>, config: &ApiConfig) -> Router {
    let state = Arc::new(ApiState {
        service,
        limiters: Endpoint::ALL.map(|_| Limiter::new(config)),
        request_timeout: config
            .request_timeout
            .clamp(Duration::from_millis(1), Duration::from_secs(3600)),
    });
    let mut router = Router::new();
    for endpoint in Endpoint::ALL {
        router = router.route(
            endpoint.path(),
            post(move |State(state): State<Arc<ApiState>>, req: Request| {
                handle(state, endpoint, req)
            }),
        );
    }
    router
        .fallback(|| async { Refusal::NoSuchEndpoint.into_response() })
        .method_not_allowed_fallback(|| async { Refusal::MethodNotAllowed.into_response() })
        .with_state(state)
}

/// One request, start to end.
async fn handle(state: Arc<ApiState>, endpoint: Endpoint, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);
    let mut worker = None;
    let mut known = Vec::new();
    let outcome = match state.limiters[endpoint.index()].check(Source::of(peer)) {
        Err(retry_after) => Err(Failure::Refused(Refusal::RateLimited { retry_after })),
        Ok(()) => {
            match tokio::time::timeout(
                state.request_timeout,
                process(&state, endpoint, req, &mut worker, &mut known),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::Refused(Refusal::Unavailable { retry_after: None })),
            }
        }
    };
    let worker = worker.as_deref().map(shown);
    let peer_ip = peer.map(|p| p.ip());
    match outcome {
        Ok(response) => {
            tracing::debug!(
                endpoint = endpoint.name(),
                worker = ?worker,
                peer = ?peer_ip,
                status = response.status().as_u16(),
                "worker API request served"
            );
            response
        }
        Err(failure) => {
            let (refusal, kind) = match failure {
                Failure::Refused(r) => (r, None),
                Failure::Service(e) => {
                    // The full error (with an identity rejection's reason)
                    // is for operators at debug level, with this request's
                    // secret and proof cut out should the service have
                    // quoted them.
                    tracing::debug!(
                        endpoint = endpoint.name(),
                        worker = ?worker,
                        error = %redact(&e.to_string(), &known),
                        reason = e.rejection_reason(),
                        "worker API service error"
                    );
                    (Refusal::from_service(&e), Some(e.kind().name()))
                }
            };
            let status = refusal.status();
            if status.is_server_error() {
                tracing::warn!(
                    endpoint = endpoint.name(),
                    worker = ?worker,
                    peer = ?peer_ip,
                    status = status.as_u16(),
                    code = ?refusal.code(),
                    error_kind = kind,
                    "worker API request failed"
                );
            } else {
                tracing::info!(
                    endpoint = endpoint.name(),
                    worker = ?worker,
                    peer = ?peer_ip,
                    status = status.as_u16(),
                    code = ?refusal.code(),
                    error_kind = kind,
                    "worker API request refused"
                );
            }
            refusal.into_response()
        }
    }
}

/// Why a request failed: refused by the API itself, or by the service.
enum Failure {
    Refused(Refusal),
    Service(skyfleet_core::Error),
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::Refused(r)
    }
}

/// One endpoint: its credential, body and service call ([`exchange`], with
/// what differs in the body's [`WorkerCall`] implementation). Records the
/// worker id in `worker` as soon as the body names it, for the log line, and
/// the request's secret material in `known`, to keep it out of logged
/// errors.
async fn process(
    state: &ApiState,
    endpoint: Endpoint,
    req: Request,
    worker: &mut Option<String>,
    known: &mut Vec<Secret>,
) -> Result<Response, Failure> {
    let service = state.service.as_ref();
    match endpoint {
        Endpoint::Register => exchange::<RegisterRequest>(service, req, worker, known).await,
        Endpoint::Reregister => exchange::<ReregisterRequest>(service, req, worker, known).await,
        Endpoint::Heartbeat => exchange::<HeartbeatRequest>(service, req, worker, known).await,
        Endpoint::Drained => exchange::<DrainedRequest>(service, req, worker, known).await,
    }
}

/// What every endpoint does after the rate limit: its credential from the
/// headers (checked before the body is read), its body `B` (size limit,
/// strict JSON), the service call, and the answer as `200` JSON or the
/// failure [`handle`] maps to a refusal.
async fn exchange<B: WorkerCall>(
    service: &dyn WorkerService,
    req: Request,
    worker: &mut Option<String>,
    known: &mut Vec<Secret>,
) -> Result<Response, Failure> {
    let (parts, body) = req.into_parts();
    let credential = B::Credential::from_headers(&parts.headers)?;
    known.extend(credential.material());
    let bytes = read_body(&parts.headers, body).await?;
    let body: B = parse_body(&bytes)?;
    *worker = Some(body.worker_id().to_owned());
    known.extend(body.material());
    answer(body.call(service, credential).await)
}

/// How a request proves who sends it, besides its body: nothing (`()`,
/// register carries its proof in the body) or a bearer [`Secret`].
trait Credential: Sized + Send {
    /// The credential of a request with these headers, or the refusal.
    fn from_headers(headers: &HeaderMap) -> Result<Self, Refusal>;
    /// Its secret material, kept out of logged errors.
    fn material(&self) -> Option<Secret>;
}

impl Credential for () {
    fn from_headers(_: &HeaderMap) -> Result<Self, Refusal> {
        Ok(())
    }
    fn material(&self) -> Option<Secret> {
        None
    }
}

impl Credential for Secret {
    fn from_headers(headers: &HeaderMap) -> Result<Self, Refusal> {
        bearer(headers)
    }
    fn material(&self) -> Option<Secret> {
        Some(self.clone())
    }
}

/// An endpoint's request body and what differs between endpoints: the
/// credential it needs, the worker it names, and its service call.
#[async_trait]
trait WorkerCall: DeserializeOwned + Send {
    /// What the request must carry besides its body.
    type Credential: Credential;
    /// The service's answer.
    type Answer: Serialize;
    /// The worker the body names.
    fn worker_id(&self) -> &str;
    /// Secret material in the body (a proof), kept out of logged errors.
    fn material(&self) -> Vec<Secret> {
        Vec::new()
    }
    /// The service call.
    async fn call(
        self,
        service: &dyn WorkerService,
        credential: Self::Credential,
    ) -> skyfleet_core::Result<Self::Answer>;
}

#[async_trait]
impl WorkerCall for RegisterRequest {
    type Credential = ();
    type Answer = RegisterResponse;
    fn worker_id(&self) -> &str {
        &self.worker_id
    }
    fn material(&self) -> Vec<Secret> {
        proof_material(&self.proof)
    }
    async fn call(
        self,
        service: &dyn WorkerService,
        (): (),
    ) -> skyfleet_core::Result<Self::Answer> {
        service.register(self).await
    }
}

#[async_trait]
impl WorkerCall for ReregisterRequest {
    type Credential = Secret;
    type Answer = ReregisterResponse;
    fn worker_id(&self) -> &str {
        &self.worker_id
    }
    async fn call(
        self,
        service: &dyn WorkerService,
        secret: Secret,
    ) -> skyfleet_core::Result<Self::Answer> {
        service.reregister(&self.worker_id, &secret).await
    }
}

#[async_trait]
impl WorkerCall for HeartbeatRequest {
    type Credential = Secret;
    type Answer = HeartbeatResponse;
    fn worker_id(&self) -> &str {
        &self.worker_id
    }
    async fn call(
        self,
        service: &dyn WorkerService,
        secret: Secret,
    ) -> skyfleet_core::Result<Self::Answer> {
        service.heartbeat(&secret, self).await
    }
}

#[async_trait]
impl WorkerCall for DrainedRequest {
    type Credential = Secret;
    type Answer = DrainedResponse;
    fn worker_id(&self) -> &str {
        &self.worker_id
    }
    async fn call(
        self,
        service: &dyn WorkerService,
        secret: Secret,
    ) -> skyfleet_core::Result<Self::Answer> {
        service.drained(&self.worker_id, &secret).await
    }
}

/// The credential strings of a proof.
fn proof_material(proof: &IdentityProof) -> Vec<Secret> {
    let texts: Vec<&str> = match proof {
        IdentityProof::AwsDocument {
            document,
            signature,
        } => vec![document, signature],
        IdentityProof::AwsPkcs7 { pkcs7 } => vec![pkcs7],
        IdentityProof::GcpToken { jwt } => vec![jwt],
        IdentityProof::AzureAttested { signature, .. } => vec![signature],
        IdentityProof::StaticSecret { secret } => vec![secret.expose()],
        _ => Vec::new(),
    };
    texts.into_iter().map(Secret::new).collect()
}

/// `text` with every non-trivial (4 bytes or more) `known` secret replaced
/// by `[redacted]`.
fn redact(text: &str, known: &[Secret]) -> String {
    known
        .iter()
        .map(Secret::expose)
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |text, s| text.replace(s, "[redacted]"))
}

/// A service answer as `200` JSON, or its failure.
fn answer<T: Serialize>(result: skyfleet_core::Result<T>) -> Result<Response, Failure> {
    let value = result.map_err(Failure::Service)?;
    let bytes = serde_json::to_vec(&value).map_err(|e| Failure::Service(e.into()))?;
    Ok(json_response(StatusCode::OK, bytes))
}

/// The secret of `Authorization: Bearer <secret>`: exactly one such header,
/// scheme `Bearer` (any case), a token of visible ASCII. Anything else is
/// [`Refusal::Unauthorized`], like a wrong secret.
fn bearer(headers: &HeaderMap) -> Result<Secret, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Refusal::Unauthorized);
    };
    let text = value.to_str().map_err(|_| Refusal::Unauthorized)?;
    let (scheme, token) = text.split_once(' ').ok_or(Refusal::Unauthorized)?;
    let token = token.trim_matches(' ');
    let plain = token.bytes().all(|b| b.is_ascii_graphic());
    if !scheme.eq_ignore_ascii_case("bearer")
        || token.is_empty()
        || token.len() > MAX_SECRET_BYTES
        || !plain
    {
        return Err(Refusal::Unauthorized);
    }
    Ok(Secret::new(token))
}

/// The body, at most [`MAX_BODY_BYTES`]: a larger `Content-Length` is
/// refused before reading, a larger body while reading.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Refusal::PayloadTooLarge);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.is::<LengthLimitError>() => Err(Refusal::PayloadTooLarge),
        Err(_) => Err(Refusal::BadRequest(
            "could not read the request body".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_takes_one_well_formed_token() {
        assert_eq!(bearer(&headers(&["Bearer abc"])).unwrap().expose(), "abc");
        assert_eq!(bearer(&headers(&["bearer  abc "])).unwrap().expose(), "abc");
        for bad in [
            &[][..],
            &["Basic abc"],
            &["Bearer"],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer a", "Bearer b"],
            &["abc"],
        ] {
            assert_eq!(bearer(&headers(bad)), Err(Refusal::Unauthorized), "{bad:?}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_SECRET_BYTES + 1));
        assert_eq!(bearer(&headers(&[&long])), Err(Refusal::Unauthorized));
    }
}
