//! The orphan sweeper's guards on the testing provider: resources carry
//! their store's id, and a sweep deletes only its own store's orphans (two
//! fleets sharing a manager id leave each other alone; a replica pointed at
//! a new, empty store deletes nothing); resources without a store id are
//! unclaimed, never deleted, and adopted only for live workers; a big
//! orphan set goes at most `sweep_max_delete` per sweep; a dry run deletes
//! nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig, SweepOptions, Verdict};
use skyfleet_core::model::tag;
use skyfleet_core::store::{MemoryStore, SqliteStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{CallKind, TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{Phase, PoolConfig};
use time::OffsetDateTime;
use tokio::task::JoinHandle;
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

fn fleet_with(
    cloud: &TestingCloud,
    store: Arc<dyn WorkerStore>,
    config: FleetConfig,
    demand: &FixedDemand,
) -> Fleet {
    Fleet::builder()
        .config(config)
        .store(store)
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("p", 20))
        .demand(Arc::new(demand.clone()))
        .build()
        .unwrap()
}

fn fleet(cloud: &TestingCloud, store: Arc<dyn WorkerStore>, config: FleetConfig) -> Fleet {
    fleet_with(cloud, store, config, &FixedDemand::new())
}

/// A store created an hour ago: older than any grace period here.
fn old_store() -> Arc<dyn WorkerStore> {
    Arc::new(MemoryStore::created_at(
        OffsetDateTime::now_utc() - Duration::from_secs(3600),
    ))
}

async fn store_id(store: &Arc<dyn WorkerStore>) -> String {
    store.store_identity().await.unwrap().id
}

/// Our ownership tags for worker `worker`, with store id `store` if any.
fn tags(worker: &str, store: Option<&str>) -> BTreeMap<String, String> {
    let mut t: BTreeMap<String, String> = [
        (tag::MANAGER.to_string(), MANAGER.to_string()),
        (tag::PROVIDER.to_string(), "testing".to_string()),
        (tag::WORKER.to_string(), worker.to_string()),
    ]
    .into();
    if let Some(s) = store {
        t.insert(tag::STORE.to_string(), s.to_string());
    }
    t
}

/// `n` instances `{prefix}-NNN` tagged as workers `w-{prefix}-N` of store
/// `store`, which no store knows.
fn orphans(cloud: &TestingCloud, prefix: &str, n: usize, store: Option<&str>) {
    for i in 0..n {
        let t = tags(&format!("w-{prefix}-{i}"), store);
        cloud.create_unmanaged(&format!("{prefix}-{i:03}"), t);
    }
}

/// Runs `f` with `n` pending tasks until `n` workers are running.
async fn run_until_running(
    f: &Fleet,
    demand: &FixedDemand,
    n: usize,
) -> (CancellationToken, JoinHandle<skyfleet_core::Result<()>>) {
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (f.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    demand.set_pending("p", n as u64);
    let start = Instant::now();
    loop {
        let running = f
            .store()
            .list_workers(&WorkerFilter::pool("p").with_phases(&[Phase::Running]))
            .await
            .unwrap()
            .len();
        if running == n {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{n} running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (cancel, run)
}

/// The names of the cloud's instances whose store tag is `store`.
fn instances_of(cloud: &TestingCloud, store: &str) -> Vec<String> {
    cloud
        .instance_names()
        .into_iter()
        .filter(|n| {
            cloud
                .tags_of(n)
                .is_some_and(|t| t.get(tag::STORE).map(String::as_str) == Some(store))
        })
        .collect()
}

/// Every VM a fleet creates carries its store's id, beside the manager,
/// pool, worker and provider tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_vm_carries_its_stores_id() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let store = old_store();
    let demand = FixedDemand::new();
    let f = fleet_with(&cloud, store.clone(), config(Duration::ZERO, None), &demand);
    let (cancel, run) = run_until_running(&f, &demand, 3).await;
    let id = store_id(&store).await;
    assert_eq!(id.len(), 32);
    assert_eq!(
        instances_of(&cloud, &id).len(),
        3,
        "{:?}",
        cloud.instance_names()
    );
    for w in store.list_workers(&WorkerFilter::pool("p")).await.unwrap() {
        assert_eq!(w.spec.tags.store_id.as_deref(), Some(id.as_str()));
    }
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// Two fleets in one account share a manager id but not a store. Each
/// sweeps with no grace and a large cap: neither deletes a VM of the
/// other (each counts the other's as foreign), while each still deletes an
/// orphan of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fleets_sharing_a_manager_id_never_delete_each_others_vms() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let (store_a, store_b) = (old_store(), old_store());
    let (demand_a, demand_b) = (FixedDemand::new(), FixedDemand::new());
    let a = fleet_with(
        &cloud,
        store_a.clone(),
        config(Duration::ZERO, Some(100)),
        &demand_a,
    );
    let b = fleet_with(
        &cloud,
        store_b.clone(),
        config(Duration::ZERO, Some(100)),
        &demand_b,
    );
    let (cancel_a, run_a) = run_until_running(&a, &demand_a, 3).await;
    let (cancel_b, run_b) = run_until_running(&b, &demand_b, 4).await;
    let (id_a, id_b) = (store_id(&store_a).await, store_id(&store_b).await);
    assert_ne!(id_a, id_b);
    // One orphan of A's (its worker record is gone).
    orphans(&cloud, "lost-a", 1, Some(&id_a));

    for round in 0..3 {
        // B first: in round 0 it still sees A's orphan (foreign to it too).
        let rb = b.sweep_once().await.unwrap();
        let a_orphan = u64::from(round == 0);
        assert_eq!(rb.foreign, 3 + a_orphan, "round {round}: {rb:?}");
        assert_eq!(rb.deleted + rb.held_back + rb.would_delete, 0, "{rb:?}");
        assert!(rb
            .resources
            .iter()
            .filter(|r| r.store.as_deref() == Some(id_a.as_str()))
            .all(|r| r.verdict == Verdict::Foreign));
        let ra = a.sweep_once().await.unwrap();
        assert_eq!(
            ra.foreign, 4,
            "round {round}: A sees B's 4 VMs as foreign: {ra:?}"
        );
        assert_eq!(
            ra.deleted, a_orphan,
            "round {round}: only its own orphan: {ra:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // deletes complete
    }
    assert_eq!(
        instances_of(&cloud, &id_a).len(),
        3,
        "A's VMs are all there"
    );
    assert_eq!(
        instances_of(&cloud, &id_b).len(),
        4,
        "B's VMs are all there"
    );
    assert!(!cloud.instance_names().contains(&"lost-a-000".to_string()));
    assert_eq!(
        cloud.calls(CallKind::Delete),
        1,
        "only A's orphan was deleted"
    );
    cancel_a.cancel();
    cancel_b.cancel();
    run_a.await.unwrap().unwrap();
    run_b.await.unwrap().unwrap();
}

/// A fleet runs 6 workers on its own store; a second replica with the same
/// manager id starts on a new, empty SQLite file (the wrong directory).
/// Every VM is older than the grace period and unknown to the new store,
/// yet its sweeps delete nothing: the VMs carry another store's id. Even
/// old VMs carrying the new store's own id are held back while the store
/// is younger than the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_on_an_empty_store_deletes_nothing() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let home: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    // Long enough for three sweeps to run while the new store is young,
    // even on a loaded machine.
    let grace = Duration::from_secs(3);
    let demand = FixedDemand::new();
    let running = fleet_with(&cloud, home.clone(), config(grace, None), &demand);
    let (cancel, run) = run_until_running(&running, &demand, 6).await;
    // The fleet's VMs grow older than the grace period.
    tokio::time::sleep(grace + Duration::from_millis(100)).await;

    let dir = tempfile::tempdir().unwrap();
    let empty: Arc<dyn WorkerStore> = Arc::new(
        SqliteStore::open(dir.path().join("new.db").to_str().unwrap())
            .await
            .unwrap(),
    );
    // Two VMs carrying the new store's own id, made an hour ago.
    let new_id = store_id(&empty).await;
    let hour_ago = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    for i in 0..2 {
        let t = tags(&format!("w-own-{i}"), Some(&new_id));
        cloud.create_unmanaged_at(&format!("own-{i:03}"), t, hour_ago);
    }
    let stray = fleet(&cloud, empty, config(grace, Some(100)));
    for sweep in 0..3 {
        let r = stray.sweep_once().await.unwrap();
        assert_eq!(r.seen, 8, "sweep {sweep}: {r:?}");
        assert_eq!(r.foreign, 6, "sweep {sweep}: the fleet's VMs: {r:?}");
        assert_eq!(r.deleted, 0, "sweep {sweep}: {r:?}");
        assert_eq!(
            r.held_back, 2,
            "sweep {sweep}: its own, store too young: {r:?}"
        );
    }
    assert_eq!(
        cloud.calls(CallKind::Delete),
        0,
        "no delete call reached the cloud"
    );
    assert_eq!(cloud.instance_count(), 8);
    cancel.cancel();
    run.await.unwrap().unwrap();
}

/// VMs without a store tag (made before store ids) are unclaimed: counted,
/// never deleted. An adoption tags those whose worker is live in the store
/// (and only those); a later sweep then treats them as the store's: live
/// workers' VMs are kept, and one whose worker record is gone is an orphan
/// it deletes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclaimed_vms_are_never_deleted_until_adopted_for_a_live_worker() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let store = old_store();
    let demand = FixedDemand::new();
    let f = fleet_with(
        &cloud,
        store.clone(),
        config(Duration::ZERO, Some(100)),
        &demand,
    );
    let (cancel, run) = run_until_running(&f, &demand, 2).await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    let id = store_id(&store).await;
    // The fleet's VMs as an older version made them: no store tag.
    let vms = instances_of(&cloud, &id);
    assert_eq!(vms.len(), 2);
    for vm in &vms {
        let mut t = cloud.tags_of(vm).unwrap();
        t.remove(tag::STORE);
        cloud.create_unmanaged(vm, t);
    }
    // And one of a worker this store does not know.
    orphans(&cloud, "stranger", 1, None);

    for _ in 0..2 {
        let r = f.sweep_once().await.unwrap();
        assert_eq!((r.unclaimed, r.deleted, r.adopted), (3, 0, 0), "{r:?}");
    }
    let dry = f
        .sweep_with(SweepOptions {
            adopt: true,
            dry_run: true,
        })
        .await
        .unwrap();
    assert_eq!((dry.adopted, dry.unclaimed), (2, 1), "{dry:?}");
    assert!(
        instances_of(&cloud, &id).is_empty(),
        "a dry run tags nothing"
    );
    assert_eq!(cloud.calls(CallKind::Tag), 0);

    let r = f.adopt_unclaimed().await.unwrap();
    assert_eq!((r.adopted, r.unclaimed, r.deleted), (2, 1, 0), "{r:?}");
    let mut adopted = instances_of(&cloud, &id);
    adopted.sort();
    assert_eq!(adopted, vms, "the live workers' VMs carry the store's id");
    let stranger = cloud.tags_of("stranger-000").unwrap();
    assert!(!stranger.contains_key(tag::STORE), "{stranger:?}");

    let r = f.sweep_once().await.unwrap();
    let live = r
        .resources
        .iter()
        .filter(|x| x.verdict == Verdict::Live)
        .count();
    assert_eq!((live, r.unclaimed, r.deleted), (2, 1, 0), "{r:?}");

    // One adopted VM's worker record goes: it is now this store's orphan.
    let gone = store
        .list_workers(&WorkerFilter::pool("p"))
        .await
        .unwrap()
        .remove(0);
    store.delete_worker(gone.id()).await.unwrap();
    let r = f.sweep_once().await.unwrap();
    assert_eq!((r.deleted, r.unclaimed), (1, 1), "{r:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cloud.instance_count(), 2, "{:?}", cloud.instance_names());
    assert!(cloud.instance_names().contains(&"stranger-000".to_string()));
}

/// 25 old orphans on an old store with a cap of 4: each sweep deletes 4
/// (the oldest first), holds back the rest, and the set drains over sweeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_orphan_set_goes_at_most_cap_per_sweep() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let store = old_store();
    orphans(&cloud, "orphan", 25, Some(&store_id(&store).await));
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
    let store = old_store();
    orphans(&cloud, "orphan", 3, Some(&store_id(&store).await));
    let f = fleet(&cloud, store, config(Duration::ZERO, None));
    let r = f.sweep_once().await.unwrap();
    assert_eq!((r.deleted, r.held_back), (1, 2), "{r:?}");
}

/// A dry run reports what it would delete (within the cap) and deletes
/// nothing, whether set in the config or asked for one sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_deletes_nothing() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let store = old_store();
    orphans(&cloud, "orphan", 5, Some(&store_id(&store).await));
    let f = fleet(
        &cloud,
        store.clone(),
        FleetConfig {
            sweep_dry_run: true,
            ..config(Duration::ZERO, Some(3))
        },
    );
    let r = f.sweep_once().await.unwrap();
    assert_eq!((r.would_delete, r.held_back, r.deleted), (3, 2, 0), "{r:?}");
    let g = fleet(&cloud, store, config(Duration::ZERO, Some(3)));
    let opts = SweepOptions {
        dry_run: true,
        adopt: false,
    };
    let r = g.sweep_with(opts).await.unwrap();
    assert_eq!((r.would_delete, r.held_back, r.deleted), (3, 2, 0), "{r:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(cloud.calls(CallKind::Delete), 0);
    assert_eq!(cloud.instance_count(), 5);
}
