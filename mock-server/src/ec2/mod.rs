//! EC2 Query API (Version 2016-11-15) on `POST /` (and `GET /?Action=..`).
//!
//! State is partitioned by account (derived from the SigV4 access key id in
//! `Authorization`) and region (from the credential scope). Instance states
//! are derived from timestamps, so no background task runs. Every answer
//! carries the [`OperationName`] extension with the EC2 Action.

mod actions;
mod caller;
mod config;
mod error;
mod filters;
mod fleets;
mod instance_types;
mod instances;
mod out_of_band;
mod query;
mod spot;
pub(crate) mod store;
mod templates;
mod throttle;
mod volumes;
mod xml;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, Method, Uri};

use self::actions::Action;
pub use self::caller::{account_for_access_key, Caller};
pub use self::config::{BucketLimit, Ec2Config, Ec2Throttle};
pub use self::error::Ec2Error;
use self::instances::State as InstanceState;
use self::query::Params;
use self::store::{Partition, Store};
use crate::ctx::{Cloud, Ctx, DropConnection, FaultEffect, OperationName, ResourceView};
use crate::delay::Delay;

/// The EC2 part of the mock.
pub struct Ec2 {
    ctx: Ctx,
    config: RwLock<Arc<Ec2Config>>,
    store: Store,
}

/// Fault effects that act inside an action rather than instead of it.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// `fail_operation`: the launch (or start) ends with this state reason.
    pub fail: Option<(String, String)>,
    /// `not_found_reads`: new instances are hidden from this many describes.
    pub hidden_reads: u32,
    /// `lose_answer`: the action runs, then no answer is sent.
    pub lose_answer: bool,
    /// `stuck`: new instances stay `pending`.
    pub stuck: bool,
}

