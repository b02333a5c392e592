//! The worker API on the fleet runtime (testing provider, memory store,
//! tokio's paused clock): registration once with a proof, heartbeats, drains
//! that wait for the worker, timeouts, and a property test that scale-in
//! never removes a worker that last reported busy.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use skyfleet_core::clock::TokioClock;
use skyfleet_core::fleet::lifecycle::RemovalReason;
use skyfleet_core::fleet::{FixedDemand, Fleet, FleetConfig};
use skyfleet_core::protocol::{Action, Activity, HeartbeatRequest, RegisterRequest};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::store::{MemoryStore, WorkerFilter, WorkerStore};
use skyfleet_core::testing::{CallKind, TestingCloud, TestingConfig, TestingProvider};
use skyfleet_core::{DesiredState, ErrorKind, IdentityProof, Phase, PoolConfig, Worker};

const POOL: &str = "ci/linux";

struct Setup {
    fleet: Fleet,
    cloud: TestingCloud,
    demand: FixedDemand,
    store: Arc<dyn WorkerStore>,
}

fn pool(lifecycle: serde_json::Value, min_idle: u32) -> PoolConfig {
    serde_json::from_value(serde_json::json!({
        "pool_id": POOL, "provider_id": "testing", "max_capacity": 20, "min_idle": min_idle,
        "launch_configs": [{"id": "small", "launch": {"size": "small", "workerConfig": {"x": 1}}}],
        "lifecycle": lifecycle,
    }))
    .unwrap()
}

fn setup_on(
    store: Arc<dyn WorkerStore>,
    cloud: TestingCloud,
    pool: PoolConfig,
    owner: &str,
) -> Fleet {
    Fleet::builder()
        .config(FleetConfig {
            manager_id: "m".into(),
            lease: Duration::from_secs(5),
            step_timeout: Duration::from_secs(2),
            ..FleetConfig::default()
        })
        .owner(owner)
        .store(store)
        .provider(Arc::new(TestingProvider::new("testing", cloud)))
        .pool(pool)
        .demand(Arc::new(FixedDemand::new()))
        .clock(Arc::new(TokioClock::new()))
        .build()
        .unwrap()
}

fn setup(lifecycle: serde_json::Value, min_idle: u32) -> Setup {
    let cloud = TestingCloud::new(TestingConfig {
        boot_time: Duration::from_secs(1),
        ..TestingConfig::default()
    });
    let store: Arc<dyn WorkerStore> = Arc::new(MemoryStore::new());
    let demand = FixedDemand::new();
    let fleet = Fleet::builder()
        .config(FleetConfig {
            manager_id: "m".into(),
            lease: Duration::from_secs(5),
            step_timeout: Duration::from_secs(2),
            ..FleetConfig::default()
        })
        .owner("r1")
        .store(store.clone())
        .provider(Arc::new(TestingProvider::new("testing", cloud.clone())))
        .pool(pool(lifecycle, min_idle))
        .demand(Arc::new(demand.clone()))
        .clock(Arc::new(TokioClock::new()))
        .build()
        .unwrap();
    Setup {
        fleet,
        cloud,
        demand,
        store,
    }
}

