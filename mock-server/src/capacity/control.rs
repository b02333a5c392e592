//! The capacity control API: `GET|PUT|DELETE /_mock/stockouts`,
//! `POST /_mock/interrupt`, `GET|PUT /_mock/interruptions`. Answers are
//! JSON; a bad body is 400 `{"error": ...}` naming the field.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{InterruptionView, Notice, Rate, Stockout, Target};
use crate::app::Shared;
use crate::control::json_error;
use crate::ctx::Cloud;

/// The body of `PUT /_mock/stockouts` and the answer of its `GET`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stockouts {
    /// The rules, first match wins.
    pub stockouts: Vec<Stockout>,
}

/// The body of `POST /_mock/interrupt`: a cloud and either instances or a
/// fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterruptRequest {
    /// The cloud.
    pub cloud: Cloud,
    /// EC2 instance ids, GCE instance names or ARM VM names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<Vec<String>>,
    /// This share of the cloud's running spot instances (rounded up when
    /// above 0), picked by the seeded RNG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
}

/// The answer of `POST /_mock/interrupt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interrupted {
    /// The instances interrupted (on-demand, not running or already
    /// interrupted ones are skipped).
    pub interrupted: Vec<Interruption>,
}

/// One interruption made by `POST /_mock/interrupt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interruption {
    /// The cloud.
    pub cloud: Cloud,
    /// EC2 instance id, GCE instance name, ARM VM name.
    pub id: String,
    /// When the notice was given, RFC 3339.
    pub notice_at: String,
    /// When the instance goes, RFC 3339.
    pub ends_at: String,
}

/// The body of `PUT /_mock/interruptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Per-cloud rates.
    pub rates: Vec<Rate>,
}

/// The answer of `GET /_mock/interruptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InterruptionLog {
    /// Per-cloud rates in force.
    pub rates: Vec<Rate>,
    /// Every interruption so far (the last 10,000), oldest first.
    pub interruptions: Vec<InterruptionView>,
}

/// The longest instance list `POST /_mock/interrupt` takes.
const MAX_INSTANCES: usize = 10_000;

/// The capacity routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_mock/stockouts",
            get(get_stockouts).put(put_stockouts).delete(delete_stockouts),
        )
        .route("/_mock/interrupt", post(interrupt))
        .route(
            "/_mock/interruptions",
            get(get_interruptions).put(put_interruptions),
        )
        .with_state(shared)
}

/// Parses a JSON body; the message names the field at fault.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            format!("body: {}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

/// Parses and validates a `PUT /_mock/stockouts` body.
pub fn parse_stockouts(body: &[u8]) -> Result<Vec<Stockout>, String> {
    let s: Stockouts = parse(body)?;
    for (i, r) in s.stockouts.iter().enumerate() {
        r.validate().map_err(|e| format!("stockouts[{i}].{e}"))?;
    }
    Ok(s.stockouts)
}

/// Parses and validates a `POST /_mock/interrupt` body.
pub fn parse_interrupt(body: &[u8]) -> Result<InterruptRequest, String> {
    let r: InterruptRequest = parse(body)?;
    match (&r.instances, r.fraction) {
        (Some(_), Some(_)) => Err("give either instances or fraction, not both".into()),
        (None, None) => Err("instances or fraction: one is required".into()),
        (Some(list), None) if list.len() > MAX_INSTANCES => Err(format!(
            "instances: at most {MAX_INSTANCES} names, got {}",
            list.len()
        )),
        (None, Some(f)) if !(0.0..=1.0).contains(&f) || f.is_nan() => {
            Err(format!("fraction: must be within [0, 1], got {f}"))
        }
        _ => Ok(r),
    }
}

/// Parses and validates a `PUT /_mock/interruptions` body.
pub fn parse_rates(body: &[u8]) -> Result<Vec<Rate>, String> {
    let r: Rates = parse(body)?;
    for (i, rate) in r.rates.iter().enumerate() {
        rate.validate().map_err(|e| format!("rates[{i}].{e}"))?;
    }
    Ok(r.rates)
}

