//! Worker stores: where worker records, leases and pool errors live, and
//! the offering cache every replica shares ([`offerings`]: offerings
//! marked unavailable until some time, interruptions per offering).
//!
//! Three implementations share one contract, checked by one conformance
//! suite (`store::conformance`, feature `testing`):
//! - [`MemoryStore`]: for tests;
//! - [`SqliteStore`]: the embedded default, one file, WAL mode;
//! - `PostgresStore` (feature `postgres`): several replicas on one database,
//!   claiming work with `FOR UPDATE SKIP LOCKED` so no two claim the same worker.
//!
//! Concurrency has two guards. A **lease** (owner and expiry) says which
//! runtime instance is stepping a worker; a replica that dies loses its
//! leases when they expire. A **version** makes every update conditional on
//! the record not having changed since it was read (optimistic concurrency);
//! a stale update fails with [`ErrorKind::Conflict`].
//!
//! Lease times are the **store's** clock where it has one of its own
//! ([`StoreClock`]): `PostgresStore` sets and compares lease expiry with
//! the database server's clock, so a replica whose clock is skewed by
//! minutes can neither steal a live lease nor hold one past its term.
//! SQLite and memory stores live in one process (or on one machine), whose
//! clock is the callers'. A pool's provisioning lease carries a fencing
//! token ([`PoolLease::token`]), re-checked by [`WorkerStore::create_workers`]
//! in the transaction that inserts the pass's workers: a pass that outlived
//! its lease inserts nothing ([`ErrorKind::LeaseLost`]).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{ErrorKind, Result};

use crate::fleet::{Capacity, Estimate, PoolDemand};
use crate::model::{Phase, Registration, Worker};

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
mod memory;
mod migrations;
pub mod offerings;
#[cfg(feature = "postgres")]
mod postgres;
mod sql;
mod sqlite;
#[cfg(test)]
pub(crate) mod test_counters;

pub use memory::MemoryStore;
pub use offerings::{InterruptionCount, OfferingMark};
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
pub use sql::OPS as SQL_OPS;
pub use sqlite::SqliteStore;

/// Which workers to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerFilter {
    /// Only this pool.
    pub pool_id: Option<String>,
    /// Only this provider.
    pub provider_id: Option<String>,
    /// Only these phases (empty: all).
    pub phases: Vec<Phase>,
}

impl WorkerFilter {
    /// Workers of one pool.
    pub fn pool(pool_id: impl Into<String>) -> Self {
        WorkerFilter {
            pool_id: Some(pool_id.into()),
            ..Default::default()
        }
    }

    /// Restricts to `phases`.
    pub fn with_phases(mut self, phases: &[Phase]) -> Self {
        self.phases = phases.to_vec();
        self
    }

    /// Whether `w` passes the filter.
    pub fn matches(&self, w: &Worker) -> bool {
        self.pool_id.as_ref().is_none_or(|p| &w.spec.pool_id == p)
            && self
                .provider_id
                .as_ref()
                .is_none_or(|p| &w.spec.provider_id == p)
            && (self.phases.is_empty() || self.phases.contains(&w.phase))
    }
}

/// Where a page of [`WorkerStore::list_workers_page`] starts: just after
/// this worker in listing order (creation time in whole milliseconds, as
/// stores keep it, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerCursor {
    /// The worker's creation time, in Unix milliseconds.
    pub created_at_ms: i64,
    /// The worker's id.
    pub worker_id: String,
}

impl WorkerCursor {
    /// The cursor just after `w` (the last worker of a page).
    pub fn after(w: &Worker) -> Self {
        WorkerCursor {
            created_at_ms: crate::clock::to_millis(w.created_at),
            worker_id: w.id().to_string(),
        }
    }

    /// Whether `w` comes after the cursor in listing order.
    pub fn precedes(&self, w: &Worker) -> bool {
        (crate::clock::to_millis(w.created_at), w.id())
            > (self.created_at_ms, self.worker_id.as_str())
    }
}

