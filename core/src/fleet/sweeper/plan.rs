//! The pure decision of a sweep: which of this store's orphans go now.

use std::time::Duration;

use time::OffsetDateTime;

/// What [`plan`] decides for one orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delete it now.
    Delete,
    /// Younger than the grace period: look again next sweep.
    Wait,
    /// Old enough, but held back (store too young, or over the cap).
    HoldBack(HoldReason),
}

/// Why an orphan old enough to delete was held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// The store is younger than the grace period: it may not know the fleet.
    StoreTooYoung,
    /// This sweep already deleted its cap.
    OverCap,
}

impl HoldReason {
    /// Every reason (metrics are registered at zero for each).
    pub const ALL: [HoldReason; 2] = [HoldReason::StoreTooYoung, HoldReason::OverCap];

    /// A stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::StoreTooYoung => "store_too_young",
            HoldReason::OverCap => "over_cap",
        }
    }
}

/// The default cap of one sweep: 10 % of the store's live (non-final)
/// workers, at least 1.
pub fn default_cap(live_workers: usize) -> usize {
    (live_workers / 10).max(1)
}

/// Decides, for orphans born at `born` (one entry per orphan), which to
/// delete now: none while the store (created at `store_created_at`) is
/// younger than `grace`; none younger than `grace`; of the rest at most
/// `cap`, oldest first (ties in input order). Pure: the sweeper lists,
/// calls this, then acts.
pub fn plan(
    born: &[OffsetDateTime],
    now: OffsetDateTime,
    grace: Duration,
    store_created_at: OffsetDateTime,
    cap: usize,
) -> Vec<Decision> {
    let store_young = now - store_created_at < grace;
    let mut order: Vec<usize> = (0..born.len()).collect();
    order.sort_by_key(|&i| born[i]);
    let mut decisions = vec![Decision::Wait; born.len()];
    let mut deleting = 0usize;
    for i in order {
        decisions[i] = if now - born[i] < grace {
            Decision::Wait
        } else if store_young {
            Decision::HoldBack(HoldReason::StoreTooYoung)
        } else if deleting < cap {
            deleting += 1;
            Decision::Delete
        } else {
            Decision::HoldBack(HoldReason::OverCap)
        };
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GRACE: Duration = Duration::from_secs(900);

    fn t(secs: i64) -> OffsetDateTime {
        crate::clock::from_millis(1_750_000_000_000 + secs * 1000)
    }

    fn count(ds: &[Decision], d: Decision) -> usize {
        ds.iter().filter(|x| **x == d).count()
    }

    #[test]
    fn a_young_store_deletes_nothing() {
        let now = t(100_000);
        let born = vec![t(0); 50];
        // Created 14 minutes ago: younger than the 15-minute grace.
        let ds = plan(&born, now, GRACE, now - Duration::from_secs(840), 1000);
        assert_eq!(
            count(&ds, Decision::HoldBack(HoldReason::StoreTooYoung)),
            50
        );
        // Once it is as old as the grace period, it deletes.
        let ds = plan(&born, now, GRACE, now - GRACE, 1000);
        assert_eq!(count(&ds, Decision::Delete), 50);
    }

    #[test]
    fn the_cap_takes_the_oldest_and_holds_back_the_rest() {
        let now = t(100_000);
        let born = vec![t(30), t(10), now, t(20), t(40)];
        let ds = plan(&born, now, GRACE, t(0), 2);
        assert_eq!(
            ds,
            vec![
                Decision::HoldBack(HoldReason::OverCap),
                Decision::Delete,
                Decision::Wait,
                Decision::Delete,
                Decision::HoldBack(HoldReason::OverCap),
            ]
        );
    }

    #[test]
    fn default_cap_is_a_tenth_of_live_workers_at_least_one() {
        assert_eq!(default_cap(0), 1);
        assert_eq!(default_cap(9), 1);
        assert_eq!(default_cap(10), 1);
        assert_eq!(default_cap(25), 2);
        assert_eq!(default_cap(1000), 100);
    }

    proptest! {
        #[test]
        fn plan_never_exceeds_its_bounds(
            ages in proptest::collection::vec(0i64..4000, 0..60),
            store_age in 0i64..4000,
            cap in 0usize..20,
        ) {
            let now = t(10_000);
            let born: Vec<_> = ages.iter().map(|a| now - Duration::from_secs(*a as u64)).collect();
            let store = now - Duration::from_secs(store_age as u64);
            let ds = plan(&born, now, GRACE, store, cap);
            prop_assert_eq!(ds.len(), born.len());
            let deleted = count(&ds, Decision::Delete);
            prop_assert!(deleted <= cap);
            if store_age < 900 {
                prop_assert_eq!(deleted, 0);
            }
            for (d, a) in ds.iter().zip(&ages) {
                // Nothing younger than the grace period goes, or is held back.
                prop_assert_eq!(*a < 900, *d == Decision::Wait);
                // Every old orphan not deleted is held back, and none is
                // older than a deleted one unless it was deleted too.
                if *d == Decision::Delete {
                    for (d2, a2) in ds.iter().zip(&ages) {
                        if a2 > a {
                            prop_assert_eq!(*d2, Decision::Delete);
                        }
                    }
                }
            }
            let old = ages.iter().filter(|a| **a >= 900).count();
            let expect = if store_age < 900 { 0 } else { old.min(cap) };
            prop_assert_eq!(deleted, expect);
        }
    }
}
