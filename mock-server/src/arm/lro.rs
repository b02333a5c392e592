//! Long-running operations: the `Azure-AsyncOperation` status resource
//! (always 200 with `status`), the `Location` result URL (202 while running,
//! then the result), and the headers an accepted PUT or DELETE carries. The
//! polling hint is `retry_after_s` scaled by the time scale and never longer
//! than the time the operation has left.

use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::delay::Delay;

use super::config::ArmConfig;
use super::error::ArmError;
use super::request::Req;
use super::resources::ok_json;
use super::store::{timestamp, OpKind, Partition};
use super::view::resource_json;

fn loc_segment(location: &str) -> String {
    let s: String = location
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.is_empty() {
        "global".into()
    } else {
        s
    }
}

/// The absolute `Azure-AsyncOperation` URL of operation `id`.
pub fn status_url(req: &Req, ns: &str, location: &str, id: &str, disk: bool) -> String {
    format!(
        "{}/subscriptions/{}/providers/{ns}/locations/{}/{}/{id}?api-version={}",
        req.base,
        req.sub,
        loc_segment(location),
        if disk { "DiskOperations" } else { "operations" },
        req.api_version_q
    )
}

/// The absolute `Location` URL of operation `id`.
pub fn result_url(req: &Req, ns: &str, location: &str, id: &str) -> String {
    format!(
        "{}/subscriptions/{}/providers/{ns}/locations/{}/operationResults/{id}?api-version={}",
        req.base,
        req.sub,
        loc_segment(location),
        req.api_version_q
    )
}

/// The polling hint: `retry_after_s` scaled by the time scale, cut to the
/// time the operation has left (`remaining`) so the client's next poll lands
/// when it is done.
fn retry_after(req: &Req, cfg: &ArmConfig, remaining: Duration) -> Delay {
    Delay::scaled(Duration::from_secs(cfg.retry_after_s.max(1)), req.scale).at_most(remaining)
}

/// Adds `Azure-AsyncOperation`, the polling hint (`Retry-After` and/or
/// `retry-after-ms`, see `crate::delay`; no longer than the time to
/// `ends`, when operation `id` finishes) and (when `location`) `Location`.
#[allow(clippy::too_many_arguments)]
pub fn accepted_headers(
    res: &mut Response,
    req: &Req,
    cfg: &ArmConfig,
    ns: &str,
    loc: &str,
    (id, ends): (&str, Instant),
    location: bool,
    disk: bool,
) {
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&status_url(req, ns, loc, id, disk)) {
        h.insert("azure-asyncoperation", v);
    }
    if location {
        if let Ok(v) = HeaderValue::from_str(&result_url(req, ns, loc, id)) {
            h.insert(http::header::LOCATION, v);
        }
    }
    retry_after(req, cfg, ends.saturating_duration_since(req.now)).insert_headers(h);
}

fn not_found(id: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The operation '{id}' could not be found."),
    )
}

/// GET of an operation status resource.
pub fn status(
    part: &Partition,
    req: &Req,
    cfg: &ArmConfig,
    id: &str,
) -> Result<Response, ArmError> {
    let rec = part.ops.get(id).ok_or_else(|| not_found(id))?;
    let running = req.now < rec.ends;
    let status = match (&rec.failure, running) {
        (_, true) => "InProgress",
        (Some(f), false) if f.code == super::resources::delete::PREEMPTED => "Canceled",
        (Some(_), false) => "Failed",
        (None, false) => "Succeeded",
    };
    let mut body = json!({
        "id": req.path,
        "name": id,
        "status": status,
        "startTime": timestamp(rec.started_wall),
    });
    if !running {
        let end = rec.started_wall + (rec.ends - rec.started);
        body["endTime"] = Value::from(timestamp(end));
        body["percentComplete"] = Value::from(100);
        if let Some(f) = &rec.failure {
            body["error"] = json!({"code": f.code, "message": f.message});
        }
    }
    let mut res = ok_json(serde_json::to_vec(&body).unwrap_or_default());
    if running {
        retry_after(req, cfg, rec.ends.saturating_duration_since(req.now)).insert_headers(res.headers_mut());
    }
    Ok(res)
}

/// GET of an operation's `Location` URL.
pub fn result(
    part: &Partition,
    req: &Req,
    cfg: &ArmConfig,
    id: &str,
) -> Result<Response, ArmError> {
    let rec = part.ops.get(id).ok_or_else(|| not_found(id))?;
    if req.now < rec.ends {
        let mut res = StatusCode::ACCEPTED.into_response();
        let url = format!("{}{}?api-version={}", req.base, req.path, req.api_version_q);
        if let Ok(v) = HeaderValue::from_str(&url) {
            res.headers_mut().insert(http::header::LOCATION, v);
        }
        retry_after(req, cfg, rec.ends.saturating_duration_since(req.now)).insert_headers(res.headers_mut());
        return Ok(res);
    }
    if let Some(f) = &rec.failure {
        let status = if f.code == "InternalServerError" {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::CONFLICT
        };
        return Err(ArmError::new(status, &f.code, f.message.clone()));
    }
    match (rec.kind, &rec.resource) {
        (OpKind::Delete, _) | (_, None) => Ok(StatusCode::NO_CONTENT.into_response()),
        (_, Some(key)) => match part.peek(key, req.now) {
            Some(r) => Ok(ok_json(resource_json(part, r, req.now, Default::default()))),
            None => Err(ArmError::resource_not_found(&key.name, &key.rg)),
        },
    }
}
