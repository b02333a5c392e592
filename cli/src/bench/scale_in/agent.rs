//! The simulated agents of `bench scale-in`: one task per running worker,
//! doing what `skyfleet-agent` does through the fleet's worker API calls:
//! read its proof from the instance's metadata (IMDSv2), register,
//! heartbeat, take tasks from the queue only while not told to drain,
//! confirm `drained` once idle, and stop when told to terminate. Each
//! counts what matters: a terminate (or refusal) while it runs a task is a
//! busy worker killed and a task lost; and each agent told to drain while
//! idle records how long it had been idle by then.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skyfleet_aws::AwsState;
use skyfleet_core::fleet::Fleet;
use skyfleet_core::protocol::{Action, Activity, HeartbeatRequest, RegisterRequest};
use skyfleet_core::{ErrorKind, IdentityProof, Worker};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::queue::Queue;

/// How often an agent looks at its task and the queue.
const TICK: Duration = Duration::from_millis(50);
/// Timeout of one metadata request.
const IMDS_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agents counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tally {
    /// Agents that registered.
    pub registered: u64,
    /// Agents that confirmed a drain.
    pub drained: u64,
    /// Agents told to terminate (or refused) while running a task.
    pub busy_killed: u64,
    /// Tasks those agents were running.
    pub tasks_lost: u64,
    /// Calls that failed otherwise (metadata, registration, heartbeats).
    pub errors: u64,
}

#[derive(Clone, Copy)]
struct View {
    busy: bool,
    draining: bool,
}

struct Inner {
    fleet: Fleet,
    queue: Arc<Queue>,
    imds: String,
    pool: String,
    http: reqwest::Client,
    spawned: Mutex<HashSet<String>>,
    views: Mutex<HashMap<String, View>>,
    tally: Mutex<Tally>,
    /// Seconds from turning idle to hearing `drain`, per agent drained idle.
    idle_to_drain: Mutex<Vec<f64>>,
    tasks: Mutex<JoinSet<()>>,
    stop: CancellationToken,
}

