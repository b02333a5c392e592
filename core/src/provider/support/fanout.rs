//! Batched fan-out for [`Provider::step_many`](crate::provider::Provider::step_many):
//! [`group_by`] splits the workers of one call into groups that one cloud
//! read can serve (a region's DescribeInstances, a zone's instances.list),
//! and [`bounded`] runs one future per item (or per group) with at most a
//! given number in flight, answering in input order.
//!
//! The futures run inside the caller's task (nothing is spawned), so they
//! may borrow the provider and the workers, and a caller's timeout or
//! cancellation covers all of them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// The indices of `items` by group key, groups in key order and indices in
/// input order. Items whose key is `None` belong to no group.
///
/// ```
/// use skyfleet_core::provider::support::group_by;
/// let zones = ["a", "b", "a", "-"];
/// let groups = group_by(&zones, |_, z| (*z != "-").then_some(*z));
/// assert_eq!(groups.into_iter().collect::<Vec<_>>(), vec![("a", vec![0, 2]), ("b", vec![1])]);
/// ```
pub fn group_by<T, K, F>(items: &[T], mut key: F) -> BTreeMap<K, Vec<usize>>
where
    K: Ord,
    F: FnMut(usize, &T) -> Option<K>,
{
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(k) = key(i, item) {
            groups.entry(k).or_default().push(i);
        }
    }
    groups
}

/// Runs `f(0)`, `f(1)`, ... `f(count - 1)` with at most `concurrency` (at
/// least 1) in flight, and answers their outputs in index order. A new one
/// starts as soon as one finishes.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use skyfleet_core::provider::support::bounded;
/// let words = ["a", "bb", "ccc"];
/// let lens = bounded(words.len(), 2, |i| async move { words[i].len() }).await;
/// assert_eq!(lens, vec![1, 2, 3]);
/// # });
/// ```
pub async fn bounded<R, F, Fut>(count: usize, concurrency: usize, mut f: F) -> Vec<R>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = R>,
{
    let concurrency = concurrency.max(1);
    let mut out: Vec<Option<R>> = (0..count).map(|_| None).collect();
    let mut running: Vec<(usize, Pin<Box<Fut>>)> = Vec::with_capacity(concurrency.min(count));
    let mut next = 0;
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < concurrency && next < count {
                running.push((next, Box::pin(f(next))));
                next += 1;
            }
            let mut finished = false;
            let mut i = 0;
            while i < running.len() {
                if let Poll::Ready(r) = running[i].1.as_mut().poll(cx) {
                    let (index, _) = running.swap_remove(i);
                    out[index] = Some(r);
                    finished = true;
                } else {
                    i += 1;
                }
            }
            if running.is_empty() && next >= count {
                return Poll::Ready(());
            }
            // Start the next ones at once when a slot freed up.
            if !finished {
                return Poll::Pending;
            }
        }
    })
    .await;
    // Every index was started and ran to completion above.
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keeps_input_order_and_bounds_concurrency() {
        let in_flight = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = bounded(10, 3, |i| {
            let (in_flight, peak) = (&in_flight, &peak);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                // Later items finish first.
                tokio::time::sleep(Duration::from_millis(100 - 10 * i as u64)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                i * 10
            }
        })
        .await;
        assert_eq!(out, (0..10).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn empty_and_zero_concurrency() {
        let out: Vec<u8> = bounded(0, 4, |_| async { 1 }).await;
        assert!(out.is_empty());
        assert_eq!(bounded(3, 0, |i| async move { i }).await, vec![0, 1, 2]);
    }

    #[test]
    fn groups_keep_input_order() {
        let regions = ["eu", "us", "eu", "us", "eu"];
        let g = group_by(&regions, |_, r| Some(r.to_string()));
        assert_eq!(g["eu"], vec![0, 2, 4]);
        assert_eq!(g["us"], vec![1, 3]);
    }
}
