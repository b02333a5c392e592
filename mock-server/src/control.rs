//! The control API under `/_mock/`: health, reset, resources, stats, the
//! request journal, fault rules and configuration. Answers are JSON; errors
//! are `{"error": MESSAGE}` with a 4xx status.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::app::Shared;
use crate::config::MockConfig;
use crate::ctx::FaultRule;

/// A control API error: `{"error": message}` with `status`.
pub fn json_error(status: u16, message: &str) -> Response {
    (
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

/// The `/_mock/...` routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_mock/health", get(health))
        .route("/_mock/reset", post(reset))
        .route("/_mock/resources", get(resources))
        .route("/_mock/stats", get(stats))
        .route("/_mock/requests", get(requests))
        .route(
            "/_mock/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/_mock/config", get(get_config).put(put_config))
        .with_state(shared.clone())
        .merge(crate::capacity::control::router(shared.clone()))
        .merge(crate::out_of_band::router(shared.clone()))
        .merge(crate::snapshot::router(shared))
}

async fn health() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn reset(State(s): State<Arc<Shared>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let scope = q.get("scope").map(String::as_str);
    if scope == Some("") {
        // An empty scope is more likely a bug in the caller than a request
        // to wipe every partition.
        return json_error(
            400,
            "scope: must not be empty (omit it to reset everything)",
        );
    }
    s.ec2.reset(scope);
    s.arm.reset(scope);
    s.gce.reset(scope);
    s.imds.reset(scope);
    s.ctx.reset_throttles(scope);
    if scope.is_none() {
        s.ctx.capacity().reset();
    }
    Json(serde_json::json!({ "status": "ok", "scope": scope })).into_response()
}

async fn resources(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut all = s.ec2.resources();
    all.extend(s.arm.resources());
    all.extend(s.gce.resources());
    if let Some(cloud) = q.get("cloud") {
        all.retain(|r| r.cloud.as_str() == cloud);
    }
    if let Some(scope) = q.get("scope") {
        all.retain(|r| &r.partition == scope);
    }
    Json(all).into_response()
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    Json(s.recorder.stats()).into_response()
}

async fn requests(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since = match q.get("since").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return json_error(400, "since: must be a non-negative integer sequence number")
        }
    };
    Json(s.recorder.since(since)).into_response()
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    Json(s.ctx.faults()).into_response()
}

/// Parses a fault rule list; the message names the rule and field at fault.
pub fn parse_faults(body: &[u8]) -> Result<Vec<FaultRule>, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let rules: Vec<FaultRule> = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // serde_path_to_error writes `[0].effect.kind`; say `rule 0: effect.kind`.
        let located = path
            .strip_prefix('[')
            .and_then(|p| p.split_once(']'))
            .map(|(index, field)| (index.to_string(), field.trim_start_matches('.').to_string()));
        match located {
            None => format!("fault rules must be a JSON array of rules: {}", e.inner()),
            Some((index, field)) if field.is_empty() => format!("rule {index}: {}", e.inner()),
            Some((index, field)) => format!("rule {index}: {field}: {}", e.inner()),
        }
    })?;
    Ok(rules)
}

async fn put_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let rules = match parse_faults(&body) {
        Ok(r) => r,
        Err(e) => return json_error(400, &e),
    };
    match s.ctx.set_faults(rules) {
        Ok(()) => Json(s.ctx.faults()).into_response(),
        Err(e) => json_error(400, &e),
    }
}

async fn delete_faults(State(s): State<Arc<Shared>>) -> Response {
    // An empty list always validates.
    let _ = s.ctx.set_faults(Vec::new());
    Json(s.ctx.faults()).into_response()
}

async fn get_config(State(s): State<Arc<Shared>>) -> Response {
    Json(s.config()).into_response()
}

async fn put_config(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let text = match std::str::from_utf8(&body) {
        Ok(t) => t,
        Err(_) => return json_error(400, "the configuration must be UTF-8 JSON"),
    };
    let cfg = match MockConfig::from_json(text) {
        Ok(c) => c,
        Err(e) => return json_error(400, &e),
    };
    match s.apply_config(cfg) {
        Ok(()) => Json(s.config()).into_response(),
        Err(e) => json_error(400, &e),
    }
}
