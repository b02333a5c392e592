//! The chain: public IP -> NIC -> data disks -> VM, and its teardown, as a
//! resumable state machine persisted in the worker's provider state.
//!
//! # Creation
//!
//! The first step derives every name from the worker id ([`Names`]) and, in
//! the same step, PUTs the first resource; the names are in the state that
//! step returns. Each later step looks at the first resource not yet
//! created: if its operation is due it polls it (a read); when the poll says
//! `Succeeded` the same step PUTs the next resource (the step's one mutating
//! call), so a chain advances as soon as ARM allows, paced by `Retry-After`
//! rather than by scan passes. When the VM's operation succeeds the worker
//! is `Running`.
//!
//! # Crashes
//!
//! A step's answer may be lost (the process dies after sending a request and
//! before the state is persisted). The next process steps from the previous
//! state and repeats at most that one request, which is safe because ARM
//! creates by name: the PUT lands on the resource the lost request created
//! (or answers 409 while it is still being created, in which case the chain
//! watches the resource itself). A resource is only PUT once every resource
//! before it is confirmed, so at any time at most the first unconfirmed
//! resource and the one after it (a lost step may have confirmed the first
//! and PUT the next) may exist unrecorded: teardown deletes (by name)
//! everything up to those, and a DELETE answered 404 counts as done.
//!
//! # Teardown
//!
//! VM -> NIC -> public IP -> data disks -> OS disk, each a DELETE and its
//! operation. When every dependent was created with `deleteOption: Delete`
//! and the VM was created, one VM delete removes them all. `NicInUse`,
//! `AnotherOperationInProgress` and other "busy" answers mean "again
//! later", never failure. The worker is `Stopped` (or `Failed`, when
//! teardown followed a failure) only once every resource is gone.
//!
//! # Failure and deadlines
//!
//! A failed operation (with its ARM code, capacity codes classified as
//! `CapacityOrQuota`), a refused PUT, a missed provisioning deadline (the
//! whole chain has one: Taskcluster #7422), a stopped or vanished VM: each
//! records the error and tears down what was created.

use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};
use skyfleet_core::clock::until;
use skyfleet_core::provider::StepError;
use skyfleet_core::transport::ApiClass;
use skyfleet_core::{
    DesiredState, Error, ErrorKind, FinalState, Operation, Phase, Result, Step, Worker,
};
use time::OffsetDateTime;

use crate::arm::{ArmOperation, PollKind, PollOutcome, ResourceType, Started};
use crate::classify;
use crate::config::AzureLaunch;
use crate::health::{self, Health};
use crate::naming::Names;
use crate::provider::AzureProvider;
use crate::resources;

/// The version of the persisted state layout.
pub const STATE_VERSION: u32 = 1;

/// One resource of the creation chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Its type.
    pub ty: ResourceType,
    /// Its name.
    pub name: String,
    /// Whether its creation is confirmed.
    #[serde(default)]
    pub created: bool,
    /// The create operation in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<ArmOperation>,
}

/// One resource to delete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Its type.
    pub ty: ResourceType,
    /// Its name.
    pub name: String,
    /// Whether it is confirmed gone.
    #[serde(default)]
    pub gone: bool,
    /// The delete operation in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<ArmOperation>,
    /// Not before this time (after a "busy" answer).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub retry_at: Option<OffsetDateTime>,
}

/// The teardown plan and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teardown {
    /// Why.
    pub reason: String,
    /// What to delete, in order.
    pub targets: Vec<Target>,
    /// The VM was created with every dependent `deleteOption: Delete`: its
    /// delete removes everything.
    pub cascade: bool,
}

/// A failure kept on the state (so the final step reports it again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failure {
    /// The error kind's stable name.
    pub kind: String,
    /// The ARM code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The message.
    pub message: String,
}

impl From<&Error> for Failure {
    fn from(e: &Error) -> Self {
        Failure {
            kind: e.kind().name().to_string(),
            code: e.code().map(str::to_string),
            message: e.message().to_string(),
        }
    }
}

