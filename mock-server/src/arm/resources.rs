//! The generic resource lifecycle every kind shares: PUT (create or update,
//! an operation with the kind's duration), GET (current provisioningState),
//! DELETE (in-use checks, cascades), and the resource group and subnet
//! endpoints. Kind-specific validation lives in `network` and `compute`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::config::{secs, ArmConfig};
use super::errors::ArmError;
use super::lro;
use super::path::{parse, Target};
use super::request::Req;
use super::store::{Group, Kind, Links, Op, OpKind, OpRecord, Partition, ResKey, Resource, Subnet};
use super::view::resource_json;
use super::{compute, network};

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

fn new_op(req: &Req, kind: OpKind, dur: Duration) -> Op {
    Op {
        id: Arc::from(uuid::Uuid::new_v4().to_string()),
        kind,
        ends: req.now + req.scaled(dur),
        failure: req.fail.clone(),
    }
}

fn record(part: &mut Partition, req: &Req, op: &Op, resource: Option<ResKey>) {
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

fn live_group<'a>(
    part: &'a mut Partition,
    rg: &str,
    now: Instant,
) -> Result<&'a mut Group, ArmError> {
    part.group(rg, now)
        .ok_or_else(|| ArmError::group_not_found(rg))
}

fn type_and_name(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.arm_type())
}

/// Sets the back references a resource's links imply.
fn attach(part: &mut Partition, key: &ResKey, links: &Links) {
    match links {
        Links::Nic { pips, .. } => {
            for (pk, _) in pips {
                if let Some(Links::Pip { nic, .. }) =
                    part.resources.get_mut(pk).map(|r| &mut r.links)
                {
                    *nic = Some(key.clone());
                }
            }
        }
        Links::Vm { nics, disks, .. } => {
            for (nk, _) in nics {
                if let Some(Links::Nic { vm, .. }) =
                    part.resources.get_mut(nk).map(|r| &mut r.links)
                {
                    *vm = Some(key.clone());
                }
            }
            for (dk, _) in disks {
                if let Some(Links::Disk { vm }) = part.resources.get_mut(dk).map(|r| &mut r.links) {
                    *vm = Some(key.clone());
                }
            }
        }
        _ => {}
    }
}

