//! The one router: every cloud's routes, the control API, the body limit,
//! cloud-appropriate 404/405 answers and request accounting.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::arm::{self, Arm, ArmConfig};
use crate::config::MockConfig;
use crate::control_guard::ControlAccess;
use crate::ctx::{Cloud, Ctx, OperationName};
use crate::ec2::{self, Ec2, Ec2Config};
use crate::gce::{self, Gce, GceConfig};
use crate::imds::trust::Trust;
use crate::imds::Imds;
use crate::journal::Recorder;

/// Largest request body accepted; larger ones get 413 in the cloud's format.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the control API and the middleware share.
pub struct Shared {
    /// The shared context.
    pub ctx: Ctx,
    /// EC2.
    pub ec2: Arc<Ec2>,
    /// ARM.
    pub arm: Arc<Arm>,
    /// Compute Engine.
    pub gce: Arc<Gce>,
    /// The instance-metadata services.
    pub imds: Arc<Imds>,
    /// The cloud settings last applied (the cloud modules do not report
    /// theirs back).
    pub configs: Mutex<CloudConfigs>,
    /// Stats and journal.
    pub recorder: Recorder,
    /// Who may call the control API.
    access: RwLock<ControlAccess>,
}

/// The per-cloud settings in force.
#[derive(Debug, Clone, Default)]
pub struct CloudConfigs {
    /// EC2.
    pub aws: Ec2Config,
    /// ARM.
    pub azure: ArmConfig,
    /// Compute Engine.
    pub gcp: GceConfig,
}

impl Shared {
    /// A fresh mock with empty clouds.
    // Used by the tests (with the `testing` feature) only.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn new(ctx: Ctx) -> Arc<Shared> {
        Shared::with_trust(ctx, None)
    }

    /// A fresh mock whose metadata services sign with `trust` (made on
    /// first use when `None`).
    pub fn with_trust(ctx: Ctx, trust: Option<Trust>) -> Arc<Shared> {
        let ec2 = Ec2::new(ctx.clone());
        let arm = Arm::new(ctx.clone());
        let gce = Gce::new(ctx.clone());
        let imds = Imds::new(ec2.clone(), gce.clone(), arm.clone(), trust);
        Arc::new(Shared {
            ec2,
            arm,
            gce,
            imds,
            ctx,
            configs: Mutex::new(CloudConfigs::default()),
            recorder: Recorder::default(),
            access: RwLock::new(ControlAccess::default()),
        })
    }

    /// The control API's access rules in force.
    pub fn control_access(&self) -> ControlAccess {
        self.access
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the control API's access rules.
    pub fn set_control_access(&self, access: ControlAccess) {
        *self.access.write().unwrap_or_else(|e| e.into_inner()) = access;
    }

    /// Applies a configuration document (validated first; nothing changes
    /// on error).
    pub fn apply_config(&self, cfg: MockConfig) -> Result<(), String> {
        cfg.validate()?;
        if let Some(s) = cfg.time_scale {
            self.ctx.set_time_scale(s)?;
        }
        if let Some(ms) = cfg.max_hang_ms {
            self.ctx.set_max_hang(std::time::Duration::from_millis(ms));
        }
        let mut c = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(aws) = cfg.aws {
            self.ec2.set_config(aws.clone());
            c.aws = aws;
        }
        if let Some(azure) = cfg.azure {
            self.arm.set_config(azure.clone());
            c.azure = azure;
        }
        if let Some(gcp) = cfg.gcp {
            self.gce.set_config(gcp.clone());
            c.gcp = gcp;
        }
        Ok(())
    }

    /// The whole configuration in force, every field filled.
    pub fn config(&self) -> MockConfig {
        let c = self.configs.lock().unwrap_or_else(|e| e.into_inner());
        MockConfig {
            time_scale: Some(self.ctx.time_scale()),
            max_hang_ms: Some(u64::try_from(self.ctx.max_hang().as_millis()).unwrap_or(u64::MAX)),
            aws: Some(c.aws.clone()),
            azure: Some(c.azure.clone()),
            gcp: Some(c.gcp.clone()),
        }
    }
}

/// Which cloud a path belongs to, `None` for the control API.
pub fn cloud_for_path(path: &str) -> Option<Cloud> {
    if path.starts_with("/_mock/") || path == "/_mock" {
        None
    } else if let Some(rest) = path.strip_prefix("/_imds") {
        // The metadata services, by the cloud their path names.
        let cloud = rest.trim_start_matches('/').split('/').next();
        match cloud {
            Some("aws") => Some(Cloud::Aws),
            Some("gcp") => Some(Cloud::Gcp),
            Some("azure") => Some(Cloud::Azure),
            _ => None,
        }
    } else if path.starts_with("/oauth2/") {
        // Google's key URLs (`/oauth2/v3/certs`).
        Some(Cloud::Gcp)
    } else if path.starts_with("/subscriptions") || path.starts_with("/metadata/identity") {
        Some(Cloud::Azure)
    } else if path.starts_with("/compute/") || path == "/token" {
        Some(Cloud::Gcp)
    } else if is_entra_path(path) {
        Some(Cloud::Azure)
    } else {
        Some(Cloud::Aws)
    }
}

