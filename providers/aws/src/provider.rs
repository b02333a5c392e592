//! [`AwsProvider`]: EC2 instances as skyfleet workers.
//!
//! One worker is one instance, driven one step at a time:
//!
//! 1. The first step records the region and the `ClientToken` (derived from
//!    the worker id, see [`crate::token`]) and makes no call.
//! 2. The next sends RunInstances (MinCount = MaxCount = 1, the token,
//!    ownership tags on the instance and its volumes, the UserData) and
//!    records the instance id. If the process dies before the answer is
//!    persisted, the replayed step sends the same token and EC2 answers with
//!    the same instance: nothing is orphaned or duplicated.
//! 3. Later steps look at the instance. [`Provider::step_many`] looks at all
//!    due workers of a region with **one** DescribeInstances (filtered by
//!    instance id, up to 200 ids a filter and 1000 instances a page) instead
//!    of one call per worker: `pending` stays requested, `running` is
//!    running, `stopping`/`stopped`/`shutting-down`/`terminated` tear the
//!    worker down. An instance missing right after its launch is EC2's
//!    eventual consistency, tolerated for [`Timings::not_found_grace`].
//! 4. Removal (asked for, or the provisioning deadline passed, or the
//!    instance ended by itself) sends TerminateInstances, then confirms with
//!    the batched describe until the instance is terminated or gone. A
//!    removal that finds no instance id (RunInstances failed or its answer
//!    was lost) looks the instance up by its worker tag first.
//!
//! Each step makes at most one mutating call (RunInstances or
//! TerminateInstances); describes are reads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::model::tag;
use skyfleet_core::provider::StepError;
use skyfleet_core::transport::Transport;
use skyfleet_core::{
    DesiredState, Error, ErrorKind, OwnedResource, OwnershipScope, Phase, Provider, Result, Step,
    Worker,
};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::client::{dup, sdk_config, Ec2, InstanceView, RunRequest};
use crate::config::{AwsConfig, Timings};
use crate::launch::Ec2Launch;
use crate::state::{AwsState, Cause, Teardown, TeardownReason};
use crate::token::client_token;

