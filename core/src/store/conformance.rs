//! The store conformance suite: one set of behaviours every [`WorkerStore`]
//! must show, run against memory, SQLite and PostgreSQL.
//!
//! Each case gets two handles on one fresh, empty database (two connections
//! or pools, as two replicas would have), from the caller's factory. A
//! failing case panics with its name: this module is test support, like
//! object_store's `integration` module. Behind the `testing` feature: not
//! a stable API.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::{Claim, PartitionFilter, PoolDecision, PoolError, WorkerFilter, WorkerStore};
use crate::error::ErrorKind;
use crate::fleet::{Capacity, Estimate, PoolDemand};
use crate::model::{DrainReason, Phase, Registration, Worker};
use crate::testing::fixtures;

mod batch;
mod leases;
pub mod offerings;
mod retention;
pub use leases::run_database_clock;

/// Two handles on one fresh database.
pub type StorePair = (Arc<dyn WorkerStore>, Arc<dyn WorkerStore>);

/// A worker record for tests: [`fixtures::worker`] in `pool` and `provider`,
/// launch config `lc-0` with launch `{"size": "small"}`.
pub fn worker(id: &str, pool: &str, provider: &str, now: OffsetDateTime) -> Worker {
    fixtures::worker(id)
        .pool(pool)
        .provider(provider)
        .launch_config("lc-0")
        .launch(serde_json::json!({"size": "small"}))
        .build(now)
}

fn t0() -> OffsetDateTime {
    // Whole milliseconds, as stores keep them.
    crate::clock::from_millis(1_750_000_000_000)
}

fn claim(provider: &str, owner: &str, limit: usize) -> Claim {
    Claim {
        provider_id: provider.into(),
        partition: PartitionFilter::Any,
        owner: owner.into(),
        lease: Duration::from_secs(60),
        limit,
    }
}

/// Runs every case, each on a fresh pair from `make`.
pub async fn run<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = StorePair>,
{
    create_get_and_duplicates(make().await).await;
    optimistic_updates(make().await).await;
    batch::mixed_outcomes(make().await).await;
    batch::large_batches(make().await).await;
    list_by_pool_and_phase(make().await).await;
    claim_rules(make().await).await;
    partitioned_claims(make().await).await;
    lease_expiry_and_release(make().await).await;
    pool_errors(make().await).await;
    pool_decisions(make().await).await;
    leases::pool_leases(make().await).await;
    concurrent_claims_are_disjoint(make().await).await;
    registrations(make().await).await;
    store_identity(make().await, make().await).await;
    leases::fencing_tokens(make().await).await;
    retention::paged_listings(make().await).await;
    retention::finished_workers_age_out(make().await).await;
    retention::pool_errors_are_capped_and_age_out(make().await).await;
    offerings::marks_upsert_and_expire(make().await).await;
    offerings::bad_marks_are_refused(make().await).await;
    offerings::interruptions_are_counted(make().await).await;
}

async fn create_get_and_duplicates((s, _): StorePair) {
    let w = worker("w-a", "p", "aws", t0());
    let created = s.create_worker(&w).await.expect("create");
    assert_eq!(created.version, 1, "create_get: version starts at 1");
    let got = s.get_worker("w-a").await.expect("get").expect("present");
    assert_eq!(got, created, "create_get: record round-trips exactly");
    let dup = s.create_worker(&w).await.expect_err("duplicate must fail");
    assert_eq!(dup.kind(), &ErrorKind::AlreadyExists, "create_get: {dup}");
    assert!(s.get_worker("nope").await.expect("get").is_none());
    s.delete_worker("w-a").await.expect("delete");
    assert!(s.get_worker("w-a").await.expect("get").is_none());
}

