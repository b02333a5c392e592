//! Azure Resource Manager: resource groups, virtual networks and subnets,
//! public IPs, NICs, managed disks and VMs with ARM's long-running operation
//! semantics, subscription throttling and fault injection; plus the Azure AD
//! client-credentials and managed-identity token endpoints.
//!
//! Every request runs through the same pipeline ([`Arm::router`]): bearer
//! check, api-version check, subscription token bucket, fault rules, then the
//! handler under the subscription's lock. State is derived lazily from
//! timestamps (see `store`), so there are no background tasks.

mod compute;
mod config;
mod errors;
mod lro;
mod network;
mod path;
mod request;
mod resources;
mod store;
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

pub use config::{ArmConfig, ArmDurations, ArmThrottle, BucketLimit};
pub use errors::error_response;

use crate::ctx::{Cloud, Ctx, DropConnection, FaultEffect, OperationName, ResourceView};
use errors::ArmError;
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
    /// `POST /{tenant}/oauth2/v2.0/token` (Azure AD client credentials) and
    /// `GET /metadata/identity/oauth2/token` (managed identity, IMDS style).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/subscriptions", any(handle))
            .route("/subscriptions/", any(handle))
            .route("/subscriptions/{*rest}", any(handle))
            .route("/{tenant}/oauth2/v2.0/token", any(token::entra))
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
    pub fn config(&self) -> ArmConfig {
        (**self.config.read().unwrap_or_else(|e| e.into_inner())).clone()
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
            let part = p.lock().unwrap_or_else(|e| e.into_inner());
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
                });
            }
            for r in part.resources.values().filter(|r| r.alive(now)) {
                out.push(ResourceView {
                    cloud: Cloud::Azure,
                    partition: part.subscription.clone(),
                    kind: r.kind.view_kind().into(),
                    id: r.id.clone(),
                    name: r.name.clone(),
                    state: r.state(now).into(),
                    tags: tags(&r.tags),
                    created: store::timestamp(r.created),
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
    /// remaining-count header to add.
    async fn dispatch(
        &self,
        parts: &Parts,
        body: Body,
    ) -> (&'static str, Response, Option<(Class, u64)>) {
        let path = parts.uri.path();
        let (sub, target) = path::parse(path);
        let op = request::operation_name(&target, &parts.method);
        if !request::has_bearer(&parts.headers) {
            return (op, request::unauthorized(), None);
        }
        let q = request::query(parts.uri.query());
        let Some(api_version) = q.api_version else {
            let e = ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
            return (op, e.into_response(), None);
        };
        let (sub, target) = match (sub, target) {
            (Some(s), Ok(t)) => (s, t),
            (_, Err(nr)) => return (op, error_response(404, nr.code, &nr.message), None),
            (None, Ok(_)) => {
                return (
                    op,
                    error_response(404, "NotFound", "No subscription in the path."),
                    None,
                )
            }
        };
        let class = match parts.method {
            Method::GET | Method::HEAD => Class::Reads,
            Method::DELETE => Class::Deletes,
            _ => Class::Writes,
        };
        if !method_allowed(&target, &parts.method) {
            let e = ArmError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!(
                    "The requested resource does not support http method '{}'.",
                    parts.method
                ),
            );
            return (op, e.into_response(), None);
        }
        let cfg = self.cfg();
        let sub_key = sub.to_ascii_lowercase();
        let remaining = match self.throttle.take(&sub_key, class, &cfg.throttle) {
            Ok(n) => n,
            Err(wait) => {
                let mut e = ArmError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "SubscriptionRequestsThrottled",
                    format!(
                        "Number of '{}' requests for subscription '{sub}' exceeded the limit. Please try again after \
                         '{}' seconds.",
                        class.word(),
                        wait.as_secs().max(1)
                    ),
                );
                e.retry_after = Some(wait.as_secs().max(1));
                return (op, e.into_response(), Some((class, 0)));
            }
        };
        let rem = Some((class, remaining));
        let mut fail = None;
        let mut not_found_reads = None;
        match self
            .ctx
            .fault(Cloud::Azure, op, request::fault_resource(&target))
        {
            None => {}
            Some(FaultEffect::Latency { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await
            }
            Some(FaultEffect::Hang) => {
                self.ctx.hang().await;
                return (
                    op,
                    error_response(
                        504,
                        "GatewayTimeout",
                        "The gateway did not receive a response within the specified time period.",
                    ),
                    rem,
                );
            }
            Some(FaultEffect::Error {
                status,
                code,
                message,
            }) => {
                return (op, error_response(status, &code, &message), rem);
            }
            Some(FaultEffect::Throttle { retry_after_s }) => {
                let mut e = ArmError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    format!(
                        "The request is being throttled. Please try again after '{}' seconds.",
                        retry_after_s.max(1)
                    ),
                );
                e.retry_after = Some(retry_after_s.max(1));
                return (op, e.into_response(), rem);
            }
            Some(FaultEffect::Reset) => {
                let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                res.extensions_mut().insert(DropConnection);
                return (op, res, rem);
            }
            Some(FaultEffect::FailOperation { code, message }) => {
                let asynchronous = matches!(
                    (&target, &parts.method),
                    (Target::Resource { .. }, &Method::PUT | &Method::DELETE)
                        | (Target::Subnet { .. }, &Method::PUT)
                );
                if !asynchronous {
                    return (op, error_response(409, &code, &message), rem);
                }
                fail = Some(OpError { code, message });
            }
            Some(FaultEffect::NotFoundReads { count }) => {
                let counted = matches!(
                    (&target, &parts.method),
                    (Target::Resource { .. }, &Method::PUT | &Method::GET)
                        | (Target::InstanceView { .. }, _)
                );
                if count > 0 && !counted && parts.method == Method::GET {
                    let e = ArmError::resource_not_found(request::fault_resource(&target), "");
                    return (op, e.into_response(), rem);
                }
                not_found_reads = Some(count);
            }
        }
        let body = if parts.method == Method::PUT || parts.method == Method::PATCH {
            let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(b) => b,
                Err(_) => {
                    let msg = format!(
                        "The request content size exceeds the maximum size of {MAX_BODY} bytes."
                    );
                    return (op, error_response(413, "RequestEntityTooLarge", &msg), rem);
                }
            };
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    let e = ArmError::invalid_content(format!(
                        "The request content was invalid and could not be deserialized: '{e}'."
                    ));
                    return (op, e.into_response(), rem);
                }
            }
        } else {
            Value::Null
        };
        let req = Req {
            sub: sub.to_string(),
            base: request::base_url(parts, !self.plain_http.load(Ordering::Relaxed)),
            api_version_q: request::url_safe(&api_version),
            path: path.to_string(),
            now: Instant::now(),
            wall: OffsetDateTime::now_utc(),
            scale: self.ctx.time_scale(),
            read: q.read,
            skip: q.skip,
            fail,
            not_found_reads,
        };
        // Only a PUT makes a subscription's partition; anything else on an
        // unknown subscription runs against an empty, throwaway one.
        let part = if parts.method == Method::PUT {
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
        let m = &parts.method;
        let out = match target {
            Target::ResourceGroup { rg } => match *m {
                Method::PUT => resources::put_group(p, &req, &rg, &body),
                Method::PATCH => resources::patch_group(p, &req, &rg, &body),
                Method::DELETE => resources::delete_group(p, &req, &cfg, &rg),
                _ => resources::get_group(p, &req, &rg, *m == Method::HEAD),
            },
            Target::Resource { kind, rg, name } => match *m {
                Method::PUT => resources::put(p, &req, &cfg, kind, &rg, &name, &body),
                Method::PATCH => resources::patch(p, &req, kind, &rg, &name, &body),
                Method::DELETE => resources::delete(p, &req, &cfg, kind, &rg, &name),
                _ => resources::get(p, &req, kind, &rg, &name, false),
            },
            Target::Subnet { rg, vnet, name } => match *m {
                Method::PUT => resources::put_subnet(p, &req, &cfg, &rg, &vnet, &name, &body),
                _ => resources::get_subnet(p, &req, &rg, &vnet, &name),
            },
            Target::InstanceView { rg, name } => {
                resources::get(p, &req, store::Kind::VirtualMachine, &rg, &name, true)
            }
            Target::List { kind, rg } => resources::list(p, &req, kind, rg.as_deref()),
            Target::OperationStatus { id } => lro::status(p, &req, &cfg, &id),
            Target::OperationResult { id } => lro::result(p, &req, &cfg, &id),
        };
        drop(guard);
        (op, out.unwrap_or_else(IntoResponse::into_response), rem)
    }
}

fn method_allowed(target: &Target, m: &Method) -> bool {
    let read = *m == Method::GET;
    match target {
        Target::ResourceGroup { .. } => {
            read || *m == Method::HEAD
                || *m == Method::PUT
                || *m == Method::PATCH
                || *m == Method::DELETE
        }
        Target::Resource { .. } => {
            read || *m == Method::PUT || *m == Method::PATCH || *m == Method::DELETE
        }
        Target::Subnet { .. } => read || *m == Method::PUT,
        Target::InstanceView { .. }
        | Target::List { .. }
        | Target::OperationStatus { .. }
        | Target::OperationResult { .. } => read,
    }
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