impl Failure {
    fn step_error(&self) -> StepError {
        StepError {
            kind: ErrorKind::from_name(&self.kind),
            code: self.code.clone(),
            message: self.message.clone(),
            at: None,
        }
    }
}

/// The Azure provider's state on a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainState {
    /// Layout version.
    pub v: u32,
    /// The resource group.
    pub resource_group: String,
    /// The region.
    pub location: String,
    /// Every name, derived from the worker id.
    pub names: Names,
    /// Dependents are created with `deleteOption: Delete`.
    pub cascade: bool,
    /// The creation chain, in order (the VM last).
    pub create: Vec<Link>,
    /// The teardown, once begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown: Option<Teardown>,
    /// Consecutive instance-view 404s of an existing VM.
    #[serde(default)]
    pub instance_view_404s: u32,
    /// Why the worker failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl ChainState {
    /// The initial state of a worker: names and the chain to create.
    pub fn new(worker_id: &str, launch: &AzureLaunch, resource_group: String) -> Self {
        let names = Names::derive(
            &launch.name_prefix,
            worker_id,
            launch.public_ip,
            launch.data_disks.len(),
        );
        let mut create = Vec::new();
        let link = |ty, name: &str| Link {
            ty,
            name: name.to_string(),
            created: false,
            op: None,
        };
        if let Some(pip) = &names.public_ip {
            create.push(link(ResourceType::PublicIp, pip));
        }
        create.push(link(ResourceType::Nic, &names.nic));
        for d in &names.data_disks {
            create.push(link(ResourceType::Disk, d));
        }
        if launch.os_disk.explicit {
            create.push(link(ResourceType::Disk, &names.os_disk));
        }
        create.push(link(ResourceType::Vm, &names.vm));
        ChainState {
            v: STATE_VERSION,
            resource_group,
            location: launch.location().to_string(),
            cascade: launch.delete_with_vm,
            names,
            create,
            teardown: None,
            instance_view_404s: 0,
            failure: None,
        }
    }

    /// Parses a worker's state (`None` before the first step).
    pub fn from_worker(worker: &Worker) -> Result<Option<Self>> {
        if worker.provider_state.is_null() {
            return Ok(None);
        }
        serde_json::from_value(worker.provider_state.clone())
            .map(Some)
            .map_err(|e| {
                Error::internal(format!(
                    "worker {}: unreadable Azure provider state: {e}",
                    worker.id()
                ))
                .with_code("InvalidProviderState")
                .with_provider("azure")
            })
    }

    /// Starts the teardown of whatever may exist. The first unconfirmed
    /// resource may exist; so may the one after it, because a step whose
    /// answer was lost may have confirmed the first and PUT the next. Later
    /// ones were never requested.
    pub fn begin_teardown(&mut self, reason: impl Into<String>) {
        if self.teardown.is_some() {
            return;
        }
        let frontier = self
            .create
            .iter()
            .position(|l| !l.created)
            .unwrap_or(self.create.len());
        let maybe = |ty: ResourceType, name: &str| -> bool {
            self.create
                .iter()
                .position(|l| l.ty == ty && l.name == name)
                .is_some_and(|i| i <= frontier + 1)
        };
        let target = |ty, name: &str| Target {
            ty,
            name: name.to_string(),
            gone: false,
            op: None,
            retry_at: None,
        };
        let n = &self.names;
        let vm_maybe = maybe(ResourceType::Vm, &n.vm);
        let mut targets = Vec::new();
        if vm_maybe {
            targets.push(target(ResourceType::Vm, &n.vm));
        }
        if maybe(ResourceType::Nic, &n.nic) {
            targets.push(target(ResourceType::Nic, &n.nic));
        }
        if let Some(pip) = &n.public_ip {
            if maybe(ResourceType::PublicIp, pip) {
                targets.push(target(ResourceType::PublicIp, pip));
            }
        }
        for d in &n.data_disks {
            if maybe(ResourceType::Disk, d) {
                targets.push(target(ResourceType::Disk, d));
            }
        }
        let explicit_os = self
            .create
            .iter()
            .any(|l| l.ty == ResourceType::Disk && l.name == n.os_disk);
        if (explicit_os && maybe(ResourceType::Disk, &n.os_disk)) || (!explicit_os && vm_maybe) {
            targets.push(target(ResourceType::Disk, &n.os_disk));
        }
        let vm_created = self
            .create
            .last()
            .is_some_and(|l| l.ty == ResourceType::Vm && l.created);
        for l in &mut self.create {
            l.op = None;
        }
        self.teardown = Some(Teardown {
            reason: reason.into(),
            targets,
            cascade: self.cascade && vm_created,
        });
    }

    fn fail(&mut self, e: &Error) {
        if self.failure.is_none() {
            self.failure = Some(Failure::from(e));
        }
        self.begin_teardown(format!("failure: {}", e.message()));
    }
}