async fn optimistic_updates((s, other): StorePair) {
    let w = s
        .create_worker(&worker("w-b", "p", "aws", t0()))
        .await
        .expect("create");
    let mut a = w.clone();
    a.phase = Phase::Running;
    a.provider_state = serde_json::json!({"instance": "i-1"});
    let a2 = s.update_worker(&a).await.expect("update");
    assert_eq!(a2.version, 2, "update bumps version");
    // A second replica holding the old version loses.
    let mut stale = w.clone();
    stale.phase = Phase::Stopping;
    let e = other.update_worker(&stale).await.expect_err("stale update");
    assert_eq!(e.kind(), &ErrorKind::Conflict, "stale update: {e}");
    let cur = other
        .get_worker("w-b")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(cur.phase, Phase::Running, "the stale update wrote nothing");
    assert_eq!(cur.provider_state, serde_json::json!({"instance": "i-1"}));
    let mut gone = worker("w-missing", "p", "aws", t0());
    gone.version = 1;
    let e = s.update_worker(&gone).await.expect_err("missing");
    assert_eq!(e.kind(), &ErrorKind::NotFound, "update of missing: {e}");
}

async fn list_by_pool_and_phase((s, _): StorePair) {
    for (i, (pool, phase)) in [
        ("p1", Phase::Requested),
        ("p1", Phase::Running),
        ("p1", Phase::Stopped),
        ("p2", Phase::Running),
    ]
    .into_iter()
    .enumerate()
    {
        let mut w = worker(
            &format!("w-l{i}"),
            pool,
            "aws",
            t0() + Duration::from_secs(i as u64),
        );
        w.phase = phase;
        s.create_worker(&w).await.expect("create");
    }
    let ids = |v: Vec<Worker>| v.iter().map(|w| w.id().to_string()).collect::<Vec<_>>();
    let all_p1 = s
        .list_workers(&WorkerFilter::pool("p1"))
        .await
        .expect("list");
    assert_eq!(
        ids(all_p1),
        vec!["w-l0", "w-l1", "w-l2"],
        "list: pool, oldest first"
    );
    let live = s
        .list_workers(&WorkerFilter::pool("p1").with_phases(&[Phase::Requested, Phase::Running]))
        .await
        .expect("list");
    assert_eq!(ids(live), vec!["w-l0", "w-l1"], "list: pool and phases");
    let running = s
        .list_workers(&WorkerFilter::default().with_phases(&[Phase::Running]))
        .await
        .expect("list");
    assert_eq!(ids(running), vec!["w-l1", "w-l3"], "list: phase only");
}

async fn claim_rules((s, _): StorePair) {
    let now = t0();
    let mk = |id: &str, provider: &str, due_in: i64, phase: Phase| {
        let mut w = worker(id, "p", provider, now);
        w.next_check_at = now + time::Duration::seconds(due_in);
        w.phase = phase;
        w
    };
    for w in [
        mk("w-c1", "aws", -5, Phase::Requested),
        mk("w-c2", "aws", -10, Phase::Running),
        mk("w-c3", "aws", 30, Phase::Running),  // not due
        mk("w-c4", "gcp", -10, Phase::Running), // other provider
        mk("w-c5", "aws", -10, Phase::Stopped), // final
        mk("w-c6", "aws", -1, Phase::Stopping),
    ] {
        s.create_worker(&w).await.expect("create");
    }
    let got = s
        .claim_due(&claim("aws", "r1", 2), now)
        .await
        .expect("claim");
    let ids: Vec<&str> = got.iter().map(|w| w.id()).collect();
    assert_eq!(
        ids,
        vec!["w-c2", "w-c1"],
        "claim: earliest due first, limit"
    );
    for w in &got {
        assert_eq!(w.lease_owner.as_deref(), Some("r1"));
        assert_eq!(w.lease_expires_at, Some(now + Duration::from_secs(60)));
        assert_eq!(w.version, 2, "claim bumps the version");
    }
    let rest = s
        .claim_due(&claim("aws", "r2", 10), now)
        .await
        .expect("claim");
    let ids: Vec<&str> = rest.iter().map(|w| w.id()).collect();
    assert_eq!(
        ids,
        vec!["w-c6"],
        "claim: leased, final, undue and foreign skipped"
    );
    // The claimed record is updatable with the returned version.
    let mut w = got[0].clone();
    w.next_check_at = now + Duration::from_secs(5);
    s.update_worker(&w).await.expect("update after claim");
}

