//! Offerings in the fleet runtime (testing provider, tokio's paused clock):
//! the fallback walk over tiers as a property test against a model,
//! interruptions seen by the provider, the agent or both (one replacement,
//! one count), and two replicas steering each other through the shared
//! offering cache.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use skyfleet_core::clock::{Clock, TokioClock};
use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig};
use skyfleet_core::offering::{CapacityClass, CapacityType, Offering};
use skyfleet_core::protocol::{
    Action, Activity, HeartbeatRequest, InterruptionNotice, RegisterRequest,
};
use skyfleet_core::store::{MemoryStore, SqliteStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{DesiredState, IdentityProof, Phase, PoolConfig, Worker};

const POOL: &str = "ci/spot";

/// Tier 0: spot in zone a; tier 1: spot in zone b; tier 2: on-demand in
/// zone a. The spot offerings share a quota scope; on-demand has its own.
fn pool() -> PoolConfig {
    serde_json::from_value(serde_json::json!({
        "pool_id": POOL, "provider_id": "testing", "max_capacity": 1000,
        "launch_configs": [
            {"id": "spot-a", "tier": 0, "launch": {"size": "m5", "region": "zone-a",
                "capacity_type": "spot", "quota_scope": "spot-vcpu"}},
            {"id": "spot-b", "tier": 1, "launch": {"size": "m5", "region": "zone-b",
                "capacity_type": "spot", "quota_scope": "spot-vcpu"}},
            {"id": "od-a", "tier": 2, "launch": {"size": "m5", "region": "zone-a",
                "capacity_type": "on_demand", "quota_scope": "standard-vcpu"}}
        ],
        "lifecycle": {"provisioning_deadline": 864000, "registration_timeout": 864000}
    }))
    .unwrap()
}

/// The launch configs' offerings, in order.
fn offerings() -> Vec<Offering> {
    let o = |zone: &str, ct, scope: &str| Offering {
        provider_id: "testing".into(),
        location: zone.into(),
        instance_type: "m5".into(),
        capacity_type: ct,
        quota_scope: Some(scope.into()),
    };
    vec![
        o("zone-a", CapacityType::Spot, "spot-vcpu"),
        o("zone-b", CapacityType::Spot, "spot-vcpu"),
        o("zone-a", CapacityType::OnDemand, "standard-vcpu"),
    ]
}

const CAPACITY_TTL: Duration = Duration::from_secs(180);
const QUOTA_TTL: Duration = Duration::from_secs(900);
const INTERRUPTION_TTL: Duration = Duration::from_secs(600);

fn config() -> FleetConfig {
    FleetConfig {
        manager_id: "m".into(),
        lease: Duration::from_secs(5),
        step_timeout: Duration::from_secs(2),
        offering_ttl_capacity: CAPACITY_TTL,
        offering_ttl_quota: QUOTA_TTL,
        offering_ttl_interruption: INTERRUPTION_TTL,
        ..FleetConfig::default()
    }
}

struct Setup {
    fleet: Fleet,
    provider: TestingProvider,
    cloud: TestingCloud,
    demand: FixedDemand,
    store: Arc<dyn WorkerStore>,
    clock: TokioClock,
}

fn setup_on(store: Arc<dyn WorkerStore>, owner: &str) -> Setup {
    let cloud = TestingCloud::new(TestingConfig {
        boot_time: Duration::from_secs(1),
        ..TestingConfig::default()
    });
    let provider = TestingProvider::new("testing", cloud.clone());
    let demand = FixedDemand::new();
    let clock = TokioClock::new();
    let fleet = Fleet::builder()
        .config(config())
        .owner(owner)
        .store(store.clone())
        .provider(Arc::new(provider.clone()))
        .pool(pool())
        .demand(Arc::new(demand.clone()))
        .clock(Arc::new(clock))
        .build()
        .unwrap();
    Setup {
        fleet,
        provider,
        cloud,
        demand,
        store,
        clock,
    }
}

impl Setup {
    async fn workers(&self) -> Vec<Worker> {
        self.store
            .list_workers(&WorkerFilter::pool(POOL))
            .await
            .unwrap()
    }

    async fn live(&self) -> Vec<Worker> {
        self.workers()
            .await
            .into_iter()
            .filter(|w| w.desired == DesiredState::Running && !w.phase.is_final())
            .collect()
    }

    /// Asks for one more worker than the pool has, runs one pass and
    /// steps the new worker up to its create call. The new worker, if one
    /// was created.
    async fn launch_one(&self) -> Option<Worker> {
        let before: Vec<String> = self
            .workers()
            .await
            .iter()
            .map(|w| w.id().to_string())
            .collect();
        self.demand
            .set_pending(POOL, self.live().await.len() as u64 + 1);
        self.fleet.provision_once().await.unwrap();
        let fresh: Vec<Worker> = self
            .workers()
            .await
            .into_iter()
            .filter(|w| !before.iter().any(|b| b == w.id()))
            .collect();
        assert!(fresh.len() <= 1, "one worker per launch: {fresh:?}");
        let w = fresh.into_iter().next()?;
        // Step it until its create call was answered (sent or failed).
        for _ in 0..5 {
            let cur = self.store.get_worker(w.id()).await.unwrap().unwrap();
            if cur.phase.is_final() || cur.provider_state["create_sent"] == true {
                return Some(cur);
            }
            self.fleet.scan_once().await.unwrap();
        }
        panic!("worker {} never reached its create call", w.id());
    }
}

/// One step of the walk.
#[derive(Debug, Clone)]
enum Op {
    /// Creates on offering `i` fail with a capacity (or quota) error.
    StockOut(usize, bool),
    /// Offering `i` has capacity again.
    Restock(usize),
    /// Time passes.
    Advance(u64),
    /// The pool wants one more worker.
    Launch,
    /// The newest live worker is interrupted (seen by the provider).
    Interrupt,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3usize, prop::bool::weighted(0.2)).prop_map(|(i, q)| Op::StockOut(i, q)),
        1 => (0..3usize).prop_map(Op::Restock),
        2 => (1..1000u64).prop_map(Op::Advance),
        5 => Just(Op::Launch),
        1 => Just(Op::Interrupt),
    ]
}

