//! The `testing` provider: an in-memory fake cloud with configurable
//! latencies and injectable failures.
//!
//! It is a real provider: [`TestingCloud`] keeps instances, creates them
//! idempotently by name (like an ARM PUT or an EC2 `ClientToken`), boots them
//! after a delay, and deletes them; [`TestingProvider`] drives workers through
//! it one step at a time, obeying the [`Provider`] rules (at most one mutating
//! call per step, names derived from the worker id). Core's own tests of the
//! stores and the fleet runtime run on it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::{Clock, TokioClock};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{tag, DesiredState, OwnedResource, OwnershipScope, Phase, Worker};
use crate::provider::{Provider, Step};

/// Which call a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// Creating an instance.
    Create,
    /// Reading an instance.
    Get,
    /// Deleting an instance.
    Delete,
    /// Listing instances.
    List,
}

/// Latencies of the fake cloud's calls and the boot time of an instance.
#[derive(Debug, Clone)]
pub struct TestingConfig {
    /// Latency of every call.
    pub call_latency: Duration,
    /// Time from create to running.
    pub boot_time: Duration,
    /// Time from delete to gone.
    pub delete_time: Duration,
}

impl Default for TestingConfig {
    fn default() -> Self {
        TestingConfig {
            call_latency: Duration::ZERO,
            boot_time: Duration::from_millis(50),
            delete_time: Duration::from_millis(20),
        }
    }
}

#[derive(Debug, Clone)]
struct Instance {
    tags: BTreeMap<String, String>,
    created_at: OffsetDateTime,
    ready_at: OffsetDateTime,
    deleting_until: Option<OffsetDateTime>,
}

#[derive(Debug, Default)]
struct CloudState {
    instances: HashMap<String, Instance>,
    faults: HashMap<CallKind, VecDeque<Error>>,
    hang: HashMap<CallKind, bool>,
    hang_regions: std::collections::HashSet<String>,
    calls: HashMap<CallKind, u64>,
    creates_accepted: u64,
}

/// The in-memory fake cloud.
#[derive(Debug, Clone)]
pub struct TestingCloud {
    state: Arc<Mutex<CloudState>>,
    config: Arc<Mutex<TestingConfig>>,
    clock: Arc<dyn Clock>,
}