async fn partitioned_claims((s, other): StorePair) {
    let now = t0();
    let mk = |id: &str, partition: Option<&str>, phase: Phase| {
        let mut w = worker(id, "p", "aws", now);
        w.next_check_at = now - Duration::from_secs(1);
        w.partition = partition.map(str::to_string);
        w.phase = phase;
        w
    };
    for w in [
        mk("w-p1", Some("us-east-1"), Phase::Requested),
        mk("w-p2", Some("us-west-2"), Phase::Requested),
        mk("w-p3", Some("us-east-1"), Phase::Running),
        mk("w-p4", None, Phase::Running),
        mk("w-p5", Some("eu-west-1"), Phase::Stopped), // final: no scanner needed
    ] {
        s.create_worker(&w).await.expect("create");
    }
    let mut g = worker("w-p6", "p", "gcp", now); // other provider
    g.partition = Some("us-central1-a".into());
    s.create_worker(&g).await.expect("create");
    let parts = other.partitions("aws").await.expect("partitions");
    assert_eq!(
        parts,
        vec![None, Some("us-east-1".into()), Some("us-west-2".into())],
        "partitions: distinct, non-final, this provider only, sorted with None first"
    );
    let only = |p: Option<&str>| Claim {
        partition: PartitionFilter::Only(p.map(str::to_string)),
        ..claim("aws", "r1", 10)
    };
    let east = s
        .claim_due(&only(Some("us-east-1")), now)
        .await
        .expect("claim");
    let mut ids: Vec<&str> = east.iter().map(|w| w.id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec!["w-p1", "w-p3"], "claim: only its partition");
    let none = s.claim_due(&only(None), now).await.expect("claim");
    let ids: Vec<&str> = none.iter().map(|w| w.id()).collect();
    assert_eq!(
        ids,
        vec!["w-p4"],
        "claim: Only(None) takes unpartitioned workers"
    );
    // A step may move a worker to another partition: the column follows.
    let mut moved = none[0].clone();
    moved.partition = Some("us-west-2".into());
    moved.lease_owner = None;
    moved.lease_expires_at = None;
    let moved = s.update_worker(&moved).await.expect("update");
    assert_eq!(
        other
            .get_worker("w-p4")
            .await
            .expect("get")
            .expect("present")
            .partition,
        Some("us-west-2".into()),
        "partition round-trips"
    );
    let west = other
        .claim_due(&only(Some("us-west-2")), now)
        .await
        .expect("claim");
    let mut ids: Vec<&str> = west.iter().map(|w| w.id()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec!["w-p2", "w-p4"],
        "claim: the moved worker follows its partition"
    );
    assert_eq!(
        s.partitions("aws").await.expect("partitions"),
        vec![Some("us-east-1".into()), Some("us-west-2".into())],
        "partitions: a partition with no workers left is gone"
    );
    assert!(moved.version > 1);
}

async fn lease_expiry_and_release((s, other): StorePair) {
    let now = t0();
    s.create_worker(&worker("w-e1", "p", "aws", now))
        .await
        .expect("create");
    s.create_worker(&worker("w-e2", "p", "aws", now))
        .await
        .expect("create");
    let got = s
        .claim_due(&claim("aws", "r1", 10), now)
        .await
        .expect("claim");
    assert_eq!(got.len(), 2);
    assert!(
        other
            .claim_due(&claim("aws", "r2", 10), now + Duration::from_secs(59))
            .await
            .expect("claim")
            .is_empty(),
        "a live lease blocks other claims"
    );
    let after = other
        .claim_due(&claim("aws", "r2", 10), now + Duration::from_secs(60))
        .await
        .expect("claim");
    assert_eq!(after.len(), 2, "expired leases are claimable");
    // r1's release is a no-op now: r2 owns them.
    s.release("w-e1", "r1").await.expect("release");
    let w = s.get_worker("w-e1").await.expect("get").expect("present");
    assert_eq!(w.lease_owner.as_deref(), Some("r2"));
    other.release("w-e1", "r2").await.expect("release");
    let w = s.get_worker("w-e1").await.expect("get").expect("present");
    assert_eq!(w.lease_owner, None);
    assert_eq!(other.release_all("r2").await.expect("release_all"), 1);
    let again = s
        .claim_due(&claim("aws", "r3", 10), now + Duration::from_secs(61))
        .await
        .expect("claim");
    assert_eq!(again.len(), 2, "released workers are claimable at once");
}