/// A mark of the model: the offerings it blocks (an index, or the quota
/// scope of one), until when.
#[derive(Debug, Clone)]
struct ModelMark {
    blocks: Vec<usize>,
    until: time::OffsetDateTime,
}

fn blocked(marks: &[ModelMark], i: usize, now: time::OffsetDateTime) -> bool {
    marks.iter().any(|m| m.until > now && m.blocks.contains(&i))
}

/// The walk against the model: every launch takes the lowest tier with an
/// unmarked offering (none when all are marked), and no create is sent to
/// an offering within the TTL of its mark.
async fn walk(ops: Vec<Op>) {
    let s = setup_on(Arc::new(MemoryStore::new()), "r1");
    let offs = offerings();
    let tiers = [0u32, 1, 2];
    let mut stocked_out: [Option<bool>; 3] = [None; 3];
    let mut marks: Vec<ModelMark> = Vec::new();
    for op in ops {
        match op {
            Op::StockOut(i, quota) => {
                let code = if quota {
                    "VcpuLimitExceeded"
                } else {
                    "InsufficientInstanceCapacity"
                };
                s.provider.stock_out(&offs[i].key(), code);
                stocked_out[i] = Some(quota);
            }
            Op::Restock(i) => {
                s.provider.restock(&offs[i].key());
                stocked_out[i] = None;
            }
            Op::Advance(secs) => tokio::time::advance(Duration::from_secs(secs)).await,
            Op::Interrupt => {
                let Some(w) = s.live().await.into_iter().max_by_key(|w| w.created_at) else {
                    continue;
                };
                let i = ["spot-a", "spot-b", "od-a"]
                    .iter()
                    .position(|lc| *lc == w.spec.launch_config_id)
                    .unwrap();
                let counted = |all: Vec<skyfleet_core::store::InterruptionCount>| {
                    all.iter()
                        .find(|c| c.offering.key() == offs[i].key())
                        .map_or(0, |c| c.count)
                };
                let before = counted(s.store.interruption_counts().await.unwrap());
                s.provider.interrupt(w.id());
                // Due again (running: a minute); then its step sees it.
                tokio::time::advance(Duration::from_secs(61)).await;
                let now = s.clock.now();
                s.fleet.scan_once().await.unwrap();
                let after = s.store.get_worker(w.id()).await.unwrap().unwrap();
                assert_eq!(after.removal_reason.as_deref(), Some("interruption"));
                let n = counted(s.store.interruption_counts().await.unwrap());
                assert_eq!(n, before + 1, "one interruption counted");
                marks.push(ModelMark {
                    blocks: vec![i],
                    until: now + INTERRUPTION_TTL,
                });
            }
            Op::Launch => {
                let now = s.clock.now();
                let expected = (0..3).find(|&i| !blocked(&marks, i, now));
                let attempts = s.provider.create_attempts().len();
                let w = s.launch_one().await;
                match (expected, &w) {
                    (None, None) => continue,
                    (None, Some(w)) => panic!(
                        "every offering is marked, yet {} was launched on {}",
                        w.id(),
                        w.spec.launch_config_id
                    ),
                    (Some(i), None) => panic!("offering {i} is available, nothing launched"),
                    (Some(i), Some(w)) => {
                        let lc = ["spot-a", "spot-b", "od-a"][i];
                        assert_eq!(
                            w.spec.launch_config_id, lc,
                            "tier {} expected (marks {marks:?})",
                            tiers[i]
                        );
                        assert_eq!(w.offering.as_ref(), Some(&offs[i]), "offering recorded");
                        let sent = s.provider.create_attempts();
                        assert_eq!(sent.len(), attempts + 1, "one create call");
                        assert!(
                            !blocked(&marks, i, now),
                            "a create went to a marked offering"
                        );
                        if let Some(quota) = stocked_out[i] {
                            assert_eq!(w.phase, Phase::Failed, "the stocked-out create fails");
                            // A quota mark covers the quota scope: both
                            // spot offerings share one.
                            let (blocks, ttl) = if quota {
                                (if i < 2 { vec![0, 1] } else { vec![i] }, QUOTA_TTL)
                            } else {
                                (vec![i], CAPACITY_TTL)
                            };
                            marks.push(ModelMark {
                                blocks,
                                until: now + ttl,
                            });
                            let live = s.store.live_offering_marks(now).await.unwrap();
                            let class = if quota {
                                CapacityClass::Quota
                            } else {
                                CapacityClass::Capacity
                            };
                            assert!(
                                live.iter()
                                    .any(|m| m.class == class && m.offering.key() == offs[i].key()),
                                "the offering is marked {class} in the store: {live:?}"
                            );
                        } else {
                            assert_ne!(w.phase, Phase::Failed);
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The fallback walk (spot -> other zone -> on-demand -> back to spot
    /// after the TTL) over random sequences of capacity and quota errors,
    /// interruptions and clock advances.
    #[test]
    fn the_provisioner_launches_from_the_lowest_tier_with_an_unmarked_offering(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(walk(ops));
    }
}

/// The walk spelled out: spot-a stocks out, spot-b is used, then a quota
/// error on spot-b marks both spot offerings (same quota scope): on-demand;
/// after the quota TTL, spot-a again.
#[tokio::test(start_paused = true)]
async fn spot_then_other_zone_then_on_demand_then_back_to_spot_after_the_ttl() {
    let s = setup_on(Arc::new(MemoryStore::new()), "r1");
    let offs = offerings();
    s.provider
        .stock_out(&offs[0].key(), "InsufficientInstanceCapacity");
    let w = s.launch_one().await.unwrap();
    assert_eq!(
        (w.spec.launch_config_id.as_str(), w.phase),
        ("spot-a", Phase::Failed)
    );
    s.provider.stock_out(&offs[1].key(), "VcpuLimitExceeded");
    let w = s.launch_one().await.unwrap();
    assert_eq!(
        (w.spec.launch_config_id.as_str(), w.phase),
        ("spot-b", Phase::Failed)
    );
    let w = s.launch_one().await.unwrap();
    assert_eq!(
        w.spec.launch_config_id, "od-a",
        "both spot offerings marked"
    );
    s.provider.restock(&offs[0].key());
    s.provider.restock(&offs[1].key());
    tokio::time::advance(CAPACITY_TTL + Duration::from_secs(1)).await;
    let w = s.launch_one().await.unwrap();
    assert_eq!(
        w.spec.launch_config_id, "od-a",
        "the quota mark lasts longer"
    );
    tokio::time::advance(QUOTA_TTL).await;
    let w = s.launch_one().await.unwrap();
    assert_eq!(
        w.spec.launch_config_id, "spot-a",
        "back to spot after the TTL"
    );
    let errors = s.store.list_pool_errors(POOL, 10).await.unwrap();
    assert!(errors.iter().all(|e| e.title != "no available offering"));
}

/// Every offering stocked out: the pass launches nothing and says why.
#[tokio::test(start_paused = true)]
async fn with_every_offering_marked_nothing_is_launched_and_a_pool_error_says_why() {
    let s = setup_on(Arc::new(MemoryStore::new()), "r1");
    for o in offerings() {
        s.provider
            .stock_out(&o.key(), "InsufficientInstanceCapacity");
    }
    for _ in 0..3 {
        assert_eq!(s.launch_one().await.unwrap().phase, Phase::Failed);
    }
    assert!(s.launch_one().await.is_none(), "every offering is marked");
    assert_eq!(s.provider.create_attempts().len(), 3);
    let errors = s.store.list_pool_errors(POOL, 10).await.unwrap();
    assert!(
        errors.iter().any(|e| e.title == "no available offering"),
        "{errors:?}"
    );
}

/// Runs `s`'s only worker until it runs, registered with the worker API
/// when `agent`; returns it and its secret.
async fn running_worker(
    s: &Setup,
    agent: bool,
) -> (Worker, Option<skyfleet_core::provider::support::Secret>) {
    let w = s.launch_one().await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..3 {
        s.fleet.scan_once().await.unwrap();
    }
    let w = s.store.get_worker(w.id()).await.unwrap().unwrap();
    assert_eq!(w.phase, Phase::Running);
    if !agent {
        return (w, None);
    }
    let secret = s
        .cloud
        .identity_of(&TestingProvider::instance_name(w.id()))
        .unwrap();
    let r = s
        .fleet
        .register(RegisterRequest {
            worker_pool_id: POOL.into(),
            worker_id: w.id().into(),
            proof: IdentityProof::StaticSecret { secret },
        })
        .await
        .unwrap();
    (w, Some(r.secret))
}

/// An interruption seen by the provider, the agent or both (the provider
/// first, then the agent twice): the worker is
/// removed for `interruption` once, its offering marked and counted once,
/// and exactly one replacement is requested, on another offering.
async fn interrupted_once(by_provider: bool, by_agent: bool) {
    let s = setup_on(Arc::new(MemoryStore::new()), "r1");
    let (w, secret) = running_worker(&s, by_agent).await;
    assert_eq!(w.spec.launch_config_id, "spot-a");
    if by_provider {
        s.provider.interrupt(w.id());
        tokio::time::advance(Duration::from_secs(61)).await;
        s.fleet.scan_once().await.unwrap();
        tokio::time::advance(Duration::from_secs(61)).await;
        s.fleet.scan_once().await.unwrap();
    }
    if by_agent {
        let notice = HeartbeatRequest {
            worker_id: w.id().into(),
            state: Activity::Busy,
            running: 1,
            capacity_used: 1,
            tasks_completed: 0,
            interruption: Some(InterruptionNotice {
                action: "terminate".into(),
                not_before: Some(s.clock.now() + Duration::from_secs(120)),
            }),
        };
        let secret = secret.clone().unwrap();
        let answer = s.fleet.heartbeat(&secret, notice.clone()).await.unwrap();
        assert_eq!(answer.action, Action::Drain, "drain at once");
        // Said again: nothing more is recorded.
        s.fleet.heartbeat(&secret, notice).await.unwrap();
    }
    let gone = s.store.get_worker(w.id()).await.unwrap().unwrap();
    assert_eq!(gone.desired, DesiredState::Removed);
    assert_eq!(gone.removal_reason.as_deref(), Some("interruption"));
    let counts = s.store.interruption_counts().await.unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(
        (counts[0].offering.key(), counts[0].count),
        (offerings()[0].key(), 1),
        "one interruption counted"
    );
    let marks = s.store.live_offering_marks(s.clock.now()).await.unwrap();
    assert!(marks.iter().any(
        |m| m.class == CapacityClass::Interruption && m.offering.key() == offerings()[0].key()
    ));
    // The replacement: one, on the next tier.
    s.demand.set_pending(POOL, 1);
    s.fleet.provision_once().await.unwrap();
    s.fleet.provision_once().await.unwrap();
    let replacements: Vec<Worker> = s
        .live()
        .await
        .into_iter()
        .filter(|x| x.id() != w.id())
        .collect();
    assert_eq!(replacements.len(), 1, "exactly one replacement");
    assert_eq!(replacements[0].spec.launch_config_id, "spot-b");
}

#[tokio::test(start_paused = true)]
async fn an_interruption_seen_only_by_the_provider_is_replaced_once() {
    interrupted_once(true, false).await;
}

#[tokio::test(start_paused = true)]
async fn an_interruption_seen_only_by_the_agent_is_replaced_once() {
    interrupted_once(false, true).await;
}

#[tokio::test(start_paused = true)]
async fn an_interruption_seen_by_both_is_replaced_once() {
    interrupted_once(true, true).await;
}

/// Two replicas on one store: a stockout seen by the first steers the
/// second's next launch away from the offering.
async fn a_mark_by_one_replica_steers_the_other(a: Arc<dyn WorkerStore>, b: Arc<dyn WorkerStore>) {
    let one = setup_on(a, "r1");
    let two = setup_on(b, "r2");
    one.provider
        .stock_out(&offerings()[0].key(), "InsufficientInstanceCapacity");
    let w = one.launch_one().await.unwrap();
    assert_eq!(
        (w.spec.launch_config_id.as_str(), w.phase),
        ("spot-a", Phase::Failed)
    );
    // The second replica takes the pool over: the first lets its lease go
    // (a zero-length renewal, as a stopping fleet does).
    let now = one.clock.now();
    one.store
        .acquire_pool_lease(POOL, "r1", now, Duration::ZERO)
        .await
        .unwrap();
    let w = two.launch_one().await.expect("the second replica launches");
    assert_eq!(
        w.spec.launch_config_id, "spot-b",
        "steered by the first's mark"
    );
    assert!(
        two.provider
            .create_attempts()
            .iter()
            .all(|k| *k != offerings()[0].key()),
        "the second never tried the marked offering"
    );
}

/// On one SQLite file (real time: the store's pool has timeouts of its own).
#[tokio::test]
async fn two_replicas_on_one_sqlite_file_share_marks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("marks.db");
    let path = path.to_str().unwrap();
    let a: Arc<dyn WorkerStore> = Arc::new(SqliteStore::open(path).await.unwrap());
    let b: Arc<dyn WorkerStore> = Arc::new(SqliteStore::open(path).await.unwrap());
    a_mark_by_one_replica_steers_the_other(a, b).await;
}

/// The same on PostgreSQL; skipped (said on stderr) without
/// SKYFLEET_TEST_POSTGRES_URL.
#[tokio::test]
async fn two_replicas_on_postgres_share_marks() {
    #[cfg(not(feature = "postgres"))]
    eprintln!("skipped: replicas on PostgreSQL need the `postgres` feature");
    #[cfg(feature = "postgres")]
    {
        let Ok(url) = std::env::var("SKYFLEET_TEST_POSTGRES_URL") else {
            eprintln!("skipped: replicas on PostgreSQL (set SKYFLEET_TEST_POSTGRES_URL)");
            return;
        };
        let schema = format!("sf_offer_{}", uuid::Uuid::new_v4().simple());
        let open = || skyfleet_core::store::PostgresStore::connect_in_schema(&url, Some(&schema));
        let a: Arc<dyn WorkerStore> = Arc::new(open().await.unwrap());
        let b: Arc<dyn WorkerStore> = Arc::new(open().await.unwrap());
        a_mark_by_one_replica_steers_the_other(a, b).await;
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}

/// A capacity error wakes the pool's provisioner: with an hour between
/// passes, the replacement on the next tier is requested at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_error_requests_the_replacement_at_once_not_at_the_next_pass() {
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let cloud = TestingCloud::new(TestingConfig::default());
    let provider = TestingProvider::new("testing", cloud);
    provider.stock_out(&offerings()[0].key(), "InsufficientInstanceCapacity");
    let demand = FixedDemand::new();
    demand.set_pending(POOL, 1);
    let fleet = Fleet::builder()
        .config(FleetConfig {
            provision_interval: Duration::from_secs(3600),
            scan_interval: Duration::from_millis(10),
            ..config()
        })
        .store(store.clone())
        .provider(Arc::new(provider.clone()))
        .pool(pool())
        .demand(Arc::new(demand))
        .build()
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let (f, c) = (fleet.clone(), cancel.clone());
        async move { f.run(c).await }
    });
    let start = std::time::Instant::now();
    let replaced = loop {
        let ws = store.list_workers(&WorkerFilter::pool(POOL)).await.unwrap();
        if let Some(w) = ws.iter().find(|w| w.spec.launch_config_id == "spot-b") {
            break w.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no replacement within 10 s: {ws:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failed = store
        .list_workers(&WorkerFilter::pool(POOL).with_phases(&[Phase::Failed]))
        .await
        .unwrap();
    assert_eq!(failed.len(), 1, "one worker failed on spot-a");
    assert_eq!(failed[0].spec.launch_config_id, "spot-a");
    assert_eq!(replaced.desired, DesiredState::Running);
    cancel.cancel();
    run.await.unwrap().unwrap();
}