async fn get_stockouts(State(s): State<Arc<Shared>>) -> Response {
    Json(Stockouts {
        stockouts: s.ctx.capacity().stockouts(),
    })
    .into_response()
}

async fn put_stockouts(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let rules = match parse_stockouts(&body) {
        Ok(r) => r,
        Err(e) => return json_error(400, &e),
    };
    if let Err(e) = s.ctx.capacity().set_stockouts(rules) {
        return json_error(400, &e);
    }
    get_stockouts(State(s)).await
}

async fn delete_stockouts(State(s): State<Arc<Shared>>) -> Response {
    // An empty list always validates.
    let _ = s.ctx.capacity().set_stockouts(Vec::new());
    get_stockouts(State(s)).await
}

async fn interrupt(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let req = match parse_interrupt(&body) {
        Ok(r) => r,
        Err(e) => return json_error(400, &e),
    };
    let interrupted = match (&req.instances, req.fraction) {
        (Some(ids), _) => ids
            .iter()
            .flat_map(|id| interrupt_one(&s, req.cloud, id))
            .collect(),
        (None, Some(f)) => interrupt_fraction(&s, req.cloud, f),
        (None, None) => Vec::new(),
    };
    Json(Interrupted { interrupted }).into_response()
}

async fn get_interruptions(State(s): State<Arc<Shared>>) -> Response {
    let c = s.ctx.capacity();
    Json(InterruptionLog {
        rates: c.rates(),
        interruptions: c.interruptions(),
    })
    .into_response()
}

async fn put_interruptions(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let rates = match parse_rates(&body) {
        Ok(r) => r,
        Err(e) => return json_error(400, &e),
    };
    if let Err(e) = s.ctx.capacity().set_rates(rates) {
        return json_error(400, &e);
    }
    get_interruptions(State(s)).await
}

/// The running, not yet interrupted spot instances of `cloud`.
pub fn spot_running(s: &Shared, cloud: Cloud) -> Vec<Target> {
    match cloud {
        Cloud::Aws => s.ec2.spot_running(),
        Cloud::Gcp => s.gce.spot_running(),
        Cloud::Azure => s.arm.spot_running(),
    }
}

/// Interrupts the running spot instance(s) `cloud` knows by `id` (a GCE
/// or ARM name may be used in several projects or groups: each is
/// interrupted), records and returns them.
pub fn interrupt_one(s: &Shared, cloud: Cloud, id: &str) -> Vec<Interruption> {
    let notice = Notice::now(cloud, s.ctx.time_scale());
    let targets = match cloud {
        Cloud::Aws => s.ec2.interrupt(id, &notice),
        Cloud::Gcp => s.gce.interrupt(id, &notice),
        Cloud::Azure => s.arm.interrupt(id, &notice),
    };
    targets
        .iter()
        .map(|t| {
            let v = s.ctx.capacity().record(cloud, t, &notice);
            Interruption {
                cloud,
                id: v.id,
                notice_at: v.notice_at,
                ends_at: v.ends_at,
            }
        })
        .collect()
}

/// Interrupts `fraction` of the running spot instances of `cloud` (rounded
/// up when above 0), picked by the seeded RNG.
pub fn interrupt_fraction(s: &Shared, cloud: Cloud, fraction: f64) -> Vec<Interruption> {
    let mut targets = spot_running(s, cloud);
    // A stable order before the seeded shuffle keeps picks reproducible.
    targets.sort_by(|a, b| a.id.cmp(&b.id));
    let n = (fraction * targets.len() as f64).ceil() as usize;
    s.ctx
        .capacity()
        .with_rng(|rng| targets.shuffle(rng));
    targets.truncate(n.min(targets.len()));
    targets
        .iter()
        .flat_map(|t| interrupt_one(s, cloud, &t.id))
        .collect()
}
