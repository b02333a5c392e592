//! The simulated task queue of `bench scale-in`: the pool's demand source
//! (pending and claimed counts) and where agents take and finish tasks.
//!
//! The load is the number of tasks in the system (pending or running), held
//! at the level the run sets: a task that finishes (or is lost) is replaced
//! at once, in the same call, so the agent that finished it takes the next
//! one in the same step, as a worker polling a queue with more work does.
//! (Topping the queue up only when the run sampled, every 250 ms, left each
//! agent that finished a task idle until the next sample although the load
//! meant more work: at 180 running tasks of 1-8 s, some ten agents at every
//! sample. The run counted them as idle capacity, and the runtime saw them
//! as surplus, drained them and spawned replacements a pass later: 606
//! workers registered in a 90 s run at 200 workers instead of 506.)

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skyfleet_core::fleet::{Demand, PoolDemand};

/// Shortest and longest simulated task.
const TASK_MS: (u64, u64) = (1_000, 8_000);

/// The queue's counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Tasks added.
    pub submitted: u64,
    /// Tasks finished by a worker.
    pub completed: u64,
    /// Tasks taken off the queue because the load dropped.
    pub cancelled: u64,
    /// Tasks running now.
    pub running: u64,
    /// Tasks waiting now.
    pub pending: u64,
}

#[derive(Debug)]
struct State {
    /// Tasks kept in the system (pending or running).
    load: u64,
    /// Shortest and longest task, in milliseconds.
    task_ms: (u64, u64),
    pending: VecDeque<Duration>,
    counts: Counts,
    rng: StdRng,
}

/// A queue of tasks of random lengths.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
}

impl Queue {
    /// An empty queue whose task lengths (1 to 8 s) follow `seed`.
    pub fn new(seed: u64) -> Self {
        Queue::with_task_lengths(seed, TASK_MS.0, TASK_MS.1)
    }

    /// An empty queue whose task lengths, `min_ms` to `max_ms`
    /// milliseconds, follow `seed`.
    pub fn with_task_lengths(seed: u64, min_ms: u64, max_ms: u64) -> Self {
        Queue {
            state: Mutex::new(State {
                load: 0,
                task_ms: (min_ms.min(max_ms), max_ms.max(min_ms)),
                pending: VecDeque::new(),
                counts: Counts::default(),
                rng: StdRng::seed_from_u64(seed),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update below leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds tasks until `load` are pending or running, or cancels pending
    /// ones (newest first) until at most `load` are.
    pub fn set_load(&self, load: u64) {
        let mut s = self.lock();
        s.load = load;
        s.fill();
        while (s.pending.len() as u64) + s.counts.running > load && s.pending.pop_back().is_some() {
            s.counts.cancelled += 1;
        }
    }

    /// Takes the oldest pending task (its length), if any.
    pub fn take(&self) -> Option<Duration> {
        let mut s = self.lock();
        let t = s.pending.pop_front()?;
        s.counts.running += 1;
        Some(t)
    }

    /// A running task finished: a new one takes its place while the load
    /// says so.
    pub fn complete(&self) {
        let mut s = self.lock();
        s.counts.running = s.counts.running.saturating_sub(1);
        s.counts.completed += 1;
        s.fill();
    }

    /// A running task's worker was terminated under it (replaced like a
    /// finished one).
    pub fn lose(&self) {
        let mut s = self.lock();
        s.counts.running = s.counts.running.saturating_sub(1);
        s.fill();
    }

    /// The counters now.
    pub fn counts(&self) -> Counts {
        let s = self.lock();
        Counts {
            pending: s.pending.len() as u64,
            ..s.counts
        }
    }
}

impl State {
    /// Adds tasks until the load is pending or running.
    fn fill(&mut self) {
        while (self.pending.len() as u64) + self.counts.running < self.load {
            let ms = self.rng.random_range(self.task_ms.0..=self.task_ms.1);
            self.pending.push_back(Duration::from_millis(ms));
            self.counts.submitted += 1;
        }
    }
}

#[async_trait]
impl Demand for Queue {
    async fn demand(&self, _pool_id: &str) -> skyfleet_core::Result<PoolDemand> {
        let c = self.counts();
        Ok(PoolDemand {
            pending: c.pending,
            claimed: c.running,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_task_is_replaced_at_once_while_the_load_holds() {
        let q = Queue::new(7);
        q.set_load(2);
        assert!(q.take().is_some() && q.take().is_some());
        assert!(q.take().is_none(), "two tasks in the system");
        q.complete();
        assert!(q.take().is_some(), "the finisher finds the next task");
        // The load drops to one: a finished task is not replaced until
        // fewer than one run.
        q.set_load(1);
        q.complete();
        assert!(q.take().is_none());
        q.lose();
        assert!(q.take().is_some(), "a lost task is replaced too");
        let c = q.counts();
        assert_eq!(
            (c.submitted, c.completed, c.running, c.pending),
            (4, 2, 1, 0)
        );
    }
}