/// The agents of a run.
pub struct Agents {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a single assignment.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Agents {
    /// No agents yet; metadata at `imds` (the mock's metadata URL).
    pub fn new(fleet: Fleet, queue: Arc<Queue>, imds: String, pool: &str) -> Self {
        Agents {
            inner: Arc::new(Inner {
                fleet,
                queue,
                imds,
                pool: pool.to_string(),
                http: reqwest::Client::builder()
                    .timeout(IMDS_TIMEOUT)
                    .build()
                    .unwrap_or_default(),
                spawned: Mutex::new(HashSet::new()),
                views: Mutex::new(HashMap::new()),
                tally: Mutex::new(Tally::default()),
                idle_to_drain: Mutex::new(Vec::new()),
                tasks: Mutex::new(JoinSet::new()),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// Starts an agent on each running worker that has none.
    pub fn spawn_new(&self, running: &[Worker]) {
        let mut spawned = lock(&self.inner.spawned);
        let mut tasks = lock(&self.inner.tasks);
        while tasks.try_join_next().is_some() {}
        for w in running {
            let Some(instance) = AwsState::of(w).ok().flatten().and_then(|s| s.instance_id) else {
                continue;
            };
            if spawned.insert(w.id().to_string()) {
                let (inner, id) = (self.inner.clone(), w.id().to_string());
                tasks.spawn(async move { agent(inner, id, instance).await });
            }
        }
    }

    /// Registered agents idle and not draining, and registered agents.
    pub fn idle_and_alive(&self) -> (u64, u64) {
        let views = lock(&self.inner.views);
        let idle = views.values().filter(|v| !v.busy && !v.draining).count();
        (idle as u64, views.len() as u64)
    }

    /// Stops every agent and waits for them.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        while tasks.join_next().await.is_some() {}
    }

    /// The counts.
    pub fn tally(&self) -> Tally {
        *lock(&self.inner.tally)
    }

    /// Seconds each agent told to drain while idle had been idle by then.
    pub fn idle_to_drain(&self) -> Vec<f64> {
        lock(&self.inner.idle_to_drain).clone()
    }
}

/// The instance's identity document and signature, through IMDSv2.
async fn proof(http: &reqwest::Client, base: &str) -> Result<IdentityProof, reqwest::Error> {
    let token = http
        .put(format!("{base}/latest/api/token"))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let get = |path: &str| {
        http.get(format!("{base}/latest/dynamic/instance-identity/{path}"))
            .header("X-aws-ec2-metadata-token", &token)
            .send()
    };
    let document = get("document").await?.error_for_status()?.text().await?;
    let signature = get("signature").await?.error_for_status()?.text().await?;
    Ok(IdentityProof::AwsDocument {
        document,
        signature,
    })
}

async fn agent(inner: Arc<Inner>, worker_id: String, instance: String) {
    let count = |f: &dyn Fn(&mut Tally)| f(&mut lock(&inner.tally));
    let base = format!("{}/_imds/aws/{instance}", inner.imds);
    let retry_later = || {
        lock(&inner.spawned).remove(&worker_id);
    };
    let Ok(proof) = proof(&inner.http, &base).await else {
        count(&|t| t.errors += 1);
        return retry_later();
    };
    let reg = match inner
        .fleet
        .register(RegisterRequest {
            worker_pool_id: inner.pool.clone(),
            worker_id: worker_id.clone(),
            proof,
        })
        .await
    {
        Ok(r) => r,
        Err(e) => {
            count(&|t| t.errors += 1);
            if !matches!(e.kind(), ErrorKind::IdentityRejected { .. }) {
                retry_later();
            }
            return;
        }
    };
    count(&|t| t.registered += 1);
    let interval = Duration::from_secs(reg.heartbeat_interval_secs.max(1));
    let (mut busy_until, mut draining, mut done) = (None::<Instant>, false, 0u64);
    let mut next_beat = Instant::now();
    // What the last heartbeat said: a change is reported at once, as a
    // real agent does, so the manager hears "idle" without waiting.
    let mut reported = None::<Activity>;
    // Since when it has been idle (and not draining).
    let mut idle_since = None::<Instant>;
    let killed = |busy: bool| {
        if busy {
            inner.queue.lose();
            count(&|t| {
                t.busy_killed += 1;
                t.tasks_lost += 1;
            });
        }
    };
    loop {
        let now = Instant::now();
        if busy_until.is_some_and(|t| now >= t) {
            inner.queue.complete();
            busy_until = None;
            done += 1;
        }
        if busy_until.is_none() && !draining {
            busy_until = inner.queue.take().map(|d| now + d);
        }
        let busy = busy_until.is_some();
        if busy || draining {
            idle_since = None;
        } else {
            idle_since.get_or_insert(now);
        }
        lock(&inner.views).insert(worker_id.clone(), View { busy, draining });
        let state = match (draining, busy) {
            (true, _) => Activity::Draining,
            (false, true) => Activity::Busy,
            (false, false) => Activity::Idle,
        };
        if now >= next_beat || reported != Some(state) {
            next_beat = now + interval;
            reported = Some(state);
            let report = HeartbeatRequest {
                worker_id: worker_id.clone(),
                state,
                running: u32::from(busy),
                capacity_used: u32::from(busy),
                tasks_completed: done,
                interruption: None,
            };
            match inner.fleet.heartbeat(&reg.secret, report).await {
                Ok(hb) => match hb.action {
                    Action::Drain => {
                        if let Some(t) = idle_since.filter(|_| !draining) {
                            lock(&inner.idle_to_drain).push(t.elapsed().as_secs_f64());
                        }
                        draining = true;
                    }
                    Action::Terminate => {
                        killed(busy);
                        break;
                    }
                    Action::Continue => {}
                },
                Err(e) if matches!(e.kind(), ErrorKind::IdentityRejected { .. }) => {
                    killed(busy);
                    break;
                }
                Err(_) => count(&|t| t.errors += 1),
            }
        }
        if draining && busy_until.is_none() {
            match inner.fleet.drained(&worker_id, &reg.secret).await {
                Ok(_) => {
                    count(&|t| t.drained += 1);
                    break;
                }
                Err(_) => count(&|t| t.errors += 1),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = inner.stop.cancelled() => break,
        }
    }
    lock(&inner.views).remove(&worker_id);
}
