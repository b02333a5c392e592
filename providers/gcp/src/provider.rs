//! [`GcpProvider`]: Compute Engine workers, one step at a time.
//!
//! A worker's life, each line one step with at most one mutating call:
//!
//! 1. persist the instance name (`{worker id}-vm`) and zone;
//! 2. `instances.insert` with a `requestId` derived from the worker id,
//!    ownership labels, scheduling (spot, preemptible), service account and
//!    metadata; keep the zone operation as an [`Operation`] handle;
//! 3. poll the operation (`zoneOperations.get`) on the handle's backoff
//!    schedule, Compute giving no `Retry-After`; a failed operation is
//!    classified by its error code and leads to teardown;
//! 4. check the instance: `PROVISIONING`/`STAGING` booting, `RUNNING`
//!    running, `STOPPING`/`TERMINATED`/`STOPPED`/`SUSPENDED` dead (torn down,
//!    ending `Stopped`); [`GcpProvider::step_many`] answers this with one
//!    `instances.list` per zone, filtered by the manager label, instead of one
//!    `instances.get` per worker;
//! 5. teardown: `instances.delete` with its own `requestId` (404 = gone),
//!    poll its operation, confirm the instance is gone.
//!
//! A worker still provisioning at its provisioning deadline is torn down
//! and ends `Failed`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use skyfleet_core::clock::until;
use skyfleet_core::model::tag;
use skyfleet_core::provider::StepError;
use skyfleet_core::transport::Transport;
use skyfleet_core::{
    DesiredState, Error, ErrorKind, FinalState, Operation, OperationStatus, OwnedResource,
    OwnershipScope, Phase, Provider, Result, Step, Worker,
};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::classify;
use crate::client::{ComputeClient, Instance, ZoneOperation};
use crate::config::{GceLaunch, GcpConfig};
use crate::labels;
use crate::request_id::{request_id, Purpose};
use crate::state::{GceState, Teardown};
use crate::token::TokenSource;

/// How many workers [`GcpProvider::step_many`] steps at once.
const STEP_CONCURRENCY: usize = 32;

/// The Compute Engine provider. Cheap to clone (clones share everything).
#[derive(Debug, Clone)]
pub struct GcpProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: GcpConfig,
    client: ComputeClient,
    zones: Mutex<BTreeSet<String>>,
}

/// The instances of one zone found by one list, by name; what a batched
/// check answers instead of one `instances.get` per worker.
type Lookup = Arc<HashMap<String, Instance>>;

/// Where a worker's step reads its instance from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `instances.get`.
    Get,
    /// A batched list's answer.
    Listed(&'a HashMap<String, Instance>),
}

fn step(state: &GceState, phase: Phase, next: Duration) -> Result<Step> {
    Ok(Step::new(serde_json::to_value(state)?, phase, next))
}

fn with_error(mut s: Step, e: StepError) -> Step {
    s.error = Some(e);
    s
}

/// Statuses of an instance that is booting.
fn booting(status: &str) -> bool {
    matches!(status, "PROVISIONING" | "STAGING" | "PENDING" | "REPAIRING")
}

/// Statuses of an instance that is dead or dying (preempted, stopped).
fn dead(status: &str) -> bool {
    matches!(
        status,
        "STOPPING" | "TERMINATED" | "STOPPED" | "SUSPENDING" | "SUSPENDED" | "DEPROVISIONING"
    )
}

impl GcpProvider {
    /// A provider from `config` (validated; the transport is built when the
    /// config has none).
    pub fn new(config: GcpConfig) -> Result<Self> {
        config.validate()?;
        let transport = match &config.transport {
            Some(t) => t.clone(),
            None => Transport::builder().build()?,
        };
        let tokens = Arc::new(TokenSource::new(config.credentials.clone()));
        let client = ComputeClient::new(transport, tokens, &config.endpoint, &config.project);
        let zones = config.zones.iter().cloned().collect();
        Ok(GcpProvider {
            inner: Arc::new(Inner {
                config,
                client,
                zones: Mutex::new(zones),
            }),
        })
    }