impl TestingCloud {
    /// A new empty cloud on tokio's clock.
    pub fn new(config: TestingConfig) -> Self {
        TestingCloud {
            state: Arc::default(),
            config: Arc::new(Mutex::new(config)),
            clock: Arc::new(TokioClock::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CloudState> {
        // A poisoned lock only means a test panicked mid-call; the map is
        // still consistent because every mutation is a single insert/remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cfg(&self) -> TestingConfig {
        self.config
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes latencies for calls from now on.
    pub fn set_config(&self, config: TestingConfig) {
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// Makes the next calls of `kind` fail with `error`, once each, in order.
    pub fn inject(&self, kind: CallKind, error: Error) {
        self.lock().faults.entry(kind).or_default().push_back(error);
    }

    /// Makes every call of `kind` hang (until `set_hang(kind, false)`).
    pub fn set_hang(&self, kind: CallKind, hang: bool) {
        self.lock().hang.insert(kind, hang);
    }

    /// Makes every call for instances in `region` hang (until
    /// `set_hang_region(region, false)`): a region whose API stopped
    /// answering, while the cloud's other regions keep working.
    pub fn set_hang_region(&self, region: &str, hang: bool) {
        let mut s = self.lock();
        if hang {
            s.hang_regions.insert(region.to_string());
        } else {
            s.hang_regions.remove(region);
        }
    }

    /// Calls made so far of `kind`.
    pub fn calls(&self, kind: CallKind) -> u64 {
        self.lock().calls.get(&kind).copied().unwrap_or(0)
    }

    /// Live instances (deleting ones included until gone).
    pub fn instance_count(&self) -> usize {
        let now = self.clock.now();
        let mut s = self.lock();
        Self::expire(&mut s, now);
        s.instances.len()
    }

    /// Instance names currently live.
    pub fn instance_names(&self) -> Vec<String> {
        let now = self.clock.now();
        let mut s = self.lock();
        Self::expire(&mut s, now);
        let mut v: Vec<String> = s.instances.keys().cloned().collect();
        v.sort();
        v
    }

    /// Create requests that actually created something (idempotent replays
    /// excluded): with correct resumption this equals the number of workers.
    pub fn creates_accepted(&self) -> u64 {
        self.lock().creates_accepted
    }

    /// Creates an instance "behind the fleet's back" (orphan sweep tests).
    pub fn create_unmanaged(&self, name: &str, tags: BTreeMap<String, String>) {
        let now = self.clock.now();
        self.lock().instances.insert(
            name.to_string(),
            Instance {
                tags,
                created_at: now,
                ready_at: now,
                deleting_until: None,
            },
        );
    }

    fn expire(s: &mut CloudState, now: OffsetDateTime) {
        s.instances
            .retain(|_, i| i.deleting_until.is_none_or(|t| now < t));
    }

    async fn enter(&self, kind: CallKind, region: Option<&str>) -> Result<()> {
        let latency = self.cfg().call_latency;
        let (hang, fault) = {
            let mut s = self.lock();
            *s.calls.entry(kind).or_default() += 1;
            let hang = s.hang.get(&kind).copied().unwrap_or(false)
                || region.is_some_and(|r| s.hang_regions.contains(r));
            let fault = s.faults.get_mut(&kind).and_then(|q| q.pop_front());
            (hang, fault)
        };
        if hang {
            std::future::pending::<()>().await;
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn create(
        &self,
        name: &str,
        region: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Result<()> {
        self.enter(CallKind::Create, region).await?;
        let now = self.clock.now();
        let boot = self.cfg().boot_time;
        let mut s = self.lock();
        Self::expire(&mut s, now);
        if !s.instances.contains_key(name) {
            s.creates_accepted += 1;
            s.instances.insert(
                name.to_string(),
                Instance {
                    tags,
                    created_at: now,
                    ready_at: now + boot,
                    deleting_until: None,
                },
            );
        }
        Ok(())
    }

    async fn get(&self, name: &str, region: Option<&str>) -> Result<Option<InstanceStatus>> {
        self.enter(CallKind::Get, region).await?;
        let now = self.clock.now();
        let mut s = self.lock();
        Self::expire(&mut s, now);
        Ok(s.instances.get(name).map(|i| {
            if i.deleting_until.is_some() {
                InstanceStatus::Deleting
            } else if now >= i.ready_at {
                InstanceStatus::Running
            } else {
                InstanceStatus::Pending(crate::clock::until(now, i.ready_at))
            }
        }))
    }

    async fn delete(&self, name: &str, region: Option<&str>) -> Result<()> {
        self.enter(CallKind::Delete, region).await?;
        let now = self.clock.now();
        let d = self.cfg().delete_time;
        let mut s = self.lock();
        Self::expire(&mut s, now);
        if let Some(i) = s.instances.get_mut(name) {
            if i.deleting_until.is_none() {
                i.deleting_until = Some(now + d);
            }
        }
        Self::expire(&mut s, now);
        Ok(())
    }

    async fn list(&self, manager_id: &str) -> Result<Vec<OwnedResource>> {
        self.enter(CallKind::List, None).await?;
        let now = self.clock.now();
        let mut s = self.lock();
        Self::expire(&mut s, now);
        Ok(s.instances
            .iter()
            .filter(|(_, i)| i.tags.get(tag::MANAGER).map(String::as_str) == Some(manager_id))
            .map(|(name, i)| OwnedResource {
                id: name.clone(),
                kind: "instance".into(),
                worker_id: i.tags.get(tag::WORKER).cloned(),
                created_at: Some(i.created_at),
                tags: i.tags.clone(),
            })
            .collect())
    }
}

enum InstanceStatus {
    Pending(Duration),
    Running,
    Deleting,
}

/// The resumable state the testing provider keeps on each worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestingState {
    /// The instance name, derived from the worker id and persisted before
    /// the create call.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the create call was sent (it may or may not have landed).
    #[serde(default)]
    pub create_sent: bool,
    /// Whether the delete call was sent.
    #[serde(default)]
    pub delete_sent: bool,
}

/// The testing provider, over a [`TestingCloud`].
#[derive(Debug, Clone)]
pub struct TestingProvider {
    id: String,
    cloud: TestingCloud,
    poll: Duration,
}

impl TestingProvider {
    /// A provider with id `id` over `cloud`.
    pub fn new(id: impl Into<String>, cloud: TestingCloud) -> Self {
        TestingProvider {
            id: id.into(),
            cloud,
            poll: Duration::from_millis(20),
        }
    }

    /// The cloud behind it.
    pub fn cloud(&self) -> &TestingCloud {
        &self.cloud
    }

    /// The instance name of a worker: a pure function of its id.
    pub fn instance_name(worker_id: &str) -> String {
        format!("{worker_id}-vm")
    }

    fn parse_state(worker: &Worker) -> Result<TestingState> {
        if worker.provider_state.is_null() {
            return Ok(TestingState::default());
        }
        serde_json::from_value(worker.provider_state.clone()).map_err(|e| {
            Error::internal(format!(
                "worker {}: unreadable testing provider state: {e}",
                worker.id()
            ))
            .with_code("InvalidProviderState")
        })
    }

    /// The worker's region (`launch.region`), if its launch config names one.
    fn region(worker: &Worker) -> Option<&str> {
        worker.spec.launch.get("region").and_then(|r| r.as_str())
    }

    fn step_to(state: &TestingState, phase: Phase, next: Duration) -> Result<Step> {
        Ok(Step::new(serde_json::to_value(state)?, phase, next))
    }
}

#[async_trait]
impl Provider for TestingProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "testing"
    }

    fn partition(&self, worker: &Worker) -> Option<String> {
        Self::region(worker).map(str::to_string)
    }

    fn validate(&self, launch: &serde_json::Value) -> Result<()> {
        match launch {
            serde_json::Value::Object(m) => {
                for key in ["size", "region"] {
                    if m.get(key).is_some_and(|v| !v.is_string()) {
                        return Err(Error::invalid_config(
                            format!("launch.{key}"),
                            "must be a string",
                        ));
                    }
                }
                Ok(())
            }
            _ => Err(Error::invalid_config("launch", "must be an object")),
        }
    }

    async fn step(&self, worker: &Worker) -> Result<Step> {
        let mut st = Self::parse_state(worker)?;
        let region = Self::region(worker);
        let now = self.cloud.clock.now();
        let provisioning_overdue =
            worker.phase == Phase::Requested && now >= worker.provisioning_deadline();
        let removing = worker.desired == DesiredState::Removed || provisioning_overdue;
        let Some(name) = st.name.clone() else {
            if removing {
                // Nothing was ever created.
                return Self::step_to(&st, Phase::Stopped, Duration::ZERO);
            }
            // Persist the name before any call that uses it.
            st.name = Some(Self::instance_name(worker.id()));
            return Self::step_to(&st, Phase::Requested, Duration::ZERO);
        };
        if removing {
            if !st.delete_sent {
                if st.create_sent {
                    self.cloud.delete(&name, region).await?;
                }
                st.delete_sent = true;
                return Self::step_to(&st, Phase::Stopping, self.poll);
            }
            return match self.cloud.get(&name, region).await? {
                None => {
                    let phase = if provisioning_overdue && worker.desired == DesiredState::Running {
                        Phase::Failed
                    } else {
                        Phase::Stopped
                    };
                    let s = Self::step_to(&st, phase, Duration::ZERO)?;
                    Ok(if phase == Phase::Failed {
                        s.with_error(&Error::new(
                            ErrorKind::Timeout,
                            "provisioning deadline passed; resources removed",
                        ))
                    } else {
                        s
                    })
                }
                Some(InstanceStatus::Deleting) => Self::step_to(&st, Phase::Stopping, self.poll),
                // Still there and not deleting: the delete was lost; send it again.
                Some(_) => {
                    self.cloud.delete(&name, region).await?;
                    Self::step_to(&st, Phase::Stopping, self.poll)
                }
            };
        }
        if !st.create_sent {
            // Mark the call as sent in the same step that makes it: if we
            // crash before this is persisted, the retry is idempotent by name.
            self.cloud
                .create(&name, region, worker.spec.tags.to_map())
                .await?;
            st.create_sent = true;
            return Self::step_to(&st, Phase::Requested, self.poll);
        }
        match self.cloud.get(&name, region).await? {
            Some(InstanceStatus::Running) => {
                Self::step_to(&st, Phase::Running, Duration::from_secs(60))
            }
            Some(InstanceStatus::Pending(left)) => {
                // Look again when it should be up, or at the provisioning
                // deadline if that comes first.
                let deadline = crate::clock::until(now, worker.provisioning_deadline());
                let next = left.min(deadline).max(Duration::from_millis(1));
                Self::step_to(&st, Phase::Requested, next)
            }
            Some(InstanceStatus::Deleting) | None => {
                // It vanished: the cloud lost it. Mark it for recreation.
                st.create_sent = false;
                let err = Error::new(ErrorKind::NotFound, format!("instance {name} disappeared"));
                Ok(Self::step_to(&st, Phase::Requested, Duration::ZERO)?.with_error(&err))
            }
        }
    }

    async fn list_owned(&self, scope: &OwnershipScope) -> Result<Vec<OwnedResource>> {
        let mut v = self.cloud.list(&scope.manager_id).await?;
        v.retain(|r| r.tags.get(tag::PROVIDER) == Some(&scope.provider_id));
        Ok(v)
    }

    async fn delete_owned(&self, resource: &OwnedResource) -> Result<()> {
        self.cloud.delete(&resource.id, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lifecycle, OwnershipTags, WorkerSpec};
    use crate::provider::ProviderExt;

    pub(crate) fn worker(id: &str, now: OffsetDateTime) -> Worker {
        Worker::new(
            WorkerSpec {
                worker_id: id.into(),
                pool_id: "pool".into(),
                provider_id: "testing".into(),
                launch_config_id: "lc".into(),
                launch: serde_json::json!({}),
                capacity: 1,
                lifecycle: Lifecycle::default(),
                tags: OwnershipTags {
                    manager_id: "mgr".into(),
                    pool_id: "pool".into(),
                    worker_id: id.into(),
                    provider_id: "testing".into(),
                    extra: BTreeMap::new(),
                },
            },
            now,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn create_then_remove_leaves_nothing() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new("testing", cloud.clone());
        let clock = TokioClock::new();
        let mut w = worker("w-1", clock.now());
        p.create(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(w.phase, Phase::Running);
        assert_eq!(cloud.instance_count(), 1);
        let owned = p
            .list_owned(&OwnershipScope {
                manager_id: "mgr".into(),
                provider_id: "testing".into(),
            })
            .await
            .unwrap();
        assert_eq!(owned.len(), 1);
        assert_eq!(owned[0].worker_id.as_deref(), Some("w-1"));
        p.remove(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(w.phase, Phase::Stopped);
        assert_eq!(cloud.instance_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_replayed_step_creates_nothing_new() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new("testing", cloud.clone());
        let clock = TokioClock::new();
        let mut w = worker("w-2", clock.now());
        // Step 1 persists the name; step 2 sends the create.
        let s1 = p.step(&w).await.unwrap();
        crate::provider::apply_step(&mut w, &s1, clock.now());
        let before_create = w.clone();
        let _lost = p.step(&w).await.unwrap(); // crash: answer never persisted
        let s2 = p.step(&before_create).await.unwrap(); // the next process replays
        crate::provider::apply_step(&mut w, &s2, clock.now());
        assert_eq!(cloud.creates_accepted(), 1);
        assert_eq!(cloud.calls(CallKind::Create), 2);
        p.create(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(cloud.instance_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn injected_failure_is_returned_and_retried() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new("testing", cloud.clone());
        cloud.inject(CallKind::Create, Error::new(ErrorKind::Transient, "boom"));
        let clock = TokioClock::new();
        let mut w = worker("w-3", clock.now());
        p.create(&mut w, &clock, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(cloud.calls(CallKind::Create), 2);
        assert_eq!(cloud.creates_accepted(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn provisioning_deadline_tears_down() {
        let cloud = TestingCloud::new(TestingConfig {
            boot_time: Duration::from_secs(3600),
            ..TestingConfig::default()
        });
        let p = TestingProvider::new("testing", cloud.clone());
        let clock = TokioClock::new();
        let mut w = worker("w-4", clock.now());
        w.spec.lifecycle.provisioning_deadline = Duration::from_secs(5);
        p.drive(
            &mut w,
            &[Phase::Running],
            &clock,
            Duration::from_secs(60),
            5,
        )
        .await
        .unwrap();
        assert_eq!(w.phase, Phase::Failed);
        assert_eq!(w.last_error.as_ref().unwrap().kind, "timeout");
        assert_eq!(cloud.instance_count(), 0);
    }

    #[tokio::test]
    async fn garbled_state_is_an_error_for_that_worker() {
        let cloud = TestingCloud::new(TestingConfig::default());
        let p = TestingProvider::new("testing", cloud);
        let mut w = worker("w-5", OffsetDateTime::now_utc());
        w.provider_state = serde_json::json!({"name": 7});
        let e = p.step(&w).await.unwrap_err();
        assert_eq!(e.code(), Some("InvalidProviderState"));
        assert!(p.validate(&serde_json::json!([])).is_err());
    }
}
