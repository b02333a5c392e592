//! The in-memory store, for tests and single-process experiments.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::offerings::{merge, InterruptionCount, OfferingMark};
use super::{
    finished_at, lease_lost, sort_error_groups, Claim, PoolDecision, PoolError, PoolErrorGroup,
    PoolLease, StoreIdentity, WorkerCursor, WorkerFilter, WorkerStore,
};
use crate::clock::to_millis;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Registration, Worker};

/// Worker records in a `HashMap` behind a mutex.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    identity: StoreIdentity,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::created_at(OffsetDateTime::now_utc())
    }
}

#[derive(Debug, Default)]
struct Inner {
    workers: HashMap<String, Worker>,
    errors: Vec<PoolError>,
    /// Pool id -> (owner, expiry, fencing token).
    pool_leases: HashMap<String, (String, OffsetDateTime, i64)>,
    decisions: BTreeMap<String, PoolDecision>,
    registrations: BTreeMap<String, Registration>,
    /// (offering key, class) -> mark.
    marks: BTreeMap<(String, String), OfferingMark>,
    /// Offering key -> interruptions.
    interruptions: BTreeMap<String, InterruptionCount>,
}

impl Inner {
    /// [`WorkerStore::update_worker`] on the locked maps.
    fn update_worker(&mut self, worker: &Worker) -> Result<Worker> {
        let Some(cur) = self.workers.get_mut(worker.id()) else {
            return Err(Error::not_found(format!(
                "worker {} not found",
                worker.id()
            )));
        };
        if cur.version != worker.version {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "worker {} changed: version {} in store, {} in update",
                    worker.id(),
                    cur.version,
                    worker.version
                ),
            ));
        }
        let mut w = worker.clone();
        w.version += 1;
        *cur = w.clone();
        Ok(w)
    }
}

impl MemoryStore {
    /// An empty store, with a new random identity created now.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with a new random identity created at `created_at`
    /// (tests of what depends on the store's age).
    pub fn created_at(created_at: OffsetDateTime) -> Self {
        MemoryStore {
            inner: Mutex::default(),
            identity: StoreIdentity {
                id: uuid::Uuid::new_v4().simple().to_string(),
                created_at,
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation below is a single map operation, so a poisoned lock
        // still guards consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WorkerStore for MemoryStore {
    async fn create_worker(&self, worker: &Worker) -> Result<Worker> {
        let mut g = self.lock();
        if g.workers.contains_key(worker.id()) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("worker {} already exists", worker.id()),
            ));
        }
        let mut w = worker.clone();
        w.version = 1;
        g.workers.insert(w.id().to_string(), w.clone());
        Ok(w)
    }

    async fn get_worker(&self, worker_id: &str) -> Result<Option<Worker>> {
        Ok(self.lock().workers.get(worker_id).cloned())
    }

    async fn update_worker(&self, worker: &Worker) -> Result<Worker> {
        self.lock().update_worker(worker)
    }

    async fn update_workers(&self, workers: &[Worker]) -> Result<Vec<Result<Worker>>> {
        // Under one lock: no other call sees half the batch.
        let mut g = self.lock();
        Ok(workers.iter().map(|w| g.update_worker(w)).collect())
    }

    async fn list_workers(&self, filter: &WorkerFilter) -> Result<Vec<Worker>> {
        let g = self.lock();
        let mut v: Vec<Worker> = g
            .workers
            .values()
            .filter(|w| filter.matches(w))
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            (a.created_at, a.id())
                .partial_cmp(&(b.created_at, b.id()))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        Ok(v)
    }

    async fn list_workers_page(
        &self,
        filter: &WorkerFilter,
        after: Option<&WorkerCursor>,
        limit: usize,
    ) -> Result<Vec<Worker>> {
        let g = self.lock();
        let mut v: Vec<&Worker> = g
            .workers
            .values()
            .filter(|w| filter.matches(w) && after.is_none_or(|c| c.precedes(w)))
            .collect();
        v.sort_by(|a, b| (to_millis(a.created_at), a.id()).cmp(&(to_millis(b.created_at), b.id())));
        Ok(v.into_iter().take(limit).cloned().collect())
    }

    async fn delete_finished_workers(&self, before: OffsetDateTime, limit: usize) -> Result<u64> {
        let mut g = self.lock();
        let old: Vec<String> = g
            .workers
            .values()
            .filter(|w| finished_at(w).is_some_and(|t| t < before))
            .map(|w| w.id().to_string())
            .take(limit)
            .collect();
        for id in &old {
            g.workers.remove(id);
            g.registrations.remove(id);
        }
        Ok(old.len() as u64)
    }

