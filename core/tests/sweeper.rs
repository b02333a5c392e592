//! The orphan sweeper's guards on the testing provider: a replica pointed
//! at a new, empty store deletes nothing; a big orphan set goes at most
//! `sweep_max_delete` per sweep; a dry run deletes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig};
use skyfleet_core::model::tag;
use skyfleet_core::store::{MemoryStore, SqliteStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{CallKind, TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{Phase, PoolConfig};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

const MANAGER: &str = "shared-mgr";

fn pool(id: &str, max: u32) -> PoolConfig {
    serde_json::from_value(serde_json::json!({
        "pool_id": id,
        "provider_id": "testing",
        "max_capacity": max,
        "launch_configs": [{"id": "small", "weight": 1.0, "launch": {"size": "small"}}],
        "lifecycle": {"provisioning_deadline": 60}
    }))
    .unwrap()
}

fn config(grace: Duration, max_delete: Option<usize>) -> FleetConfig {
    FleetConfig {
        manager_id: MANAGER.into(),
        scan_interval: Duration::from_millis(10),
        provision_interval: Duration::from_millis(50),
        step_timeout: Duration::from_millis(500),
        lease: Duration::from_secs(2),
        pool_lease: Duration::from_secs(2),
        sweep_interval: Duration::from_secs(3600),
        sweep_grace: grace,
        sweep_max_delete: max_delete,
        ..FleetConfig::default()
    }
}

fn fleet(cloud: &TestingCloud, store: Arc<dyn WorkerStore>, config: FleetConfig) -> Fleet {
    Fleet::builder()
        .config(config)
        .store(store)
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("p", 20))
        .demand(Arc::new(FixedDemand::new()))
        .build()
        .unwrap()
}

/// `n` instances tagged as our workers `w-orphan-0..n`, which no store knows.
fn orphans(cloud: &TestingCloud, n: usize) {
    for i in 0..n {
        let tags: BTreeMap<String, String> = [
            (tag::MANAGER.to_string(), MANAGER.to_string()),
            (tag::PROVIDER.to_string(), "testing".to_string()),
            (tag::WORKER.to_string(), format!("w-orphan-{i}")),
        ]
        .into();
        cloud.create_unmanaged(&format!("orphan-{i:03}"), tags);
    }
}

/// A fleet runs 6 workers on its own store; a second replica with the same
/// manager id starts on a new, empty SQLite file (the wrong directory).
/// Every VM is older than the grace period and unknown to the new store,
/// yet its first sweeps delete nothing: the store is younger than the grace
/// period. They hold every VM back and say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_on_an_empty_store_deletes_nothing_on_its_first_sweeps() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let home: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let grace = Duration::from_millis(400);
    let demand = FixedDemand::new();
    let running = Fleet::builder()
        .config(config(grace, None))
        .store(home.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("p", 20))
        .demand(Arc::new(demand.clone()))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (running.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    demand.set_pending("p", 6);
    let start = Instant::now();
    loop {
        let n = home
            .list_workers(&WorkerFilter::pool("p").with_phases(&[Phase::Running]))
            .await
            .unwrap()
            .len();
        if n == 6 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "6 running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The VMs grow older than the grace period.
    tokio::time::sleep(grace + Duration::from_millis(100)).await;

    let dir = tempfile::tempdir().unwrap();
    let empty: Arc<dyn WorkerStore> = Arc::new(
        SqliteStore::open(dir.path().join("new.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    let stray = fleet(&cloud, empty, config(grace, Some(100)));
    for sweep in 0..3 {
        let r = stray.sweep_once().await.unwrap();
        assert_eq!(r.seen, 6, "sweep {sweep}: {r:?}");
        assert_eq!(r.deleted, 0, "sweep {sweep}: {r:?}");
        assert_eq!(r.held_back, 6, "sweep {sweep}: every VM held back: {r:?}");
    }
    assert_eq!(
        cloud.calls(CallKind::Delete),
        0,
        "no delete call reached the cloud"
    );
    assert_eq!(cloud.instance_count(), 6);
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// 25 old orphans on an old store with a cap of 4: each sweep deletes 4
/// (the oldest first), holds back the rest, and the set drains over sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_orphan_set_goes_at_most_cap_per_sweep() {
    let cloud = TestingCloud::new(TestingConfig::default());
    orphans(&cloud, 25);
    let old = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::created_at(old));
    let f = fleet(&cloud, store, config(Duration::ZERO, Some(4)));
    let mut left = 25u64;
    let mut sweeps = 0;
    while left > 0 {
        let r = f.sweep_once().await.unwrap();
        assert_eq!(r.seen, left, "{r:?}");
        assert_eq!(r.deleted, left.min(4), "{r:?}");
        assert_eq!(r.held_back, left - left.min(4), "{r:?}");
        left -= r.deleted;
        sweeps += 1;
        tokio::time::sleep(Duration::from_millis(50)).await; // deletes complete
        assert_eq!(cloud.instance_count() as u64, left);
    }
    assert_eq!(sweeps, 7);
    assert_eq!(cloud.calls(CallKind::Delete), 25);
}

/// With no cap configured, a store with no live workers deletes one orphan
/// per sweep (10 % of nothing, at least 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_is_at_least_one() {
    let cloud = TestingCloud::new(TestingConfig::default());
    orphans(&cloud, 3);
    let old = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::created_at(old));
    let f = fleet(&cloud, store, config(Duration::ZERO, None));
    let r = f.sweep_once().await.unwrap();
    assert_eq!((r.deleted, r.held_back), (1, 2), "{r:?}");
}

/// A dry run reports what it would delete (within the cap) and deletes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_deletes_nothing() {
    let cloud = TestingCloud::new(TestingConfig::default());
    orphans(&cloud, 5);
    let old = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::created_at(old));
    let f = fleet(
        &cloud,
        store,
        FleetConfig {
            sweep_dry_run: true,
            ..config(Duration::ZERO, Some(3))
        },
    );
    let r = f.sweep_once().await.unwrap();
    assert_eq!((r.would_delete, r.held_back, r.deleted), (3, 2, 0), "{r:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cloud.calls(CallKind::Delete), 0);
    assert_eq!(cloud.instance_count(), 5);
}