/// PUT of a resource.
pub fn put(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    kind: Kind,
    rg: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let now = req.now;
    let group = live_group(part, rg, now)?;
    if group.deleting.is_some() {
        return Err(ArmError::conflict(
            "ResourceGroupBeingDeleted",
            format!("The resource group '{}' is in deprovisioning state and cannot perform this operation.", group.name),
        ));
    }
    let rg_name = group.name.clone();
    let body = body
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("The request content must be a JSON object."))?;
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
    let key = ResKey::new(kind, rg, name);
    let existing = part.live(&key, now).map(|r| {
        (
            r.busy(now),
            r.id.clone(),
            r.name.clone(),
            r.guid.clone(),
            r.created,
            r.location.clone(),
            r.not_found_reads,
        )
    });
    let (op_kind, id, res_name, guid, created, nf) = match existing {
        Some((true, id, ..)) => return Err(ArmError::another_operation(&id)),
        Some((false, id, n, g, c, loc, nf)) => {
            if !loc.eq_ignore_ascii_case(&location) {
                return Err(ArmError::bad_request(
                    "InvalidResourceLocation",
                    format!(
                        "The resource '{name}' already exists in location '{loc}' in resource group '{rg_name}'. \
                         A resource with the same name cannot be created in location '{location}'."
                    ),
                ));
            }
            (OpKind::Update, id, n, g, c, nf)
        }
        None => (
            OpKind::Create,
            format!(
                "/subscriptions/{}/resourceGroups/{rg_name}/providers/{}/{name}",
                req.sub,
                kind.arm_type()
            ),
            name.to_string(),
            uuid::Uuid::new_v4().to_string(),
            req.wall,
            0,
        ),
    };
    let op = new_op(req, op_kind, create_duration(cfg, kind, op_kind));
    let pc = PutCtx {
        sub: &req.sub,
        rg: &rg_name,
        name: &res_name,
        key: &key,
        id: &id,
        location: &location,
        guid: &guid,
        now,
        wall: req.wall,
        op: op.clone(),
    };
    let prepared = match kind {
        Kind::VirtualNetwork => network::prepare_vnet(part, &pc, body)?,
        Kind::PublicIp => network::prepare_pip(part, &pc, body)?,
        Kind::NetworkInterface => network::prepare_nic(part, &pc, body)?,
        Kind::Disk => compute::prepare_disk(part, &pc, body)?,
        Kind::VirtualMachine => compute::prepare_vm(part, &pc, body)?,
    };
    attach(part, &key, &prepared.links);
    for d in prepared.implicit {
        let dk = ResKey::new(Kind::Disk, &d.rg, &d.name);
        part.resources.insert(dk, d);
    }
    let not_found_reads = match (op_kind, req.not_found_reads) {
        (OpKind::Create, Some(n)) => n,
        _ => nf,
    };
    let res = Resource {
        kind,
        rg: rg_name,
        name: res_name,
        id,
        location,
        tags,
        sku: prepared.sku.or_else(|| body.get("sku").cloned()),
        zones: body.get("zones").cloned(),
        props: prepared.props,
        guid,
        created,
        op: op.clone(),
        not_found_reads,
        links: prepared.links,
    };
    let loc = res.location.clone();
    part.resources.insert(key.clone(), res);
    record(part, req, &op, Some(key.clone()));
    let r = part.peek(&key, now).ok_or_else(|| {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "lost resource",
        )
    })?;
    let body = resource_json(part, r, now, Default::default());
    let (status, location_header) = match (kind, op_kind) {
        (Kind::Disk, OpKind::Create) => (StatusCode::ACCEPTED, true),
        (_, OpKind::Create) => (StatusCode::CREATED, false),
        _ => (StatusCode::OK, false),
    };
    let mut out = json_response(status, body);
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        kind.namespace(),
        &loc,
        &op.id,
        location_header,
        kind == Kind::Disk,
    );
    Ok(out)
}

