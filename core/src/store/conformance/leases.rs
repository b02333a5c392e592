//! Conformance cases of lease times and fencing tokens: the fencing of
//! writes under a pool lease (every store), and lease times taken from the
//! database's clock (stores on [`StoreClock::Database`]).
//!
//! [`StoreClock::Database`]: crate::store::StoreClock::Database

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use super::{claim, t0, worker, StorePair};
use crate::error::ErrorKind;
use crate::store::{Claim, PoolLease, WorkerStore};

/// How far apart the test's clock and the database server's may be (one
/// machine, or CI's database container).
const CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

/// A skew of minutes, as a replica with a broken NTP would have.
const SKEW: Duration = Duration::from_secs(10 * 60);

/// Runs the cases of a store whose lease times are the database's
/// (PostgreSQL by default), each on a fresh pair from `make`. They take a
/// few seconds: leases expire in real time.
pub async fn run_database_clock<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = StorePair>,
{
    a_replica_with_a_skewed_clock_cannot_steal_leases(make().await).await;
    leases_expire_by_the_database_clock(make().await).await;
    workers_created_leased_expire_by_the_database_clock(make().await).await;
}

async fn acquire(s: &dyn WorkerStore, owner: &str, now: OffsetDateTime, secs: u64) -> PoolLease {
    s.acquire_pool_lease("p", owner, now, Duration::from_secs(secs))
        .await
        .expect("acquire")
        .unwrap_or_else(|| panic!("{owner} should hold pool p"))
}

/// Whether `t` is `d` after the real now, within the tolerance.
fn about_from_now(t: Option<OffsetDateTime>, d: Duration) -> bool {
    let expected = OffsetDateTime::now_utc() + d;
    t.is_some_and(|t| (t - expected).abs() <= CLOCK_TOLERANCE)
}

/// Pool leases: held against others until they expire, renewed by the
/// holder, taken over once expired.
pub(super) async fn pool_leases((a, b): StorePair) {
    let now = t0();
    let lease = Duration::from_secs(30);
    assert!(a
        .acquire_pool_lease("p", "r1", now, lease)
        .await
        .expect("lease")
        .is_some());
    assert!(
        b.acquire_pool_lease("p", "r2", now, lease)
            .await
            .expect("lease")
            .is_none(),
        "held by r1"
    );
    assert!(
        b.acquire_pool_lease("q", "r2", now, lease)
            .await
            .expect("lease")
            .is_some(),
        "other pool free"
    );
    assert!(a
        .acquire_pool_lease("p", "r1", now + Duration::from_secs(10), lease)
        .await
        .expect("renew")
        .is_some());
    assert!(
        b.acquire_pool_lease("p", "r2", now + Duration::from_secs(39), lease)
            .await
            .expect("lease")
            .is_none(),
        "renewed lease still held"
    );
    assert!(
        b.acquire_pool_lease("p", "r2", now + Duration::from_secs(40), lease)
            .await
            .expect("lease")
            .is_some(),
        "expired lease taken over"
    );
    assert!(a
        .acquire_pool_lease("p", "r1", now + Duration::from_secs(41), lease)
        .await
        .expect("lease")
        .is_none());
}

/// Every acquisition bumps the pool lease's token, and workers are inserted
/// under the latest acquisition only, all or none.
pub(super) async fn fencing_tokens((a, b): StorePair) {
    let now = t0();
    let first = acquire(a.as_ref(), "r1", now, 30).await;
    let w = |id: &str| {
        let mut w = worker(id, "p", "aws", now);
        w.lease_owner = Some("r1".into());
        w.lease_expires_at = Some(now + Duration::from_secs(60));
        w
    };
    let lease = Duration::from_secs(60);
    let made = a
        .create_workers(&first, &[w("w-f1")], lease)
        .await
        .expect("fencing: created under the lease");
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].version, 1);
    assert_eq!(made[0].lease_owner.as_deref(), Some("r1"));

    let renewed = acquire(a.as_ref(), "r1", now + Duration::from_secs(10), 30).await;
    assert!(
        renewed.token > first.token,
        "fencing: a renewal bumps the token"
    );
    let e = a
        .create_workers(&first, &[w("w-f2")], lease)
        .await
        .expect_err("fencing: a superseded acquisition writes nothing");
    assert_eq!(e.kind(), &ErrorKind::LeaseLost, "{e}");

    // r1's pass outlives its lease; r2 takes the pool over.
    let taken = acquire(b.as_ref(), "r2", now + Duration::from_secs(41), 30).await;
    assert!(
        taken.token > renewed.token,
        "fencing: a takeover bumps the token"
    );
    let e = a
        .create_workers(&renewed, &[w("w-f3"), w("w-f4")], lease)
        .await
        .expect_err("fencing: the pass whose lease was taken over inserts nothing");
    assert_eq!(e.kind(), &ErrorKind::LeaseLost, "{e}");
    for id in ["w-f2", "w-f3", "w-f4"] {
        assert!(
            b.get_worker(id).await.expect("get").is_none(),
            "fencing: {id} was not inserted"
        );
    }

    let made = b
        .create_workers(&taken, &[w("w-f5"), w("w-f6")], lease)
        .await
        .expect("fencing: the new holder creates");
    assert_eq!(made.len(), 2);
    // All or none: one taken id fails the whole batch.
    let e = b
        .create_workers(&taken, &[w("w-f7"), w("w-f5")], lease)
        .await
        .expect_err("fencing: a duplicate id");
    assert_eq!(e.kind(), &ErrorKind::AlreadyExists, "{e}");
    assert!(
        a.get_worker("w-f7").await.expect("get").is_none(),
        "fencing: nothing of a failed batch is inserted"
    );
}

