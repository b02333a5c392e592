//! Panics in the fleet's tasks and steps: counted, logged, and survived.
//! A provider step that panics is a step error (the worker is retried), a
//! demand source that panics takes down its pool's provisioner task, which
//! is restarted after a backoff. And the stop: a fleet whose cloud hangs
//! stops promptly and leaves every lease to the next replica.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use skyfleet_core::fleet::{Demand, FixedDemand, Fleet, FleetConfig, PoolDemand};
use skyfleet_core::model::{OwnedResource, OwnershipScope, Worker};
use skyfleet_core::provider::Step;
use skyfleet_core::store::{MemoryStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{Phase, PoolConfig, Provider};
use tokio_util::sync::CancellationToken;

/// Counters by `name{label=value,...}`, for the whole test binary.
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<AtomicU64>>>);

impl Counters {
    fn get(&self, series: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(series)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }
}

impl Recorder for &'static Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let series = format!("{}{{{}}}", key.name(), labels.join(","));
        Counter::from_arc(self.0.lock().unwrap().entry(series).or_default().clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn counters() -> &'static Counters {
    static C: OnceLock<&'static Counters> = OnceLock::new();
    C.get_or_init(|| {
        let c: &'static Counters = Box::leak(Box::default());
        metrics::set_global_recorder(c).expect("the only recorder of this test binary");
        c
    })
}

/// The testing provider, except that its first `panics` step calls panic.
#[derive(Debug)]
struct PanickyProvider {
    inner: TestingProvider,
    panics: AtomicUsize,
}

#[async_trait]
impl Provider for PanickyProvider {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn validate(&self, launch: &serde_json::Value) -> skyfleet_core::Result<()> {
        self.inner.validate(launch)
    }
    async fn step(&self, worker: &Worker) -> skyfleet_core::Result<Step> {
        let left = self.panics.load(Ordering::SeqCst);
        if left > 0 {
            self.panics.store(left - 1, Ordering::SeqCst);
            panic!("the provider's step blew up");
        }
        self.inner.step(worker).await
    }
    async fn list_owned(
        &self,
        scope: &OwnershipScope,
    ) -> skyfleet_core::Result<Vec<OwnedResource>> {
        self.inner.list_owned(scope).await
    }
    async fn delete_owned(&self, resource: &OwnedResource) -> skyfleet_core::Result<()> {
        self.inner.delete_owned(resource).await
    }
}

/// A fixed demand, except that its first `panics` answers panic.
#[derive(Debug)]
struct PanickyDemand {
    inner: FixedDemand,
    panics: AtomicUsize,
}

#[async_trait]
impl Demand for PanickyDemand {
    async fn demand(&self, pool_id: &str) -> skyfleet_core::Result<PoolDemand> {
        let left = self.panics.load(Ordering::SeqCst);
        if left > 0 {
            self.panics.store(left - 1, Ordering::SeqCst);
            panic!("the demand source blew up");
        }
        self.inner.demand(pool_id).await
    }
}

fn pool(id: &str, provider: &str) -> PoolConfig {
    serde_json::from_value(serde_json::json!({
        "pool_id": id,
        "provider_id": provider,
        "max_capacity": 10,
        "launch_configs": [{"id": "small", "launch": {"size": "small"}}],
    }))
    .unwrap()
}

fn fast() -> FleetConfig {
    FleetConfig {
        manager_id: "test-mgr".into(),
        scan_interval: Duration::from_millis(10),
        provision_interval: Duration::from_millis(50),
        step_timeout: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        error_backoff_min: Duration::from_millis(20),
        error_backoff_max: Duration::from_millis(100),
        sweep_interval: Duration::from_secs(3600),
        ..FleetConfig::default()
    }
}

async fn running(store: &Arc<dyn WorkerStore>, pool: &str) -> usize {
    store
        .list_workers(&WorkerFilter::pool(pool).with_phases(&[Phase::Running]))
        .await
        .unwrap()
        .len()
}

