//! A fake [`WorkerService`] and request helpers shared by the tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use serde_json::json;
use skyfleet_api::{router, ApiConfig, WorkerService};
use skyfleet_core::protocol::{
    Action, DrainedResponse, ErrorBody, HeartbeatRequest, HeartbeatResponse, RegisterRequest,
    RegisterResponse, ReregisterResponse,
};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::provider::IdentityProof;
use skyfleet_core::{Error, ErrorKind, Result};
use time::OffsetDateTime;
use tower::ServiceExt;

/// The one known worker.
pub const WORKER: &str = "w-1";
/// Its current secret.
pub const SECRET: &str = "0123456789abcdef-worker-secret";
/// The secret a registration hands out.
pub const ISSUED: &str = "fedcba9876543210-issued-secret";
/// The static proof that holds.
pub const PROOF: &str = "static-proof-material-xyz";
/// A worker whose calls conflict.
pub const CONFLICTING: &str = "w-conflict";
/// A worker whose calls hang.
pub const SLOW: &str = "w-slow";
/// A worker whose calls fail with an internal error that quotes a secret.
pub const BROKEN: &str = "w-broken";

/// A fake fleet: one worker `w-1` with secret [`SECRET`], registering with
/// the static proof [`PROOF`].
#[derive(Default)]
pub struct Fake {
    /// Every call, as `endpoint:worker`.
    pub calls: Mutex<Vec<String>>,
}

fn expires() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

impl Fake {
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    async fn special(worker_id: &str) -> Result<()> {
        match worker_id {
            CONFLICTING => Err(Error::new(ErrorKind::Conflict, "being removed")),
            SLOW => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            BROKEN => Err(Error::internal(format!(
                "database said no to secret {SECRET}"
            ))),
            _ => Ok(()),
        }
    }

    fn check(worker_id: &str, secret: &Secret) -> Result<()> {
        if worker_id != WORKER {
            return Err(Error::not_found(format!("no worker {worker_id}")));
        }
        if secret.expose() != SECRET {
            return Err(Error::new(ErrorKind::Unauthenticated, "wrong secret"));
        }
        Ok(())
    }
}

#[async_trait]
impl WorkerService for Fake {
    async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse> {
        self.record(format!("register:{}", req.worker_id));
        Fake::special(&req.worker_id).await?;
        if req.worker_id != WORKER && req.worker_id != CONFLICTING {
            return Err(Error::not_found("no such worker"));
        }
        match &req.proof {
            IdentityProof::StaticSecret { secret } if secret.expose() == PROOF => {}
            _ => return Err(Error::identity_rejected("bad_signature")),
        }
        Ok(RegisterResponse {
            worker_config: json!({"pool": req.worker_pool_id}),
            secret: Secret::new(ISSUED),
            expires: expires(),
            heartbeat_interval_secs: 30,
        })
    }

    async fn reregister(&self, worker_id: &str, secret: &Secret) -> Result<ReregisterResponse> {
        self.record(format!("reregister:{worker_id}"));
        Fake::special(worker_id).await?;
        Fake::check(worker_id, secret)?;
        Ok(ReregisterResponse {
            secret: Secret::new(ISSUED),
            expires: expires(),
        })
    }

    async fn heartbeat(&self, secret: &Secret, req: HeartbeatRequest) -> Result<HeartbeatResponse> {
        self.record(format!("heartbeat:{}", req.worker_id));
        Fake::special(&req.worker_id).await?;
        Fake::check(&req.worker_id, secret)?;
        Ok(HeartbeatResponse {
            action: if req.running == 0 {
                Action::Drain
            } else {
                Action::Continue
            },
            heartbeat_interval_secs: 30,
            expires: expires(),
        })
    }

    async fn drained(&self, worker_id: &str, secret: &Secret) -> Result<DrainedResponse> {
        self.record(format!("drained:{worker_id}"));
        Fake::special(worker_id).await?;
        Fake::check(worker_id, secret)?;
        Ok(DrainedResponse {
            action: Action::Terminate,
        })
    }
}

/// Limits generous enough that tests not about rate limits never meet them.
pub fn roomy() -> ApiConfig {
    ApiConfig::default()
        .with_rate(10_000, 10_000)
        .with_request_timeout(Duration::from_secs(2))
}

/// A router over a fresh fake, and the fake.
pub fn app(config: ApiConfig) -> (Router, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    (router(fake.clone(), config), fake)
}

/// A POST of `body` to `path`, with `Authorization: Bearer <secret>` when
/// given.
pub fn post(path: &str, secret: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut builder = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(s) = secret {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {s}"));
    }
    builder.body(body.into()).unwrap()
}

/// The same request, as if it came from `peer`.
pub fn from(mut req: Request<Body>, peer: &str) -> Request<Body> {
    let addr: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

/// Sends `req` through `app`; the status, headers and body bytes.
pub async fn send(app: &Router, req: Request<Body>) -> (Response<()>, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (Response::from_parts(parts, ()), bytes.to_vec())
}

/// Asserts `bytes` is an [`ErrorBody`] whose code's status is `status`.
pub fn error_body(status: StatusCode, bytes: &[u8]) -> ErrorBody {
    let body: ErrorBody = serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not an ErrorBody ({e}): {}", String::from_utf8_lossy(bytes)));
    let expected = match status.as_u16() {
        404 | 405 | 413 => 400,
        s => s,
    };
    assert_eq!(body.code.status(), expected, "{body:?} for {status}");
    body
}

/// A heartbeat body for `worker`.
pub fn heartbeat(worker: &str, running: u32) -> String {
    json!({"workerId": worker, "state": "busy", "running": running, "capacityUsed": running})
        .to_string()
}

/// A registration body for `worker` with a static proof.
pub fn register(worker: &str, proof: &str) -> String {
    json!({"workerPoolId": "ci/linux", "workerId": worker,
           "proof": {"kind": "static_secret", "secret": proof}})
    .to_string()
}

/// A `{"workerId": worker}` body.
pub fn worker_body(worker: &str) -> String {
    json!({ "workerId": worker }).to_string()
}
