//! The demo's workers: one real [`skyfleet_agent::Agent`] per running mock
//! VM, in process. Each reads its bootstrap document and identity proof
//! from its VM's instance-metadata service on the mock (the path
//! `/_mock/resources` lists for it), registers with the manager's worker
//! API over loopback HTTP, heartbeats, and runs simulated tasks from its
//! pool's queue ([`SimWork`]) until the manager drains or terminates it.
//!
//! Each agent counts what matters for scale-in: a worker told to
//! terminate, or refused, while a task ran is a busy worker killed and a
//! task lost; a worker told to drain finishes its task first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use skyfleet_agent::{
    Agent, AgentConfig, AgentError, Cloud, MetadataSource, Outcome, Registration, RetryPolicy,
    WorkError, WorkSource, WorkStatus,
};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queues::Queues;
use crate::mockctl::{self, Resource};

/// How often a worker's simulated work looks at its task and its queue.
const TICK: Duration = Duration::from_millis(50);
/// How long a drained or terminated worker's task may run on.
const DRAIN_GRACE: Duration = Duration::from_secs(30);
/// Agents started for one VM at most (a failed start, e.g. metadata not
/// served yet, is tried again at the next look).
const MAX_STARTS: u32 = 5;

/// What one cloud's agents counted.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Tally {
    /// Agents that registered (their work started).
    pub registered: u64,
    /// Agents that confirmed a drain.
    pub drained: u64,
    /// Agents told to terminate.
    pub terminated: u64,
    /// Agents told to terminate, or refused, while a task ran.
    pub busy_killed: u64,
    /// Tasks lost: those agents' tasks, and tasks cut by the drain grace.
    pub tasks_lost: u64,
    /// Tasks the agents finished.
    pub tasks_completed: u64,
    /// Agents that failed otherwise (metadata, registration).
    pub errors: u64,
}

/// The simulated work's state, shared with its agent's bookkeeping.
#[derive(Debug, Default)]
struct SimState {
    /// When the running task ends.
    until: Option<Instant>,
    /// The agent registered and started the work.
    started: bool,
    done: u64,
    stopping: bool,
    busy_at_stop: bool,
    lost: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks leaves the state consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Simulated work: takes tasks from its pool's queue one at a time and
/// "runs" each for its length; stops taking them when told to stop.
struct SimWork {
    queues: Arc<Queues>,
    state: Arc<Mutex<SimState>>,
    runner: Option<JoinHandle<()>>,
    queue: Option<Arc<crate::bench::scale_in::queue::Queue>>,
}

impl SimWork {
    fn new(queues: Arc<Queues>) -> Self {
        SimWork {
            queues,
            state: Arc::default(),
            runner: None,
            queue: None,
        }
    }
}

impl WorkSource for SimWork {
    async fn start(&mut self, registration: &Registration) -> Result<(), WorkError> {
        let pool = &registration.worker_pool_id;
        let queue = self
            .queues
            .get(pool)
            .cloned()
            .ok_or_else(|| WorkError::Other(format!("no queue for pool {pool}")))?;
        self.queue = Some(queue.clone());
        lock(&self.state).started = true;
        let state = self.state.clone();
        let (queues, pool) = (self.queues.clone(), pool.clone());
        self.runner = Some(tokio::spawn(async move {
            loop {
                let now = Instant::now();
                {
                    let mut s = lock(&state);
                    if s.until.is_some_and(|t| now >= t) {
                        queues.complete(&pool);
                        s.until = None;
                        s.done += 1;
                    }
                    if s.until.is_none() {
                        if s.stopping {
                            break;
                        }
                        s.until = queue.take().map(|d| now + d);
                    }
                }
                tokio::time::sleep(TICK).await;
            }
        }));
        Ok(())
    }

    async fn rotated(&mut self, _registration: &Registration) -> Result<(), WorkError> {
        Ok(())
    }

    async fn status(&mut self) -> WorkStatus {
        let s = lock(&self.state);
        if s.until.is_some() {
            WorkStatus::busy(1, s.done)
        } else {
            WorkStatus::idle(s.done)
        }
    }

    async fn stop(&mut self, grace: Duration) {
        {
            let mut s = lock(&self.state);
            s.stopping = true;
            s.busy_at_stop = s.until.is_some();
        }
        let Some(mut runner) = self.runner.take() else {
            return;
        };
        if tokio::time::timeout(grace, &mut runner).await.is_err() {
            runner.abort();
            let mut s = lock(&self.state);
            if s.until.take().is_some() {
                s.lost += 1;
                if let Some(q) = &self.queue {
                    q.lose();
                }
            }
        }
    }
}

/// The agents of a demo run, one per running VM.
pub struct Agents {
    imds_url: String,
    queues: Arc<Queues>,
    starts: Mutex<HashMap<String, u32>>,
    live: Arc<Mutex<HashSet<String>>>,
    tally: Arc<Mutex<BTreeMap<String, Tally>>>,
    tasks: Mutex<JoinSet<()>>,
    stop: CancellationToken,
    notice_interval: Duration,
}

fn cloud_of(name: &str) -> Option<Cloud> {
    match name {
        "aws" => Some(Cloud::Aws),
        "gcp" => Some(Cloud::Gcp),
        "azure" => Some(Cloud::Azure),
        _ => None,
    }
}

impl Agents {
    /// No agents yet; metadata under `imds_url` (the mock's), tasks from
    /// `queues`.
    pub fn new(imds_url: &str, queues: Arc<Queues>) -> Self {
        Agents {
            imds_url: imds_url.trim_end_matches('/').to_string(),
            queues,
            starts: Mutex::default(),
            live: Arc::default(),
            tally: Arc::default(),
            tasks: Mutex::new(JoinSet::new()),
            stop: CancellationToken::new(),
            notice_interval: skyfleet_agent::metadata::notice::NOTICE_INTERVAL,
        }
    }

