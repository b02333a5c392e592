//! The fake cloud: instances kept in memory, with configurable latencies
//! and injectable failures and hangs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::{Clock, TokioClock};
use crate::error::{Error, Result};
use crate::model::{tag, OwnedResource};

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
    /// Tagging an instance.
    Tag,
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
    /// What the instance's "metadata service" hands its agent as proof of
    /// identity (random per instance).
    identity: String,
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
    pub(super) clock: Arc<dyn Clock>,
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

    /// The tags of instance `name`, if it exists (not a cloud call).
    pub fn tags_of(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.lock().instances.get(name).map(|i| i.tags.clone())
    }

    /// Creates an instance "behind the fleet's back" (orphan sweep tests).
    pub fn create_unmanaged(&self, name: &str, tags: BTreeMap<String, String>) {
        self.create_unmanaged_at(name, tags, self.clock.now());
    }

    /// Creates an instance "behind the fleet's back" that the cloud says
    /// was created at `created_at`.
    pub fn create_unmanaged_at(
        &self,
        name: &str,
        tags: BTreeMap<String, String>,
        created_at: OffsetDateTime,
    ) {
        let now = self.clock.now();
        self.lock().instances.insert(
            name.to_string(),
            Instance {
                tags,
                created_at,
                ready_at: now,
                deleting_until: None,
                identity: format!("{:032x}", rand::random::<u128>()),
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

    /// The identity proof an agent on instance `name` would read from its
    /// metadata service: `None` if there is no such instance, or it is
    /// being deleted. Not a cloud call (the agent runs on the VM).
    pub fn identity_of(&self, name: &str) -> Option<crate::provider::support::Secret> {
        let s = self.lock();
        s.instances
            .get(name)
            .filter(|i| i.deleting_until.is_none())
            .map(|i| crate::provider::support::Secret::new(i.identity.clone()))
    }

    pub(super) async fn create(
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
                    identity: format!("{:032x}", rand::random::<u128>()),
                },
            );
        }
        Ok(())
    }

    pub(super) async fn get(
        &self,
        name: &str,
        region: Option<&str>,
    ) -> Result<Option<InstanceStatus>> {
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

    pub(super) async fn delete(&self, name: &str, region: Option<&str>) -> Result<()> {
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

    pub(super) async fn tag(&self, name: &str, tags: &BTreeMap<String, String>) -> Result<()> {
        self.enter(CallKind::Tag, None).await?;
        let now = self.clock.now();
        let mut s = self.lock();
        Self::expire(&mut s, now);
        match s.instances.get_mut(name) {
            Some(i) => {
                i.tags
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ok(())
            }
            None => Err(Error::not_found(format!("instance {name} not found"))),
        }
    }

    pub(super) async fn list(&self, manager_id: &str) -> Result<Vec<OwnedResource>> {
        self.enter(CallKind::List, None).await?;
        let now = self.clock.now();
        let mut s = self.lock();
        Self::expire(&mut s, now);
        Ok(s.instances
            .iter()
            .filter(|(_, i)| i.tags.get(tag::MANAGER).map(String::as_str) == Some(manager_id))
            .map(|(name, i)| {
                OwnedResource::from_tags(
                    name.clone(),
                    "instance",
                    Some(i.created_at),
                    i.tags.clone(),
                )
            })
            .collect())
    }
}

/// What the cloud says of one instance.
pub(super) enum InstanceStatus {
    Pending(Duration),
    Running,
    Deleting,
}