/// When a final (stopped or failed) worker finished, for retention: its
/// last transition, else its creation.
pub fn finished_at(w: &Worker) -> Option<OffsetDateTime> {
    w.phase
        .is_final()
        .then(|| w.transitioned_at.unwrap_or(w.created_at))
}

/// Which scheduling partitions a [`Claim`] takes workers from.
///
/// The fleet runtime runs one scanner per (provider, partition) and each
/// claims with [`PartitionFilter::Only`], so a region whose calls hang holds
/// only its own workers' leases and step slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PartitionFilter {
    /// Workers of every partition.
    #[default]
    Any,
    /// Only workers whose [`Worker::partition`] equals this (`None`: workers
    /// without a partition).
    Only(Option<String>),
}

impl PartitionFilter {
    /// Whether `w` passes the filter.
    pub fn matches(&self, w: &Worker) -> bool {
        match self {
            PartitionFilter::Any => true,
            PartitionFilter::Only(p) => &w.partition == p,
        }
    }
}

/// A claim of due workers for one runtime instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The provider whose workers to claim.
    pub provider_id: String,
    /// Which of the provider's partitions to claim from.
    pub partition: PartitionFilter,
    /// The lease owner (a runtime instance id).
    pub owner: String,
    /// How long the lease lasts.
    pub lease: Duration,
    /// At most this many workers.
    pub limit: usize,
}

/// Whose clock a store's lease times are: when leases expire and when
/// "now" is, for claims and pool leases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreClock {
    /// The database server's (`clock_timestamp()` in PostgreSQL): one clock
    /// for every replica, whatever their own clocks say. The default.
    #[default]
    Database,
    /// The `now` each caller passes, from its [`Clock`](crate::clock::Clock).
    /// For tests that simulate time, and stores used by one process; never
    /// for replicas whose clocks may differ.
    Caller,
}

/// A pool's provisioning lease as held by one owner: the fencing token of
/// this acquisition. Writes made under the lease
/// ([`WorkerStore::create_workers`]) are refused once another acquisition
/// has bumped the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLease {
    /// The pool.
    pub pool_id: String,
    /// The holder (a runtime instance id).
    pub owner: String,
    /// Bumped by every acquisition (takeover or renewal), so only the
    /// latest acquisition's writes are accepted.
    pub token: i64,
}

/// An error reported for a pool, like Taskcluster's worker pool errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolError {
    /// The pool.
    pub pool_id: String,
    /// The error kind (stored by its stable name).
    pub kind: ErrorKind,
    /// A short title.
    pub title: String,
    /// The full message.
    pub message: String,
    /// The launch config involved, if any.
    #[serde(default)]
    pub launch_config_id: Option<String>,
    /// When it was reported.
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: OffsetDateTime,
}

/// Pool errors of one pool, kind and launch config reported since some
/// time: what `skyfleet errors` and `skyfleet status` count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolErrorGroup {
    /// The pool.
    pub pool_id: String,
    /// The error kind's stable name.
    pub kind: String,
    /// The launch config involved, if any.
    pub launch_config_id: Option<String>,
    /// How many.
    pub count: u64,
    /// When the latest was reported.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

/// A provisioner's latest decision for a pool: its bounds, the demand and
/// capacity it saw and the estimator's answer. Written at every
/// provisioning pass by the replica holding the pool, so a separate process
/// (`skyfleet status`) can show a pool's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolDecision {
    /// The pool.
    pub pool_id: String,
    /// Its provider.
    pub provider_id: String,
    /// Its minimum capacity.
    pub min_capacity: u64,
    /// Its maximum capacity.
    pub max_capacity: u64,
    /// The demand seen.
    pub demand: PoolDemand,
    /// The capacity counted.
    pub have: Capacity,
    /// The estimator's answer (`desired`, `target`, `idle`, ...).
    pub estimate: Estimate,
    /// Workers created by the pass.
    pub created: u64,
    /// Workers marked for removal by the pass.
    pub removed: u64,
    /// The replica that decided.
    pub owner: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub decided_at: OffsetDateTime,
    /// The offerings of the pool's launch configs (so `skyfleet status`
    /// can show which of them are marked unavailable). Empty in decisions
    /// written before offerings existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offerings: Vec<crate::offering::Offering>,
}

