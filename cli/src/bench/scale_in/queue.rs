//! The simulated task queue of `bench scale-in`: the pool's demand source
//! (pending and claimed counts) and where agents take and finish tasks.

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
    pending: VecDeque<Duration>,
    counts: Counts,
    rng: StdRng,
}

/// A queue of tasks of random lengths.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    /// Shortest and longest task, in milliseconds.
    task_ms: (u64, u64),
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
                pending: VecDeque::new(),
                counts: Counts::default(),
                rng: StdRng::seed_from_u64(seed),
            }),
            task_ms: (min_ms.min(max_ms), max_ms.max(min_ms)),
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
        self.fill(&mut s, load);
    }

    fn fill(&self, s: &mut State, load: u64) {
        while (s.pending.len() as u64) + s.counts.running < load {
            let ms = s.rng.random_range(self.task_ms.0..=self.task_ms.1);
            s.pending.push_back(Duration::from_millis(ms));
            s.counts.submitted += 1;
        }
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

    /// A running task finished.
    pub fn complete(&self) {
        let mut s = self.lock();
        s.counts.running = s.counts.running.saturating_sub(1);
        s.counts.completed += 1;
    }

    /// A running task finished, and tasks are added in the same step until
    /// `load` are pending or running again: a queue with a backlog, whose
    /// demand does not dip between one task and the next.
    pub fn complete_keeping(&self, load: u64) {
        let mut s = self.lock();
        s.counts.running = s.counts.running.saturating_sub(1);
        s.counts.completed += 1;
        self.fill(&mut s, load);
    }

    /// A running task's worker was terminated under it.
    pub fn lose(&self) {
        let mut s = self.lock();
        s.counts.running = s.counts.running.saturating_sub(1);
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