    async fn claim_due(&self, claim: &Claim, now: OffsetDateTime) -> Result<Vec<Worker>> {
        let mut g = self.lock();
        let mut due: Vec<&mut Worker> = g
            .workers
            .values_mut()
            .filter(|w| {
                w.spec.provider_id == claim.provider_id
                    && claim.partition.matches(w)
                    && !w.phase.is_final()
                    && w.next_check_at <= now
                    && (w.lease_owner.is_none() || w.lease_expires_at.is_none_or(|t| t <= now))
            })
            .collect();
        due.sort_by_key(|w| w.next_check_at);
        due.truncate(claim.limit);
        Ok(due
            .into_iter()
            .map(|w| {
                w.lease_owner = Some(claim.owner.clone());
                w.lease_expires_at = Some(now + claim.lease);
                w.version += 1;
                w.clone()
            })
            .collect())
    }

    async fn partitions(&self, provider_id: &str) -> Result<Vec<Option<String>>> {
        let g = self.lock();
        let set: std::collections::BTreeSet<Option<String>> = g
            .workers
            .values()
            .filter(|w| w.spec.provider_id == provider_id && !w.phase.is_final())
            .map(|w| w.partition.clone())
            .collect();
        Ok(set.into_iter().collect())
    }

    async fn release(&self, worker_id: &str, owner: &str) -> Result<()> {
        let mut g = self.lock();
        if let Some(w) = g.workers.get_mut(worker_id) {
            if w.lease_owner.as_deref() == Some(owner) {
                w.lease_owner = None;
                w.lease_expires_at = None;
                w.version += 1;
            }
        }
        Ok(())
    }