/// Which store this is: a random id and the time the store was created,
/// written once when the store is first created (SQL stores: by the
/// migration adding them; [`MemoryStore`]: at construction) and never
/// changed after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// The store's random id (32 hex digits).
    pub id: String,
    /// When the store was created (or, for a database older than store
    /// identities, upgraded).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where worker records live.
///
/// All methods are cancel-safe at statement granularity: a cancelled call
/// either applied its single statement or did not.
#[async_trait]
pub trait WorkerStore: Send + Sync + std::fmt::Debug {
    /// Inserts a new worker. Fails with `AlreadyExists` if the id is taken.
    /// The stored version is 1; the returned record carries it.
    async fn create_worker(&self, worker: &Worker) -> Result<Worker>;

    /// The worker with this id, if any.
    async fn get_worker(&self, worker_id: &str) -> Result<Option<Worker>>;

    /// Replaces a worker if its stored version equals `worker.version`; the
    /// returned record has the new version. `Conflict` if the version moved,
    /// `NotFound` if the worker is gone. Lease fields are written as given.
    async fn update_worker(&self, worker: &Worker) -> Result<Worker>;

    /// Replaces several workers, each conditional on its own version
    /// exactly like [`update_worker`](Self::update_worker) (version + 1 on
    /// success; lease fields written as given), in as few transactions as
    /// the store can (SQL stores: one per 500 workers).
    ///
    /// One answer per worker, in `workers`' order: `Ok` with the stored
    /// record, `Conflict` if its version moved, `NotFound` if it is gone;
    /// one worker's conflict does not stop the others. The outer `Err` only
    /// for a store failure that wrote nothing (a transaction that could not
    /// begin or commit); should a later transaction of a large batch fail,
    /// the earlier ones stay written and its workers get the error each.
    /// An empty batch answers an empty list. A cancelled call keeps the
    /// transactions it committed and rolls back the one in progress.
    ///
    /// The default sends each worker's [`update_worker`](Self::update_worker)
    /// in turn (a failure is that worker's answer).
    async fn update_workers(&self, workers: &[Worker]) -> Result<Vec<Result<Worker>>> {
        let mut out = Vec::with_capacity(workers.len());
        for w in workers {
            out.push(self.update_worker(w).await);
        }
        Ok(out)
    }

    /// Workers passing `filter`, oldest first.
    async fn list_workers(&self, filter: &WorkerFilter) -> Result<Vec<Worker>>;

    /// One page of the workers passing `filter`: at most `limit`, oldest
    /// first (creation time in milliseconds, then id), starting just after
    /// `after` (`None`: the first page). Keyset paging: a listing of any
    /// size holds one page at a time, and workers created or deleted
    /// meanwhile neither shift nor repeat the rest.
    async fn list_workers_page(
        &self,
        filter: &WorkerFilter,
        after: Option<&WorkerCursor>,
        limit: usize,
    ) -> Result<Vec<Worker>>;

    /// Deletes up to `limit` final (stopped or failed) workers that
    /// finished ([`finished_at`]) before `before`, with their
    /// registrations; returns how many. The store's retention.
    async fn delete_finished_workers(&self, before: OffsetDateTime, limit: usize) -> Result<u64>;

    /// Leases up to `claim.limit` workers of `claim.provider_id` (and of
    /// `claim.partition`) that are due
    /// (`next_check_at <= now`), not in a final phase, and not leased (or
    /// whose lease expired), earliest due first. Each claimed record's
    /// version is bumped and returned with the lease set.
    ///
    /// A store on [`StoreClock::Database`] takes lease expiry and its
    /// comparison from the database's clock, not `now` (which still decides
    /// what is due: `next_check_at` is written by the callers' clocks).
    async fn claim_due(&self, claim: &Claim, now: OffsetDateTime) -> Result<Vec<Worker>>;