impl Setup {
    /// Provisions `n` workers and steps them until running.
    async fn running(&self, n: u64) -> Vec<Worker> {
        self.demand.set_pending(POOL, n);
        self.fleet.provision_once().await.unwrap();
        self.demand.set_pending(POOL, 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        for _ in 0..5 {
            self.fleet.scan_once().await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let ws = self.workers().await;
        assert!(ws.iter().all(|w| w.phase == Phase::Running), "{ws:?}");
        ws
    }

    async fn workers(&self) -> Vec<Worker> {
        self.store
            .list_workers(&WorkerFilter::pool(POOL))
            .await
            .unwrap()
    }

    async fn worker(&self, id: &str) -> Worker {
        self.store.get_worker(id).await.unwrap().unwrap()
    }

    fn proof(&self, id: &str) -> IdentityProof {
        let secret = self
            .cloud
            .identity_of(&TestingProvider::instance_name(id))
            .expect("the instance exists");
        IdentityProof::StaticSecret { secret }
    }

    async fn register(&self, id: &str) -> Secret {
        let r = self
            .fleet
            .register(RegisterRequest {
                worker_pool_id: POOL.into(),
                worker_id: id.into(),
                proof: self.proof(id),
            })
            .await
            .unwrap();
        r.secret
    }
}

impl Setup {
    /// Provisions one worker and has its create call sent; once its VM
    /// booted, no scan runs: the worker is still requested in the store
    /// while its VM is up (it booted faster than the runtime looked).
    async fn requested_with_vm_up(&self) -> Worker {
        self.demand.set_pending(POOL, 1);
        self.fleet.provision_once().await.unwrap();
        self.demand.set_pending(POOL, 0);
        let mut ws = self.workers().await;
        assert_eq!(ws.len(), 1);
        let id = ws.remove(0).id().to_string();
        while self.worker(&id).await.provider_state["create_sent"] != true {
            assert!(self.fleet.scan_once().await.unwrap() > 0, "nothing to step");
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        let w = self.worker(&id).await;
        assert_eq!(w.phase, Phase::Requested);
        assert!(w.lease_owner.is_none(), "{w:?}");
        assert!(self
            .cloud
            .identity_of(&TestingProvider::instance_name(&id))
            .is_some());
        w
    }
}

fn beat(id: &str, state: Activity, tasks: u64) -> HeartbeatRequest {
    let busy = u32::from(state == Activity::Busy);
    HeartbeatRequest {
        worker_id: id.into(),
        state,
        running: busy,
        capacity_used: busy,
        tasks_completed: tasks,
        interruption: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_registers_once_with_its_proof_and_every_refusal_looks_the_same() {
    let s = setup(serde_json::json!({}), 0);
    let ws = s.running(2).await;
    let (a, b) = (ws[0].id().to_string(), ws[1].id().to_string());
    let req = |worker: &str, proof: IdentityProof| RegisterRequest {
        worker_pool_id: POOL.into(),
        worker_id: worker.into(),
        proof,
    };
    // Another worker's proof, a forged one, an unknown worker, a wrong pool.
    let refusals = [
        s.fleet.register(req(&a, s.proof(&b))).await.unwrap_err(),
        s.fleet
            .register(req(
                &a,
                IdentityProof::StaticSecret {
                    secret: "forged".into(),
                },
            ))
            .await
            .unwrap_err(),
        s.fleet
            .register(req("w-nobody", s.proof(&a)))
            .await
            .unwrap_err(),
        s.fleet
            .register(RegisterRequest {
                worker_pool_id: "other/pool".into(),
                ..req(&a, s.proof(&a))
            })
            .await
            .unwrap_err(),
    ];
    let ok = s.fleet.register(req(&a, s.proof(&a))).await.unwrap();
    assert_eq!(ok.worker_config, serde_json::json!({"x": 1}));
    assert_eq!(ok.secret.expose().len(), 64);
    assert!(!format!("{ok:?}").contains(ok.secret.expose()));
    assert_eq!(
        ok.heartbeat_interval_secs, 75,
        "a quarter of the 300 s default"
    );
    // A replayed proof: registration happens once.
    let replay = s.fleet.register(req(&a, s.proof(&a))).await.unwrap_err();
    for e in refusals.iter().chain([&replay]) {
        assert!(
            matches!(e.kind(), ErrorKind::IdentityRejected { .. }),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            replay.to_string(),
            "refusals must not say which check failed"
        );
    }
    let reg = s.store.get_registration(&a).await.unwrap().unwrap();
    let stored = serde_json::to_string(&reg).unwrap();
    assert!(
        !stored.contains(ok.secret.expose()),
        "the store keeps a digest only"
    );
    assert!(s.worker(&a).await.registered_at.is_some());

    // Heartbeats need the secret.
    let bad = s
        .fleet
        .heartbeat(&Secret::new("0".repeat(64)), beat(&a, Activity::Idle, 0))
        .await
        .unwrap_err();
    assert_eq!(bad.to_string(), replay.to_string());
    let hb = s
        .fleet
        .heartbeat(&ok.secret, beat(&a, Activity::Busy, 1))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Continue);

    // Reregistration rotates the secret; the old one stops working.
    let renewed = s.fleet.reregister(&a, &ok.secret).await.unwrap();
    assert_ne!(renewed.secret.expose(), ok.secret.expose());
    assert!(s
        .fleet
        .heartbeat(&ok.secret, beat(&a, Activity::Idle, 1))
        .await
        .is_err());
    let hb = s
        .fleet
        .heartbeat(&renewed.secret, beat(&a, Activity::Idle, 1))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Continue);
}

#[tokio::test(start_paused = true)]
async fn scale_in_drains_idle_workers_and_waits_for_them_and_leaves_busy_ones_alone() {
    let s = setup(serde_json::json!({}), 0);
    let ws = s.running(3).await;
    let ids: Vec<String> = ws.iter().map(|w| w.id().to_string()).collect();
    let mut secrets = Vec::new();
    for id in &ids {
        secrets.push(s.register(id).await);
    }
    // One busy, two idle; demand is zero: the pool has a surplus of 2.
    s.fleet
        .heartbeat(&secrets[0], beat(&ids[0], Activity::Busy, 0))
        .await
        .unwrap();
    for i in 1..3 {
        s.fleet
            .heartbeat(&secrets[i], beat(&ids[i], Activity::Idle, 0))
            .await
            .unwrap();
    }
    let report = &s.fleet.provision_once().await.unwrap()[0].1;
    assert_eq!((report.removed, report.drained), (0, 2), "{report:?}");
    // Nobody is removed yet: drains wait for the worker.
    assert!(s
        .workers()
        .await
        .iter()
        .all(|w| w.desired == DesiredState::Running));
    let hb = s
        .fleet
        .heartbeat(&secrets[0], beat(&ids[0], Activity::Busy, 0))
        .await
        .unwrap();
    assert_eq!(
        hb.action,
        Action::Continue,
        "the busy worker is not drained"
    );
    // Worker 1 picked up a job before it heard of the drain: still not removed.
    let hb = s
        .fleet
        .heartbeat(&secrets[1], beat(&ids[1], Activity::Busy, 0))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Drain);
    s.fleet.provision_once().await.unwrap();
    assert_eq!(s.worker(&ids[1]).await.desired, DesiredState::Running);
    // Worker 2 confirms: removed now, with the reason.
    let hb = s
        .fleet
        .heartbeat(&secrets[2], beat(&ids[2], Activity::Draining, 0))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Drain);
    let done = s.fleet.drained(&ids[2], &secrets[2]).await.unwrap();
    assert_eq!(done.action, Action::Terminate);
    let w2 = s.worker(&ids[2]).await;
    assert_eq!(w2.desired, DesiredState::Removed);
    assert_eq!(
        w2.removal_reason.as_deref(),
        Some(RemovalReason::Drained.as_str())
    );
    let hb = s
        .fleet
        .heartbeat(&secrets[2], beat(&ids[2], Activity::Idle, 0))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Terminate);
    // A worker never asked to drain cannot claim it drained.
    let e = s.fleet.drained(&ids[0], &secrets[0]).await.unwrap_err();
    assert_eq!(e.kind(), &ErrorKind::Conflict);
    // The busy one is still there.
    assert_eq!(s.worker(&ids[0]).await.desired, DesiredState::Running);
}

