//! The demo's simulated task queues, one per pool: the fleet's demand
//! source (each pool's pending and claimed tasks) and where the agents'
//! simulated work takes and finishes tasks.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use skyfleet_core::fleet::{Demand, PoolDemand};

use crate::bench::scale_in::queue::{Counts, Queue};

/// Shortest and longest simulated task, in milliseconds: long enough for
/// a worker to be seen busy in a heartbeat, short enough for a demo.
const TASK_MS: (u64, u64) = (500, 2_500);

/// One queue per pool, each with its load: how many tasks it keeps
/// pending or running (a backlog: a finished task is replaced at once).
#[derive(Debug, Default)]
pub struct Queues {
    by_pool: BTreeMap<String, Arc<Queue>>,
}

impl Queues {
    /// A queue for each of `pools`, task lengths seeded by their order.
    pub fn new<'a>(pools: impl IntoIterator<Item = &'a str>) -> Self {
        Queues {
            by_pool: pools
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let q = Queue::with_task_lengths(7 + i as u64, TASK_MS.0, TASK_MS.1);
                    (p.to_string(), Arc::new(q))
                })
                .collect(),
        }
    }

    /// The queue of `pool`.
    pub fn get(&self, pool: &str) -> Option<&Arc<Queue>> {
        self.by_pool.get(pool)
    }

    /// Keeps `load` tasks pending or running in `pool`'s queue (pending
    /// ones are cancelled when it drops; running ones finish).
    pub fn set_load(&self, pool: &str, load: u64) {
        if let Some(q) = self.by_pool.get(pool) {
            q.set_load(load);
        }
    }

    /// A task of `pool` finished; the queue is topped up to its load in
    /// the same step.
    pub fn complete(&self, pool: &str) {
        if let Some(q) = self.by_pool.get(pool) {
            q.complete();
        }
    }

    /// The counters of `pool`'s queue (zeros for an unknown pool).
    pub fn counts(&self, pool: &str) -> Counts {
        self.by_pool
            .get(pool)
            .map(|q| q.counts())
            .unwrap_or_default()
    }
}

#[async_trait]
impl Demand for Queues {
    async fn demand(&self, pool_id: &str) -> skyfleet_core::Result<PoolDemand> {
        let c = self.counts(pool_id);
        Ok(PoolDemand {
            pending: c.pending,
            claimed: c.running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_pool_has_its_own_queue_and_demand() {
        let q = Queues::new(["a", "b"]);
        q.set_load("a", 3);
        q.set_load("nope", 9);
        let a = q.demand("a").await.unwrap();
        let b = q.demand("b").await.unwrap();
        assert_eq!((a.pending, a.claimed), (3, 0));
        assert_eq!((b.pending, b.claimed), (0, 0));
        let task = q.get("a").unwrap().take().unwrap();
        assert!(task.as_millis() >= u128::from(TASK_MS.0), "{task:?}");
        assert!(task.as_millis() <= u128::from(TASK_MS.1), "{task:?}");
        let a = q.demand("a").await.unwrap();
        assert_eq!((a.pending, a.claimed), (2, 1));
        q.complete("a");
        let a = q.demand("a").await.unwrap();
        assert_eq!(
            (a.pending, a.claimed, q.counts("a").completed),
            (3, 0, 1),
            "topped up"
        );
        q.get("a").unwrap().take().unwrap();
        q.set_load("a", 0);
        assert_eq!(q.counts("a").pending, 0);
        assert_eq!(q.counts("a").running, 1, "a running task is not cancelled");
    }
}