    /// The distinct partitions of `provider_id`'s workers that are not in a
    /// final phase (`None` for workers without one), sorted. The runtime
    /// starts a scanner for each and retires scanners whose partition is gone.
    async fn partitions(&self, provider_id: &str) -> Result<Vec<Option<String>>>;

    /// Drops `owner`'s lease on a worker (no-op if not held by `owner`).
    async fn release(&self, worker_id: &str, owner: &str) -> Result<()>;

    /// Drops every lease `owner` holds (clean shutdown).
    async fn release_all(&self, owner: &str) -> Result<u64>;

    /// Deletes a worker record and its registration (expiry of stopped
    /// workers).
    async fn delete_worker(&self, worker_id: &str) -> Result<()>;

    /// Takes or renews the provisioning lease of a pool for `owner` until
    /// `now + lease` (the database's now on [`StoreClock::Database`]).
    /// `Some` (with a new fencing token) if `owner` holds it afterwards;
    /// `None` if another owner holds an unexpired lease. Only the holder
    /// provisions a pool, so replicas sharing a database never
    /// double-provision.
    async fn acquire_pool_lease(
        &self,
        pool_id: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<PoolLease>>;

    /// Inserts a provisioning pass's new workers, all or none, in one
    /// transaction that first checks `lease` is still the pool's latest
    /// acquisition (same owner and token): [`ErrorKind::LeaseLost`], with
    /// nothing inserted, once another acquisition happened. Each worker's
    /// version is 1; a worker created leased (`lease_owner` set) has its
    /// lease expire `worker_lease` from the store's now on
    /// [`StoreClock::Database`] (else as given). `AlreadyExists` (nothing
    /// inserted) if an id is taken. The returned records are as stored.
    async fn create_workers(
        &self,
        lease: &PoolLease,
        workers: &[Worker],
        worker_lease: Duration,
    ) -> Result<Vec<Worker>>;

    /// Records a pool error.
    async fn record_pool_error(&self, error: &PoolError) -> Result<()>;

    /// Deletes pool errors reported before `before`, and all but the
    /// `keep_per_pool` latest of each pool; returns how many.
    async fn prune_pool_errors(&self, before: OffsetDateTime, keep_per_pool: usize) -> Result<u64>;

    /// A pool's errors, newest first, at most `limit`.
    async fn list_pool_errors(&self, pool_id: &str, limit: usize) -> Result<Vec<PoolError>>;

    /// Pool errors reported at or after `since`, counted per pool, kind and
    /// launch config, sorted by pool, kind and launch config (`None` first).
    async fn pool_error_groups(&self, since: OffsetDateTime) -> Result<Vec<PoolErrorGroup>>;

    /// Records a pool's latest decision, replacing the previous one.
    async fn put_pool_decision(&self, decision: &PoolDecision) -> Result<()>;

    /// Every pool's latest decision, by pool id.
    async fn list_pool_decisions(&self) -> Result<Vec<PoolDecision>>;

    /// Records a worker's registration; the stored version is 1.
    /// `AlreadyExists` if the worker has registered before: registration
    /// happens once, whichever replica is asked.
    async fn create_registration(&self, registration: &Registration) -> Result<Registration>;

    /// A worker's registration, if it registered.
    async fn get_registration(&self, worker_id: &str) -> Result<Option<Registration>>;

    /// Replaces a registration if its stored version equals
    /// `registration.version`; the returned record has the new version.
    /// `Conflict` if the version moved, `NotFound` if there is none.
    async fn update_registration(&self, registration: &Registration) -> Result<Registration>;

    /// A pool's registrations, by worker id.
    async fn list_registrations(&self, pool_id: &str) -> Result<Vec<Registration>>;

    /// The registrations of these workers (those that registered), by
    /// worker id.
    async fn registrations_of(&self, worker_ids: &[&str]) -> Result<Vec<Registration>>;

    /// This store's identity: the same on every open of one store,
    /// different between two stores.
    async fn store_identity(&self) -> Result<StoreIdentity>;

    /// Marks an offering unavailable (see [`offerings`]): upserted by
    /// offering key and class, keeping the later `until` (never shortened)
    /// and the latest reason. A TTL (`until - marked_at`) outside
    /// [`offerings::MARK_TTL_MIN`]..=[`offerings::MARK_TTL_MAX`] is refused
    /// with `InvalidConfig { field: "offering_mark.until" }`. Returns the
    /// mark as stored.
    async fn mark_offering(&self, mark: &OfferingMark) -> Result<OfferingMark>;

    /// The marks in force at `now` (`until > now`), by offering key and
    /// class. Rows that cannot be trusted are logged once and skipped.
    async fn live_offering_marks(&self, now: OffsetDateTime) -> Result<Vec<OfferingMark>>;

    /// Deletes the marks whose `until` is at or before `now`; returns how
    /// many (retention).
    async fn delete_expired_offering_marks(&self, now: OffsetDateTime) -> Result<u64>;

    /// Counts one interruption of `offering` at `at`; returns the
    /// offering's count after it.
    async fn record_interruption(
        &self,
        offering: &crate::offering::Offering,
        at: OffsetDateTime,
    ) -> Result<InterruptionCount>;

    /// Every offering's interruption count, by offering key.
    async fn interruption_counts(&self) -> Result<Vec<InterruptionCount>>;
}

/// The error of a write under a pool lease that another acquisition
/// replaced.
pub(crate) fn lease_lost(lease: &PoolLease) -> crate::Error {
    crate::Error::new(
        ErrorKind::LeaseLost,
        format!(
            "the provisioning lease of pool {} (token {}) held by {} was taken over; \
             nothing was written",
            lease.pool_id, lease.token, lease.owner
        ),
    )
}

/// Sorts error groups as [`WorkerStore::pool_error_groups`] returns them.
pub(crate) fn sort_error_groups(groups: &mut [PoolErrorGroup]) {
    groups.sort_by(|a, b| {
        (&a.pool_id, &a.kind, &a.launch_config_id).cmp(&(&b.pool_id, &b.kind, &b.launch_config_id))
    });
}

/// [`open`], for one sequential reader (a CLI command): a SQLite store
/// gets a single connection ([`SqliteStore::open_with_connections`]), so
/// its memory does not grow with the number of queries.
pub async fn open_reader(url: &str) -> Result<std::sync::Arc<dyn WorkerStore>> {
    let path = url
        .strip_prefix("sqlite:")
        .map(|p| p.trim_start_matches("//"))
        .or_else(|| (!url.contains("://") && url.ends_with(".db")).then_some(url));
    match path {
        Some(path) => Ok(std::sync::Arc::new(
            SqliteStore::open_with_connections(path, 1).await?,
        )),
        None => open(url).await,
    }
}

/// Opens a store from a URL: `memory:`, `sqlite:PATH` (or a bare path
/// ending in `.db`), or `postgres://...` (with the `postgres` feature).
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn WorkerStore>> {
    if url == "memory:" {
        return Ok(std::sync::Arc::new(MemoryStore::new()));
    }
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        return Ok(std::sync::Arc::new(SqliteStore::open(path).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        // Lease times on the database's clock (the default).
        #[cfg(feature = "postgres")]
        return Ok(std::sync::Arc::new(PostgresStore::connect(url).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(crate::Error::invalid_config(
            "store",
            "PostgreSQL support is not compiled in (enable skyfleet-core's `postgres` feature)",
        ));
    }
    if url.ends_with(".db") {
        return Ok(std::sync::Arc::new(SqliteStore::open(url).await?));
    }
    // Only the scheme is echoed: the rest of a URL may hold a password.
    let scheme = url.split_once(':').map_or(url, |(s, _)| s);
    Err(crate::Error::invalid_config(
        "store",
        format!(
            "unrecognised store URL scheme `{scheme}` (expected memory:, sqlite:PATH or postgres://...)"
        ),
    ))
}