    /// A provider configured from the environment (see
    /// [`GcpConfig::from_env`]).
    pub fn from_env() -> Result<Self> {
        Self::new(GcpConfig::from_env()?)
    }

    /// The Compute client (for its transport's metrics).
    pub fn client(&self) -> &ComputeClient {
        &self.inner.client
    }

    /// The config.
    pub fn config(&self) -> &GcpConfig {
        &self.inner.config
    }

    /// The instance name of a worker: a pure function of its id (a worker
    /// id is 1-38 of `a-z0-9-` starting with a letter, so this is a valid
    /// Compute name).
    pub fn instance_name(worker_id: &str) -> String {
        format!("{worker_id}-vm")
    }

    /// The `instances.list` filter selecting a manager's instances of this
    /// provider.
    pub fn owner_filter(&self, manager_id: &str) -> String {
        format!(
            "(labels.{} = \"{}\") AND (labels.{} = \"{}\")",
            tag::MANAGER,
            labels::value(manager_id),
            tag::PROVIDER,
            labels::value(&self.inner.config.id)
        )
    }

    fn remember_zone(&self, zone: &str) {
        let mut z = self.inner.zones.lock().unwrap_or_else(|e| e.into_inner());
        if !z.contains(zone) {
            z.insert(zone.to_string());
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.inner.config.clock.now()
    }

    fn owns(&self, worker: &Worker, inst: &Instance) -> bool {
        inst.labels.get(tag::WORKER).map(String::as_str) == Some(&labels::value(worker.id()))
    }

    /// One step of `worker`, reading its instance from `source`.
    async fn step_with(&self, worker: &Worker, source: Source<'_>) -> Result<Step> {
        let mut st = GceState::of(worker)?;
        let now = self.now();
        let Some(name) = st.name.clone() else {
            if worker.desired == DesiredState::Removed {
                // Nothing was ever sent.
                return step(&st, Phase::Stopped, Duration::ZERO);
            }
            let launch = match GceLaunch::parse(&worker.spec.launch) {
                Ok(l) => l,
                Err(e) => {
                    // It will never become valid: nothing was created.
                    let s = step(&st, Phase::Failed, Duration::ZERO)?;
                    return Ok(s.with_error(&e));
                }
            };
            self.remember_zone(&launch.zone);
            st.name = Some(Self::instance_name(worker.id()));
            st.zone = Some(launch.zone);
            return step(&st, Phase::Requested, Duration::ZERO);
        };
        let zone = st
            .zone
            .clone()
            .ok_or_else(|| Error::internal("gcp state has a name but no zone"))?;
        // A resumed process learns the zones to sweep from its workers.
        self.remember_zone(&zone);
        if worker.phase == Phase::Requested
            && now >= worker.provisioning_deadline()
            && st.teardown.is_none()
            && worker.desired == DesiredState::Running
        {
            let e = Error::new(
                ErrorKind::Timeout,
                format!(
                    "instance {name} was not running within the provisioning deadline ({} s)",
                    worker.spec.lifecycle.provisioning_deadline.as_secs()
                ),
            )
            .with_code("ProvisioningDeadline");
            st.teardown = Some(Teardown::from_error(&e, Phase::Failed));
            return Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(&e));
        }
        if worker.desired == DesiredState::Removed || st.teardown.is_some() {
            return self.teardown(worker, st, &name, &zone, now, source).await;
        }
        if !st.insert_sent {
            return self.insert(worker, st, &name, &zone, now).await;
        }
        if st.insert_pending() {
            match self.poll(&mut st, Purpose::Insert, &zone, now).await? {
                Polled::Pending(s) => return Ok(s),
                Polled::Failed(e) => {
                    st.teardown = Some(Teardown::from_error(&e, Phase::Failed));
                    return Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(&e));
                }
                Polled::Done(target) => {
                    if st.instance_id.is_none() {
                        st.instance_id = target;
                    }
                    // The instance is read by the next step, which a
                    // batched check answers with one list for many workers.
                    return step(&st, worker.phase, Duration::ZERO);
                }
            }
        }
        self.check(worker, st, &name, &zone, now, source).await
    }

    /// Sends the insert.
    async fn insert(
        &self,
        worker: &Worker,
        mut st: GceState,
        name: &str,
        zone: &str,
        now: OffsetDateTime,
    ) -> Result<Step> {
        let launch = match GceLaunch::parse(&worker.spec.launch) {
            Ok(l) => l,
            Err(e) => return Ok(step(&st, Phase::Failed, Duration::ZERO)?.with_error(&e)),
        };
        let owner = labels::ownership(&worker.spec.tags);
        let metadata = BTreeMap::from([
            ("skyfleet-worker-id".to_string(), worker.id().to_string()),
            ("skyfleet-pool-id".to_string(), worker.spec.pool_id.clone()),
        ]);
        let body = launch.instance_body(name, &owner, &metadata);
        let rid = request_id(
            self.inner.client.project(),
            worker.id(),
            Purpose::Insert,
            // One insert per worker: a worker whose instance is lost is
            // replaced by a new worker, never re-inserted.
            0,
        );
        match self.inner.client.insert(zone, &body, rid).await {
            Ok(op) => {
                st.insert_sent = true;
                st.instance_id = op.target_id.clone();
                let handle = self.handle(&op, "POST", now);
                let next = handle.wait(now);
                st.insert_op = Some(handle);
                if op.is_done() {
                    if let Some((code, message)) = op.failure() {
                        let e = classify::operation_error(&code, &message);
                        st.teardown = Some(Teardown::from_error(&e, Phase::Failed));
                        return Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(&e));
                    }
                    return step(&st, Phase::Requested, Duration::ZERO);
                }
                step(&st, Phase::Requested, next)
            }
            Err(e) if e.kind() == &ErrorKind::AlreadyExists => {
                // The name is taken: by this worker's instance (inserted
                // longer ago than Compute remembers request ids) or by a
                // stranger's.
                match self.inner.client.get_instance(zone, name).await? {
                    Some(i) if self.owns(worker, &i) => {
                        st.insert_sent = true;
                        st.instance_id = i.id;
                        step(&st, Phase::Requested, Duration::ZERO)
                    }
                    Some(_) => {
                        st.foreign = true;
                        Ok(step(&st, Phase::Failed, Duration::ZERO)?.with_error(&e))
                    }
                    None => Err(e),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::CapacityOrQuota | ErrorKind::InvalidConfig { .. }
                ) =>
            {
                // Refused outright: nothing was created (a replay of an
                // accepted request id would have answered its operation).
                Ok(step(&st, Phase::Failed, Duration::ZERO)?.with_error(&e))
            }
            Err(e) => Err(e),
        }
    }

    /// A handle for a zone operation just answered.
    fn handle(&self, op: &ZoneOperation, method: &str, now: OffsetDateTime) -> Operation {
        let mut h = Operation::start(
            op.name.clone(),
            method,
            FinalState::None,
            None,
            now,
            &self.inner.config.poll,
        );
        if op.is_done() {
            h.status = match op.failure() {
                None => OperationStatus::Succeeded,
                Some((code, message)) => OperationStatus::Failed { code, message },
            };
        }
        h
    }

    /// Polls the insert or delete operation once.
    async fn poll(
        &self,
        st: &mut GceState,
        purpose: Purpose,
        zone: &str,
        now: OffsetDateTime,
    ) -> Result<Polled> {
        let policy = &self.inner.config.poll;
        let slot = match purpose {
            Purpose::Insert => &mut st.insert_op,
            Purpose::Delete => &mut st.delete_op,
        };
        let Some(handle) = slot.as_mut() else {
            return Ok(Polled::Done(None));
        };
        let phase = match purpose {
            Purpose::Insert => Phase::Requested,
            Purpose::Delete => Phase::Stopping,
        };
        let answer = self
            .inner
            .client
            .get_operation(zone, &handle.poll_url)
            .await;
        match answer {
            Ok(Some(op)) => {
                let status = if !op.is_done() {
                    OperationStatus::InProgress
                } else {
                    match op.failure() {
                        None => OperationStatus::Succeeded,
                        Some((code, message)) => OperationStatus::Failed { code, message },
                    }
                };
                let failure = op.failure();
                match handle.record_status(status, None, now, policy) {
                    Ok(()) if handle.status.is_terminal() => Ok(Polled::Done(op.target_id)),
                    Ok(()) => {
                        let next = handle.wait(now);
                        Ok(Polled::Pending(step(st, phase, next)?))
                    }
                    Err(e) => Ok(Polled::Failed(match failure {
                        Some((code, message)) => classify::operation_error(&code, &message),
                        None => e.with_provider("gcp"),
                    })),
                }
            }
            Ok(None) => {
                // Compute no longer knows the operation: the resource
                // itself tells what happened.
                *slot = None;
                Ok(Polled::Done(None))
            }
            Err(e) => {
                let err = StepError::from(&e);
                match handle.record_poll_error(e, now, policy) {
                    Ok(()) => {
                        let next = handle.wait(now);
                        Ok(Polled::Pending(with_error(step(st, phase, next)?, err)))
                    }
                    Err(_) => {
                        // Too many poll errors: stop polling; the instance
                        // (bounded by the provisioning deadline) decides.
                        *slot = None;
                        Ok(Polled::Done(None))
                    }
                }
            }
        }
    }

    async fn read_instance(
        &self,
        zone: &str,
        name: &str,
        source: Source<'_>,
    ) -> Result<Option<Instance>> {
        match source {
            Source::Get => self.inner.client.get_instance(zone, name).await,
            Source::Listed(m) => Ok(m.get(name).cloned()),
        }
    }

    /// Checks the instance of a worker that should run.
    async fn check(
        &self,
        worker: &Worker,
        mut st: GceState,
        name: &str,
        zone: &str,
        now: OffsetDateTime,
        source: Source<'_>,
    ) -> Result<Step> {
        let cfg = &self.inner.config;
        let inst = self.read_instance(zone, name, source).await?;
        let Some(inst) = inst else {
            st.not_found += 1;
            if st.not_found <= cfg.not_found_grace {
                return step(&st, worker.phase, cfg.boot_check_interval);
            }
            // Gone without our delete: nothing is left to remove.
            let (phase, msg) = if worker.phase == Phase::Running {
                (Phase::Stopped, format!("instance {name} disappeared"))
            } else {
                (
                    Phase::Failed,
                    format!("instance {name} was never found after its insert"),
                )
            };
            let e = Error::new(ErrorKind::NotFound, msg)
                .with_code("InstanceGone")
                .with_provider("gcp");
            return Ok(step(&st, phase, Duration::ZERO)?.with_error(&e));
        };
        st.not_found = 0;
        if st.instance_id.is_none() {
            st.instance_id = inst.id.clone();
        }
        if inst.status == "RUNNING" {
            return step(&st, Phase::Running, cfg.check_interval);
        }
        if booting(&inst.status) {
            let phase = if worker.phase == Phase::Running {
                Phase::Running
            } else {
                Phase::Requested
            };
            let left = until(now, worker.provisioning_deadline());
            let next = cfg
                .boot_check_interval
                .min(left)
                .max(Duration::from_millis(1));
            return step(&st, phase, next);
        }
        if dead(&inst.status) {
            let e = Error::new(
                ErrorKind::OperationFailed,
                format!("instance {name} is {} (preempted or stopped)", inst.status),
            )
            .with_code(inst.status.clone())
            .with_provider("gcp");
            st.teardown = Some(Teardown::from_error(&e, Phase::Stopped));
            return Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(&e));
        }
        // An unknown status: look again later.
        step(&st, worker.phase, cfg.boot_check_interval)
    }

    /// Deletes the instance and confirms it is gone.
    async fn teardown(
        &self,
        worker: &Worker,
        mut st: GceState,
        name: &str,
        zone: &str,
        now: OffsetDateTime,
        source: Source<'_>,
    ) -> Result<Step> {
        let finish = |st: &GceState| -> Result<Step> {
            match &st.teardown {
                Some(t) => Ok(with_error(
                    step(st, t.final_phase, Duration::ZERO)?,
                    t.step_error(),
                )),
                None => step(st, Phase::Stopped, Duration::ZERO),
            }
        };
        if st.foreign {
            return finish(&st);
        }
        let cfg = &self.inner.config;
        if !st.delete_sent {
            // Sent even when no insert was recorded: the insert may have
            // landed just before a crash.
            let rid = request_id(
                self.inner.client.project(),
                worker.id(),
                Purpose::Delete,
                st.delete_attempt,
            );
            return match self
                .inner
                .client
                .delete_instance(zone, name, Some(rid))
                .await?
            {
                None => finish(&st),
                Some(op) => {
                    st.delete_sent = true;
                    let h = self.handle(&op, "DELETE", now);
                    let next = if h.status.is_terminal() {
                        Duration::ZERO
                    } else {
                        h.wait(now)
                    };
                    st.delete_op = Some(h);
                    step(&st, Phase::Stopping, next)
                }
            };
        }
        if st.delete_pending() {
            match self.poll(&mut st, Purpose::Delete, zone, now).await? {
                Polled::Pending(s) => return Ok(s),
                Polled::Failed(e) => {
                    // Try again with a new request id (the old one would
                    // answer the failed operation).
                    st.delete_attempt += 1;
                    st.delete_sent = false;
                    st.delete_op = None;
                    return Ok(step(&st, Phase::Stopping, cfg.poll.min_interval)?.with_error(&e));
                }
                // Confirmed by the next step (batched in `step_many`).
                Polled::Done(_) => return step(&st, Phase::Stopping, Duration::ZERO),
            }
        }
        if let Some(OperationStatus::Failed { code, message }) =
            st.delete_op.as_ref().map(|o| o.status.clone())
        {
            let e = classify::operation_error(&code, &message);
            st.delete_attempt += 1;
            st.delete_sent = false;
            st.delete_op = None;
            return Ok(step(&st, Phase::Stopping, cfg.poll.min_interval)?.with_error(&e));
        }
        match self.read_instance(zone, name, source).await? {
            None => finish(&st),
            Some(i) if i.status == "STOPPING" || i.status == "DEPROVISIONING" => {
                step(&st, Phase::Stopping, cfg.boot_check_interval)
            }
            Some(_) => {
                // Still there and not going: the delete was lost.
                st.delete_attempt += 1;
                st.delete_sent = false;
                st.delete_op = None;
                step(&st, Phase::Stopping, Duration::ZERO)
            }
        }
    }

    /// Whether a step of `worker` would read its instance (and so can use a
    /// batched list), and under which manager.
    fn wants_read(&self, worker: &Worker) -> Option<(String, String)> {
        let st = GceState::of(worker).ok()?;
        let zone = st.zone.clone()?;
        st.name.as_ref()?;
        let now = self.now();
        if worker.phase == Phase::Requested && now >= worker.provisioning_deadline() {
            return None;
        }
        let removing = worker.desired == DesiredState::Removed || st.teardown.is_some();
        let reads = if removing {
            st.delete_sent && !st.delete_pending() && !st.foreign
        } else {
            st.insert_sent && !st.insert_pending()
        };
        reads.then(|| (zone, worker.spec.tags.manager_id.clone()))
    }

    /// Lists the instances of `manager` in `zone`, by name.
    async fn lookup(&self, zone: &str, manager: &str) -> Result<Lookup> {
        let items = self
            .inner
            .client
            .list_instances(zone, &self.owner_filter(manager))
            .await?;
        Ok(Arc::new(
            items.into_iter().map(|i| (i.name.clone(), i)).collect(),
        ))
    }
}