/// A replica whose clock runs minutes ahead sees a live lease as live; one
/// whose clock runs minutes behind still takes leases of the full term.
async fn a_replica_with_a_skewed_clock_cannot_steal_leases((a, b): StorePair) {
    let real = OffsetDateTime::now_utc();
    let mut w = worker("w-s1", "p", "aws", real);
    w.next_check_at = real - Duration::from_secs(1);
    a.create_worker(&w).await.expect("create");
    let got = a
        .claim_due(&claim("aws", "r1", 10), real)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert!(
        about_from_now(got[0].lease_expires_at, Duration::from_secs(60)),
        "skew: the lease runs 60 s from the database's now: {:?}",
        got[0].lease_expires_at
    );
    let stolen = b
        .claim_due(&claim("aws", "r2", 10), real + SKEW)
        .await
        .expect("claim");
    assert!(
        stolen.is_empty(),
        "skew: a replica 10 minutes ahead cannot claim a leased worker"
    );

    // A replica 10 minutes behind: its lease still lasts 60 s of real time.
    let mut w = worker("w-s2", "p", "aws", real);
    w.next_check_at = real - SKEW - SKEW;
    a.create_worker(&w).await.expect("create");
    let got = b
        .claim_due(&claim("aws", "r-late", 10), real - SKEW)
        .await
        .expect("claim");
    assert_eq!(got.len(), 1);
    assert!(
        about_from_now(got[0].lease_expires_at, Duration::from_secs(60)),
        "skew: a late replica's lease is not born expired: {:?}",
        got[0].lease_expires_at
    );
    assert!(
        a.claim_due(&claim("aws", "r1", 10), real)
            .await
            .expect("claim")
            .is_empty(),
        "skew: the late replica's lease holds against an on-time one"
    );

    acquire(a.as_ref(), "r1", real, 30).await;
    assert!(
        b.acquire_pool_lease("p", "r2", real + SKEW, Duration::from_secs(30))
            .await
            .expect("acquire")
            .is_none(),
        "skew: a replica 10 minutes ahead cannot take a held pool lease"
    );
}

/// Leases expire when the database's clock says, whatever the caller's
/// (here frozen) clock says; a pass whose pool lease expired and was taken
/// inserts nothing.
async fn leases_expire_by_the_database_clock((a, b): StorePair) {
    let frozen = OffsetDateTime::now_utc();
    let mut w = worker("w-x1", "p", "aws", frozen);
    w.next_check_at = frozen - Duration::from_secs(1);
    a.create_worker(&w).await.expect("create");
    let short = Claim {
        lease: Duration::from_secs(1),
        ..claim("aws", "r1", 10)
    };
    assert_eq!(a.claim_due(&short, frozen).await.expect("claim").len(), 1);
    let first = acquire(a.as_ref(), "r1", frozen, 1).await;
    assert!(b
        .claim_due(&claim("aws", "r2", 10), frozen)
        .await
        .expect("claim")
        .is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        b.claim_due(&claim("aws", "r2", 10), frozen)
            .await
            .expect("claim")
            .len(),
        1,
        "expiry: the lease expired by the database's clock"
    );
    let taken = acquire(b.as_ref(), "r2", frozen, 30).await;
    assert!(taken.token > first.token);
    let e = a
        .create_workers(&first, &[worker("w-x2", "p", "aws", frozen)], short.lease)
        .await
        .expect_err("expiry: the old holder's pass");
    assert_eq!(e.kind(), &ErrorKind::LeaseLost, "{e}");
    assert!(b.get_worker("w-x2").await.expect("get").is_none());
}

/// A worker created leased by a replica whose clock runs minutes behind is
/// leased for the full term of the database's clock, not born expired.
async fn workers_created_leased_expire_by_the_database_clock((a, b): StorePair) {
    let real = OffsetDateTime::now_utc();
    let late = real - SKEW;
    let lease = acquire(a.as_ref(), "r-late", late, 30).await;
    let mut w = worker("w-c1", "p", "aws", late);
    w.next_check_at = late;
    w.lease_owner = Some("r-late".into());
    w.lease_expires_at = Some(late + Duration::from_secs(60));
    let made = a
        .create_workers(&lease, &[w], Duration::from_secs(60))
        .await
        .expect("create");
    assert!(
        about_from_now(made[0].lease_expires_at, Duration::from_secs(60)),
        "created: the returned lease is the stored one, 60 s from the database's now: {:?}",
        made[0].lease_expires_at
    );
    assert!(
        b.claim_due(&claim("aws", "r2", 10), real)
            .await
            .expect("claim")
            .is_empty(),
        "created: another replica cannot claim the new worker"
    );
}