/// GET of a resource (or its instance view).
pub fn get(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: &str,
    name: &str,
    instance_view: bool,
) -> Result<Response, ArmError> {
    let now = req.now;
    live_group(part, rg, now)?;
    let key = ResKey::new(kind, rg, name);
    let r = part
        .live(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    if let Some(n) = req.not_found_reads {
        r.not_found_reads = n;
    }
    if r.not_found_reads > 0 {
        r.not_found_reads -= 1;
        return Err(ArmError::resource_not_found(&type_and_name(kind, name), rg));
    }
    let r = part
        .peek(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    let body = if instance_view {
        serde_json::to_vec(&compute::instance_view(part, r, now)).unwrap_or_default()
    } else {
        resource_json(part, r, now, req.read)
    };
    Ok(ok_json(body))
}

/// DELETE of a resource.
pub fn delete(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    kind: Kind,
    rg: &str,
    name: &str,
) -> Result<Response, ArmError> {
    let now = req.now;
    live_group(part, rg, now)?;
    let key = ResKey::new(kind, rg, name);
    let Some(r) = part.peek(&key, now) else {
        part.live(&key, now);
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let loc = r.location.clone();
    if r.busy(now) {
        if r.op.kind == OpKind::Delete {
            let mut out = StatusCode::ACCEPTED.into_response();
            lro::accepted_headers(
                &mut out,
                req,
                cfg,
                kind.namespace(),
                &loc,
                &r.op.id,
                true,
                kind == Kind::Disk,
            );
            return Ok(out);
        }
        return Err(ArmError::another_operation(&r.id));
    }
    match kind {
        Kind::NetworkInterface => {
            if let Some(vm) = network::nic_user(part, r, now) {
                return Err(ArmError::bad_request(
                    "NicInUse",
                    format!(
                        "Network Interface {} is used by existing resource {}. In order to delete the network \
                         interface, it must be dissociated from the resource.",
                        r.id, vm.id
                    ),
                ));
            }
        }
        Kind::PublicIp => {
            if let Some(nic) = network::pip_user(part, r, now) {
                return Err(ArmError::bad_request(
                    "PublicIPAddressCannotBeDeleted",
                    format!(
                        "Public IP address {} can not be deleted since it is still allocated to resource {}/ipConfigurations.",
                        r.id, nic.id
                    ),
                ));
            }
        }
        Kind::Disk => {
            if let Some(vm) = compute::disk_user(part, r, now) {
                return Err(ArmError::conflict(
                    "OperationNotAllowed",
                    format!("Disk {} is attached to VM {}.", r.name, vm.id),
                ));
            }
        }
        Kind::VirtualNetwork => {
            if let Some(nic) = network::subnet_user(part, &key, "", now) {
                return Err(network::in_use_subnet(
                    &format!("{}/subnets", r.id),
                    &nic.id,
                ));
            }
        }
        Kind::VirtualMachine => {}
    }
    let op = new_op(
        req,
        OpKind::Delete,
        create_duration(cfg, kind, OpKind::Delete),
    );
    let cascade = if kind == Kind::VirtualMachine && op.failure.is_none() {
        compute::cascade(part, r, now)
    } else {
        Vec::new()
    };
    for k in cascade.iter().chain(std::iter::once(&key)) {
        if let Some(c) = part.resources.get_mut(k) {
            c.op = op.clone();
        }
    }
    record(part, req, &op, Some(key));
    let mut out = StatusCode::ACCEPTED.into_response();
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        kind.namespace(),
        &loc,
        &op.id,
        true,
        kind == Kind::Disk,
    );
    Ok(out)
}

fn vnet_parts<'a>(
    part: &'a mut Partition,
    req: &Req,
    rg: &str,
    vnet: &str,
) -> Result<(ResKey, &'a mut Resource), ArmError> {
    live_group(part, rg, req.now)?;
    let key = ResKey::new(Kind::VirtualNetwork, rg, vnet);
    let v = part.live(&key, req.now).ok_or_else(|| {
        ArmError::resource_not_found(&type_and_name(Kind::VirtualNetwork, vnet), rg)
    })?;
    Ok((key, v))
}

/// GET of a subnet.
pub fn get_subnet(
    part: &mut Partition,
    req: &Req,
    rg: &str,
    vnet: &str,
    name: &str,
) -> Result<Response, ArmError> {
    let (_, v) = vnet_parts(part, req, rg, vnet)?;
    let Links::Vnet { subnets } = &v.links else {
        return Err(ArmError::resource_not_found(vnet, rg));
    };
    let s = subnets
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("Microsoft.Network/virtualNetworks/{vnet}/subnets/{name}"),
                rg,
            )
        })?;
    let body = network::subnet_json(v, s, v.state(req.now));
    Ok(ok_json(serde_json::to_vec(&body).unwrap_or_default()))
}