fn out(st: &ChainState, phase: Phase, next: Duration, err: Option<StepError>) -> Result<Step> {
    Ok(Step {
        state: serde_json::to_value(st)?,
        phase,
        next_check_in: next,
        error: err,
    })
}

fn se(e: &Error) -> StepError {
    StepError::from(e)
}

/// What a GET by name found.
enum Lookup {
    Missing,
    Succeeded,
    InProgress,
    Failed(String),
}

/// Whether a refused mutating call should be retried later as is (the
/// state is not changed): throttles, transient failures, timeouts, token
/// problems.
fn retry_later(e: &Error) -> bool {
    e.is_retryable() || matches!(e.kind(), ErrorKind::Unauthenticated)
}

/// One step of a worker (see the module doc).
pub(crate) async fn step(p: &AzureProvider, worker: &Worker) -> Result<Step> {
    let now = p.now();
    let mut st = match ChainState::from_worker(worker)? {
        Some(st) => st,
        None => {
            if worker.desired == DesiredState::Removed {
                // Nothing was ever requested.
                return Ok(Step::new(
                    serde_json::Value::Null,
                    Phase::Stopped,
                    Duration::ZERO,
                ));
            }
            let launch = match AzureLaunch::parse(&worker.spec.launch) {
                Ok(l) => l,
                Err(e) => {
                    return Ok(
                        Step::new(serde_json::Value::Null, Phase::Failed, Duration::ZERO)
                            .with_error(&e),
                    )
                }
            };
            let rg = p.resource_group_for(&launch)?;
            ChainState::new(worker.id(), &launch, rg)
        }
    };
    if st.teardown.is_none() {
        if worker.desired == DesiredState::Removed {
            st.begin_teardown("removal requested");
        } else if worker.phase == Phase::Requested && now >= worker.provisioning_deadline() {
            let e = Error::new(
                ErrorKind::Timeout,
                format!(
                    "worker {} was not running within its provisioning deadline ({} s)",
                    worker.id(),
                    worker.spec.lifecycle.provisioning_deadline.as_secs()
                ),
            )
            .with_code("ProvisioningDeadlineExceeded")
            .with_provider("azure");
            st.fail(&e);
            return out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)));
        }
    }
    if st.teardown.is_some() {
        return teardown(p, worker, st).await;
    }
    if st.create.iter().all(|l| l.created) && worker.phase == Phase::Running {
        return check_health(p, st).await;
    }
    create(p, worker, st).await
}

