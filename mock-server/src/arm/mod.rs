//! Azure Resource Manager: resource groups, virtual networks and subnets,
//! public IPs, NICs, managed disks and VMs with ARM's long-running operation
//! semantics, subscription throttling and fault injection; plus the Azure AD
//! client-credentials and managed-identity token endpoints.
//!
//! Every request runs through the same pipeline ([`Arm::router`]): bearer
//! check, api-version check, subscription token bucket, fault rules, then the
//! handler under the subscription's lock. State is derived lazily from
//! timestamps (see `store`), so there are no background tasks.

pub(crate) mod compact;
mod compute;
mod config;
mod error;
mod limits;
mod lro;
mod metadata;
mod network;
mod out_of_band;
mod path;
mod power;
mod request;
mod resources;
mod routes;
mod spot;
pub(crate) mod store;
mod throttle;
mod token;
mod view;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

pub use config::{
    ArmConfig, ArmDurations, ArmLimits, ArmPower, ArmThrottle, BucketLimit, EntraApp, MAX_ENTRA_APPS,
};
pub use error::error_response;

use crate::ctx::{Cloud, Ctx, DropConnection, FaultEffect, OperationName, ResourceView};
use crate::delay::Delay;
use error::ArmError;
use path::Target;
use request::Req;
use store::{OpError, Store};
use throttle::{Class, Throttle};

/// The largest request body ARM takes (4 MiB); larger ones get a 413.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The ARM part of the mock.
pub struct Arm {
    ctx: Ctx,
    config: RwLock<Arc<ArmConfig>>,
    store: Store,
    throttle: Throttle,
    plain_http: AtomicBool,
}

