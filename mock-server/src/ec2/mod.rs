//! EC2 Query API (Version 2016-11-15) on `POST /` (and `GET /?Action=..`).
//!
//! State is partitioned by account (derived from the SigV4 access key id in
//! `Authorization`) and region (from the credential scope). Instance states
//! are derived from timestamps, so no background task runs. Every answer
//! carries the [`OperationName`] extension with the EC2 Action.

mod actions;
mod config;
mod error;
mod filters;
mod instances;
mod query;
mod xml;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, Method, Uri};

pub use self::config::{BucketLimit, Ec2Config, Ec2Throttle};
pub use self::error::Ec2Error;
use self::instances::{Partition, State as InstanceState};
use self::query::Params;
use crate::ctx::{Cloud, Ctx, DropConnection, FaultEffect, OperationName, ResourceView};

/// The EC2 part of the mock.
pub struct Ec2 {
    ctx: Ctx,
    config: RwLock<Arc<Ec2Config>>,
    partitions: RwLock<HashMap<PartitionKey, Arc<Mutex<Partition>>>>,
}

/// (account, region).
type PartitionKey = (String, String);

/// Who is calling: the partition a request works on.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Account id (12 digits).
    pub account: String,
    /// Region from the credential scope.
    pub region: String,
}

impl Caller {
    /// Reads `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/ec2/aws4_request, ...`.
    /// The signature itself is not checked.
    pub fn from_headers(headers: &HeaderMap, cfg: &Ec2Config) -> Caller {
        let scope = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split("Credential=").nth(1))
            .map(|rest| {
                rest.split([',', ' '])
                    .next()
                    .unwrap_or("")
                    .split('/')
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let account = scope.first().filter(|k| !k.is_empty()).map_or_else(
            || cfg.default_account.clone(),
            |k| account_for_access_key(k),
        );
        let region = scope
            .get(2)
            .filter(|r| is_region_name(r))
            .map_or_else(|| cfg.default_region.clone(), |r| r.to_string());
        Caller { account, region }
    }
}

/// The account an access key id belongs to: the key itself when it is 12
/// digits, else a stable 12-digit number derived from it (FNV-1a).
pub fn account_for_access_key(key: &str) -> String {
    if key.len() == 12 && key.bytes().all(|b| b.is_ascii_digit()) {
        return key.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012}", h % 1_000_000_000_000)
}

fn is_region_name(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The actions the mock implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// RunInstances.
    RunInstances,
    /// DescribeInstances.
    DescribeInstances,
    /// DescribeInstanceStatus.
    DescribeInstanceStatus,
    /// TerminateInstances.
    TerminateInstances,
    /// StopInstances.
    StopInstances,
    /// StartInstances.
    StartInstances,
    /// CreateTags.
    CreateTags,
    /// DeleteTags.
    DeleteTags,
    /// DescribeTags.
    DescribeTags,
    /// DescribeRegions.
    DescribeRegions,
    /// DescribeAvailabilityZones.
    DescribeAvailabilityZones,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::RunInstances,
        Action::DescribeInstances,
        Action::DescribeInstanceStatus,
        Action::TerminateInstances,
        Action::StopInstances,
        Action::StartInstances,
        Action::CreateTags,
        Action::DeleteTags,
        Action::DescribeTags,
        Action::DescribeRegions,
        Action::DescribeAvailabilityZones,
    ];