async fn lookup(
    p: &AzureProvider,
    st: &ChainState,
    ty: ResourceType,
    name: &str,
) -> Result<Lookup> {
    let url = p.client.resource_url(&st.resource_group, ty, name);
    let op = format!("{}_Get", ty.op_prefix());
    let resp = p
        .client
        .send(
            Method::GET,
            &url,
            None,
            ApiClass::Read,
            &st.location,
            op.clone(),
        )
        .await?;
    match resp.status {
        404 => Ok(Lookup::Missing),
        200..=299 => {
            let body: serde_json::Value = resp.json(&op)?;
            let state = body
                .get("properties")
                .and_then(|p| p.get("provisioningState"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("Succeeded")
                .to_ascii_lowercase();
            Ok(match state.as_str() {
                "succeeded" => Lookup::Succeeded,
                "failed" | "canceled" | "cancelled" => Lookup::Failed(state),
                _ => Lookup::InProgress,
            })
        }
        _ => Err(resp.error(&op)),
    }
}

/// An operation that watches the resource itself (after a 409 on a PUT
/// or DELETE, or an expired operation URL).
fn watch_resource(
    p: &AzureProvider,
    url: &str,
    method: &Method,
    retry_after: Option<Duration>,
    now: OffsetDateTime,
) -> ArmOperation {
    let fs = if method == Method::DELETE {
        FinalState::None
    } else {
        FinalState::OriginalUri
    };
    ArmOperation {
        kind: PollKind::Resource,
        resource_url: url.to_string(),
        op: Operation::start(url, method.as_str(), fs, retry_after, now, &p.config.poll),
    }
}

fn deadline_cap(worker: &Worker, now: OffsetDateTime, wait: Duration) -> Duration {
    wait.min(until(now, worker.provisioning_deadline()))
}

async fn create(p: &AzureProvider, worker: &Worker, mut st: ChainState) -> Result<Step> {
    let launch = match AzureLaunch::parse(&worker.spec.launch) {
        Ok(l) => l,
        Err(e) => {
            st.fail(&e);
            return out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)));
        }
    };
    let policy = &p.config.poll;
    let rg = st.resource_group.clone();
    let region = st.location.clone();
    let mut note: Option<StepError> = None;
    let Some(i) = st.create.iter().position(|l| !l.created) else {
        st.instance_view_404s = 0;
        return out(&st, Phase::Running, p.config.health_interval(), None);
    };
    let mut i = i;
    let ty = st.create[i].ty;
    let put_op = format!("{}_CreateOrUpdate", ty.op_prefix());
    if let Some(mut op) = st.create[i].op.take() {
        let now = p.now();
        if !op.is_due(now) {
            let wait = deadline_cap(worker, now, op.wait(now));
            st.create[i].op = Some(op);
            return out(&st, Phase::Requested, wait, None);
        }
        match op
            .poll(&p.client, &region, &put_op, || p.now(), policy)
            .await
        {
            PollOutcome::InProgress(e) => {
                let now = p.now();
                let wait = deadline_cap(worker, now, op.wait(now));
                st.create[i].op = Some(op);
                return out(&st, Phase::Requested, wait, e.as_ref().map(se));
            }
            PollOutcome::Succeeded => st.create[i].created = true,
            PollOutcome::Failed(e) => {
                st.fail(&e);
                return out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)));
            }
            PollOutcome::Expired => {
                let name = st.create[i].name.clone();
                match lookup(p, &st, ty, &name).await? {
                    Lookup::Succeeded => st.create[i].created = true,
                    Lookup::InProgress => {
                        let url = p.client.resource_url(&rg, ty, &name);
                        let w = watch_resource(p, &url, &Method::PUT, None, p.now());
                        let wait = w.wait(p.now());
                        st.create[i].op = Some(w);
                        return out(&st, Phase::Requested, wait, None);
                    }
                    Lookup::Failed(state) => {
                        let e = classify::operation_failed(
                            "ProvisioningFailed",
                            &format!("{name} is in provisioningState {state}"),
                            &put_op,
                        );
                        st.fail(&e);
                        return out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)));
                    }
                    Lookup::Missing => {
                        note = Some(StepError {
                            at: None,
                            kind: ErrorKind::NotFound,
                            code: Some("OperationExpired".into()),
                            message: format!(
                                "{put_op}: operation URL expired and {name} does not exist; \
                                 requesting it again"
                            ),
                        });
                    }
                }
            }
        }
        match st.create.iter().position(|l| !l.created) {
            Some(next) => i = next,
            None => {
                st.instance_view_404s = 0;
                return out(&st, Phase::Running, p.config.health_interval(), note);
            }
        }
    }
    // The one mutating call of this step: PUT resource `i`.
    let ty = st.create[i].ty;
    let name = st.create[i].name.clone();
    let put_op = format!("{}_CreateOrUpdate", ty.op_prefix());
    let tags = resources::tags(&launch, &worker.spec.tags.to_map());
    let id_of = |t: ResourceType, n: &str| p.client.resource_id(&rg, t, n);
    let body = match ty {
        ResourceType::PublicIp => resources::public_ip(&launch, &tags),
        ResourceType::Nic => {
            let pip = st
                .names
                .public_ip
                .as_deref()
                .map(|n| id_of(ResourceType::PublicIp, n));
            resources::nic(&launch, &tags, pip.as_deref())
        }
        ResourceType::Disk => {
            let idx = st.names.data_disks.iter().position(|d| *d == name);
            let body = if name == st.names.os_disk {
                Some(resources::os_disk(&launch, &tags, p.client.subscription()))
            } else {
                idx.and_then(|i| resources::data_disk(&launch, &tags, i))
            };
            match body {
                Some(body) => body,
                None => {
                    let e = Error::internal(format!(
                        "disk {name} is in the worker's state but not in its launch config"
                    ))
                    .with_code("InvalidProviderState");
                    st.fail(&e);
                    return out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)));
                }
            }
        }
        ResourceType::Vm => {
            let disks: Vec<String> = st
                .names
                .data_disks
                .iter()
                .map(|d| id_of(ResourceType::Disk, d))
                .collect();
            resources::vm(
                &launch,
                &tags,
                &st.names.vm,
                &st.names.os_disk,
                &id_of(ResourceType::Nic, &st.names.nic),
                &disks,
                launch
                    .os_disk
                    .explicit
                    .then(|| id_of(ResourceType::Disk, &st.names.os_disk))
                    .as_deref(),
            )
        }
    };
    let url = p.client.resource_url(&rg, ty, &name);
    let resp = p
        .client
        .send(
            Method::PUT,
            &url,
            Some(&body),
            ApiClass::Write,
            &region,
            put_op.clone(),
        )
        .await?;
    let now = p.now();
    if resp.is_success() {
        let started = ArmOperation::start(
            &p.client,
            &resp,
            &Method::PUT,
            &url,
            FinalState::OriginalUri,
            now,
            policy,
            &put_op,
        );
        return match started {
            Ok(Started::Done) => {
                st.create[i].created = true;
                out(&st, Phase::Requested, Duration::ZERO, note)
            }
            Ok(Started::Pending(op)) => {
                let wait = deadline_cap(worker, now, op.wait(now));
                st.create[i].op = Some(*op);
                out(&st, Phase::Requested, wait, note)
            }
            Err(e)
                if e.kind() == &ErrorKind::CapacityOrQuota
                    || e.kind() == &ErrorKind::OperationFailed =>
            {
                st.fail(&e);
                out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)))
            }
            // Garbled answer: the PUT may have landed; repeating it is safe.
            Err(e) => Err(e),
        };
    }
    let e = resp.error(&put_op);
    let code = e.code().unwrap_or_default().to_string();
    if resp.status == 409 && classify::is_busy(&code) && !classify::is_capacity(&code) {
        // A lost earlier PUT is still creating it: watch the resource.
        let w = watch_resource(p, &url, &Method::PUT, resp.retry_after(), now);
        let wait = deadline_cap(worker, now, w.wait(now));
        st.create[i].op = Some(w);
        return out(&st, Phase::Requested, wait, Some(se(&e)));
    }
    if retry_later(&e) {
        return Err(e);
    }
    st.fail(&e);
    out(&st, Phase::Stopping, Duration::ZERO, Some(se(&e)))
}