/// `/{tenant}/oauth2/...`, Entra's token endpoints, and its discovery
/// documents (`/{tenant}/v2.0/.well-known/...`, `/{tenant}/discovery/...`).
/// Only the second (and third) segment counts, and `/compute/...` is Google's whatever follows: an
/// unknown Compute Engine path with an `oauth2` segment
/// (`/compute/x/oauth2/y`, `/compute/oauth2/y`) gets Google's 404, not
/// ARM's (found by the `mock_gce_json` fuzz target).
fn is_entra_path(path: &str) -> bool {
    let mut segments = path.split('/').skip(1);
    if segments.next().is_none_or(|tenant| tenant.is_empty()) {
        return false;
    }
    match segments.next() {
        Some("oauth2" | "discovery") => true,
        Some("v2.0") => segments.next() == Some(".well-known"),
        _ => false,
    }
}

/// An error in the format of the cloud that owns `path` (control API paths
/// answer JSON `{"error": ...}`).
pub fn error_for_path(path: &str, status: u16, code: &str, message: &str) -> Response {
    if path.starts_with("/_imds") {
        // The metadata services answer plain text.
        let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
        return crate::imds::plain(status, "text/plain", format!("{message}\n"));
    }
    match cloud_for_path(path) {
        Some(Cloud::Aws) => ec2::error_response(status, code, message),
        Some(Cloud::Azure) => arm::error_response(status, code, message),
        Some(Cloud::Gcp) => gce::error_response(status, gce_reason(code), message),
        None => crate::control::json_error(status, message),
    }
}

/// Google's error reasons are lowerCamelCase versions of our generic codes.
fn gce_reason(code: &str) -> &str {
    match code {
        "NotFound" => "notFound",
        "RequestEntityTooLarge" => "requestEntityTooLarge",
        "MethodNotAllowed" => "httpMethodNotAllowed",
        "BadRequest" => "badRequest",
        other => other,
    }
}

/// Builds the whole application router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(shared.ec2.router())
        .merge(shared.arm.router())
        .merge(shared.gce.router())
        .merge(shared.imds.router())
        .merge(shared.imds.control_router())
        .merge(crate::control::router(shared.clone()))
        .merge(crate::ui::router(shared.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .layer(middleware::from_fn_with_state(
            shared,
            crate::control_guard::guard,
        ))
}

/// The router of the plain-HTTP metadata listener a TLS mock opens: the
/// metadata paths only, with the same body limit and accounting.
pub fn imds_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(shared.imds.router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(limit_body))
        .layer(middleware::from_fn_with_state(shared, record))
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path();
    error_for_path(
        path,
        404,
        "NotFound",
        &format!(
            "The requested URL {} was not found on this server.",
            clip(path)
        ),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path();
    error_for_path(
        path,
        405,
        "MethodNotAllowed",
        &format!(
            "The method {} is not allowed for {}.",
            req.method(),
            clip(path)
        ),
    )
}

/// Cuts user-supplied text echoed in messages to a sane length.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(200);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads the whole body under [`BODY_LIMIT`]; 413 in the cloud's format
/// beyond it.
async fn limit_body(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let limit = body_limit(&path);
    let too_large = || {
        error_for_path(
            &path,
            413,
            "RequestEntityTooLarge",
            &format!("The request body is larger than the limit of {limit} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Err(e) => {
            return error_for_path(
                &path,
                400,
                "BadRequest",
                &format!("The request body could not be read: {e}"),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The body limit of `path`: [`BODY_LIMIT`], or the snapshot limit for
/// `PUT /_mock/snapshot` (a whole cloud's state).
pub fn body_limit(path: &str) -> usize {
    if path == "/_mock/snapshot" {
        crate::snapshot::BODY_LIMIT
    } else {
        BODY_LIMIT
    }
}

/// Records every request in the stats and journal.
async fn record(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    // The control API's own traffic would only blur the numbers tests read.
    let Some(cloud) = cloud_for_path(&path) else {
        // The dashboards hear about changes made by anyone.
        let changed = method != http::Method::GET && method != http::Method::HEAD;
        if changed && resp.status().is_success() {
            shared
                .recorder
                .feed()
                .publish(|| crate::ui::feed::FeedEvent::control(method.as_str(), &path));
        }
        return resp;
    };
    let cloud = cloud.as_str();
    let operation = resp
        .extensions()
        .get::<OperationName>()
        .map_or("unrouted", |o| o.0.as_str());
    let status = if resp
        .extensions()
        .get::<crate::ctx::DropConnection>()
        .is_some()
    {
        0
    } else {
        resp.status().as_u16()
    };
    shared.recorder.record(
        method.as_str(),
        &path,
        cloud,
        operation,
        status,
        started.elapsed().as_secs_f64() * 1000.0,
    );
    resp
}