    /// The same agents reading their interruption notice every `every`
    /// (a time-scaled mock's notices come sooner than a real cloud's).
    pub fn with_notice_interval(mut self, every: Duration) -> Self {
        self.notice_interval = every;
        self
    }

    /// Starts an agent on each VM of `resources` that is up, is a worker's
    /// and has none running (at most [`MAX_STARTS`] per VM).
    pub fn spawn_new(&self, resources: &[Resource]) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        let mut starts = lock(&self.starts);
        for r in resources
            .iter()
            .filter(|r| mockctl::is_vm(r) && mockctl::is_up(r))
        {
            let (Some(worker), Some(path), Some(cloud_name)) = (
                mockctl::worker_tag(r),
                r["metadata_path"].as_str(),
                r["cloud"].as_str(),
            ) else {
                continue;
            };
            let Some(cloud) = cloud_of(cloud_name) else {
                continue;
            };
            if lock(&self.live).contains(worker) {
                continue;
            }
            let n = starts.entry(worker.to_string()).or_default();
            if *n >= MAX_STARTS {
                continue;
            }
            *n += 1;
            let base = format!("{}{path}", self.imds_url);
            let source = match MetadataSource::for_cloud(cloud, Some(&base)) {
                Ok(s) => s,
                Err(_) => continue,
            };
            lock(&self.live).insert(worker.to_string());
            let run = AgentRun {
                worker: worker.to_string(),
                cloud: cloud_name.to_string(),
                source,
                queues: self.queues.clone(),
                live: self.live.clone(),
                tally: self.tally.clone(),
                stop: self.stop.clone(),
                notice_interval: self.notice_interval,
            };
            tasks.spawn(run.run());
        }
    }

    /// What the agents of `cloud` (`aws`, `gcp`, `azure`) counted so far.
    pub fn tally(&self, cloud: &str) -> Tally {
        lock(&self.tally).get(cloud).copied().unwrap_or_default()
    }

    /// Stops every agent (each stops its work) and waits for them.
    pub async fn stop(&self) {
        self.stop.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        while tasks.join_next().await.is_some() {}
    }
}

/// One agent's run and its bookkeeping.
struct AgentRun {
    worker: String,
    cloud: String,
    source: MetadataSource,
    queues: Arc<Queues>,
    live: Arc<Mutex<HashSet<String>>>,
    tally: Arc<Mutex<BTreeMap<String, Tally>>>,
    stop: CancellationToken,
    notice_interval: Duration,
}

impl AgentRun {
    async fn run(self) {
        let agent = Agent::new(AgentConfig {
            source: Some(self.source.clone()),
            metadata_url: None,
            metadata_timeout: Duration::from_secs(5),
            drain_grace: DRAIN_GRACE,
            retry: RetryPolicy {
                initial: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
                max_attempts: 10,
                max_elapsed: Duration::from_secs(30),
            },
            notice_interval: Some(self.notice_interval),
        });
        let work = SimWork::new(self.queues.clone());
        let state = work.state.clone();
        let outcome = agent
            .run_until(work, self.stop.clone().cancelled_owned())
            .await;
        let s = lock(&state);
        let registered = s.started;
        let mut all = lock(&self.tally);
        let t = all.entry(self.cloud.clone()).or_default();
        t.registered += u64::from(registered);
        t.tasks_completed += s.done;
        t.tasks_lost += s.lost;
        let killed = |t: &mut Tally| {
            if s.busy_at_stop {
                t.busy_killed += 1;
                t.tasks_lost += 1;
                // The VM was going away under the task: it did not finish.
                t.tasks_completed = t.tasks_completed.saturating_sub(1);
            }
        };
        match outcome {
            Ok(Outcome::Drained) => t.drained += 1,
            Ok(Outcome::Terminated) => {
                t.terminated += 1;
                killed(t);
            }
            Ok(Outcome::Shutdown) => {}
            Err(AgentError::Manager(e)) if registered && e.is_unauthorized() => killed(t),
            Err(e) => {
                t.errors += 1;
                tracing::warn!(target: "skyfleet::demo", worker = %self.worker, error = %e, "agent failed");
            }
        }
        drop(all);
        // An agent that never registered may be started again; one that
        // did is done (a worker registers once).
        if !registered {
            lock(&self.live).remove(&self.worker);
        }
    }
}