/// PUT of a subnet: an update of its virtual network.
pub fn put_subnet(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    rg: &str,
    vnet: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let now = req.now;
    let (key, v) = vnet_parts(part, req, rg, vnet).map_err(|e| {
        if e.code == "ResourceNotFound" {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "ParentResourceNotFound",
                format!("Can not perform requested operation on nested resource. Parent resource '{vnet}' not found."),
            )
        } else {
            e
        }
    })?;
    if v.busy(now) {
        return Err(ArmError::another_operation(&v.id));
    }
    let sub = network::parse_subnet(body, Some(name))?;
    let loc = v.location.clone();
    let op = new_op(req, OpKind::Update, secs(cfg.durations.virtual_network_s));
    v.op = op.clone();
    let Links::Vnet { subnets } = &mut v.links else {
        return Err(ArmError::resource_not_found(vnet, rg));
    };
    let created = match subnets
        .iter_mut()
        .find(|s| s.name.eq_ignore_ascii_case(name))
    {
        Some(s) => {
            s.props = sub.props;
            false
        }
        None => {
            subnets.push(Subnet { ..sub });
            true
        }
    };
    let v = part
        .peek(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(vnet, rg))?;
    let s = match &v.links {
        Links::Vnet { subnets } => subnets.iter().find(|s| s.name.eq_ignore_ascii_case(name)),
        _ => None,
    }
    .ok_or_else(|| ArmError::resource_not_found(name, rg))?;
    let body = network::subnet_json(v, s, v.state(now));
    record(part, req, &op, Some(key));
    let mut out = json_response(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        serde_json::to_vec(&body).unwrap_or_default(),
    );
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        "Microsoft.Network",
        &loc,
        &op.id,
        false,
        false,
    );
    Ok(out)
}

fn group_json(req: &Req, g: &Group) -> Vec<u8> {
    let state = if g.deleting.is_some() {
        "Deleting"
    } else {
        "Succeeded"
    };
    let mut v = json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}", req.sub, g.name),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "properties": {"provisioningState": state},
    });
    if !g.tags.is_empty() {
        v["tags"] = Value::Object(g.tags.clone());
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// PUT of a resource group (synchronous, as ARM does it).
pub fn put_group(
    part: &mut Partition,
    req: &Req,
    rg: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let body = body
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("The request content must be a JSON object."))?;
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
    let now = req.now;
    let status = match part.group(rg, now) {
        Some(g) => {
            if g.deleting.is_some() {
                return Err(ArmError::conflict(
                    "ResourceGroupBeingDeleted",
                    format!("The resource group '{}' is in deprovisioning state and cannot perform this operation.", g.name),
                ));
            }
            if !g.location.eq_ignore_ascii_case(&location) {
                return Err(ArmError::conflict(
                    "InvalidResourceGroupLocation",
                    format!(
                        "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                        g.location
                    ),
                ));
            }
            g.tags = tags;
            StatusCode::OK
        }
        None => {
            part.groups.insert(
                rg.to_ascii_lowercase(),
                Group {
                    name: rg.to_string(),
                    location,
                    tags,
                    created: req.wall,
                    deleting: None,
                },
            );
            StatusCode::CREATED
        }
    };
    let g = part
        .group(rg, now)
        .ok_or_else(|| ArmError::group_not_found(rg))?;
    Ok(json_response(status, group_json(req, g)))
}