impl Arm {
    /// The store (for snapshots).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// A new, empty ARM with the default [`ArmConfig`].
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Arm {
            ctx,
            config: RwLock::new(Arc::new(ArmConfig::default())),
            store: Store::default(),
            throttle: Throttle::default(),
            plain_http: AtomicBool::new(false),
        })
    }

    /// Routes with absolute paths: `/subscriptions/...` (ARM),
    /// `POST /{tenant}/oauth2/v2.0/token` (Azure AD client credentials), the
    /// discovery documents MSAL reads first
    /// (`/{tenant}/v2.0/.well-known/openid-configuration`,
    /// `/common/discovery/instance`, `/{tenant}/discovery/v2.0/keys`) and
    /// `GET /metadata/identity/oauth2/token` (managed identity, IMDS style).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/subscriptions", any(handle))
            .route("/subscriptions/", any(handle))
            .route("/subscriptions/{*rest}", any(handle))
            .route("/{tenant}/oauth2/v2.0/token", any(token::entra))
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                any(token::openid_configuration),
            )
            .route("/{tenant}/discovery/v2.0/keys", any(token::jwks))
            .route("/common/discovery/instance", any(token::instance_discovery))
            .route(
                "/metadata/identity/oauth2/token",
                any(token::managed_identity),
            )
            .with_state(self.clone())
    }

    /// Tells ARM whether the server it sits behind speaks TLS, for the scheme
    /// of the absolute `Azure-AsyncOperation`, `Location` and `nextLink` URLs
    /// it hands out (default: TLS, `https`). A request may still override it
    /// with an `http::uri::Scheme` extension or `X-Forwarded-Proto`.
    pub fn set_tls(&self, on: bool) {
        self.plain_http.store(!on, Ordering::Relaxed);
    }

    /// Applies new settings (a `retry_after_s` of 0 is raised to 1).
    pub fn set_config(&self, mut config: ArmConfig) {
        config.retry_after_s = config.retry_after_s.max(1);
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// The settings in force.
    // Read by the tests (with the `testing` feature) only.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub fn config(&self) -> ArmConfig {
        (**self.config.read().unwrap_or_else(|e| e.into_inner())).clone()
    }

    /// `scheme://host` of a request to this ARM (see `request::base_url`).
    fn base_url(&self, parts: &Parts) -> String {
        request::base_url(parts, !self.plain_http.load(Ordering::Relaxed))
    }

    fn cfg(&self) -> Arc<ArmConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every live resource group and resource, across subscriptions.
    pub fn resources(&self) -> Vec<ResourceView> {
        let now = Instant::now();
        let mut out = Vec::new();
        for p in self.store.all() {
            let mut part = p.lock().unwrap_or_else(|e| e.into_inner());
            spot::apply_evictions(&mut part, now);
            let tags = |m: &serde_json::Map<String, Value>| -> BTreeMap<String, String> {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string()),
                        )
                    })
                    .collect()
            };
            for g in part.groups.values().filter(|g| g.alive(now)) {
                out.push(ResourceView {
                    cloud: Cloud::Azure,
                    partition: part.subscription.clone(),
                    kind: "resourceGroup".into(),
                    id: format!(
                        "/subscriptions/{}/resourceGroups/{}",
                        part.subscription, g.name
                    ),
                    name: g.name.clone(),
                    state: if g.deleting.is_some() {
                        "Deleting"
                    } else {
                        "Succeeded"
                    }
                    .into(),
                    tags: tags(&g.tags),
                    created: store::timestamp(g.created),
                    metadata_path: None,
                    capacity_type: None,
                    location: None,
                    instance_type: None,
                });
            }
            for r in part.resources.values().filter(|r| r.alive(now)) {
                let is_vm = r.kind == store::Kind::VirtualMachine;
                out.push(ResourceView {
                    cloud: Cloud::Azure,
                    partition: part.subscription.clone(),
                    kind: r.kind.view_kind().into(),
                    id: r.id.clone(),
                    name: r.name.clone(),
                    state: r.state(now).into(),
                    tags: tags(&r.tags.map()),
                    created: store::timestamp(r.created),
                    metadata_path: is_vm.then(|| format!("/_imds/azure/{}", r.guid)),
                    capacity_type: is_vm
                        .then(|| crate::capacity::capacity_type(spot::is_spot(r)))
                        .flatten(),
                    location: is_vm.then(|| r.location.clone()),
                    instance_type: is_vm.then(|| spot::resource_vm_size(r).to_string()),
                });
            }
        }
        out
    }

    /// Clears one subscription (state and throttle buckets), or all.
    pub fn reset(&self, scope: Option<&str>) {
        self.store.reset(scope);
        self.throttle
            .reset(scope.map(str::to_ascii_lowercase).as_deref());
    }

    /// Runs one ARM request; returns the operation name, the response and the
    /// remaining-count header to add. Each step may answer instead of the
    /// handler: admission (bearer, api-version, path, method), the
    /// subscription bucket, fault rules, the body, then the route under the
    /// subscription's lock.
    async fn dispatch(
        &self,
        parts: &Parts,
        body: Body,
    ) -> (&'static str, Response, Option<(Class, u64)>) {
        let (sub, target) = path::parse(parts.uri.path());
        let op = request::operation_name(&target, &parts.method);
        let admitted = match request::admit(parts, sub, target) {
            Ok(a) => a,
            Err(res) => return (op, *res, None),
        };
        let class = routes::class(&parts.method);
        let cfg = self.cfg();
        let rem = match self.throttle.admit(admitted.sub, class, &cfg.throttle) {
            Ok(n) => Some((class, n)),
            Err(e) => return (op, e.into_response(), Some((class, 0))),
        };
        let injected = match self.inject(op, &admitted.target, &parts.method).await {
            Ok(i) => i,
            Err(res) => return (op, res, rem),
        };
        let body = match request::read_body(&parts.method, body).await {
            Ok(v) => v,
            Err(res) => return (op, res, rem),
        };
        let lose_answer = injected.lose_answer;
        let req = self.request(parts, &admitted, injected);
        let out = self.with_partition(admitted.sub, &parts.method, |p| {
            routes::route(p, &req, &cfg, admitted.target, &parts.method, &body)
        });
        if lose_answer {
            // Done, but the answer never leaves: what the client sees is a
            // gateway timeout, as with a `hang`.
            self.ctx.hang().await;
            return (op, gateway_timeout(), rem);
        }
        (op, out.unwrap_or_else(IntoResponse::into_response), rem)
    }

    /// Applies the first matching fault rule: an effect that replaces the
    /// answer is the `Err`; one that acts inside the handler is returned.
    async fn inject(
        &self,
        op: &'static str,
        target: &Target,
        m: &Method,
    ) -> Result<Injected, Response> {
        let mut injected = Injected::default();
        let resource = request::fault_resource(target);
        let Some(effect) = self.ctx.fault(Cloud::Azure, op, resource) else {
            return Ok(injected);
        };
        match effect {
            FaultEffect::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            FaultEffect::Hang => {
                self.ctx.hang().await;
                return Err(gateway_timeout());
            }
            FaultEffect::LoseAnswer => injected.lose_answer = true,
            FaultEffect::Stuck => {
                if !routes::is_asynchronous(target, m) {
                    // Nothing to hold: a read or a synchronous call.
                    return Ok(injected);
                }
                injected.stuck = true;
            }
            FaultEffect::Error {
                status,
                code,
                message,
            } => return Err(error_response(status, &code, &message)),
            FaultEffect::Throttle { retry_after_s } => {
                let wait = Delay::scaled(Duration::from_secs(retry_after_s), self.ctx.time_scale());
                let mut e = ArmError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    format!(
                        "The request is being throttled. Please try again after '{}' seconds.",
                        wait.seconds_text()
                    ),
                );
                e.retry_after = Some(wait);
                return Err(e.into_response());
            }
            FaultEffect::Reset => {
                let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                res.extensions_mut().insert(DropConnection);
                return Err(res);
            }
            FaultEffect::FailOperation { code, message } => {
                if !routes::is_asynchronous(target, m) {
                    return Err(error_response(409, &code, &message));
                }
                injected.fail = Some(OpError { code, message });
            }
            FaultEffect::NotFoundReads { count } => {
                if count > 0 && !routes::counts_reads(target, m) && *m == Method::GET {
                    let e = ArmError::resource_not_found(resource, "");
                    return Err(e.into_response());
                }
                injected.not_found_reads = Some(count);
            }
        }
        Ok(injected)
    }

    /// The request as the handlers see it.
    fn request(&self, parts: &Parts, admitted: &request::Admitted<'_>, injected: Injected) -> Req {
        Req {
            sub: admitted.sub.to_string(),
            base: request::base_url(parts, !self.plain_http.load(Ordering::Relaxed)),
            api_version_q: request::url_safe(&admitted.api_version),
            path: parts.uri.path().to_string(),
            now: Instant::now(),
            wall: OffsetDateTime::now_utc(),
            scale: self.ctx.time_scale(),
            read: admitted.query.read,
            skip: admitted.query.skip,
            status_only: admitted.query.status_only.clone(),
            skip_shutdown: admitted.query.skip_shutdown.clone(),
            fail: injected.fail,
            not_found_reads: injected.not_found_reads,
            stuck: injected.stuck,
            ctx: self.ctx.clone(),
        }
    }

    /// Runs `f` under the lock of the subscription's partition. Only a PUT
    /// makes a subscription's partition; anything else on an unknown
    /// subscription runs against an empty, throwaway one.
    fn with_partition<T>(
        &self,
        sub: &str,
        m: &Method,
        f: impl FnOnce(&mut store::Partition) -> T,
    ) -> T {
        let part = if *m == Method::PUT {
            Some(self.store.partition(sub))
        } else {
            self.store.existing(sub)
        };
        let mut scratch = store::Partition::default();
        let mut guard = part
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|e| e.into_inner()));
        let p = match guard.as_deref_mut() {
            Some(p) => p,
            None => &mut scratch,
        };
        spot::apply_evictions(p, Instant::now());
        f(p)
    }
}