async fn until_running(store: &Arc<dyn WorkerStore>, pool: &str, n: usize, limit: Duration) {
    let start = Instant::now();
    while running(store, pool).await < n {
        assert!(
            start.elapsed() < limit,
            "{pool}: {n} running not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_steps_are_counted_per_provider_and_their_workers_still_provisioned() {
    let c = counters();
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let cloud = TestingCloud::new(TestingConfig::default());
    let demand = FixedDemand::new();
    demand.set_pending("ci/steps", 3);
    let fleet = Fleet::builder()
        .config(fast())
        .store(store.clone())
        .provider(Arc::new(PanickyProvider {
            inner: TestingProvider::new("panicky-steps", cloud.clone()),
            panics: AtomicUsize::new(4),
        }))
        .pool(pool("ci/steps", "panicky-steps"))
        .demand(Arc::new(demand))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    until_running(&store, "ci/steps", 3, Duration::from_secs(20)).await;
    assert_eq!(
        c.get("skyfleet_step_panics_total{provider=panicky-steps}"),
        4
    );
    assert_eq!(cloud.creates_accepted(), 3, "no worker lost or duplicated");
    // The panics were recorded against the pool as step errors.
    let errors = store.list_pool_errors("ci/steps", 100).await.unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("the step panicked")),
        "{errors:?}"
    );
    cancel.cancel();
    run.await.unwrap().unwrap();
    // Nothing left leased after the stop.
    let all = store
        .list_workers(&WorkerFilter::pool("ci/steps"))
        .await
        .unwrap();
    assert!(all.iter().all(|w| w.lease_owner.is_none()), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_whose_demand_source_panics_is_restarted_and_counted() {
    let c = counters();
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let cloud = TestingCloud::new(TestingConfig::default());
    let inner = FixedDemand::new();
    inner.set_pending("ci/demand", 2);
    let fleet = Fleet::builder()
        .config(fast())
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("ci/demand", "testing"))
        .demand(Arc::new(PanickyDemand {
            inner,
            panics: AtomicUsize::new(2),
        }))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    until_running(&store, "ci/demand", 2, Duration::from_secs(20)).await;
    assert_eq!(
        c.get("skyfleet_task_panics_total{task=provisioner/ci/demand}"),
        2
    );
    // Restarted after 1 s, then 2 s: the backoff was waited.
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_stopped_mid_provisioning_leaves_every_lease_to_the_next_replica() {
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let cloud = TestingCloud::new(TestingConfig::default());
    // Every create hangs: the workers stay leased mid-provisioning.
    cloud.set_hang(skyfleet_core::testing::CallKind::Create, true);
    let demand = FixedDemand::new();
    demand.set_pending("ci/stop", 3);
    let fleet = Fleet::builder()
        .config(FleetConfig {
            // Long leases: only a release lets another replica in at once.
            lease: Duration::from_secs(600),
            pool_lease: Duration::from_secs(600),
            step_timeout: Duration::from_secs(300),
            ..fast()
        })
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("ci/stop", "testing"))
        .demand(Arc::new(demand))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    let start = Instant::now();
    loop {
        let leased = store
            .list_workers(&WorkerFilter::pool("ci/stop"))
            .await
            .unwrap()
            .iter()
            .filter(|w| w.lease_owner.as_deref() == Some(fleet.owner()))
            .count();
        if leased == 3 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{leased} leased");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = Instant::now();
    cancel.cancel();
    run.await.unwrap().unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "stopped in {:?} with creates hanging",
        stopping.elapsed()
    );
    let now = time::OffsetDateTime::now_utc();
    assert!(
        store
            .acquire_pool_lease("ci/stop", "replica-2", now, Duration::from_secs(30))
            .await
            .unwrap()
            .is_some(),
        "the pool lease was not released"
    );
    let claim = skyfleet_core::store::Claim {
        provider_id: "testing".into(),
        partition: Default::default(),
        owner: "replica-2".into(),
        lease: Duration::from_secs(30),
        limit: 100,
    };
    // Their 600 s leases were released: the next replica claims all now.
    assert_eq!(store.claim_due(&claim, now).await.unwrap().len(), 3);
}
