//! The generic resource lifecycle every kind shares, one module per
//! endpoint family: [`put`] (create or update, an operation with the kind's
//! duration), [`read`] (GET of one resource with its current
//! provisioningState, and lists), [`delete`] (in-use checks, cascades),
//! [`patch`] (tags), and the [`groups`] and [`subnets`] endpoints.
//! Kind-specific validation lives in `network` and `compute`.
//!
//! Every handler parses its request body into a typed input before it
//! changes anything; the checks that need state (the resource group exists
//! and is not being deleted) come first, as ARM orders its answers.

pub mod delete;
pub mod groups;
pub mod patch;
pub mod put;
pub mod read;
pub mod subnets;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::config::{secs, ArmConfig};
use super::error::ArmError;
use super::path::{parse, Target};
use super::request::Req;
use super::store::{Group, Kind, Links, Op, OpKind, OpRecord, Partition, ResKey, Resource};

/// What a kind's PUT validation produces.
pub struct Prepared {
    /// Properties to store.
    pub props: Map<String, Value>,
    /// Links to other resources.
    pub links: Links,
    /// `sku` to store (defaults to the request's).
    pub sku: Option<Value>,
    /// Resources made along with this one (a VM's implicit disks).
    pub implicit: Vec<Resource>,
}

impl Prepared {
    /// Properties and links, nothing else.
    pub fn new(props: Map<String, Value>, links: Links) -> Self {
        Prepared {
            props,
            links,
            sku: None,
            implicit: Vec::new(),
        }
    }
}

/// What a kind's PUT validation gets to know.
pub struct PutCtx<'a> {
    /// Subscription as sent.
    pub sub: &'a str,
    /// Resource group, canonical case.
    pub rg: &'a str,
    /// Resource name, canonical case.
    pub name: &'a str,
    /// The resource's key.
    pub key: &'a ResKey,
    /// The resource's ARM id.
    pub id: &'a str,
    /// Region.
    pub location: &'a str,
    /// The resource's guid.
    pub guid: &'a str,
    /// Now.
    pub now: Instant,
    /// Now, wall clock.
    pub wall: OffsetDateTime,
    /// The operation this PUT starts.
    pub op: Op,
}

/// `v` as a JSON object (absent or null is empty); other types are a 400.
pub fn obj(v: Option<&Value>, what: &str) -> Result<Map<String, Value>, ArmError> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(ArmError::invalid_content(format!(
            "The request content was invalid and could not be deserialized: '{what}' must be a JSON object."
        ))),
    }
}

/// A string property.
pub fn prop_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// The key a resource id points at, if it is a resource in `sub`.
pub fn ref_key(sub: &str, id: &str) -> Option<ResKey> {
    match parse(id) {
        (Some(s), Ok(Target::Resource { kind, rg, name })) if s.eq_ignore_ascii_case(sub) => {
            Some(ResKey::new(kind, &rg, &name))
        }
        _ => None,
    }
}

/// The (virtual network key, subnet name) a subnet id points at.
pub fn ref_subnet(sub: &str, id: &str) -> Option<(ResKey, String)> {
    match parse(id) {
        (Some(s), Ok(Target::Subnet { rg, vnet, name })) if s.eq_ignore_ascii_case(sub) => {
            Some((ResKey::new(Kind::VirtualNetwork, &rg, &vnet), name))
        }
        _ => None,
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res
}

/// A 200 with a JSON body.
pub fn ok_json(body: Vec<u8>) -> Response {
    json_response(StatusCode::OK, body)
}

fn create_duration(cfg: &ArmConfig, kind: Kind, op: OpKind) -> Duration {
    let d = &cfg.durations;
    secs(match (kind, op) {
        (Kind::VirtualMachine, OpKind::Delete) => d.vm_delete_s,
        (_, OpKind::Delete) => d.delete_s,
        (Kind::PublicIp, _) => d.public_ip_s,
        (Kind::NetworkInterface, _) => d.network_interface_s,
        (Kind::VirtualNetwork, _) => d.virtual_network_s,
        (Kind::Disk, _) => d.disk_s,
        (Kind::VirtualMachine, OpKind::Create) => d.vm_create_s,
        (Kind::VirtualMachine, OpKind::Update) => d.vm_update_s,
    })
}

pub(crate) fn new_op(req: &Req, kind: OpKind, dur: Duration) -> Op {
    Op {
        id: Arc::from(uuid::Uuid::new_v4().to_string()),
        kind,
        ends: if req.stuck {
            req.now + crate::bounded::MAX_DURATION
        } else {
            req.now + req.scaled(dur)
        },
        failure: req.fail.clone().map(Box::new),
    }
}

pub(crate) fn record(part: &mut Partition, req: &Req, op: &Op, resource: Option<ResKey>) {
    part.record_op(
        op.id.clone(),
        OpRecord {
            kind: op.kind,
            resource,
            started_wall: req.wall,
            started: req.now,
            ends: op.ends,
            failure: op.failure.clone(),
        },
    );
}

pub(crate) fn live_group<'a>(
    part: &'a mut Partition,
    rg: &str,
    now: Instant,
) -> Result<&'a mut Group, ArmError> {
    part.group(rg, now)
        .ok_or_else(|| ArmError::group_not_found(rg))
}

pub(crate) fn type_and_name(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.arm_type())
}

/// What every PUT body (of a resource or a resource group) carries: a JSON
/// object with a non-empty `location` and optional `tags`.
pub struct Placed<'b> {
    /// The whole body.
    pub body: &'b Map<String, Value>,
    /// `location`.
    pub location: String,
    /// `tags` (empty when absent).
    pub tags: Map<String, Value>,
}

impl<'b> Placed<'b> {
    /// Checks the body in the order ARM reports it.
    pub fn parse(body: &'b Value) -> Result<Placed<'b>, ArmError> {
        let body = body.as_object().ok_or_else(|| {
            ArmError::invalid_content("The request content must be a JSON object.")
        })?;
        let location = body
            .get("location")
            .and_then(Value::as_str)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| {
                ArmError::bad_request(
                    "LocationRequired",
                    "The location property is required for this definition.",
                )
            })?
            .to_string();
        let tags = obj(body.get("tags"), "tags")?;
        Ok(Placed {
            body,
            location,
            tags,
        })
    }
}

/// The conflict a change inside a group that is being deleted meets.
pub(crate) fn group_being_deleted(name: &str) -> ArmError {
    ArmError::conflict(
        "ResourceGroupBeingDeleted",
        format!("The resource group '{name}' is in deprovisioning state and cannot perform this operation."),
    )
}