    async fn release_all(&self, owner: &str) -> Result<u64> {
        let mut g = self.lock();
        let mut n = 0;
        for w in g.workers.values_mut() {
            if w.lease_owner.as_deref() == Some(owner) {
                w.lease_owner = None;
                w.lease_expires_at = None;
                w.version += 1;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_worker(&self, worker_id: &str) -> Result<()> {
        let mut g = self.lock();
        g.workers.remove(worker_id);
        g.registrations.remove(worker_id);
        Ok(())
    }

    async fn acquire_pool_lease(
        &self,
        pool_id: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: std::time::Duration,
    ) -> Result<Option<PoolLease>> {
        let mut g = self.lock();
        let held = g.pool_leases.get(pool_id);
        if held.is_some_and(|(o, until, _)| o != owner && *until > now) {
            return Ok(None);
        }
        let token = held.map_or(0, |(_, _, t)| *t) + 1;
        g.pool_leases
            .insert(pool_id.to_string(), (owner.to_string(), now + lease, token));
        Ok(Some(PoolLease {
            pool_id: pool_id.to_string(),
            owner: owner.to_string(),
            token,
        }))
    }

    async fn create_workers(
        &self,
        lease: &PoolLease,
        workers: &[Worker],
        _worker_lease: std::time::Duration,
    ) -> Result<Vec<Worker>> {
        let mut g = self.lock();
        let current = g.pool_leases.get(&lease.pool_id);
        if !current.is_some_and(|(o, _, t)| *o == lease.owner && *t == lease.token) {
            return Err(lease_lost(lease));
        }
        let mut seen = std::collections::HashSet::new();
        for w in workers {
            if g.workers.contains_key(w.id()) || !seen.insert(w.id()) {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!("worker {} already exists", w.id()),
                ));
            }
        }
        let mut out = Vec::with_capacity(workers.len());
        for w in workers {
            let mut w = w.clone();
            w.version = 1;
            g.workers.insert(w.id().to_string(), w.clone());
            out.push(w);
        }
        Ok(out)
    }

    async fn record_pool_error(&self, error: &PoolError) -> Result<()> {
        self.lock().errors.push(error.clone());
        Ok(())
    }

    async fn prune_pool_errors(&self, before: OffsetDateTime, keep_per_pool: usize) -> Result<u64> {
        let mut g = self.lock();
        let was = g.errors.len();
        // Newest last: count each pool's errors from the end.
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut keep = vec![false; was];
        for (i, e) in g.errors.iter().enumerate().rev() {
            let n = seen.entry(e.pool_id.clone()).or_default();
            *n += 1;
            keep[i] = *n <= keep_per_pool && e.reported_at >= before;
        }
        let mut i = 0;
        g.errors.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        Ok((was - g.errors.len()) as u64)
    }

    async fn list_pool_errors(&self, pool_id: &str, limit: usize) -> Result<Vec<PoolError>> {
        let g = self.lock();
        Ok(g.errors
            .iter()
            .rev()
            .filter(|e| e.pool_id == pool_id)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn pool_error_groups(&self, since: OffsetDateTime) -> Result<Vec<PoolErrorGroup>> {
        let g = self.lock();
        let mut groups: BTreeMap<(String, String, Option<String>), PoolErrorGroup> =
            BTreeMap::new();
        for e in g.errors.iter().filter(|e| e.reported_at >= since) {
            let key = (
                e.pool_id.clone(),
                e.kind.name().to_string(),
                e.launch_config_id.clone(),
            );
            let group = groups.entry(key).or_insert_with(|| PoolErrorGroup {
                pool_id: e.pool_id.clone(),
                kind: e.kind.name().to_string(),
                launch_config_id: e.launch_config_id.clone(),
                count: 0,
                last_at: e.reported_at,
            });
            group.count += 1;
            group.last_at = group.last_at.max(e.reported_at);
        }
        let mut v: Vec<PoolErrorGroup> = groups.into_values().collect();
        sort_error_groups(&mut v);
        Ok(v)
    }

    async fn put_pool_decision(&self, decision: &PoolDecision) -> Result<()> {
        self.lock()
            .decisions
            .insert(decision.pool_id.clone(), decision.clone());
        Ok(())
    }

    async fn list_pool_decisions(&self) -> Result<Vec<PoolDecision>> {
        Ok(self.lock().decisions.values().cloned().collect())
    }

    async fn create_registration(&self, registration: &Registration) -> Result<Registration> {
        let mut g = self.lock();
        if g.registrations.contains_key(&registration.worker_id) {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("worker {} registered already", registration.worker_id),
            ));
        }
        let mut r = registration.clone();
        r.version = 1;
        g.registrations.insert(r.worker_id.clone(), r.clone());
        Ok(r)
    }

    async fn get_registration(&self, worker_id: &str) -> Result<Option<Registration>> {
        Ok(self.lock().registrations.get(worker_id).cloned())
    }

    async fn update_registration(&self, registration: &Registration) -> Result<Registration> {
        let mut g = self.lock();
        let Some(cur) = g.registrations.get_mut(&registration.worker_id) else {
            return Err(Error::not_found(format!(
                "registration of worker {} not found",
                registration.worker_id
            )));
        };
        if cur.version != registration.version {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "registration of worker {} changed: version {} in store, {} in update",
                    registration.worker_id, cur.version, registration.version
                ),
            ));
        }
        let mut r = registration.clone();
        r.version += 1;
        *cur = r.clone();
        Ok(r)
    }

    async fn list_registrations(&self, pool_id: &str) -> Result<Vec<Registration>> {
        Ok(self
            .lock()
            .registrations
            .values()
            .filter(|r| r.pool_id == pool_id)
            .cloned()
            .collect())
    }

    async fn registrations_of(&self, worker_ids: &[&str]) -> Result<Vec<Registration>> {
        let g = self.lock();
        let mut ids: Vec<&str> = worker_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids
            .into_iter()
            .filter_map(|id| g.registrations.get(id).cloned())
            .collect())
    }

    async fn store_identity(&self) -> Result<StoreIdentity> {
        Ok(self.identity.clone())
    }

    async fn mark_offering(&self, mark: &OfferingMark) -> Result<OfferingMark> {
        mark.validate()?;
        let mut g = self.lock();
        let key = (mark.key(), mark.class.as_str().to_string());
        let stored = match g.marks.get(&key) {
            Some(old) => merge(old, mark),
            None => mark.clone(),
        };
        g.marks.insert(key, stored.clone());
        Ok(stored)
    }

    async fn live_offering_marks(&self, now: OffsetDateTime) -> Result<Vec<OfferingMark>> {
        Ok(self
            .lock()
            .marks
            .values()
            .filter(|m| m.is_live(now))
            .cloned()
            .collect())
    }

    async fn delete_expired_offering_marks(&self, now: OffsetDateTime) -> Result<u64> {
        let mut g = self.lock();
        let before = g.marks.len();
        g.marks.retain(|_, m| m.is_live(now));
        Ok((before - g.marks.len()) as u64)
    }

    async fn record_interruption(
        &self,
        offering: &crate::offering::Offering,
        at: OffsetDateTime,
    ) -> Result<InterruptionCount> {
        let mut g = self.lock();
        let c = g
            .interruptions
            .entry(offering.key())
            .or_insert_with(|| InterruptionCount {
                offering: offering.clone(),
                count: 0,
                last_at: at,
            });
        c.count += 1;
        c.last_at = c.last_at.max(at);
        Ok(c.clone())
    }

    async fn interruption_counts(&self) -> Result<Vec<InterruptionCount>> {
        Ok(self.lock().interruptions.values().cloned().collect())
    }
}