async fn pool_errors((s, _): StorePair) {
    for i in 0..3 {
        s.record_pool_error(&PoolError {
            pool_id: "p".into(),
            kind: ErrorKind::CapacityOrQuota,
            title: format!("error {i}"),
            message: "AllocationFailed".into(),
            launch_config_id: Some("lc-0".into()),
            reported_at: t0() + Duration::from_secs(i),
        })
        .await
        .expect("record");
    }
    s.record_pool_error(&PoolError {
        pool_id: "other".into(),
        kind: ErrorKind::Timeout,
        title: "x".into(),
        message: "y".into(),
        launch_config_id: None,
        reported_at: t0(),
    })
    .await
    .expect("record");
    let v = s.list_pool_errors("p", 2).await.expect("list");
    let titles: Vec<&str> = v.iter().map(|e| e.title.as_str()).collect();
    assert_eq!(
        titles,
        vec!["error 2", "error 1"],
        "pool errors: newest first, limit"
    );
    assert_eq!(v[0].launch_config_id.as_deref(), Some("lc-0"));
    assert_eq!(v[0].reported_at, t0() + Duration::from_secs(2));

    // Counted per pool, kind and launch config since a time.
    s.record_pool_error(&PoolError {
        pool_id: "p".into(),
        kind: ErrorKind::Timeout,
        title: "old".into(),
        message: "before the window".into(),
        launch_config_id: None,
        reported_at: t0() - Duration::from_secs(3600),
    })
    .await
    .expect("record");
    let groups = s.pool_error_groups(t0()).await.expect("groups");
    let got: Vec<(&str, &str, Option<&str>, u64)> = groups
        .iter()
        .map(|g| {
            (
                g.pool_id.as_str(),
                g.kind.as_str(),
                g.launch_config_id.as_deref(),
                g.count,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("other", "timeout", None, 1),
            ("p", "capacity_or_quota", Some("lc-0"), 3),
        ],
        "pool error groups: counted since the window, sorted"
    );
    assert_eq!(groups[1].last_at, t0() + Duration::from_secs(2), "latest");
    let all = s
        .pool_error_groups(t0() - Duration::from_secs(7200))
        .await
        .expect("groups");
    assert_eq!(all.len(), 3, "a wider window counts the old one too");
    assert_eq!((all[2].kind.as_str(), all[2].count), ("timeout", 1));
}

async fn pool_decisions((a, b): StorePair) {
    assert!(a.list_pool_decisions().await.expect("list").is_empty());
    let mut d = PoolDecision {
        pool_id: "p".into(),
        provider_id: "aws".into(),
        min_capacity: 1,
        max_capacity: 10,
        demand: PoolDemand {
            pending: 4,
            claimed: 1,
        },
        have: Capacity {
            requested: 2,
            running: 1,
            stopping: 0,
            busy: Some(1),
        },
        estimate: Estimate {
            to_spawn: 2,
            surplus: 0,
            desired: 5,
            idle: 2,
            target: 5,
        },
        created: 2,
        removed: 0,
        owner: "r1".into(),
        decided_at: t0(),
        offerings: Vec::new(),
    };
    a.put_pool_decision(&d).await.expect("put");
    let mut other = d.clone();
    other.pool_id = "a-first".into();
    a.put_pool_decision(&other).await.expect("put");
    d.estimate.desired = 3;
    d.decided_at = t0() + Duration::from_secs(5);
    b.put_pool_decision(&d)
        .await
        .expect("replace from another replica");
    let got = a.list_pool_decisions().await.expect("list");
    assert_eq!(
        got,
        vec![other, d],
        "pool decisions: latest per pool, by id"
    );
}

async fn concurrent_claims_are_disjoint((a, b): StorePair) {
    let now = t0();
    let n = 200;
    for i in 0..n {
        a.create_worker(&worker(&format!("w-k{i:03}"), "p", "aws", now))
            .await
            .expect("create");
    }
    let run = |s: Arc<dyn WorkerStore>, owner: &'static str| async move {
        let mut mine = Vec::new();
        loop {
            let got = s
                .claim_due(&claim("aws", owner, 7), now)
                .await
                .expect("claim");
            if got.is_empty() {
                break;
            }
            mine.extend(got.into_iter().map(|w| w.id().to_string()));
        }
        mine
    };
    let (x, y) = tokio::join!(
        tokio::spawn(run(a.clone(), "r1")),
        tokio::spawn(run(b.clone(), "r2"))
    );
    let (x, y) = (x.expect("task"), y.expect("task"));
    let mut seen = HashSet::new();
    for id in x.iter().chain(y.iter()) {
        assert!(seen.insert(id.clone()), "worker {id} was claimed twice");
    }
    assert_eq!(seen.len(), n, "every due worker was claimed");
}