/// GET (or HEAD) of a resource group.
pub fn get_group(
    part: &mut Partition,
    req: &Req,
    rg: &str,
    head: bool,
) -> Result<Response, ArmError> {
    let g = live_group(part, rg, req.now)?;
    if head {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(ok_json(group_json(req, g)))
}

/// DELETE of a resource group and everything in it.
pub fn delete_group(
    part: &mut Partition,
    req: &Req,
    cfg: &ArmConfig,
    rg: &str,
) -> Result<Response, ArmError> {
    let now = req.now;
    let g = live_group(part, rg, now)?;
    let loc = g.location.clone();
    if let Some((id, _)) = &g.deleting {
        let id = id.clone();
        let mut out = StatusCode::ACCEPTED.into_response();
        lro::accepted_headers(
            &mut out,
            req,
            cfg,
            "Microsoft.Resources",
            &loc,
            &id,
            true,
            false,
        );
        return Ok(out);
    }
    let mut op = new_op(req, OpKind::Delete, secs(cfg.durations.delete_s));
    // A resource group delete cannot be made to fail here; the fault answers
    // synchronously instead (see the request pipeline).
    op.failure = None;
    g.deleting = Some((op.id.clone(), op.ends));
    let key = rg.to_ascii_lowercase();
    for r in part
        .resources
        .values_mut()
        .filter(|r| r.rg.eq_ignore_ascii_case(&key))
    {
        r.op = op.clone();
    }
    record(part, req, &op, None);
    let mut out = StatusCode::ACCEPTED.into_response();
    lro::accepted_headers(
        &mut out,
        req,
        cfg,
        "Microsoft.Resources",
        &loc,
        &op.id,
        true,
        false,
    );
    Ok(out)
}

/// Resources per list page.
pub const PAGE: usize = 100;

/// GET of a list: one kind in a group or the subscription, by name, in pages
/// of [`PAGE`] with an absolute `nextLink` (`$skiptoken`).
pub fn list(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: Option<&str>,
) -> Result<Response, ArmError> {
    let now = req.now;
    let rg_key = match rg {
        Some(rg) => Some(live_group(part, rg, now)?.name.to_ascii_lowercase()),
        None => None,
    };
    let mut keys: Vec<&ResKey> = part
        .resources
        .iter()
        .filter(|(k, r)| {
            k.kind == kind && rg_key.as_ref().is_none_or(|g| *g == k.rg) && r.alive(now)
        })
        .map(|(k, _)| k)
        .collect();
    keys.sort_by(|a, b| (&a.rg, &a.name).cmp(&(&b.rg, &b.name)));
    let total = keys.len();
    let mut out = b"{\"value\":[".to_vec();
    for (i, k) in keys.iter().skip(req.skip).take(PAGE).enumerate() {
        if let Some(r) = part.resources.get(*k) {
            if i > 0 {
                out.push(b',');
            }
            out.extend(resource_json(part, r, now, Default::default()));
        }
    }
    out.push(b']');
    if req.skip.saturating_add(PAGE) < total {
        let next = format!(
            "{}{}?api-version={}&$skiptoken={}",
            req.base,
            req.path,
            req.api_version_q,
            req.skip + PAGE
        );
        out.extend(b",\"nextLink\":");
        out.extend(serde_json::to_vec(&next).unwrap_or_else(|_| b"null".to_vec()));
    }
    out.push(b'}');
    Ok(ok_json(out))
}

/// The `tags` of a PATCH body; anything else is refused, as this mock
/// updates tags only (`*_UpdateTags`, and tags of `Disks_Update` /
/// `VirtualMachines_Update` / `ResourceGroups_Update`).
fn patch_tags(body: &Value) -> Result<Option<Map<String, Value>>, ArmError> {
    let b = body
        .as_object()
        .ok_or_else(|| ArmError::invalid_content("The request content must be a JSON object."))?;
    if let Some(k) = b.keys().find(|k| k.as_str() != "tags") {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!("Updating '{k}' with PATCH is not supported by this mock; use PUT."),
        ));
    }
    match b.get("tags") {
        None => Ok(None),
        v => obj(v, "tags").map(Some),
    }
}

/// PATCH of a resource: replaces its tags, synchronously (200).
pub fn patch(
    part: &mut Partition,
    req: &Req,
    kind: Kind,
    rg: &str,
    name: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let now = req.now;
    live_group(part, rg, now)?;
    let tags = patch_tags(body)?;
    let key = ResKey::new(kind, rg, name);
    let r = part
        .live(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    if r.busy(now) {
        return Err(ArmError::another_operation(&r.id));
    }
    if let Some(t) = tags {
        r.tags = t;
    }
    let r = part
        .peek(&key, now)
        .ok_or_else(|| ArmError::resource_not_found(&type_and_name(kind, name), rg))?;
    Ok(ok_json(resource_json(part, r, now, Default::default())))
}

/// PATCH of a resource group: replaces its tags.
pub fn patch_group(
    part: &mut Partition,
    req: &Req,
    rg: &str,
    body: &Value,
) -> Result<Response, ArmError> {
    let tags = patch_tags(body)?;
    let g = live_group(part, rg, req.now)?;
    if let Some(t) = tags {
        g.tags = t;
    }
    Ok(ok_json(group_json(req, g)))
}
