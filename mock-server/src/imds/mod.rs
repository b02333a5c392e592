//! The per-VM instance-metadata services of the three clouds, over plain
//! HTTP at path prefixes of the mock's address (the real services live at
//! link-local addresses the mock cannot take):
//!
//! - `/_imds/aws/{instance-id}/...`: EC2's IMDS (v1 and v2 tokens), with
//!   the signed instance identity document;
//! - `/_imds/gcp/{project}/{zone}/{instance}/computeMetadata/v1/...`:
//!   Compute Engine's metadata server, with the identity token; also on a
//!   port of its own per VM (`POST /_mock/imds/listen`), for clients that
//!   take a host rather than a URL;
//! - `/_imds/azure/{vmId}/metadata/...`: Azure's IMDS, with the attested
//!   document.
//!
//! Each VM's metadata is read from its cloud's store when asked (see
//! [`facts`]): a VM that does not exist or is not running has none. The
//! signing keys are in [`trust`]; `GET /_mock/trust` publishes what a
//! verifier trusts, `POST /_mock/trust/rotate` rotates it. Google's JWKS is
//! at `/oauth2/v3/certs` (and the same keys as certificates at
//! `/oauth2/v1/certs`), the paths Google uses.
//!
//! Every request carrying `X-Forwarded-For` is refused, as the real
//! services refuse proxied requests (SSRF): 403 on AWS and Compute Engine,
//! 400 on Azure.

// The request parsers are open to the property tests (`testing`).
internal!(attested, aws, azure);
mod aws_identity;
mod certs;
mod cms;
mod control;
pub mod facts;
mod gce;
mod gce_identity;
mod keys;
mod listen;
pub mod trust;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::arm::Arm;
use crate::ctx::OperationName;
use crate::ec2::Ec2;
use crate::gce::Gce;

use self::trust::Trust;
pub use self::trust::{TrustError, TrustKeys};

/// The metadata services of every cloud.
pub struct Imds {
    ec2: Arc<Ec2>,
    gce: Arc<Gce>,
    arm: Arc<Arm>,
    trust: Trust,
    /// Signs AWS session tokens (stateless: nothing to store or expire).
    token_key: aws_lc_rs::hmac::Key,
    /// The mock's main URL, for the JWKS URL `/_mock/trust` names.
    base_url: RwLock<String>,
    /// The address per-VM ports bind to (the mock's own).
    bind_ip: RwLock<IpAddr>,
    listeners: listen::Listeners,
}

impl Imds {
    /// Metadata over the given clouds' stores, with trust made on first use
    /// (or `trust`, pinned).
    pub fn new(ec2: Arc<Ec2>, gce: Arc<Gce>, arm: Arc<Arm>, trust: Option<Trust>) -> Arc<Imds> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        // Key generation from the system RNG fails only if the OS has no
        // randomness, and then nothing else in the mock works either.
        let token_key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| {
                aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA256,
                    uuid::Uuid::new_v4().as_bytes(),
                )
            });
        Arc::new(Imds {
            ec2,
            gce,
            arm,
            trust: trust.unwrap_or_default(),
            token_key,
            base_url: RwLock::new(String::new()),
            bind_ip: RwLock::new(IpAddr::from([127, 0, 0, 1])),
            listeners: listen::Listeners::default(),
        })
    }

    /// Tells the service the mock's main URL (for the JWKS URL) and the
    /// address it listens on (per-VM ports bind there too).
    pub fn set_address(&self, url: &str, ip: IpAddr) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) = url.to_string();
        *self.bind_ip.write().unwrap_or_else(|e| e.into_inner()) = ip;
    }

    fn bind_ip(&self) -> IpAddr {
        *self.bind_ip.read().unwrap_or_else(|e| e.into_inner())
    }

    fn base_url(&self) -> String {
        self.base_url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The metadata routes (`/_imds/...`, and Google's key URLs).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/_imds/aws/{*rest}", any(aws::handle))
            .route("/_imds/gcp/{*rest}", any(gce::handle_prefixed))
            .route("/_imds/azure/{*rest}", any(azure::handle))
            .route("/_imds", any(unknown))
            .route("/_imds/", any(unknown))
            .route("/_imds/{*rest}", any(unknown))
            .route("/oauth2/v3/certs", get(gce_identity::jwks))
            .route("/oauth2/v1/certs", get(gce_identity::pem_certs))
            .with_state(self.clone())
    }

    /// The control routes: `/_mock/trust`, `/_mock/trust/rotate` and
    /// `/_mock/imds/listen`.
    pub fn control_router(self: &Arc<Self>) -> Router {
        control::router(self.clone())
    }

    /// Closes the per-VM listeners of `project` (every one when `None`),
    /// as `POST /_mock/reset` does.
    pub fn reset(&self, project: Option<&str>) {
        self.listeners.close(project);
    }

    /// Closes every per-VM listener (the mock is shutting down).
    pub fn shutdown(&self) {
        self.listeners.close(None);
    }
}

/// A path under `/_imds/` that names no cloud.
async fn unknown(State(_): State<Arc<Imds>>, req: Request) -> Response {
    let mut resp = plain(
        StatusCode::NOT_FOUND,
        "text/plain",
        format!("no metadata service at {}\n", clip(req.uri().path())),
    );
    name(&mut resp, "imds.unknown");
    resp
}

/// A body with a content type.
pub(crate) fn plain(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let mut resp = (status, body.into()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    resp
}

/// Records the operation name the journal shows.
pub(crate) fn name(resp: &mut Response, op: &'static str) {
    resp.extensions_mut().insert(OperationName(op.to_string()));
}

/// Whether the request came through a proxy.
pub(crate) fn forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key("x-forwarded-for")
}

/// The value of query parameter `key`, decoded.
pub(crate) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .ok()?
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// At most 200 bytes of user text echoed back.
pub(crate) fn clip(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `a/b/c` split into its non-empty segments.
pub(crate) fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}