/// What one poll of an operation concluded.
enum Polled {
    /// Still running: the step to answer.
    Pending(Step),
    /// Succeeded (or no longer known); the target id if the answer had one.
    Done(Option<String>),
    /// Failed (or past its deadline), classified.
    Failed(Error),
}

fn copy_error(e: &Error) -> Error {
    let mut c = Error::new(e.kind().clone(), e.message().to_string());
    if let Some(code) = e.code() {
        c = c.with_code(code.to_string());
    }
    if let Some(p) = e.provider() {
        c = c.with_provider(p.to_string());
    }
    c
}

#[async_trait]
impl Provider for GcpProvider {
    fn id(&self) -> &str {
        &self.inner.config.id
    }

    fn kind(&self) -> &'static str {
        "gcp"
    }

    fn validate(&self, launch: &Value) -> Result<()> {
        let l = GceLaunch::parse(launch)?;
        self.remember_zone(&l.zone);
        Ok(())
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        if let Ok(GceState { zone: Some(z), .. }) = GceState::of(worker) {
            return Some(z);
        }
        worker
            .spec
            .launch
            .get("zone")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        self.step_with(worker, Source::Get).await
    }

    /// One `instances.list` per zone answers this many workers' checks.
    fn batch_limit(&self) -> usize {
        500
    }

    /// Steps many workers: those whose step reads their instance share one
    /// `instances.list` per zone and manager; all run up to 32 at a time.
    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
        for (i, w) in workers.iter().enumerate() {
            if let Some(k) = self.wants_read(w) {
                groups.entry(k).or_default().push(i);
            }
        }
        let mut lookups: Vec<Option<std::result::Result<Lookup, Arc<Error>>>> =
            (0..workers.len()).map(|_| None).collect();
        for ((zone, manager), idx) in groups {
            // One worker gains nothing from a list.
            if idx.len() < 2 {
                continue;
            }
            let l = self.lookup(&zone, &manager).await.map_err(Arc::new);
            for i in idx {
                lookups[i] = Some(l.clone());
            }
        }
        let mut out: Vec<Option<Result<Step>>> = (0..workers.len()).map(|_| None).collect();
        let mut set = JoinSet::new();
        let mut pending = workers.iter().cloned().zip(lookups).enumerate();
        loop {
            while set.len() < STEP_CONCURRENCY {
                let Some((i, (w, l))) = pending.next() else {
                    break;
                };
                let me = self.clone();
                set.spawn(async move {
                    let r = match &l {
                        None => me.step_with(&w, Source::Get).await,
                        Some(Ok(m)) => me.step_with(&w, Source::Listed(m)).await,
                        Some(Err(e)) => Err(copy_error(e)),
                    };
                    (i, r)
                });
            }
            match set.join_next().await {
                Some(Ok((i, r))) => out[i] = Some(r),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "a gcp step task panicked");
                }
                None => break,
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("the step task did not finish"))))
            .collect()
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let zones: Vec<String> = self
            .inner
            .zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        if zones.is_empty() {
            // An empty answer would tell a sweeper "nothing is ours".
            return Err(Error::invalid_config(
                "zones",
                "no zone to list: set GcpConfig::zones (or validate a launch config first)",
            ));
        }
        let filter = format!(
            "(labels.{} = \"{}\") AND (labels.{} = \"{}\")",
            tag::MANAGER,
            labels::value(&scope.manager_id),
            tag::PROVIDER,
            labels::value(&scope.provider_id)
        );
        let project = self.inner.client.project().to_string();
        let mut out = Vec::new();
        for zone in zones {
            for i in self.inner.client.list_instances(&zone, &filter).await? {
                let created_at = i.creation_timestamp.as_deref().and_then(|t| {
                    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
                });
                out.push(OwnedResource {
                    id: format!("projects/{project}/zones/{zone}/instances/{}", i.name),
                    kind: "instance".into(),
                    worker_id: i.labels.get(tag::WORKER).cloned(),
                    created_at,
                    tags: i.labels,
                });
            }
        }
        Ok(out)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        let parts: Vec<&str> = resource.id.split('/').collect();
        let ["projects", p, "zones", zone, "instances", name] = parts.as_slice() else {
            return Err(Error::invalid_config(
                "resource.id",
                format!("`{}` is not projects/P/zones/Z/instances/NAME", resource.id),
            ));
        };
        if *p != self.inner.client.project() {
            return Err(Error::invalid_config(
                "resource.id",
                format!("`{}` is in another project", resource.id),
            ));
        }
        self.inner.client.delete_instance(zone, name, None).await?;
        Ok(())
    }
}