fn final_phase(worker: &Worker, st: &ChainState) -> Result<Step> {
    let failed = st.failure.is_some() && worker.desired == DesiredState::Running;
    let phase = if failed {
        Phase::Failed
    } else {
        Phase::Stopped
    };
    out(
        st,
        phase,
        Duration::ZERO,
        st.failure.as_ref().map(Failure::step_error),
    )
}

/// Marks target `idx` gone. `observed` is true when its delete operation
/// was seen to succeed: only then are the VM's dependents known to have
/// gone with it (a 404 may mean someone else deleted the VM, without them).
fn mark_gone(td: &mut Teardown, idx: usize, observed: bool) {
    td.targets[idx].gone = true;
    td.targets[idx].op = None;
    if observed && td.targets[idx].ty == ResourceType::Vm && td.cascade {
        for t in &mut td.targets {
            t.gone = true;
            t.op = None;
        }
    }
}

async fn teardown(p: &AzureProvider, worker: &Worker, mut st: ChainState) -> Result<Step> {
    let policy = &p.config.poll;
    let busy = p.config.busy_retry();
    let rg = st.resource_group.clone();
    let region = st.location.clone();
    let Some(mut td) = st.teardown.take() else {
        return final_phase(worker, &st);
    };
    let mut note: Option<StepError> = None;
    loop {
        let Some(ti) = td.targets.iter().position(|t| !t.gone) else {
            st.teardown = Some(td);
            return final_phase(worker, &st);
        };
        let ty = td.targets[ti].ty;
        let name = td.targets[ti].name.clone();
        let del_op = format!("{}_Delete", ty.op_prefix());
        let url = p.client.resource_url(&rg, ty, &name);
        let mut send_delete = true;
        if let Some(mut op) = td.targets[ti].op.take() {
            let now = p.now();
            if !op.is_due(now) {
                let wait = op.wait(now);
                td.targets[ti].op = Some(op);
                st.teardown = Some(td);
                return out(&st, Phase::Stopping, wait, note);
            }
            match op
                .poll(&p.client, &region, &del_op, || p.now(), policy)
                .await
            {
                PollOutcome::InProgress(e) => {
                    let wait = op.wait(p.now());
                    td.targets[ti].op = Some(op);
                    st.teardown = Some(td);
                    return out(&st, Phase::Stopping, wait, e.as_ref().map(se));
                }
                PollOutcome::Succeeded => {
                    mark_gone(&mut td, ti, true);
                    continue;
                }
                PollOutcome::Failed(e) => {
                    td.targets[ti].retry_at = Some(p.now() + busy);
                    st.teardown = Some(td);
                    return out(&st, Phase::Stopping, busy, Some(se(&e)));
                }
                PollOutcome::Expired => match lookup(p, &st, ty, &name).await {
                    Ok(Lookup::Missing) => {
                        mark_gone(&mut td, ti, false);
                        continue;
                    }
                    Ok(Lookup::InProgress) => {
                        let w = watch_resource(p, &url, &Method::DELETE, None, p.now());
                        let wait = w.wait(p.now());
                        td.targets[ti].op = Some(w);
                        st.teardown = Some(td);
                        return out(&st, Phase::Stopping, wait, note);
                    }
                    Ok(_) => send_delete = true,
                    Err(e) => {
                        // Keep the expired handle; it is re-checked next time.
                        td.targets[ti].op = Some(op);
                        st.teardown = Some(td);
                        return out(&st, Phase::Stopping, busy, Some(se(&e)));
                    }
                },
            }
        }
        if let Some(at) = td.targets[ti].retry_at {
            let now = p.now();
            if now < at {
                st.teardown = Some(td);
                return out(&st, Phase::Stopping, until(now, at), note);
            }
        }
        debug_assert!(send_delete);
        // The one mutating call of this step: DELETE target `ti`.
        let resp = p
            .client
            .send(
                Method::DELETE,
                &url,
                None,
                ApiClass::Delete,
                &region,
                del_op.clone(),
            )
            .await?;
        let now = p.now();
        td.targets[ti].retry_at = None;
        if resp.status == 404 {
            mark_gone(&mut td, ti, false);
            st.teardown = Some(td);
            return out(&st, Phase::Stopping, Duration::ZERO, note);
        }
        if resp.is_success() {
            match ArmOperation::start(
                &p.client,
                &resp,
                &Method::DELETE,
                &url,
                FinalState::None,
                now,
                policy,
                &del_op,
            ) {
                Ok(Started::Done) => mark_gone(&mut td, ti, true),
                Ok(Started::Pending(op)) => {
                    let wait = op.wait(now);
                    td.targets[ti].op = Some(*op);
                    st.teardown = Some(td);
                    return out(&st, Phase::Stopping, wait, note);
                }
                Err(e) => {
                    // Accepted but unreadable: watch the resource until it is gone.
                    td.targets[ti].op = Some(watch_resource(p, &url, &Method::DELETE, None, now));
                    note = Some(se(&e));
                }
            }
            st.teardown = Some(td);
            return out(&st, Phase::Stopping, Duration::ZERO, note);
        }
        let e = resp.error(&del_op);
        let code = e.code().unwrap_or_default().to_string();
        if classify::is_busy(&code) || resp.status == 409 {
            td.targets[ti].retry_at = Some(now + busy);
            st.teardown = Some(td);
            return out(&st, Phase::Stopping, busy, Some(se(&e)));
        }
        if retry_later(&e) {
            return Err(e);
        }
        // Refused for another reason: record it and try again later.
        td.targets[ti].retry_at = Some(now + busy);
        st.teardown = Some(td);
        return out(&st, Phase::Stopping, busy, Some(se(&e)));
    }
}