async fn registrations((a, b): StorePair) {
    let now = t0();
    a.create_worker(&worker("w-r1", "p", "aws", now))
        .await
        .expect("create");
    let r = Registration::new(
        "w-r1",
        "p",
        "ab".repeat(32),
        now,
        now + Duration::from_secs(60),
    );
    let created = a.create_registration(&r).await.expect("register");
    assert_eq!(created.version, 1, "registrations: version starts at 1");
    assert_eq!(
        b.get_registration("w-r1").await.expect("get"),
        Some(created.clone()),
        "registrations: a second replica reads it exactly"
    );
    // Registration happens once, whichever replica is asked.
    let again = b.create_registration(&r).await.expect_err("twice");
    assert_eq!(
        again.kind(),
        &ErrorKind::AlreadyExists,
        "registrations: {again}"
    );
    // Updates are fenced by the version.
    let mut busy = created.clone();
    busy.activity = crate::protocol::Activity::Busy;
    busy.idle_since = None;
    let stored = a.update_registration(&busy).await.expect("update");
    assert_eq!(stored.version, 2);
    let mut stale = created.clone();
    stale.drain = Some(crate::model::Drain {
        reason: DrainReason::ScaleIn,
        requested_at: now,
        deadline: None,
        drained_at: None,
    });
    let e = b.update_registration(&stale).await.expect_err("stale");
    assert_eq!(e.kind(), &ErrorKind::Conflict, "registrations: {e}");
    assert_eq!(b.get_registration("w-r1").await.expect("get"), Some(stored));
    let mut ghost = r.clone();
    ghost.worker_id = "w-none".into();
    ghost.version = 1;
    let e = a.update_registration(&ghost).await.expect_err("missing");
    assert_eq!(e.kind(), &ErrorKind::NotFound, "registrations: {e}");
    // Listed per pool; deleted with the worker.
    let other = Registration::new("w-r2", "q", "cd".repeat(32), now, now);
    a.create_registration(&other).await.expect("register");
    let listed = b.list_registrations("p").await.expect("list");
    assert_eq!(listed.len(), 1, "registrations: per pool");
    assert_eq!(listed[0].worker_id, "w-r1");
    a.delete_worker("w-r1").await.expect("delete");
    assert!(b.get_registration("w-r1").await.expect("get").is_none());
    assert_eq!(b.list_registrations("q").await.expect("list").len(), 1);
}

/// A store has one identity, seen alike by every handle on it (a second
/// pool on a SQLite file is a reopen), created when the store was (not in
/// the past: the sweeper holds deletions back while a store is young); two
/// stores differ.
async fn store_identity((a, b): StorePair, (other, _): StorePair) {
    let before = OffsetDateTime::now_utc();
    let id = a.store_identity().await.expect("identity");
    assert_eq!(id.id.len(), 32, "a 128-bit random id in hex: {id:?}");
    assert_eq!(
        b.store_identity().await.expect("identity via b"),
        id,
        "every handle on one store sees one identity"
    );
    let age = before - id.created_at;
    assert!(
        age < time::Duration::minutes(10) && age > -time::Duration::minutes(1),
        "a fresh store was created just now, not {age} ago"
    );
    let other = other.store_identity().await.expect("other identity");
    assert_ne!(other.id, id.id, "two stores have distinct ids");
}