#[tokio::test(start_paused = true)]
async fn silent_workers_stuck_drains_and_task_limits_end_as_configured() {
    let s = setup(
        serde_json::json!({"heartbeat_timeout": 40, "drain_timeout": 100, "max_tasks": 3}),
        0,
    );
    let ws = s.running(3).await;
    let ids: Vec<String> = ws.iter().map(|w| w.id().to_string()).collect();
    let mut secrets = Vec::new();
    for id in &ids {
        secrets.push(s.register(id).await);
    }
    s.demand.set_pending(POOL, 3);
    // Worker 0 reaches max_tasks: drained on that heartbeat.
    let hb = s
        .fleet
        .heartbeat(&secrets[0], beat(&ids[0], Activity::Busy, 3))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Drain);
    // Workers 0 and 1 keep heartbeating busy; worker 2 goes silent.
    for _ in 0..6 {
        tokio::time::advance(Duration::from_secs(20)).await;
        for (i, tasks) in [(0, 3), (1, 0)] {
            s.fleet
                .heartbeat(&secrets[i], beat(&ids[i], Activity::Busy, tasks))
                .await
                .unwrap();
        }
        s.fleet.provision_once().await.unwrap();
    }
    let w2 = s.worker(&ids[2]).await;
    assert_eq!(
        w2.removal_reason.as_deref(),
        Some(RemovalReason::HeartbeatTimeout.as_str())
    );
    // Worker 0 stayed busy past its drain deadline (100 s): removed.
    let w0 = s.worker(&ids[0]).await;
    assert_eq!(
        w0.removal_reason.as_deref(),
        Some(RemovalReason::DrainTimeout.as_str())
    );
    // Worker 1, busy and never asked to drain, is untouched.
    assert_eq!(s.worker(&ids[1]).await.desired, DesiredState::Running);
}