    /// The Action name.
    pub fn name(self) -> &'static str {
        match self {
            Action::RunInstances => "RunInstances",
            Action::DescribeInstances => "DescribeInstances",
            Action::DescribeInstanceStatus => "DescribeInstanceStatus",
            Action::TerminateInstances => "TerminateInstances",
            Action::StopInstances => "StopInstances",
            Action::StartInstances => "StartInstances",
            Action::CreateTags => "CreateTags",
            Action::DeleteTags => "DeleteTags",
            Action::DescribeTags => "DescribeTags",
            Action::DescribeRegions => "DescribeRegions",
            Action::DescribeAvailabilityZones => "DescribeAvailabilityZones",
        }
    }

    /// The action named `name`, if implemented.
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The request-token bucket class.
    fn request_class(self, p: &Params) -> &'static str {
        match self {
            Action::RunInstances => "run_instances",
            Action::StartInstances => "start_instances",
            Action::TerminateInstances => "terminate_instances",
            Action::CreateTags | Action::DeleteTags => "tags",
            Action::StopInstances => "mutating",
            Action::DescribeInstances | Action::DescribeInstanceStatus => {
                let unfiltered = p.indices("InstanceId").is_empty()
                    && p.indices("Filter").is_empty()
                    && p.get("MaxResults").is_none();
                if unfiltered {
                    "unfiltered_describe"
                } else {
                    "non_mutating"
                }
            }
            Action::DescribeTags | Action::DescribeRegions | Action::DescribeAvailabilityZones => {
                "non_mutating"
            }
        }
    }

    /// The resource-token bucket class and its cost (instances).
    fn resource_class(self, p: &Params) -> Option<(&'static str, f64)> {
        let ids = || p.list("InstanceId").len().max(1) as f64;
        match self {
            Action::RunInstances => {
                let n = p
                    .get("MaxCount")
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(1)
                    .max(1);
                Some(("run_instances_resource", f64::from(n)))
            }
            Action::StartInstances => Some(("start_instances_resource", ids())),
            Action::StopInstances => Some(("stop_instances_resource", ids())),
            Action::TerminateInstances => Some(("terminate_instances_resource", ids())),
            _ => None,
        }
    }

    /// What a fault rule's `resource` glob is matched against: the
    /// launch's `Name` tag for RunInstances, the first `InstanceId` or
    /// `ResourceId` otherwise, else the empty string.
    fn fault_resource(self, p: &Params) -> String {
        match self {
            Action::RunInstances => actions::launch_name_tag(p).unwrap_or_default(),
            Action::CreateTags | Action::DeleteTags => p
                .list("ResourceId")
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            _ => p
                .list("InstanceId")
                .first()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Fault effects that act inside an action rather than instead of it.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// `fail_operation`: the launch (or start) ends with this state reason.
    pub fail: Option<(String, String)>,
    /// `not_found_reads`: new instances are hidden from this many describes.
    pub hidden_reads: u32,
}

impl Ec2 {
    /// A new, empty EC2 with the default settings.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Ec2 {
            ctx,
            config: RwLock::new(Arc::new(Ec2Config::default())),
            partitions: RwLock::new(HashMap::new()),
        })
    }

    /// Routes: `POST /` (form body) and `GET /` (query string).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/", post(handle).get(handle))
            .with_state(self.clone())
    }

    /// Applies new settings. Values that fail [`Ec2Config::validate`] are
    /// refused by the control API before they get here.
    pub fn set_config(&self, config: Ec2Config) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// The settings in force.
    pub fn config(&self) -> Arc<Ec2Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every instance that is not terminated.
    pub fn resources(&self) -> Vec<ResourceView> {
        let now = std::time::Instant::now();
        let parts: Vec<(PartitionKey, Arc<Mutex<Partition>>)> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut out = Vec::new();
        for ((account, _region), part) in parts {
            let part = part.lock().unwrap_or_else(|e| e.into_inner());
            for i in part.instances.values() {
                let seen = i.seen(now);
                if seen.state == InstanceState::Terminated {
                    continue;
                }
                out.push(ResourceView {
                    cloud: Cloud::Aws,
                    partition: account.clone(),
                    kind: "instance".into(),
                    id: i.id.clone(),
                    name: i.id.clone(),
                    state: seen.state.name().into(),
                    tags: i.tags.clone(),
                    created: i.launch_time.clone(),
                });
            }
        }
        out
    }

    /// Clears one account (given as the account id or as an access key id),
    /// or every account when `None`.
    pub fn reset(&self, scope: Option<&str>) {
        let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        match scope {
            None => parts.clear(),
            Some(s) => {
                let derived = account_for_access_key(s);
                parts.retain(|(account, _), _| account != s && *account != derived);
                self.ctx.reset_throttles(Some(&derived));
            }
        }
    }

    fn partition(&self, caller: &Caller) -> Option<Arc<Mutex<Partition>>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(caller.account.clone(), caller.region.clone()))
            .cloned()
    }

    fn partition_or_create(&self, caller: &Caller) -> Arc<Mutex<Partition>> {
        if let Some(p) = self.partition(caller) {
            return p;
        }
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry((caller.account.clone(), caller.region.clone()))
            .or_default()
            .clone()
    }

    /// Runs one request; returns the operation name and the answer.
    async fn run(&self, caller: &Caller, p: &Params, cfg: &Ec2Config) -> (&'static str, Response) {
        let Some(name) = p.get("Action") else {
            let e = Ec2Error::new(
                400,
                "MissingAction",
                "The request must contain the parameter Action",
            );
            return ("MissingAction", e.into_response());
        };
        let Some(action) = Action::from_name(name) else {
            let shown: String = name.chars().take(100).collect();
            let e = Ec2Error::new(
                400,
                "InvalidAction",
                format!("The action {shown} is not valid for this web service."),
            );
            return ("InvalidAction", e.into_response());
        };
        let op = action.name();
        if p.get("Version").is_none() {
            return (op, Ec2Error::missing("Version").into_response());
        }

        let mut injected = Injected::default();
        if let Some(effect) = self.ctx.fault(Cloud::Aws, op, &action.fault_resource(p)) {
            match effect {
                FaultEffect::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
                FaultEffect::Hang => {
                    self.ctx.hang().await;
                    return (op, dropped());
                }
                FaultEffect::Reset => return (op, dropped()),
                FaultEffect::Error {
                    status,
                    code,
                    message,
                } => return (op, error_response(status, &code, &message)),
                FaultEffect::Throttle { retry_after_s } => {
                    let e = Ec2Error::throttled(retry_after_s.saturating_mul(1000));
                    return (op, e.into_response());
                }
                FaultEffect::FailOperation { code, message } => {
                    injected.fail = Some((code, message));
                }
                FaultEffect::NotFoundReads { count } => injected.hidden_reads = count,
            }
        }

        if cfg.throttle.enabled {
            if let Err(e) = self.throttle(caller, action, p, cfg) {
                return (op, e.into_response());
            }
        }

        let request_id = uuid::Uuid::new_v4().to_string();
        let result = match action {
            Action::RunInstances => self.run_instances(caller, p, cfg, &injected, &request_id),
            Action::DescribeInstances => self.describe_instances(caller, p, &request_id),
            Action::DescribeInstanceStatus => self.describe_instance_status(caller, p, &request_id),
            Action::TerminateInstances => self.terminate_instances(caller, p, cfg, &request_id),
            Action::StopInstances => self.stop_instances(caller, p, cfg, &request_id),
            Action::StartInstances => self.start_instances(caller, p, cfg, &injected, &request_id),
            Action::CreateTags => self.create_tags(caller, p, &request_id),
            Action::DeleteTags => self.delete_tags(caller, p, &request_id),
            Action::DescribeTags => self.describe_tags(caller, p, &request_id),
            Action::DescribeRegions => actions::describe_regions(caller, p, cfg, &request_id),
            Action::DescribeAvailabilityZones => {
                actions::describe_availability_zones(caller, p, cfg, &request_id)
            }
        };
        let resp = match result {
            Ok(body) => xml_ok(body, &request_id),
            Err(e) => e.into_response(),
        };
        (op, resp)
    }

    /// Takes the request token (and resource tokens) of an action.
    fn throttle(
        &self,
        caller: &Caller,
        action: Action,
        p: &Params,
        cfg: &Ec2Config,
    ) -> Result<(), Ec2Error> {
        let mut classes = vec![(action.request_class(p), 1.0)];
        classes.extend(action.resource_class(p));
        for (class, cost) in classes {
            let Some(l) = cfg.throttle.limit(class) else {
                continue;
            };
            let key = format!("{}/{class}", caller.region);
            self.ctx
                .take_tokens(
                    Cloud::Aws,
                    &caller.account,
                    &key,
                    l.refill_per_s,
                    l.capacity,
                    cost,
                )
                .map_err(|wait| {
                    Ec2Error::throttled(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
                })?;
        }
        Ok(())
    }
}

async fn handle(
    State(ec2): State<Arc<Ec2>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = if method == Method::GET {
        Params::parse(uri.query().unwrap_or("").as_bytes())
    } else {
        Params::parse(&body)
    };
    let cfg = ec2.config();
    let caller = Caller::from_headers(&headers, &cfg);
    let (op, mut resp) = ec2.run(&caller, &params, &cfg).await;
    resp.extensions_mut().insert(OperationName(op.to_string()));
    resp
}

/// A response the server must not send: it closes the connection instead.
fn dropped() -> Response {
    let mut resp = http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    resp.extensions_mut().insert(DropConnection);
    resp
}

fn xml_ok(body: String, request_id: &str) -> Response {
    let mut resp = (http::StatusCode::OK, body).into_response();
    set_headers(&mut resp, request_id);
    resp
}

fn set_headers(resp: &mut Response, request_id: &str) {
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
}

/// An error in EC2's XML format: `<Response><Errors><Error><Code>..`
/// `</Errors><RequestID>..</RequestID></Response>`, with a fresh request id.
/// A status outside 400..=599 is answered as 500.
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let status = http::StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, error::error_xml(code, message, &request_id)).into_response();
    set_headers(&mut resp, &request_id);
    resp
}
