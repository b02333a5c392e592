//! The fleet runtime on the testing provider: provisioning and teardown,
//! isolation of a hung provider, the orphan sweeper, and replicas sharing
//! one database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig};
use skyfleet_core::model::tag;
use skyfleet_core::store::{MemoryStore, SqliteStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{CallKind, TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{Phase, PoolConfig};
use tokio_util::sync::CancellationToken;

fn pool(id: &str, provider: &str, max: u32, deadline_s: u64) -> PoolConfig {
    serde_json::from_value(serde_json::json!({
        "pool_id": id,
        "provider_id": provider,
        "max_capacity": max,
        "launch_configs": [
            {"id": "small", "weight": 1.0, "launch": {"size": "small"}},
            {"id": "large", "weight": 3.0, "launch": {"size": "large"}}
        ],
        "lifecycle": {"provisioning_deadline": deadline_s}
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
        // A killed replica's pool lease frees up quickly.
        pool_lease: Duration::from_secs(2),
        error_backoff_min: Duration::from_millis(20),
        error_backoff_max: Duration::from_millis(200),
        sweep_interval: Duration::from_secs(3600),
        ..FleetConfig::default()
    }
}

async fn wait_for<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(store: &Arc<dyn WorkerStore>, pool: &str, phases: &[Phase]) -> usize {
    store
        .list_workers(&WorkerFilter::pool(pool).with_phases(phases))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisions_to_demand_then_tears_down() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let demand = FixedDemand::new();
    let fleet = Fleet::builder()
        .config(fast())
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("ci/linux", "testing", 40, 60))
        .demand(Arc::new(demand.clone()))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    demand.set_pending("ci/linux", 25);
    wait_for("25 running", Duration::from_secs(20), || async {
        count(&store, "ci/linux", &[Phase::Running]).await == 25
    })
    .await;
    assert_eq!(cloud.instance_count(), 25);
    assert_eq!(cloud.creates_accepted(), 25, "no duplicate creates");
    // Both launch configs were used (weights 1:3).
    let all = store
        .list_workers(&WorkerFilter::pool("ci/linux"))
        .await
        .unwrap();
    assert!(all.iter().any(|w| w.spec.launch_config_id == "large"));
    demand.set_pending("ci/linux", 0);
    wait_for("all stopped", Duration::from_secs(20), || async {
        count(&store, "ci/linux", &[Phase::Stopped]).await == 25
    })
    .await;
    assert_eq!(cloud.instance_count(), 0, "nothing leaked");
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_does_not_delay_another() {
    // Baseline: the healthy provider alone.
    async fn time_to_running(hang_other: bool) -> (Duration, Arc<dyn WorkerStore>, TestingCloud) {
        let good = TestingCloud::new(TestingConfig::default());
        let bad = TestingCloud::new(TestingConfig::default());
        if hang_other {
            bad.set_hang(CallKind::Create, true);
            bad.set_hang(CallKind::Get, true);
        }
        let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
        let demand = FixedDemand::new();
        let fleet = Fleet::builder()
            .config(fast())
            .store(store.clone())
            .provider(Arc::new(TestingProvider::new("good", good)))
            .provider(Arc::new(TestingProvider::new("bad", bad.clone())))
            .pool(pool("good-pool", "good", 20, 60))
            .pool(pool("bad-pool", "bad", 20, 2))
            .demand(Arc::new(demand.clone()))
            .build()
            .unwrap();
        demand.set_pending("good-pool", 20);
        demand.set_pending("bad-pool", 20);
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let (f, c) = (fleet.clone(), cancel.clone());
            async move { f.run(c).await }
        });
        let start = Instant::now();
        wait_for("good pool running", Duration::from_secs(20), || async {
            count(&store, "good-pool", &[Phase::Running]).await == 20
        })
        .await;
        let took = start.elapsed();
        if hang_other {
            bad.set_hang(CallKind::Get, false);
            // The hung pool's workers are removed at their 2 s deadline (and
            // replaced while demand stays: drop it, then nothing is left).
            wait_for(
                "bad pool failed at deadline",
                Duration::from_secs(30),
                || async {
                    count(&store, "bad-pool", &[Phase::Failed, Phase::Stopped]).await >= 20
                },
            )
            .await;
            demand.set_pending("bad-pool", 0);
            wait_for("bad pool torn down", Duration::from_secs(30), || async {
                count(
                    &store,
                    "bad-pool",
                    &[Phase::Requested, Phase::Running, Phase::Stopping],
                )
                .await
                    == 0
            })
            .await;
            let at_deadline = store
                .list_workers(&WorkerFilter::pool("bad-pool"))
                .await
                .unwrap()
                .into_iter()
                .filter(|w| w.removal_reason.as_deref() == Some("provisioning deadline exceeded"))
                .count();
            assert!(
                at_deadline >= 20,
                "removed at their deadline: {at_deadline}"
            );
            assert_eq!(bad.instance_count(), 0, "hung pool leaked nothing");
            let errors = store.list_pool_errors("bad-pool", 100).await.unwrap();
            assert!(
                errors.iter().any(|e| e.kind == "timeout"),
                "the deadline was reported: {errors:?}"
            );
        }
        cancel.cancel();
        run.await.unwrap().unwrap();
        (took, store, bad)
    }
    let (baseline, _, _) = time_to_running(false).await;
    let (with_hang, _, _) = time_to_running(true).await;
    // Generous bound for a shared CI machine: the benchmark measures the ratio.
    assert!(
        with_hang < baseline * 3 + Duration::from_millis(500),
        "hung provider slowed the healthy one: {baseline:?} -> {with_hang:?}"
    );
}

fn regional_pool(id: &str, provider: &str, region: &str, max: u32, deadline_s: u64) -> PoolConfig {
    serde_json::from_value(serde_json::json!({
        "pool_id": id,
        "provider_id": provider,
        "max_capacity": max,
        "launch_configs": [{"id": region, "launch": {"size": "small", "region": region}}],
        "lifecycle": {"provisioning_deadline": deadline_s}
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_region_does_not_delay_another_region_of_the_same_provider() {
    // One provider, two regions. Each region has its own scanner task with
    // its own in-flight bound; with one scanner per provider, 30 hung west
    // steps would fill the (deliberately small) bound of 2 and east would
    // wait for them to time out, 2 at a time.
    async fn east_time_to_running(hang_west: bool) -> Duration {
        let cloud = TestingCloud::new(TestingConfig::default());
        if hang_west {
            cloud.set_hang_region("west", true);
        }
        let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
        let demand = FixedDemand::new();
        let fleet = Fleet::builder()
            .config(FleetConfig {
                max_inflight_chunks: 2,
                partition_interval: Duration::from_millis(100),
                ..fast()
            })
            .store(store.clone())
            .provider(Arc::new(TestingProvider::new("cloud", cloud.clone())))
            .pool(regional_pool("east-pool", "cloud", "east", 20, 60))
            .pool(regional_pool("west-pool", "cloud", "west", 30, 3))
            .demand(Arc::new(demand.clone()))
            .build()
            .unwrap();
        demand.set_pending("west-pool", 30);
        demand.set_pending("east-pool", 20);
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let (f, c) = (fleet.clone(), cancel.clone());
            async move { f.run(c).await }
        });
        let start = Instant::now();
        wait_for("east running", Duration::from_secs(30), || async {
            count(&store, "east-pool", &[Phase::Running]).await == 20
        })
        .await;
        let took = start.elapsed();
        let parts = store.partitions("cloud").await.unwrap();
        assert_eq!(
            parts,
            vec![Some("east".to_string()), Some("west".to_string())],
            "workers carry their region as partition"
        );
        if hang_west {
            demand.set_pending("west-pool", 0);
            cloud.set_hang_region("west", false);
            wait_for("west torn down", Duration::from_secs(30), || async {
                count(
                    &store,
                    "west-pool",
                    &[Phase::Requested, Phase::Running, Phase::Stopping],
                )
                .await
                    == 0
            })
            .await;
            // Only east's 20 instances are left: west leaked nothing.
            assert_eq!(cloud.instance_count(), 20, "west leaked nothing");
        }
        cancel.cancel();
        run.await.unwrap().unwrap();
        took
    }
    let baseline = east_time_to_running(false).await;
    let with_hang = east_time_to_running(true).await;
    // Without per-region scanners this is about (30 / 2) x 0.5 s = 7.5 s.
    assert!(
        with_hang < baseline * 3 + Duration::from_millis(1500),
        "a hung region slowed another: {baseline:?} -> {with_hang:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_sweeper_removes_only_tagged_orphans() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let fleet = Fleet::builder()
        .config(FleetConfig {
            sweep_grace: Duration::ZERO,
            ..fast()
        })
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("p", "testing", 5, 60))
        .demand(Arc::new(FixedDemand::new()))
        .build()
        .unwrap();
    let ours: BTreeMap<String, String> = [
        (tag::MANAGER.to_string(), "test-mgr".to_string()),
        (tag::PROVIDER.to_string(), "testing".to_string()),
        (tag::WORKER.to_string(), "w-gone".to_string()),
        (
            tag::STORE.to_string(),
            store.store_identity().await.unwrap().id,
        ),
    ]
    .into();
    let other_manager: BTreeMap<String, String> = [
        (tag::MANAGER.to_string(), "someone-else".to_string()),
        (tag::PROVIDER.to_string(), "testing".to_string()),
    ]
    .into();
    cloud.create_unmanaged("orphan-vm", ours);
    cloud.create_unmanaged("foreign-vm", other_manager);
    cloud.create_unmanaged("untagged-vm", BTreeMap::new());
    let r = fleet.sweep_once().await.unwrap();
    assert_eq!(r.deleted, 1);
    tokio::time::sleep(Duration::from_millis(50)).await; // delete completes
    assert_eq!(cloud.instance_names(), vec!["foreign-vm", "untagged-vm"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pools_are_refused_before_anything_starts() {
    let cloud = TestingCloud::new(TestingConfig::default());
    let mut bad = pool("p", "testing", 5, 60);
    bad.launch_configs[1].launch = serde_json::json!({"size": 3});
    let e = Fleet::builder()
        .store(Arc::new(MemoryStore::new()))
        .provider(Arc::new(TestingProvider::new("testing", cloud)))
        .pool(bad)
        .demand(Arc::new(FixedDemand::new()))
        .build()
        .unwrap_err();
    assert!(
        matches!(e.kind(), skyfleet_core::ErrorKind::InvalidConfig { field } if field == "pools[0].launch_configs[1].launch.size"),
        "{e:?}"
    );
}

/// Three replicas on one PostgreSQL database, 300 workers; one replica is
/// killed mid-way without releasing its leases. Every worker is created
/// exactly once and torn down. Says it was skipped (and passes) where no
/// PostgreSQL is configured; it never falls back to SQLite silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_the_work_and_survive_a_dead_replica() {
    #[cfg(not(feature = "postgres"))]
    eprintln!("skipped: replicas on PostgreSQL need the `postgres` feature");
    #[cfg(feature = "postgres")]
    {
        let Ok(url) = std::env::var("SKYFLEET_TEST_POSTGRES_URL") else {
            eprintln!("skipped: replicas on PostgreSQL (set SKYFLEET_TEST_POSTGRES_URL)");
            return;
        };
        let schema = format!("sf_fleet_{}", uuid::Uuid::new_v4().simple());
        let mut stores: Vec<Arc<dyn WorkerStore>> = Vec::new();
        for _ in 0..3 {
            stores.push(Arc::new(
                skyfleet_core::store::PostgresStore::connect_in_schema(&url, Some(&schema))
                    .await
                    .unwrap(),
            ));
        }
        replicas_share_the_work_and_survive_a_dead_replica(stores).await;
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

/// The same on one SQLite file opened three times (one process's
/// replicas sharing a file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_sqlite_file_share_the_work_and_survive_a_dead_replica() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replicas.db");
    let mut stores: Vec<Arc<dyn WorkerStore>> = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(
            SqliteStore::open(path.to_str().unwrap()).await.unwrap(),
        ));
    }
    replicas_share_the_work_and_survive_a_dead_replica(stores).await;
}

async fn replicas_share_the_work_and_survive_a_dead_replica(stores: Vec<Arc<dyn WorkerStore>>) {
    let cloud = TestingCloud::new(TestingConfig {
        boot_time: Duration::from_millis(200),
        call_latency: Duration::from_millis(2),
        ..TestingConfig::default()
    });
    let demand = FixedDemand::new();
    let mut replicas = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let fleet = Fleet::builder()
            .config(fast())
            .owner(format!("replica-{i}"))
            .store(store.clone())
            .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
            .pool(pool("shared", "testing", 300, 120))
            .demand(Arc::new(demand.clone()))
            .build()
            .unwrap();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn({
            let c = cancel.clone();
            async move { fleet.run(c).await }
        });
        replicas.push((cancel, handle));
    }
    demand.set_pending("shared", 300);
    let store = stores[0].clone();
    wait_for("some running", Duration::from_secs(60), || async {
        count(&store, "shared", &[Phase::Running]).await >= 100
    })
    .await;
    // Kill replica 0: abort without releasing its leases.
    replicas[0].1.abort();
    wait_for("300 running", Duration::from_secs(90), || async {
        count(&store, "shared", &[Phase::Running]).await == 300
    })
    .await;
    assert_eq!(
        cloud.creates_accepted(),
        300,
        "every worker created exactly once"
    );
    assert_eq!(cloud.instance_count(), 300);
    demand.set_pending("shared", 0);
    wait_for("all torn down", Duration::from_secs(90), || async {
        count(&store, "shared", &[Phase::Stopped]).await == 300
    })
    .await;
    assert_eq!(cloud.instance_count(), 0, "nothing leaked");
    for (cancel, handle) in replicas.into_iter().skip(1) {
        cancel.cancel();
        handle.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_delay_of_centuries_or_a_day_waits_at_most_error_backoff_max() {
    use skyfleet_core::{Error, ErrorKind};
    let cloud = TestingCloud::new(TestingConfig::default());
    // Today's `now + 31,000 years` overflowed the date; a day parked the
    // worker a day. Both are held to error_backoff_max (200 ms here).
    for secs in [999_999_999_999, 86_400] {
        cloud.inject(
            CallKind::Create,
            Error::new(
                ErrorKind::Throttled {
                    retry_after: Some(Duration::from_secs(secs)),
                },
                "slow down",
            ),
        );
    }
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let demand = FixedDemand::new();
    let fleet = Fleet::builder()
        .config(fast())
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("p", "testing", 1, 60))
        .demand(Arc::new(demand.clone()))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    demand.set_pending("p", 1);
    wait_for(
        "running after two throttles",
        Duration::from_secs(5),
        || async { count(&store, "p", &[Phase::Running]).await == 1 },
    )
    .await;
    assert!(
        cloud.calls(CallKind::Create) >= 3,
        "both throttles were seen"
    );
    cancel.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_error_message_is_stored_cut_to_one_kib() {
    use skyfleet_core::failure::MAX_STORED_MESSAGE;
    use skyfleet_core::{Error, ErrorKind};
    let cloud = TestingCloud::new(TestingConfig::default());
    cloud.inject(
        CallKind::Create,
        Error::new(ErrorKind::Internal, "é".repeat(512 * 1024)),
    );
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let demand = FixedDemand::new();
    let fleet = Fleet::builder()
        .config(fast())
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool("p", "testing", 1, 60))
        .demand(Arc::new(demand.clone()))
        .build()
        .unwrap();
    let cancel = CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    demand.set_pending("p", 1);
    wait_for("the pool error", Duration::from_secs(5), || async {
        !store.list_pool_errors("p", 10).await.unwrap().is_empty()
    })
    .await;
    cancel.cancel();
    run.await.unwrap().unwrap();
    for e in store.list_pool_errors("p", 10).await.unwrap() {
        assert!(e.message.len() <= MAX_STORED_MESSAGE, "{}", e.message.len());
    }
    for w in store.list_workers(&WorkerFilter::pool("p")).await.unwrap() {
        if let Some(f) = &w.last_error {
            assert!(f.message.len() <= MAX_STORED_MESSAGE, "{}", f.message.len());
        }
    }
}