/// Fault effects that act inside a handler rather than instead of it.
#[derive(Debug, Default)]
struct Injected {
    /// `fail_operation`: the operation this request starts fails.
    fail: Option<OpError>,
    /// `not_found_reads`: reads of the resource answer 404 this often.
    not_found_reads: Option<u32>,
    /// `lose_answer`: the request is carried out, then not answered.
    lose_answer: bool,
    /// `stuck`: the operation this request starts never ends.
    stuck: bool,
}

/// What ARM's front door answers when the service behind it never did.
fn gateway_timeout() -> Response {
    error_response(
        504,
        "GatewayTimeout",
        "The gateway did not receive a response within the specified time period.",
    )
}

/// Adds the headers every ARM answer carries and the operation name.
pub(crate) fn finish(req_headers: &HeaderMap, res: &mut Response, op: &'static str) {
    let h = res.headers_mut();
    let request_id = match h.get("x-ms-request-id") {
        Some(v) => v.clone(),
        None => {
            let v = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("0"));
            h.insert("x-ms-request-id", v.clone());
            v
        }
    };
    let correlation = req_headers
        .get("x-ms-correlation-request-id")
        .cloned()
        .unwrap_or_else(|| request_id.clone());
    h.insert("x-ms-correlation-request-id", correlation);
    let echo = req_headers
        .get("x-ms-return-client-request-id")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if echo {
        if let Some(id) = req_headers.get("x-ms-client-request-id") {
            h.insert("x-ms-client-request-id", id.clone());
        }
    }
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    res.extensions_mut().insert(OperationName(op.to_string()));
}

async fn handle(State(arm): State<Arc<Arm>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (op, mut res, remaining) = arm.dispatch(&parts, body).await;
    finish(&parts.headers, &mut res, op);
    if let Some((class, n)) = remaining {
        res.headers_mut()
            .insert(class.remaining_header(), HeaderValue::from(n));
    }
    res
}
