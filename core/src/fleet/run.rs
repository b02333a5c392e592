//! [`Fleet::run`]: the fleet's long-running tasks (a provisioner per pool,
//! a scanner supervisor per provider, the orphan sweeper), each supervised
//! (restarted after a panic), and a prompt, bounded stop that releases this
//! replica's leases.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::supervise_task::{supervise, RestartPolicy};
use super::{events, provisioner, retention, scanner, sweeper, Fleet, Shared};
use crate::error::Result;
use crate::model::PoolConfig;

/// How long [`Fleet::run`] waits for its tasks to stop after cancel before
/// abandoning them and releasing the leases.
const STOP_TASKS_WITHIN: Duration = Duration::from_secs(3);

impl Fleet {
    /// Runs one provisioner task per pool, the scanners (one task per
    /// provider and partition) and the orphan sweeper until `cancel` fires;
    /// then stops them and releases this replica's leases so other replicas
    /// take over at once.
    ///
    /// Pools are provisioned by separate tasks, and a pool's first steps run
    /// beside its next passes rather than inside them, so a pool whose cloud
    /// hangs delays neither its own next pass nor any other pool.
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        super::startup::register_metrics(&self.shared);
        let mut tasks = JoinSet::new();
        let policy = RestartPolicy::default();
        for provider in self.shared.providers.values() {
            let (s, p, c) = (self.shared.clone(), provider.clone(), cancel.clone());
            let task = format!("scanners/{}", provider.id());
            tasks.spawn(supervise(task, policy, cancel.clone(), move || {
                scanner::run(s.clone(), p.clone(), c.clone())
            }));
        }
        for pool in self.shared.pools.clone() {
            let (s, c) = (self.shared.clone(), cancel.clone());
            let task = format!("provisioner/{}", pool.pool_id);
            tasks.spawn(supervise(task, policy, cancel.clone(), move || {
                provision_loop(s.clone(), pool.clone(), c.clone())
            }));
        }
        let (s, c) = (self.clone(), cancel.clone());
        tasks.spawn(supervise(
            "sweeper".into(),
            policy,
            cancel.clone(),
            move || sweep_loop(s.clone(), c.clone()),
        ));
        cancel.cancelled().await;
        // Every loop stops at cancel (in-flight passes and steps are
        // dropped); a task stuck in code that never yields is abandoned
        // after the deadline so the leases are released anyway.
        let joined = tokio::time::timeout(STOP_TASKS_WITHIN, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::error!(
                target: events::TARGET, event = "stop.tasks_abandoned", tasks = tasks.len(),
                "fleet tasks did not stop within {} s: aborting them",
                STOP_TASKS_WITHIN.as_secs()
            );
            tasks.abort_all();
        }
        let released = self.release_leases().await?;
        tracing::info!(target: events::TARGET, event = "stopped", released, "fleet stopped");
        Ok(())
    }

    /// Releases this replica's worker leases and its pools' provisioning
    /// leases, so other replicas take both over at once. Answers how many
    /// worker leases were released.
    async fn release_leases(&self) -> Result<u64> {
        let released = self.shared.store.release_all(&self.shared.owner).await?;
        let now = self.shared.clock.now();
        for pool in &self.shared.pools {
            // A zero-length renewal: a lease we hold now expires at `now`,
            // so the next replica's acquire takes it; a lease another
            // replica holds is left alone (the store refuses it).
            if let Err(e) = self
                .shared
                .store
                .acquire_pool_lease(&pool.pool_id, &self.shared.owner, now, Duration::ZERO)
                .await
            {
                tracing::warn!(
                    target: events::TARGET, pool = %pool.pool_id, error = %e,
                    "could not release the pool's provisioning lease: it expires on its own"
                );
            }
        }
        Ok(released)
    }
}

/// A pool's provisioner: a pass every `provision_interval`, or at once when
/// woken (a capacity error or an interruption in the pool), until `cancel`.
async fn provision_loop(s: Arc<Shared>, pool: PoolConfig, c: CancellationToken) {
    let mut first_steps = JoinSet::new();
    loop {
        while first_steps.try_join_next().is_some() {}
        let pass = provisioner::provision_pass(&s, &pool, &mut first_steps);
        let result = tokio::select! {
            r = pass => r,
            // A pass whose cloud or store call hangs must not hold up shutdown.
            _ = c.cancelled() => break,
        };
        if let Err(e) = result {
            if let Some(held_back) = s.warnings.admit(&format!("provision/{}", pool.pool_id)) {
                tracing::warn!(
                    target: events::TARGET, event = "pool.pass_failed",
                    pool = %pool.pool_id, error = %e, held_back,
                    "provisioning pass failed (one line per pool per minute)"
                );
            }
        }
        let woken = async {
            match s.pool_wakes.get(&pool.pool_id) {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(s.config.provision_interval) => {}
            // A capacity error or an interruption: the replacement now.
            _ = woken => {}
            _ = c.cancelled() => break,
        }
    }
    first_steps.abort_all();
    while first_steps.join_next().await.is_some() {}
}

/// The orphan sweeper, then retention (finished workers and old pool
/// errors pruned): every `sweep_interval` until `cancel`.
async fn sweep_loop(s: Fleet, c: CancellationToken) {
    let mut memory = sweeper::Memory::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(s.shared.config.sweep_interval) => {}
            _ = c.cancelled() => break,
        }
        tokio::select! {
            r = sweeper::sweep(&s.shared, &mut memory, sweeper::SweepOptions::default()) => {
                if let Err(e) = r {
                    tracing::warn!(target: events::TARGET, error = %e, "orphan sweep failed");
                }
            }
            _ = c.cancelled() => break,
        }
        tokio::select! {
            r = retention::prune(&s.shared) => {
                if let Err(e) = r {
                    tracing::warn!(target: events::TARGET, error = %e, "retention pass failed");
                }
            }
            _ = c.cancelled() => break,
        }
    }
}
