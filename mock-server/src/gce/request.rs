//! What every Compute request goes through, in order: path parameters,
//! authentication, body, rate quota, fault rules, then the method itself;
//! and the stamping of the method id on the response for the journal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Bytes};
use axum::extract::{RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::RequestPartsExt;
use http::{header, HeaderValue, StatusCode};

use crate::ctx::{Cloud, DropConnection, FaultEffect, OperationName};
use crate::delay::Delay;

use super::config::GceConfig;
use super::error::GceError;
use super::links::Base;
use super::throttle::{self, Group};
use super::Gce;

/// The largest request body Compute methods accept.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// One parsed Compute request.
pub(crate) struct Call {
    /// The project.
    pub project: String,
    /// The zone (empty for aggregated methods).
    pub zone: String,
    /// The instance or operation named in the path (empty for collections).
    pub target: String,
    /// Where links in the answer point.
    pub base: Base,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// A fault the method itself carries out (`fail_operation`,
    /// `not_found_reads`).
    pub fault: Option<FaultEffect>,
    /// The settings in force for this request.
    pub config: GceConfig,
    /// When the method runs.
    pub now: Instant,
}

impl Call {
    /// The first value of a query parameter.
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The project-relative path of the zone.
    pub(crate) fn zone_path(&self) -> String {
        format!("projects/{}/zones/{}", self.project, self.zone)
    }
}

/// What a method answers.
pub(crate) enum Reply {
    /// 200 with this JSON body.
    Json(Vec<u8>),
    /// `zoneOperations.wait`: answer with operation `op` once it is `DONE`
    /// or at `until`, whichever is first.
    Wait {
        /// The operation's name.
        op: String,
        /// The latest answer time.
        until: Instant,
    },
}

/// A Compute method.
pub(crate) type Action = fn(&Gce, &Call) -> Result<Reply, GceError>;

/// A JSON 200 answer.
pub(crate) fn json_ok(body: Vec<u8>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}

fn valid_project(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 100
        && p.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        })
}

fn valid_resource_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 63
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn bad_path_value(value: &str) -> GceError {
    GceError::api(
        400,
        "invalidParameter",
        &format!(
            "Invalid value '{value}'. Values must match the following regular expression: \
             '[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?|[1-9][0-9]{{0,19}}'"
        ),
    )
}

/// Whether the request carries `Authorization: Bearer <token>`.
fn has_bearer(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        })
}

/// The name in an insert body, for matching fault rules by resource.
fn body_name(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        name: String,
    }
    serde_json::from_slice::<Named>(body).ok().map(|n| n.name)
}

fn dropped() -> Response {
    let mut resp = StatusCode::SERVICE_UNAVAILABLE.into_response();
    resp.extensions_mut().insert(DropConnection);
    resp
}

impl Gce {
    /// Serves one Compute request with `action`, stamping the method id.
    pub(crate) async fn serve(
        self: Arc<Self>,
        method: &'static str,
        group: Group,
        req: Request,
        action: Action,
    ) -> Response {
        let mut resp = match self.pipeline(method, group, req, action).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        resp.extensions_mut()
            .insert(OperationName(method.to_string()));
        resp
    }

    async fn pipeline(
        &self,
        method: &'static str,
        group: Group,
        req: Request,
        action: Action,
    ) -> Result<Response, GceError> {
        let (mut parts, body) = req.into_parts();
        let config = self.config();
        if config.require_auth && !has_bearer(&parts.headers) {
            return Err(GceError::Unauthenticated);
        }
        let params = parts
            .extract::<RawPathParams>()
            .await
            .map_err(|_| GceError::invalid("Invalid path: not UTF-8"))?;
        let (mut project, mut zone, mut target) = (String::new(), None, String::new());
        for (k, v) in &params {
            match k {
                "project" => project = v.to_string(),
                "zone" => zone = Some(v.to_string()),
                _ => target = v.to_string(),
            }
        }
        if !valid_project(&project) {
            return Err(bad_path_value(&project));
        }
        // Aggregated methods have no zone in their path (and an empty
        // `Call::zone`).
        if let Some(z) = zone.as_deref().filter(|z| !valid_resource_name(z)) {
            return Err(bad_path_value(z));
        }
        let zone = zone.unwrap_or_default();
        if !target.is_empty() && !valid_resource_name(&target) {
            return Err(bad_path_value(&target));
        }
        let query = parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .unwrap_or_default();
        let body = to_bytes(body, MAX_BODY).await.map_err(|_| {
            GceError::api(
                413,
                "requestTooLarge",
                &format!("The request body is larger than {MAX_BODY} bytes."),
            )
        })?;

        throttle::check(&self.ctx, &config.throttle, &project, group)?;

        let resource = if target.is_empty() {
            body_name(&body).unwrap_or_default()
        } else {
            target.clone()
        };
        let mut fault = None;
        let mut lose_answer = false;
        match self.ctx.fault(Cloud::Gcp, method, &resource) {
            None => {}
            Some(FaultEffect::Latency { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Some(FaultEffect::Hang) => {
                self.ctx.hang().await;
                return Ok(dropped());
            }
            Some(FaultEffect::Reset) => return Ok(dropped()),
            Some(FaultEffect::Error {
                status,
                code,
                message,
            }) => return Err(GceError::api(status, &code, &message)),
            Some(FaultEffect::Throttle { retry_after_s }) => {
                return Err(throttle::throttled(
                    &config.throttle,
                    &project,
                    group,
                    Delay::scaled(Duration::from_secs(retry_after_s), self.ctx.time_scale()),
                ))
            }
            Some(
                f @ (FaultEffect::FailOperation { .. }
                | FaultEffect::NotFoundReads { .. }
                | FaultEffect::Stuck),
            ) => {
                fault = Some(f)
            }
            Some(FaultEffect::LoseAnswer) => lose_answer = true,
        }

        let call = Call {
            project,
            zone,
            target,
            base: Base::of(&parts),
            query,
            body,
            fault,
            config,
            now: Instant::now(),
        };
        let reply = action(self, &call)?;
        if lose_answer {
            // Done, but the answer never leaves.
            self.ctx.hang().await;
            return Ok(dropped());
        }
        match reply {
            Reply::Json(body) => Ok(json_ok(body)),
            Reply::Wait { op, until } => {
                tokio::time::sleep_until(until.into()).await;
                let call = Call {
                    now: Instant::now(),
                    ..call
                };
                super::methods::operations::render_named(self, &call, &op).map(json_ok)
            }
        }
    }
}