async fn check_health(p: &AzureProvider, mut st: ChainState) -> Result<Step> {
    let interval = p.config.health_interval();
    let vm_url = p
        .client
        .resource_id(&st.resource_group, ResourceType::Vm, &st.names.vm);
    let url = format!(
        "{}{vm_url}/instanceView?api-version={}",
        p.config.base_url(),
        ResourceType::Vm.api_version()
    );
    let op = "VirtualMachines_InstanceView".to_string();
    let resp = p
        .client
        .send(
            Method::GET,
            &url,
            None,
            ApiClass::Read,
            &st.location,
            op.clone(),
        )
        .await?;
    let failure = match resp.status {
        200..=299 => {
            let view: serde_json::Value = resp.json(&op)?;
            match health::from_instance_view(&view) {
                Some(Health::Ok) => {
                    st.instance_view_404s = 0;
                    return out(&st, Phase::Running, interval, None);
                }
                Some(Health::Failed(code)) => Error::new(
                    ErrorKind::OperationFailed,
                    format!("VM {} is {code}", st.names.vm),
                )
                .with_code(code)
                .with_provider("azure"),
                None => {
                    return Err(crate::arm::client::garbled(
                        &op,
                        resp.status,
                        "instance view without `statuses`",
                    ))
                }
            }
        }
        404 => {
            let name = st.names.vm.clone();
            match lookup(p, &st, ResourceType::Vm, &name).await? {
                Lookup::Missing => Error::new(
                    ErrorKind::NotFound,
                    format!("VM {name} disappeared (deleted outside skyfleet?)"),
                )
                .with_code("VmMissing")
                .with_provider("azure"),
                _ => {
                    st.instance_view_404s += 1;
                    if st.instance_view_404s <= p.config.max_instance_view_404s {
                        let e = resp.error(&op);
                        return out(&st, Phase::Running, interval, Some(se(&e)));
                    }
                    Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "VM {name} exists but its instance view answered 404 {} times in a row",
                            st.instance_view_404s
                        ),
                    )
                    .with_code("InstanceViewMissing")
                    .with_provider("azure")
                }
            }
        }
        _ => return Err(resp.error(&op)),
    };
    st.fail(&failure);
    out(&st, Phase::Stopping, Duration::ZERO, Some(se(&failure)))
}