/// The AWS EC2 provider: one aws-sdk-ec2 client per configured region, all
/// sending through the shared transport.
#[derive(Clone)]
pub struct AwsProvider {
    config: Arc<AwsConfig>,
    clients: Arc<HashMap<String, Ec2>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("config", &self.config)
            .field("regions", &self.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The mutating call a step makes.
enum Call {
    Launch { st: AwsState, req: Box<RunRequest> },
    Terminate { st: AwsState, id: String },
}

/// What a worker's step needs.
enum Plan {
    /// Nothing more: the answer.
    Done(Result<Step>),
    /// One mutating call.
    Call(Call),
    /// A look at the instance (batched), then a decision.
    Look(AwsState, Lookup),
}

/// How to find a worker's instance.
enum Lookup {
    /// By its id.
    Id(String),
    /// By its worker tag (the id is unknown: RunInstances failed or its
    /// answer was lost).
    Tag,
}

fn step(st: &AwsState, phase: Phase, next: Duration) -> Result<Step> {
    Ok(Step::new(st.to_value()?, phase, next))
}

fn cause_of(e: &Error) -> Cause {
    Cause {
        kind: e.kind().name().to_string(),
        code: e.code().map(str::to_string),
        message: e.message().to_string(),
    }
}

impl AwsProvider {
    /// A provider sending every EC2 call through `transport` (one client
    /// per region of `config`).
    pub async fn new(config: AwsConfig, transport: &Transport) -> Result<Self> {
        let account = config.account.clone();
        let transport = transport.clone();
        Self::with_http_clients(config, move |region| {
            SharedHttpClient::new(crate::connector::TransportConnector::new(
                &transport, &account, region,
            ))
        })
        .await
    }

    /// A provider whose region clients send through the HTTP clients
    /// `http(region)` makes (for custom stacks; [`AwsProvider::new`] uses the
    /// shared transport's connector).
    pub async fn with_http_clients<F>(config: AwsConfig, http: F) -> Result<Self>
    where
        F: Fn(&str) -> SharedHttpClient,
    {
        config.validate()?;
        let mut clients = HashMap::new();
        for region in &config.regions {
            let sdk = sdk_config(&config, region, http(region)).await;
            clients.insert(region.clone(), Ec2::new(region.clone(), sdk));
        }
        Ok(AwsProvider {
            config: Arc::new(config),
            clients: Arc::new(clients),
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `clock` for deadlines and graces (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &AwsConfig {
        &self.config
    }

    /// The EC2 client of `region`, if configured.
    pub fn client(&self, region: &str) -> Option<&Ec2> {
        self.clients.get(region)
    }

    /// The instance id recorded on a worker, if any.
    pub fn instance_id(worker: &Worker) -> Option<String> {
        AwsState::of(worker).ok().flatten()?.instance_id
    }

    fn timings(&self) -> Timings {
        self.config.timings
    }

    fn ec2(&self, region: &str) -> Result<&Ec2> {
        self.clients.get(region).ok_or_else(|| {
            Error::invalid_config(
                "launch.region",
                format!(
                    "region `{region}` is not one of provider `{}`'s regions ({})",
                    self.config.provider_id,
                    self.config.regions.join(", ")
                ),
            )
            .with_provider("aws")
        })
    }

    fn launch(&self, worker: &Worker) -> Result<Ec2Launch> {
        let l = Ec2Launch::parse(&worker.spec.launch)?;
        self.ec2(&l.region)?;
        Ok(l)
    }

    /// The interval before looking at a pending instance again: the poll
    /// interval, or less when the provisioning deadline comes first.
    fn pending_interval(&self, worker: &Worker, now: OffsetDateTime) -> Duration {
        let to_deadline = skyfleet_core::clock::until(now, worker.provisioning_deadline());
        self.timings()
            .poll_interval
            .min(to_deadline)
            .max(Duration::from_millis(1))
    }

    fn plan(&self, worker: &Worker, now: OffsetDateTime) -> Plan {
        let st = match AwsState::of(worker) {
            Ok(s) => s,
            Err(e) => return Plan::Done(Err(e)),
        };
        let Some(mut st) = st else {
            if worker.desired == DesiredState::Removed {
                // Nothing was ever asked of EC2.
                return Plan::Done(Ok(Step::new(
                    serde_json::Value::Null,
                    Phase::Stopped,
                    Duration::ZERO,
                )));
            }
            let launch = match self.launch(worker) {
                Ok(l) => l,
                Err(e) => {
                    // Nothing was created; the worker cannot be launched.
                    return Plan::Done(Ok(Step::new(
                        serde_json::Value::Null,
                        Phase::Failed,
                        Duration::ZERO,
                    )
                    .with_error(&e)));
                }
            };
            // Record the token before the call that uses it.
            let st = AwsState {
                region: launch.region,
                client_token: client_token(&worker.spec.tags),
                token_at: now,
                instance_id: None,
                launched_at: None,
                last_state: None,
                seen_running: false,
                teardown: None,
            };
            return Plan::Done(step(&st, Phase::Requested, Duration::ZERO));
        };
        if st.teardown.is_none() {
            let reason = if worker.desired == DesiredState::Removed {
                Some(TeardownReason::Removed)
            } else if !st.seen_running && now >= worker.provisioning_deadline() {
                Some(TeardownReason::ProvisioningDeadline)
            } else {
                None
            };
            if let Some(reason) = reason {
                st.teardown = Some(Teardown {
                    reason,
                    since: now,
                    terminate_sent_at: None,
                    cause: None,
                });
            }
        }
        match (&st.teardown, st.instance_id.clone()) {
            (None, None) => {
                let launch = match self.launch(worker) {
                    Ok(l) => l,
                    Err(e) => {
                        return Plan::Done(Ok(Step::new(
                            serde_json::Value::Null,
                            Phase::Failed,
                            Duration::ZERO,
                        )
                        .with_error(&e)))
                    }
                };
                let user_data = match launch.user_data(&worker.spec) {
                    Ok(u) => u,
                    Err(e) => {
                        return Plan::Done(
                            step(&st, Phase::Failed, Duration::ZERO).map(|s| s.with_error(&e)),
                        )
                    }
                };
                let req = RunRequest {
                    token: st.client_token.clone(),
                    tags: worker.spec.tags.to_map(),
                    user_data,
                    launch,
                };
                Plan::Call(Call::Launch {
                    st,
                    req: Box::new(req),
                })
            }
            (None, Some(id)) => Plan::Look(st, Lookup::Id(id)),
            (Some(_), None) => Plan::Look(st, Lookup::Tag),
            (Some(td), Some(id)) => {
                if td.terminate_sent_at.is_none() {
                    Plan::Call(Call::Terminate { st, id })
                } else {
                    Plan::Look(st, Lookup::Id(id))
                }
            }
        }
    }

    /// The final step of a teardown that is complete.
    fn ended(&self, st: &AwsState) -> Result<Step> {
        let Some(td) = &st.teardown else {
            return step(st, Phase::Stopped, Duration::ZERO);
        };
        let mut s = match td.reason {
            TeardownReason::Removed => return step(st, Phase::Stopped, Duration::ZERO),
            TeardownReason::ProvisioningDeadline => step(st, Phase::Failed, Duration::ZERO)?
                .with_error(
                &Error::new(
                    ErrorKind::Timeout,
                    "the provisioning deadline passed before the instance ran; it was terminated",
                )
                .with_provider("aws"),
            ),
            TeardownReason::InstanceEnded | TeardownReason::LaunchFailed => {
                let phase = if st.seen_running {
                    Phase::Stopped
                } else {
                    Phase::Failed
                };
                step(st, phase, Duration::ZERO)?
            }
        };
        if let Some(c) = &td.cause {
            s.error = Some(StepError {
                kind: ErrorKind::from_name(&c.kind),
                code: c.code.clone(),
                message: c.message.clone(),
                at: None,
            });
        }
        Ok(s)
    }

    /// Whether an instance launched (or possibly launched) at `since` may
    /// still be invisible to DescribeInstances.
    fn within_grace(&self, since: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
        since.is_some_and(|t| now < t + self.timings().not_found_grace)
    }

    /// Decides a worker's step from what the describe found.
    fn decide(
        &self,
        worker: &Worker,
        mut st: AwsState,
        found: Option<&InstanceView>,
        now: OffsetDateTime,
    ) -> Plan {
        let t = self.timings();
        if let Some(i) = found {
            if st.instance_id.is_none() {
                st.instance_id = Some(i.id.clone());
                st.launched_at.get_or_insert(now);
            }
            st.last_state = i.state.clone();
        }
        let Some(td) = st.teardown.clone() else {
            let Some(i) = found else {
                // Missing: eventual consistency right after launch, or gone.
                if self.within_grace(st.launched_at.or(Some(st.token_at)), now) {
                    let phase = if st.seen_running {
                        Phase::Running
                    } else {
                        Phase::Requested
                    };
                    return Plan::Done(step(&st, phase, t.poll_interval));
                }
                let id = st.instance_id.clone().unwrap_or_default();
                st.teardown = Some(Teardown {
                    reason: TeardownReason::InstanceEnded,
                    since: now,
                    terminate_sent_at: Some(now),
                    cause: Some(Cause {
                        kind: ErrorKind::NotFound.name().into(),
                        code: Some("InvalidInstanceID.NotFound".into()),
                        message: format!("instance {id} no longer exists"),
                    }),
                });
                return Plan::Done(self.ended(&st));
            };
            let Some(state) = i.state.as_deref() else {
                return Plan::Done(Err(crate::classify::malformed(
                    "DescribeInstances",
                    &format!("instance {} has no state", i.id),
                )));
            };
            return match state {
                "pending" => Plan::Done(step(
                    &st,
                    Phase::Requested,
                    self.pending_interval(worker, now),
                )),
                "running" => {
                    st.seen_running = true;
                    Plan::Done(step(&st, Phase::Running, t.check_interval))
                }
                other => {
                    // Ended without us: spot interruption, shutdown from
                    // inside, a failed launch. Tear down what is left.
                    let code = i.state_reason_code.clone();
                    let kind = code
                        .as_deref()
                        .and_then(crate::classify::kind_for_code)
                        .filter(|k| *k == ErrorKind::CapacityOrQuota)
                        .unwrap_or(ErrorKind::OperationFailed);
                    let message = format!(
                        "instance {} is {other}{}",
                        i.id,
                        i.state_reason_message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                    let ending = matches!(other, "shutting-down" | "terminated");
                    st.teardown = Some(Teardown {
                        reason: TeardownReason::InstanceEnded,
                        since: now,
                        terminate_sent_at: ending.then_some(now),
                        cause: Some(Cause {
                            kind: kind.name().into(),
                            code,
                            message,
                        }),
                    });
                    if other == "terminated" {
                        Plan::Done(self.ended(&st))
                    } else if ending {
                        Plan::Done(step(&st, Phase::Stopping, t.poll_interval))
                    } else {
                        let id = i.id.clone();
                        Plan::Call(Call::Terminate { st, id })
                    }
                }
            };
        };
        // Tearing down.
        match found {
            None => {
                let since = match st.instance_id {
                    // The id is known: it may be invisible right after launch.
                    Some(_) => st.launched_at,
                    // Found by tag: RunInstances may have landed just now.
                    None => Some(td.since),
                };
                if self.within_grace(since, now) {
                    // Possibly not visible yet: look again (and, when the
                    // terminate has not been accepted, send it again).
                    return Plan::Done(step(&st, Phase::Stopping, t.poll_interval));
                }
                Plan::Done(self.ended(&st))
            }
            Some(i) => match i.state.as_deref() {
                Some("terminated") => Plan::Done(self.ended(&st)),
                Some("shutting-down") => Plan::Done(step(&st, Phase::Stopping, t.poll_interval)),
                _ => {
                    let resend = td
                        .terminate_sent_at
                        .is_none_or(|at| now >= at + t.poll_interval);
                    if resend {
                        let id = i.id.clone();
                        Plan::Call(Call::Terminate { st, id })
                    } else {
                        Plan::Done(step(&st, Phase::Stopping, t.poll_interval))
                    }
                }
            },
        }
    }

    /// Makes one mutating call and turns its answer into the step.
    async fn call(
        ec2: Ec2,
        call: Call,
        timings: Timings,
        pending: Duration,
        now: OffsetDateTime,
    ) -> Result<Step> {
        match call {
            Call::Launch { mut st, req } => match ec2.run_instance(&req).await {
                Ok(i) => {
                    st.instance_id = Some(i.id);
                    st.launched_at = Some(now);
                    st.last_state = i.state;
                    step(&st, Phase::Requested, pending)
                }
                // Throttles, timeouts, 5xx and unreadable answers: the
                // instance may exist. Keep the state; the replay sends the
                // same token and gets the same instance.
                Err(e) if e.is_retryable() || e.kind() == &ErrorKind::Internal => Err(e),
                Err(e) if e.kind() == &ErrorKind::AlreadyExists => {
                    // IdempotentParameterMismatch: an instance with this
                    // token exists. Find it by tag and tear it down.
                    st.teardown = Some(Teardown {
                        reason: TeardownReason::LaunchFailed,
                        since: now,
                        terminate_sent_at: None,
                        cause: Some(cause_of(&e)),
                    });
                    Ok(step(&st, Phase::Stopping, Duration::ZERO)?.with_error(&e))
                }
                // EC2 refused the launch: nothing exists. The error's kind
                // (capacity_or_quota, invalid_config, ...) tells the
                // provisioner whether to try another launch config.
                Err(e) => Ok(step(&st, Phase::Failed, Duration::ZERO)?.with_error(&e)),
            },
            Call::Terminate { mut st, id } => match ec2.terminate(&id).await {
                Ok(()) => {
                    if let Some(td) = st.teardown.as_mut() {
                        td.terminate_sent_at = Some(now);
                    }
                    step(&st, Phase::Stopping, timings.poll_interval)
                }
                Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {
                    let young = st
                        .launched_at
                        .is_some_and(|t| now < t + timings.not_found_grace);
                    if young {
                        // Not visible yet: try again after a poll interval.
                        Ok(step(&st, Phase::Stopping, timings.poll_interval)?)
                    } else {
                        // Already gone; the describe confirms.
                        if let Some(td) = st.teardown.as_mut() {
                            td.terminate_sent_at = Some(now);
                        }
                        step(&st, Phase::Stopping, Duration::ZERO)
                    }
                }
                Err(e) => Err(e),
            },
        }
    }

    fn region_of(st: &AwsState) -> &str {
        &st.region
    }
}

/// The instance that belongs to a worker among those tagged with its id.
fn pick_by_tag<'a>(
    worker: &Worker,
    st: &AwsState,
    candidates: &'a [InstanceView],
) -> Option<&'a InstanceView> {
    let mine = |i: &&InstanceView| {
        i.tags.get(tag::WORKER).map(String::as_str) == Some(worker.id())
            && match &i.client_token {
                Some(t) => *t == st.client_token,
                None => {
                    i.tags.get(tag::MANAGER).map(String::as_str)
                        == Some(worker.spec.tags.manager_id.as_str())
                }
            }
    };
    candidates
        .iter()
        .filter(mine)
        .find(|i| i.state.as_deref() != Some("terminated"))
        .or_else(|| candidates.iter().find(mine))
}

/// Parses `arn:aws:ec2:REGION:ACCOUNT:instance/ID` (or a bare id).
fn parse_instance_ref(id: &str) -> Option<(Option<&str>, &str)> {
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if parts.len() == 5 && parts[1] == "ec2" {
            let inst = parts[4].strip_prefix("instance/")?;
            return Some((Some(parts[2]), inst));
        }
        return None;
    }
    id.starts_with("i-").then_some((None, id))
}

#[async_trait]
impl Provider for AwsProvider {
    fn id(&self) -> &str {
        &self.config.provider_id
    }

    fn kind(&self) -> &'static str {
        "aws"
    }

    fn validate(&self, launch: &serde_json::Value) -> Result<()> {
        let l = Ec2Launch::parse(launch)?;
        self.ec2(&l.region)?;
        Ok(())
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        if let Ok(Some(st)) = AwsState::of(worker) {
            return Some(st.region);
        }
        worker
            .spec
            .launch
            .get("region")
            .and_then(|r| r.as_str())
            .map(str::to_string)
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let mut all = self.step_many(std::slice::from_ref(worker)).await;
        all.pop()
            .unwrap_or_else(|| Err(Error::internal("step_many answered no step")))
    }

    /// One DescribeInstances answers up to this many workers' checks.
    fn batch_limit(&self) -> usize {
        crate::client::MAX_FILTER_VALUES
    }

    async fn step_many(&self, workers: &[Worker]) -> Vec<Result<Step>> {
        let now = self.clock.now();
        let timings = self.timings();
        let mut out: Vec<Option<Result<Step>>> = workers.iter().map(|_| None).collect();
        let mut calls: Vec<(usize, Call)> = Vec::new();
        let mut looks: Vec<(usize, AwsState, Lookup)> = Vec::new();
        for (i, w) in workers.iter().enumerate() {
            match self.plan(w, now) {
                Plan::Done(r) => out[i] = Some(r),
                Plan::Call(c) => calls.push((i, c)),
                Plan::Look(st, l) => looks.push((i, st, l)),
            }
        }

        // One batched describe per region (and per lookup kind) for every
        // worker that needs a look.
        let mut wanted: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for (i, st, l) in &looks {
            let e = wanted.entry(Self::region_of(st).to_string()).or_default();
            match l {
                Lookup::Id(id) => e.0.push(id.clone()),
                Lookup::Tag => e.1.push(workers[*i].id().to_string()),
            }
        }
        type Found = (HashMap<String, InstanceView>, Vec<InstanceView>);
        let mut found: HashMap<String, Result<Found>> = HashMap::new();
        for (region, (mut ids, mut tagged)) in wanted {
            ids.sort();
            ids.dedup();
            tagged.sort();
            tagged.dedup();
            let r = async {
                let ec2 = self.ec2(&region)?;
                let by_id = if ids.is_empty() {
                    HashMap::new()
                } else {
                    ec2.describe_ids(&ids)
                        .await?
                        .into_iter()
                        .map(|v| (v.id.clone(), v))
                        .collect()
                };
                let by_tag = if tagged.is_empty() {
                    Vec::new()
                } else {
                    ec2.describe_workers(&tagged).await?
                };
                Ok((by_id, by_tag))
            }
            .await;
            found.insert(region, r);
        }
        for (i, st, l) in looks {
            let w = &workers[i];
            let plan = match found.get(Self::region_of(&st)) {
                Some(Ok((by_id, by_tag))) => {
                    let f = match &l {
                        Lookup::Id(id) => by_id.get(id),
                        Lookup::Tag => pick_by_tag(w, &st, by_tag),
                    };
                    self.decide(w, st, f, now)
                }
                Some(Err(e)) => Plan::Done(Err(dup(e))),
                None => Plan::Done(Err(Error::internal("no describe result for the region"))),
            };
            match plan {
                Plan::Done(r) => out[i] = Some(r),
                Plan::Call(c) => calls.push((i, c)),
                Plan::Look(..) => {
                    out[i] = Some(Err(Error::internal("a look led to another look")));
                }
            }
        }

        // The mutating calls, concurrently (the transport limits them).
        let mut set = JoinSet::new();
        for (i, c) in calls {
            let region = match &c {
                Call::Launch { st, .. } | Call::Terminate { st, .. } => st.region.clone(),
            };
            let ec2 = match self.ec2(&region) {
                Ok(e) => e.clone(),
                Err(e) => {
                    out[i] = Some(Err(e));
                    continue;
                }
            };
            let pending = self.pending_interval(&workers[i], now);
            set.spawn(async move { (i, Self::call(ec2, c, timings, pending, now).await) });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((i, r)) => out[i] = Some(r),
                Err(e) => {
                    // A panicked call task: report it on every worker still
                    // without an answer.
                    tracing::error!(error = %e, "an EC2 call task failed");
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::internal("the step's EC2 call task failed"))))
            .collect()
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let mut out = Vec::new();
        for region in &self.config.regions {
            let ec2 = self.ec2(region)?;
            let filters = vec![
                Filter::builder()
                    .name(format!("tag:{}", tag::MANAGER))
                    .values(&scope.manager_id)
                    .build(),
                Filter::builder()
                    .name(format!("tag:{}", tag::PROVIDER))
                    .values(&scope.provider_id)
                    .build(),
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "shutting-down", "stopping", "stopped"]
                            .map(String::from)
                            .to_vec(),
                    ))
                    .build(),
            ];
            for i in ec2.describe(filters).await? {
                let account = i.owner_id.clone().unwrap_or_default();
                out.push(OwnedResource {
                    id: format!("arn:aws:ec2:{region}:{account}:instance/{}", i.id),
                    kind: "instance".into(),
                    worker_id: i.tags.get(tag::WORKER).cloned(),
                    created_at: i.launch_time,
                    tags: i.tags,
                });
            }
        }
        Ok(out)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        let (region, id) = parse_instance_ref(&resource.id).ok_or_else(|| {
            Error::invalid_config(
                "resource.id",
                format!(
                    "`{}` is not an EC2 instance ARN or instance id",
                    resource.id
                ),
            )
        })?;
        let region = match region {
            Some(r) => r,
            None => self
                .config
                .regions
                .first()
                .map(String::as_str)
                .ok_or_else(|| Error::invalid_config("regions", "no region configured"))?,
        };
        match self.ec2(region)?.terminate(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == &ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_refs() {
        assert_eq!(
            parse_instance_ref("arn:aws:ec2:eu-west-1:123456789012:instance/i-0abc"),
            Some((Some("eu-west-1"), "i-0abc"))
        );
        assert_eq!(parse_instance_ref("i-0abc"), Some((None, "i-0abc")));
        assert_eq!(parse_instance_ref("arn:aws:s3:::bucket"), None);
        assert_eq!(parse_instance_ref("vol-1"), None);
    }
}