impl Ec2 {
    /// A new, empty EC2 with the default settings.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Ec2 {
            ctx,
            config: RwLock::new(Arc::new(Ec2Config::default())),
            store: Store::default(),
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
        let mut out = Vec::new();
        for (account, part) in self.store.all() {
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
                    metadata_path: Some(format!("/_imds/aws/{}", i.id)),
                    capacity_type: crate::capacity::capacity_type(i.spot.is_some()),
                    location: Some(i.zone.clone()),
                    instance_type: Some(i.instance_type.clone()),
                });
            }
        }
        out
    }

    /// Clears one account (given as the account id or as an access key id),
    /// or every account when `None`.
    pub fn reset(&self, scope: Option<&str>) {
        match scope {
            None => self.store.retain_accounts(|_| false),
            Some(s) => {
                let derived = account_for_access_key(s);
                self.store
                    .retain_accounts(|account| account != s && account != derived);
                self.ctx.reset_throttles(Some(&derived));
            }
        }
    }

    /// What the metadata service serves for instance `id`: `None` unless
    /// it exists, runs, and has its metadata endpoint enabled. Instance
    /// ids are unique across accounts and regions (random 17 hex digits).
    pub fn imds_vm(&self, id: &str) -> Option<crate::imds::facts::AwsVm> {
        let now = std::time::Instant::now();
        for ((account, region), part) in self.store.all_with_region() {
            let part = part.lock().unwrap_or_else(|e| e.into_inner());
            let Some(i) = part.get(id, now) else {
                continue;
            };
            if i.seen(now).state != InstanceState::Running || !i.metadata.endpoint_enabled {
                return None;
            }
            return Some(crate::imds::facts::AwsVm {
                account,
                region,
                instance_id: i.id.clone(),
                image_id: i.image_id.clone(),
                instance_type: i.instance_type.clone(),
                zone: i.zone.clone(),
                private_ip: i.private_ip.clone(),
                private_dns: i.private_dns.clone(),
                reservation_id: i.reservation_id.clone(),
                launch_index: i.launch_index,
                spot: i.spot.is_some(),
                spot_action: i.spot_action(now),
                launch_time: i.launch_time.clone(),
                user_data: i.user_data.clone(),
                tokens_required: i.metadata.tokens_required,
            });
        }
        None
    }

    /// The store (for snapshots).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    fn partition(&self, caller: &Caller) -> Option<Arc<Mutex<Partition>>> {
        self.store.partition(caller)
    }

    fn partition_or_create(&self, caller: &Caller) -> Arc<Mutex<Partition>> {
        self.store.partition_or_create(caller)
    }

    /// A simulated duration in milliseconds, scaled.
    fn scaled_ms(&self, ms: u64) -> Duration {
        self.ctx.scaled(Duration::from_millis(ms))
    }

    /// Runs one request; returns the operation name and the answer.
    async fn run(&self, caller: &Caller, p: &Params, cfg: &Ec2Config) -> (&'static str, Response) {
        let action = match requested_action(p) {
            Ok(action) => action,
            Err((op, e)) => return (op, e.into_response()),
        };
        let op = action.name();
        if p.get("Version").is_none() {
            return (op, Ec2Error::missing("Version").into_response());
        }
        let injected = match self.inject(action, p).await {
            Ok(injected) => injected,
            Err(resp) => return (op, resp),
        };
        if cfg.throttle.enabled {
            if let Err(e) = self.throttle(caller, action, p, cfg) {
                return (op, e.into_response());
            }
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let resp = match self.call(action, caller, p, cfg, &injected, &request_id) {
            Ok(body) => xml_ok(body, &request_id),
            Err(e) => e.into_response(),
        };
        if injected.lose_answer {
            // Done, but the answer never leaves.
            self.ctx.hang().await;
            return (op, dropped());
        }
        (op, resp)
    }

    /// Applies the first matching fault rule: an effect that replaces the
    /// answer is the `Err`, one that acts inside the action is returned.
    async fn inject(&self, action: Action, p: &Params) -> Result<Injected, Response> {
        let mut injected = Injected::default();
        let Some(effect) = self
            .ctx
            .fault(Cloud::Aws, action.name(), &action.fault_resource(p))
        else {
            return Ok(injected);
        };
        match effect {
            FaultEffect::Latency { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            FaultEffect::Hang => {
                self.ctx.hang().await;
                return Err(dropped());
            }
            FaultEffect::Reset => return Err(dropped()),
            FaultEffect::Error {
                status,
                code,
                message,
            } => return Err(error_response(status, &code, &message)),
            FaultEffect::Throttle { retry_after_s } => {
                let wait = Delay::scaled(Duration::from_secs(retry_after_s), self.ctx.time_scale());
                let e = Ec2Error::throttled(wait.millis());
                return Err(e.into_response());
            }
            FaultEffect::FailOperation { code, message } => {
                injected.fail = Some((code, message));
            }
            FaultEffect::NotFoundReads { count } => injected.hidden_reads = count,
            FaultEffect::LoseAnswer => injected.lose_answer = true,
            FaultEffect::Stuck => injected.stuck = true,
        }
        Ok(injected)
    }

    /// Runs the action itself; the body of a successful answer.
    fn call(
        &self,
        action: Action,
        caller: &Caller,
        p: &Params,
        cfg: &Ec2Config,
        injected: &Injected,
        request_id: &str,
    ) -> Result<String, Ec2Error> {
        match action {
            Action::RunInstances => self.run_instances(caller, p, cfg, injected, request_id),
            Action::DescribeInstances => self.describe_instances(caller, p, request_id),
            Action::DescribeInstanceStatus => self.describe_instance_status(caller, p, request_id),
            Action::TerminateInstances => self.terminate_instances(caller, p, cfg, request_id),
            Action::StopInstances => self.stop_instances(caller, p, cfg, request_id),
            Action::StartInstances => self.start_instances(caller, p, cfg, injected, request_id),
            Action::CreateTags => self.create_tags(caller, p, request_id),
            Action::DeleteTags => self.delete_tags(caller, p, request_id),
            Action::DescribeTags => self.describe_tags(caller, p, request_id),
            Action::DescribeRegions => actions::describe_regions(caller, p, cfg, request_id),
            Action::DescribeAvailabilityZones => {
                actions::describe_availability_zones(caller, p, cfg, request_id)
            }
            Action::DescribeInstanceTypes => actions::describe_instance_types(p, request_id),
            Action::CreateLaunchTemplate => self.create_launch_template(caller, p, cfg, request_id),
            Action::DescribeLaunchTemplates => self.describe_launch_templates(caller, p, request_id),
            Action::DeleteLaunchTemplate => self.delete_launch_template(caller, p, request_id),
            Action::CreateVolume => self.create_volume(caller, p, cfg, request_id),
            Action::DescribeVolumes => self.describe_volumes(caller, p, request_id),
            Action::DeleteVolume => self.delete_volume(caller, p, request_id),
            Action::AttachVolume => self.attach_volume(caller, p, cfg, request_id),
            Action::DetachVolume => self.detach_volume(caller, p, cfg, request_id),
            Action::CreateFleet => self.create_fleet(caller, p, cfg, injected, request_id),
        }
    }
}

/// The `Action` parameter; a missing or unknown one is answered with the
/// operation name the journal records.
fn requested_action(p: &Params) -> Result<Action, (&'static str, Ec2Error)> {
    let Some(name) = p.get("Action") else {
        let e = Ec2Error::new(
            400,
            "MissingAction",
            "The request must contain the parameter Action",
        );
        return Err(("MissingAction", e));
    };
    Action::from_name(name).ok_or_else(|| {
        let shown: String = name.chars().take(100).collect();
        let e = Ec2Error::new(
            400,
            "InvalidAction",
            format!("The action {shown} is not valid for this web service."),
        );
        ("InvalidAction", e)
    })
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
