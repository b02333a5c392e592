//! Conformance cases of bounded listings and retention: keyset-paged
//! worker listings, registrations of a page, finished workers and pool
//! errors aging out.

use std::time::Duration;

use time::OffsetDateTime;

use super::{t0, worker, StorePair};
use crate::error::ErrorKind;
use crate::model::{Phase, Registration, Worker};
use crate::store::{PoolError, WorkerCursor, WorkerFilter, WorkerStore};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Every page of `filter`'s workers, `limit` at a time, until an empty one.
async fn all_pages(s: &dyn WorkerStore, filter: &WorkerFilter, limit: usize) -> Vec<Vec<Worker>> {
    let mut pages = Vec::new();
    let mut after: Option<WorkerCursor> = None;
    // Bounded: the cases hold a dozen workers.
    for _ in 0..100 {
        let page = s
            .list_workers_page(filter, after.as_ref(), limit)
            .await
            .expect("page");
        let Some(last) = page.last() else {
            return pages;
        };
        after = Some(WorkerCursor::after(last));
        pages.push(page);
    }
    panic!("paging: more than 100 pages");
}

fn ids(ws: &[Worker]) -> Vec<String> {
    ws.iter().map(|w| w.id().to_string()).collect()
}

/// Pages hold at most `limit` workers; together they are exactly
/// `list_workers`, in its order (creation time, then id for equal times);
/// filters apply; registrations of a page come by id.
pub(super) async fn paged_listings((s, other): StorePair) {
    let now = t0();
    // Created out of order; w-b and w-a at the same millisecond.
    for (id, pool, secs) in [
        ("w-d", "p", 4),
        ("w-b", "p", 2),
        ("w-a", "p", 2),
        ("w-q", "q", 1),
        ("w-e", "p", 5),
        ("w-c", "p", 3),
        ("w-f", "p", 6),
        ("w-g", "p", 0),
    ] {
        let mut w = worker(id, pool, "aws", now + Duration::from_secs(secs));
        if id == "w-e" {
            w.phase = Phase::Stopped;
        }
        s.create_worker(&w).await.expect("create");
    }
    let p = WorkerFilter::pool("p");
    let pages = all_pages(other.as_ref(), &p, 3).await;
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![3, 3, 1],
        "paging: full pages, then the rest"
    );
    let paged: Vec<Worker> = pages.concat();
    assert_eq!(
        ids(&paged),
        vec!["w-g", "w-a", "w-b", "w-c", "w-d", "w-e", "w-f"],
        "paging: oldest first, equal times by id"
    );
    assert_eq!(
        ids(&paged),
        ids(&s.list_workers(&p).await.expect("list")),
        "paging: the pages are the listing"
    );
    let stopped = all_pages(s.as_ref(), &p.clone().with_phases(&[Phase::Stopped]), 2).await;
    assert_eq!(ids(&stopped.concat()), vec!["w-e"], "paging: phase filter");
    let everyone = all_pages(s.as_ref(), &WorkerFilter::default(), 100).await;
    assert_eq!(everyone.concat().len(), 8, "paging: no filter");

    for id in ["w-c", "w-a"] {
        let r = Registration::new(id, "p", "ab".repeat(32), now, now);
        s.create_registration(&r).await.expect("register");
    }
    let regs = other
        .registrations_of(&["w-c", "w-zz", "w-a", "w-c", "w-b"])
        .await
        .expect("registrations_of");
    assert_eq!(
        regs.iter()
            .map(|r| r.worker_id.as_str())
            .collect::<Vec<_>>(),
        vec!["w-a", "w-c"],
        "registrations_of: those registered, once each, by id"
    );
}

/// Final workers whose last transition is older than the cutoff are
/// deleted with their registrations, `limit` at a time; live and recently
/// finished workers stay.
pub(super) async fn finished_workers_age_out((s, other): StorePair) {
    let now = t0();
    let cutoff = now - 7 * DAY;
    let make = |id: &str, phase: Phase, finished: OffsetDateTime| {
        let mut w = worker(id, "p", "aws", now - 60 * DAY);
        w.phase = phase;
        w.transitioned_at = Some(finished);
        w
    };
    for w in [
        make("w-old-stopped", Phase::Stopped, now - 8 * DAY),
        make("w-old-failed", Phase::Failed, now - 10 * DAY),
        make("w-new-stopped", Phase::Stopped, now - DAY),
        make("w-old-running", Phase::Running, now - 30 * DAY),
        make("w-updated", Phase::Running, now - 30 * DAY),
    ] {
        s.create_worker(&w).await.expect("create");
    }
    // Finished through an update, as the scanner does.
    let mut w = s
        .get_worker("w-updated")
        .await
        .expect("get")
        .expect("there");
    w.phase = Phase::Stopped;
    w.transitioned_at = Some(now - 9 * DAY);
    s.update_worker(&w).await.expect("update");
    let r = Registration::new("w-old-stopped", "p", "ab".repeat(32), now, now);
    s.create_registration(&r).await.expect("register");

    assert_eq!(
        other
            .delete_finished_workers(cutoff, 2)
            .await
            .expect("delete"),
        2,
        "retention: at most `limit` per call"
    );
    assert_eq!(
        other
            .delete_finished_workers(cutoff, 10)
            .await
            .expect("delete"),
        1,
        "retention: the rest"
    );
    assert_eq!(
        other
            .delete_finished_workers(cutoff, 10)
            .await
            .expect("delete"),
        0
    );
    let left = ids(&s
        .list_workers(&WorkerFilter::default())
        .await
        .expect("list"));
    assert_eq!(
        left,
        vec!["w-new-stopped", "w-old-running"],
        "retention: live and recently finished workers stay"
    );
    assert!(
        s.get_registration("w-old-stopped")
            .await
            .expect("get")
            .is_none(),
        "retention: a deleted worker's registration goes with it"
    );
}

/// Each pool keeps its latest `keep` errors, none older than the cutoff.
pub(super) async fn pool_errors_are_capped_and_age_out((s, other): StorePair) {
    let now = t0();
    let error = |pool: &str, i: u64, at: OffsetDateTime| PoolError {
        pool_id: pool.into(),
        kind: ErrorKind::Timeout,
        title: format!("{pool} {i}"),
        message: "m".into(),
        launch_config_id: None,
        reported_at: at,
    };
    for i in 0..5 {
        s.record_pool_error(&error("p", i, now + Duration::from_secs(i)))
            .await
            .expect("record");
    }
    for i in 0..2 {
        s.record_pool_error(&error("q", i, now + Duration::from_secs(i)))
            .await
            .expect("record");
    }
    s.record_pool_error(&error("r", 0, now - 8 * DAY))
        .await
        .expect("record");
    assert_eq!(
        other
            .prune_pool_errors(now - 7 * DAY, 3)
            .await
            .expect("prune"),
        3,
        "pool errors: 2 over p's cap, r's aged one"
    );
    let titles = |v: Vec<PoolError>| v.into_iter().map(|e| e.title).collect::<Vec<_>>();
    assert_eq!(
        titles(s.list_pool_errors("p", 10).await.expect("list")),
        vec!["p 4", "p 3", "p 2"],
        "pool errors: the latest kept"
    );
    assert_eq!(
        titles(s.list_pool_errors("q", 10).await.expect("list")),
        vec!["q 1", "q 0"],
        "pool errors: a pool under the cap keeps all"
    );
    assert!(s.list_pool_errors("r", 10).await.expect("list").is_empty());
}