#[tokio::test(start_paused = true)]
async fn idle_workers_past_idle_timeout_drain_down_to_min_idle() {
    let s = setup(serde_json::json!({"idle_timeout": 60}), 2);
    // Three tasks pending and min_idle 2: five workers.
    let ws = s.running(3).await;
    assert_eq!(ws.len(), 5);
    let ids: Vec<String> = ws.iter().map(|w| w.id().to_string()).collect();
    let mut secrets = Vec::new();
    for id in &ids {
        secrets.push(s.register(id).await);
    }
    // The queue keeps saying three tasks wait, but the workers stay idle
    // (the tasks are not for them): past idle_timeout, all but min_idle
    // drain, longest idle first.
    s.demand.set_pending(POOL, 3);
    for round in 0..5 {
        tokio::time::advance(Duration::from_secs(20)).await;
        for i in 0..5 {
            let hb = s
                .fleet
                .heartbeat(&secrets[i], beat(&ids[i], Activity::Idle, 0))
                .await
                .unwrap();
            if round < 2 {
                assert_eq!(hb.action, Action::Continue, "not idle long enough yet");
            }
        }
        s.fleet.provision_once().await.unwrap();
    }
    let regs = s.store.list_registrations(POOL).await.unwrap();
    let draining: Vec<_> = regs.iter().filter_map(|r| r.drain.as_ref()).collect();
    assert_eq!(
        draining.len(),
        3,
        "five idle workers, min_idle 2: three drain"
    );
    assert!(draining
        .iter()
        .all(|d| d.reason == skyfleet_core::model::DrainReason::IdleTimeout));
    for id in &ids {
        assert_eq!(
            s.worker(id).await.desired,
            DesiredState::Running,
            "drains wait"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_requested_worker_whose_vm_is_up_turns_running_when_it_registers() {
    let s = setup(serde_json::json!({}), 0);
    let w = s.requested_with_vm_up().await;
    let id = w.id().to_string();
    let gets = s.cloud.calls(CallKind::Get);
    let secret = s.register(&id).await;
    // No scan ran: the registration stepped it, once, under its lease.
    assert_eq!(s.cloud.calls(CallKind::Get), gets + 1);
    let w = s.worker(&id).await;
    assert_eq!(w.phase, Phase::Running, "{w:?}");
    assert!(w.registered_at.is_some());
    assert!(w.running_at.is_some());
    assert_eq!(w.lease_owner, None, "the step released its lease");
    assert_eq!(w.lease_expires_at, None);
    // The secret it was given works.
    let hb = s
        .fleet
        .heartbeat(&secret, beat(&id, Activity::Idle, 0))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Continue);
}

#[tokio::test(start_paused = true)]
async fn a_vm_that_calls_before_its_record_knows_it_is_stepped_then_checked_again() {
    let s = setup(serde_json::json!({}), 0);
    let mut w = s.requested_with_vm_up().await;
    let id = w.id().to_string();
    // The create's answer was lost: the record does not know the VM yet,
    // so the proof cannot be matched against it.
    w.provider_state["create_sent"] = false.into();
    let w = s.store.update_worker(&w).await.unwrap();
    let creates = s.cloud.creates_accepted();
    let secret = s.register(&id).await;
    let w2 = s.worker(&id).await;
    assert!(w2.registered_at.is_some(), "{w2:?}");
    assert_eq!(w2.provider_state["create_sent"], true, "the step learnt it");
    assert_eq!(s.cloud.creates_accepted(), creates, "no second VM");
    assert!(w2.version > w.version);
    assert!(s
        .fleet
        .heartbeat(&secret, beat(&id, Activity::Idle, 0))
        .await
        .is_ok());

    // When it cannot be stepped (leased elsewhere), it is refused, as any
    // unmatched proof is, and may try again.
    let s = setup(serde_json::json!({}), 0);
    let mut w = s.requested_with_vm_up().await;
    let id = w.id().to_string();
    w.provider_state["create_sent"] = false.into();
    w.lease_owner = Some("r2".into());
    w.lease_expires_at = Some(w.created_at + Duration::from_secs(3600));
    s.store.update_worker(&w).await.unwrap();
    let refused = s
        .fleet
        .register(RegisterRequest {
            worker_pool_id: POOL.into(),
            worker_id: id.clone(),
            proof: s.proof(&id),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.kind(),
            skyfleet_core::ErrorKind::IdentityRejected { .. }
        ),
        "{refused:?}"
    );
    assert!(s.worker(&id).await.registered_at.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_requested_worker_leased_elsewhere_registers_and_is_left_due_for_the_scanners() {
    let s = setup(serde_json::json!({}), 0);
    let mut w = s.requested_with_vm_up().await;
    let id = w.id().to_string();
    // Another replica's scanner holds its lease (for the next hour).
    w.lease_owner = Some("r2".into());
    w.lease_expires_at = Some(w.created_at + Duration::from_secs(3600));
    s.store.update_worker(&w).await.unwrap();
    let gets = s.cloud.calls(CallKind::Get);
    let secret = s.register(&id).await;
    assert_eq!(
        s.cloud.calls(CallKind::Get),
        gets,
        "not stepped: leased elsewhere"
    );
    let w = s.worker(&id).await;
    assert_eq!(w.phase, Phase::Requested);
    assert!(w.registered_at.is_some());
    assert_eq!(
        w.lease_owner.as_deref(),
        Some("r2"),
        "the lease is untouched"
    );
    assert!(
        w.next_check_at <= w.registered_at.unwrap(),
        "due now for whoever holds or next takes the lease"
    );
    assert!(s
        .fleet
        .heartbeat(&secret, beat(&id, Activity::Idle, 0))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_hung_step_delays_registration_by_one_step_timeout_at_most() {
    let s = setup(serde_json::json!({}), 0);
    let w = s.requested_with_vm_up().await;
    let id = w.id().to_string();
    s.cloud.set_hang(CallKind::Get, true);
    let started = tokio::time::Instant::now();
    let secret = s.register(&id).await;
    let took = started.elapsed();
    // The fleet's step timeout is 2 s (see `setup`).
    assert!(took <= Duration::from_secs(2), "register took {took:?}");
    assert!(
        took >= Duration::from_secs(1),
        "the step was tried: {took:?}"
    );
    // The step gave up at its timeout, recorded it and released the lease.
    let w = s.worker(&id).await;
    assert_eq!(w.phase, Phase::Requested);
    assert!(w.registered_at.is_some());
    assert_eq!(w.lease_owner, None, "{w:?}");
    assert_eq!(
        w.last_error.as_ref().map(|e| &e.kind),
        Some(&ErrorKind::Timeout),
        "{w:?}"
    );
    s.cloud.set_hang(CallKind::Get, false);
    tokio::time::advance(Duration::from_secs(5)).await;
    s.fleet.scan_once().await.unwrap();
    assert_eq!(s.worker(&id).await.phase, Phase::Running);
    assert!(s
        .fleet
        .heartbeat(&secret, beat(&id, Activity::Idle, 0))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_registration_cancelled_during_its_step_registered_nothing_and_a_retry_succeeds() {
    let s = setup(serde_json::json!({}), 0);
    let w = s.requested_with_vm_up().await;
    let id = w.id().to_string();
    s.cloud.set_hang(CallKind::Get, true);
    // The caller gives up (an HTTP request timeout) while the step hangs.
    let first = s.fleet.register(RegisterRequest {
        worker_pool_id: POOL.into(),
        worker_id: id.clone(),
        proof: s.proof(&id),
    });
    assert!(tokio::time::timeout(Duration::from_secs(1), first)
        .await
        .is_err());
    assert!(s.store.get_registration(&id).await.unwrap().is_none());
    // The retry finds the lease held by the step still running: it does
    // not wait for a second step, and registers.
    let started = tokio::time::Instant::now();
    let secret = s.register(&id).await;
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(s.store.get_registration(&id).await.unwrap().is_some());
    s.cloud.set_hang(CallKind::Get, false);
    // Past the abandoned step's lease, the scanners take it over.
    tokio::time::advance(Duration::from_secs(6)).await;
    s.fleet.scan_once().await.unwrap();
    assert_eq!(s.worker(&id).await.phase, Phase::Running);
    assert!(s
        .fleet
        .heartbeat(&secret, beat(&id, Activity::Idle, 0))
        .await
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn after_a_drop_busy_workers_drain_as_they_finish_and_min_idle_stays() {
    let s = setup(serde_json::json!({}), 1);
    // Four tasks and min_idle 1: five workers; four busy, one idle.
    let ws = s.running(4).await;
    assert_eq!(ws.len(), 5);
    let ids: Vec<String> = ws.iter().map(|w| w.id().to_string()).collect();
    let mut secrets = Vec::new();
    for id in &ids {
        secrets.push(s.register(id).await);
    }
    for i in 0..4 {
        let hb = s
            .fleet
            .heartbeat(&secrets[i], beat(&ids[i], Activity::Busy, 0))
            .await
            .unwrap();
        assert_eq!(hb.action, Action::Continue);
    }
    // Nothing waits: the pass keeps the four busy and the idle one.
    let report = &s.fleet.provision_once().await.unwrap()[0].1;
    assert_eq!((report.created, report.drained), (0, 0), "{report:?}");
    // Worker 0 finishes and finds nothing to do: drained in this answer,
    // not a pass and a heartbeat later.
    let hb = s
        .fleet
        .heartbeat(&secrets[0], beat(&ids[0], Activity::Idle, 1))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Drain, "a finished worker is surplus");
    // The worker kept for min_idle is not: it did not just finish.
    let hb = s
        .fleet
        .heartbeat(&secrets[4], beat(&ids[4], Activity::Idle, 0))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Continue, "min_idle is kept");
    // It takes a task: the idle capacity is short now, so the next worker
    // to finish stays (the next pass decides on fresh facts).
    s.fleet
        .heartbeat(&secrets[4], beat(&ids[4], Activity::Busy, 0))
        .await
        .unwrap();
    let hb = s
        .fleet
        .heartbeat(&secrets[1], beat(&ids[1], Activity::Idle, 1))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Continue, "refills min_idle");
    // The next pass sees worker 1 idle and the rest busy: the next worker
    // to finish drains again.
    s.fleet.provision_once().await.unwrap();
    let hb = s
        .fleet
        .heartbeat(&secrets[2], beat(&ids[2], Activity::Idle, 1))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Drain);
    let hb = s
        .fleet
        .heartbeat(&secrets[1], beat(&ids[1], Activity::Idle, 1))
        .await
        .unwrap();
    assert_eq!(hb.action, Action::Continue, "min_idle is kept");
}

/// One simulated agent: what it last told the manager and what it was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Agent {
    busy: bool,
    told_drain: bool,
    gone: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Pickup(usize),
    Finish(usize),
    Heartbeat(usize),
    Drained(usize),
    Demand(u64),
    Pass(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0usize..6).prop_map(Op::Pickup),
        1 => (0usize..6).prop_map(Op::Finish),
        3 => (0usize..6).prop_map(Op::Heartbeat),
        1 => (0usize..6).prop_map(Op::Drained),
        1 => (0u64..6).prop_map(Op::Demand),
        2 => (0usize..2).prop_map(Op::Pass),
        1 => (1u64..30).prop_map(Op::Advance),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random interleavings of job pickups, heartbeats, confirmations,
    /// demand changes and passes by two replicas (either may stop at any
    /// point: passes alternate arbitrarily): no worker is ever marked for
    /// removal while it last reported busy, unless it confirmed drained or
    /// its heartbeat or drain deadline passed, each recorded as the reason.
    #[test]
    fn no_worker_is_removed_while_it_last_reported_busy(ops in prop::collection::vec(op(), 10..60)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async move {
            let lifecycle = serde_json::json!({"heartbeat_timeout": 60, "drain_timeout": 300});
            let s = setup(lifecycle.clone(), 1);
            let other = setup_on(s.store.clone(), s.cloud.clone(), pool(lifecycle, 1), "r2");
            let ws = s.running(6).await;
            // Six registered agents (min_idle may have added a seventh
            // worker, which stays unregistered).
            let ids: Vec<String> = ws.iter().take(6).map(|w| w.id().to_string()).collect();
            let mut secrets = Vec::new();
            for id in &ids {
                secrets.push(s.register(id).await);
            }
            let mut agents = [Agent { busy: false, told_drain: false, gone: false }; 6];
            // What each agent last reported to the manager.
            let mut reported_busy = [false; 6];
            for op in ops {
                match op {
                    // An agent told to drain takes no new work.
                    Op::Pickup(i) if !agents[i].told_drain && !agents[i].gone => agents[i].busy = true,
                    Op::Finish(i) => agents[i].busy = false,
                    Op::Heartbeat(i) if !agents[i].gone => {
                        let state = if agents[i].busy { Activity::Busy } else { Activity::Idle };
                        if let Ok(hb) = s.fleet.heartbeat(&secrets[i], beat(&ids[i], state, 0)).await {
                            reported_busy[i] = agents[i].busy;
                            match hb.action {
                                Action::Drain => agents[i].told_drain = true,
                                Action::Terminate => agents[i].gone = true,
                                Action::Continue => {}
                            }
                        }
                    }
                    Op::Drained(i)
                        if agents[i].told_drain
                            && !agents[i].busy
                            && !agents[i].gone
                            && s.fleet.drained(&ids[i], &secrets[i]).await.is_ok() =>
                    {
                        agents[i].gone = true;
                        reported_busy[i] = false;
                    }
                    Op::Demand(n) => s.demand.set_pending(POOL, n),
                    Op::Pass(r) => {
                        let f = if r == 0 { &s.fleet } else { &other };
                        f.provision_once().await.unwrap();
                    }
                    Op::Advance(secs) => tokio::time::advance(Duration::from_secs(secs)).await,
                    _ => {}
                }
                for (i, id) in ids.iter().enumerate().take(6) {
                    let w = s.worker(id).await;
                    if w.desired != DesiredState::Removed {
                        continue;
                    }
                    let reason = w.removal_reason.clone().unwrap_or_default();
                    let allowed = [
                        RemovalReason::Drained.as_str(),
                        RemovalReason::HeartbeatTimeout.as_str(),
                        RemovalReason::DrainTimeout.as_str(),
                    ];
                    assert!(allowed.contains(&reason.as_str()), "worker {i} removed for {reason}");
                    if reported_busy[i] {
                        assert_ne!(reason, RemovalReason::Drained.as_str(), "worker {i}");
                    }
                }
            }
        });
    }
}
