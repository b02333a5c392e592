//! The fleet runtime a worker-manager embeds: provisioner, scanners (one
//! per provider and region), estimator and orphan sweeper over one
//! [`WorkerStore`].
//!
//! ```no_run
//! # async fn run() -> skyfleet_core::Result<()> {
//! use std::sync::Arc;
//! use skyfleet_core::fleet::{Fleet, FixedDemand};
//! use skyfleet_core::store::SqliteStore;
//! use skyfleet_core::testing::{TestingCloud, TestingConfig, TestingProvider};
//! let pool: skyfleet_core::PoolConfig = serde_json::from_value(serde_json::json!({
//!     "pool_id": "ci/linux", "provider_id": "testing", "max_capacity": 10,
//!     "launch_configs": [{"id": "small", "launch": {"size": "small"}}]
//! }))?;
//!
//! let demand = FixedDemand::new();
//! let fleet = Fleet::builder()
//!     .store(Arc::new(SqliteStore::open("fleet.db").await?))
//!     .provider(Arc::new(TestingProvider::new("testing", TestingCloud::new(TestingConfig::default()))))
//!     .pool(pool)
//!     .demand(Arc::new(demand.clone()))
//!     .build()?;
//! let cancel = tokio_util::sync::CancellationToken::new();
//! fleet.run(cancel.clone()).await?; // until cancel.cancel()
//! # Ok(()) }
//! ```
//!
//! Several replicas may run on one PostgreSQL database: scanners split
//! workers through the store's leases, provisioners split pools through pool
//! leases, and a replica that dies loses both when they expire.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::log_gate::LogGate;
use crate::model::{DesiredState, Phase, PoolConfig};
use crate::offering::CapacityClass;
use crate::provider::DynProvider;
use crate::store::offerings::{MARK_TTL_MAX, MARK_TTL_MIN};
use crate::store::WorkerStore;

pub mod demand;
pub mod estimator;
pub mod events;
pub mod lifecycle;
mod offering;
pub mod provisioner;
pub mod retention;
mod run;
mod scanner;
mod startup;
mod step;
mod supervise_task;
mod supervision;
pub mod sweeper;
mod worker_api;
mod worker_secret;

pub use demand::{Demand, FixedDemand};
pub use estimator::{estimate, Capacity, Estimate, PoolDemand};
pub use provisioner::PoolReport;
pub use retention::RetentionReport;
pub use startup::ProviderSummary;
pub use sweeper::{HoldReason, SweepOptions, SweepReport, SweptResource, Verdict};

/// Runtime settings; every loop, lease and step is bounded by one of these.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The manager id in every resource's ownership tags.
    pub manager_id: String,
    /// How long a claimed worker stays leased to this replica.
    pub lease: Duration,
    /// How long this replica holds a pool's provisioning lease.
    pub pool_lease: Duration,
    /// Workers claimed per store round trip.
    pub claim_batch: usize,
    /// Workers per `step_many` call, at most; each provider also caps it
    /// at its own [`batch_limit`](crate::Provider::batch_limit) (AWS 200,
    /// GCP 500, one at a time elsewhere). The default, 500, leaves the
    /// providers' limits in charge: a smaller batch costs a GCP or AWS
    /// check call per batch, so more calls per check.
    pub batch_size: usize,
    /// Concurrent steps (or batched step chunks) per provider partition
    /// (region, zone).
    pub concurrency_per_partition: usize,
    /// Step chunks in flight per scanner before it stops claiming.
    pub max_inflight_chunks: usize,
    /// The timeout of one step (chunk); the step is cancelled when it fires.
    pub step_timeout: Duration,
    /// Mean sleep of a scanner that found nothing due (each sleep is drawn
    /// from half to one and a half times this, so replicas sharing a store
    /// do not keep fixed turns).
    pub scan_interval: Duration,
    /// How often each provider looks for partitions (regions, zones) that
    /// need a scanner of their own or no longer do. New workers also wake
    /// it at once; this is the safety net.
    pub partition_interval: Duration,
    /// Time between provisioning passes.
    pub provision_interval: Duration,
    /// Time between orphan sweeps.
    pub sweep_interval: Duration,
    /// Age below which an orphan is left alone. A store younger than this
    /// (its [`crate::store::StoreIdentity::created_at`]) deletes nothing:
    /// a replica pointed at a new, empty store would see every resource as
    /// an orphan.
    pub sweep_grace: Duration,
    /// Most orphans one sweep deletes; the rest are held back (logged and
    /// counted) for later sweeps. `None`: 10 % of the store's live
    /// (non-final) workers, at least 1. `Some(0)`: the sweeper deletes
    /// nothing (it still lists and counts).
    pub sweep_max_delete: Option<usize>,
    /// List what a sweep would delete without deleting it.
    pub sweep_dry_run: bool,
    /// First retry delay after a step error (doubled per error in a row).
    pub error_backoff_min: Duration,
    /// Longest retry delay after step errors.
    pub error_backoff_max: Duration,
    /// How long an offering stays marked unavailable after a capacity
    /// error (stockout). Default 3 minutes; 1 s to 24 h.
    pub offering_ttl_capacity: Duration,
    /// How long offerings stay marked unavailable after a quota error
    /// (every offering of the quota scope). Default 15 minutes; 1 s to 24 h.
    pub offering_ttl_quota: Duration,
    /// How long an offering stays marked unavailable after an interruption
    /// of a worker on it. Default 3 minutes; 1 s to 24 h.
    pub offering_ttl_interruption: Duration,
    /// How long a stopped or failed worker's record is kept after it
    /// finished, and a pool error after it was reported (see
    /// [`retention`]).
    pub retention: Duration,
    /// Pool errors kept per pool (the latest).
    pub pool_errors_kept: usize,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            manager_id: "skyfleet".into(),
            lease: Duration::from_secs(120),
            pool_lease: Duration::from_secs(30),
            claim_batch: 200,
            batch_size: 500,
            concurrency_per_partition: 32,
            max_inflight_chunks: 256,
            step_timeout: Duration::from_secs(60),
            scan_interval: Duration::from_millis(250),
            partition_interval: Duration::from_secs(5),
            provision_interval: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(300),
            sweep_grace: Duration::from_secs(900),
            sweep_max_delete: None,
            sweep_dry_run: false,
            error_backoff_min: Duration::from_millis(500),
            error_backoff_max: Duration::from_secs(300),
            offering_ttl_capacity: offering::DEFAULT_TTL_CAPACITY,
            offering_ttl_quota: offering::DEFAULT_TTL_QUOTA,
            offering_ttl_interruption: offering::DEFAULT_TTL_INTERRUPTION,
            retention: Duration::from_secs(7 * 24 * 3600),
            pool_errors_kept: 100,
        }
    }
}

impl FleetConfig {
    /// What a worker's lease must cover beyond its step's timeout: the
    /// write of the step's answer. The larger of 1 s and a tenth of
    /// `step_timeout`.
    pub fn lease_margin(&self) -> Duration {
        (self.step_timeout / 10).max(Duration::from_secs(1))
    }

    /// How long a mark of `class` lasts.
    pub fn offering_ttl(&self, class: CapacityClass) -> Duration {
        match class {
            CapacityClass::Capacity => self.offering_ttl_capacity,
            CapacityClass::Quota => self.offering_ttl_quota,
            CapacityClass::Interruption => self.offering_ttl_interruption,
        }
    }

    /// Checks the settings, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        // Every resource is tagged with it, and the sweeper deletes what
        // carries it and no live worker: it must name this deployment.
        if self.manager_id.trim().is_empty() {
            return Err(Error::invalid_config(
                "fleet.manager_id",
                "must not be empty: it names this deployment's resources",
            ));
        }
        let positive = [
            ("lease", self.lease),
            ("pool_lease", self.pool_lease),
            ("step_timeout", self.step_timeout),
            ("scan_interval", self.scan_interval),
            ("partition_interval", self.partition_interval),
            ("provision_interval", self.provision_interval),
            ("sweep_interval", self.sweep_interval),
            ("error_backoff_min", self.error_backoff_min),
            ("retention", self.retention),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(Error::invalid_config(
                    format!("fleet.{name}"),
                    "must be > 0",
                ));
            }
        }
        for (name, n) in [
            ("claim_batch", self.claim_batch),
            ("batch_size", self.batch_size),
            ("concurrency_per_partition", self.concurrency_per_partition),
            ("max_inflight_chunks", self.max_inflight_chunks),
            ("pool_errors_kept", self.pool_errors_kept),
        ] {
            if n == 0 {
                return Err(Error::invalid_config(
                    format!("fleet.{name}"),
                    "must be >= 1",
                ));
            }
        }
        if self.step_timeout.saturating_add(self.lease_margin()) > self.lease {
            return Err(Error::invalid_config(
                "fleet.step_timeout",
                format!(
                    "fleet.lease ({} s) must exceed fleet.step_timeout ({} s) by at least \
                     {} s (the larger of 1 s and a tenth of the step timeout), or a slow step \
                     outlives its lease before its answer is written",
                    self.lease.as_secs_f64(),
                    self.step_timeout.as_secs_f64(),
                    self.lease_margin().as_secs_f64()
                ),
            ));
        }
        for (name, ttl) in [
            ("offering_ttl_capacity", self.offering_ttl_capacity),
            ("offering_ttl_quota", self.offering_ttl_quota),
            ("offering_ttl_interruption", self.offering_ttl_interruption),
        ] {
            if ttl < MARK_TTL_MIN || ttl > MARK_TTL_MAX {
                return Err(Error::invalid_config(
                    format!("fleet.{name}"),
                    format!(
                        "must be between {} s and {} s, found {} s",
                        MARK_TTL_MIN.as_secs(),
                        MARK_TTL_MAX.as_secs(),
                        ttl.as_secs_f64()
                    ),
                ));
            }
        }
        if self.error_backoff_max < self.error_backoff_min {
            return Err(Error::invalid_config(
                "fleet.error_backoff_max",
                "must be >= fleet.error_backoff_min",
            ));
        }
        Ok(())
    }
}

/// State shared by the fleet's tasks.
pub(crate) struct Shared {
    config: FleetConfig,
    owner: String,
    store: Arc<dyn WorkerStore>,
    providers: BTreeMap<String, DynProvider>,
    pools: Vec<PoolConfig>,
    demand: Arc<dyn Demand>,
    clock: Arc<dyn Clock>,
    /// Each pool's launch configs' offerings, in launch config order
    /// (resolved once, at build).
    offerings: HashMap<String, Vec<crate::offering::Offering>>,
    /// Each pool's provisioner wake-up: a capacity error or an
    /// interruption requests the replacement at once, not at the next
    /// interval (one entry per configured pool).
    pool_wakes: HashMap<String, tokio::sync::Notify>,
    /// Woken when workers may have entered a partition without a scanner.
    partitions_changed: tokio::sync::Notify,
    /// Each pool's last (desired, target), so only a change is logged
    /// (one entry per configured pool).
    last_targets: Mutex<HashMap<String, (u64, u64)>>,
    /// Rate limit of throttle and capacity warnings, per key.
    warnings: LogGate,
    /// When each pool last scaled in (its `scale_in_cooldown` counts from
    /// it; one entry per configured pool).
    last_scale_in: Mutex<HashMap<String, OffsetDateTime>>,
    /// Each pool's surplus its last pass left for workers that report idle
    /// before the next pass (see [`supervision::SurplusLeft`]).
    surplus_left: Mutex<HashMap<String, supervision::SurplusLeft>>,
    /// The store's id, read once (`Shared::store_id`, in [`sweeper`]).
    store_id: tokio::sync::OnceCell<String>,
}

/// The fleet runtime.
#[derive(Clone)]
pub struct Fleet {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("owner", &self.shared.owner)
            .field(
                "providers",
                &self.shared.providers.keys().collect::<Vec<_>>(),
            )
            .field(
                "pools",
                &self
                    .shared
                    .pools
                    .iter()
                    .map(|p| &p.pool_id)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Builds a [`Fleet`].
#[derive(Default)]
pub struct FleetBuilder {
    config: FleetConfig,
    owner: Option<String>,
    store: Option<Arc<dyn WorkerStore>>,
    providers: Vec<DynProvider>,
    pools: Vec<PoolConfig>,
    demand: Option<Arc<dyn Demand>>,
    clock: Option<Arc<dyn Clock>>,
}

impl FleetBuilder {
    /// Runtime settings.
    pub fn config(mut self, config: FleetConfig) -> Self {
        self.config = config;
        self
    }
    /// This replica's id (lease owner); random by default.
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }
    /// The worker store.
    pub fn store(mut self, store: Arc<dyn WorkerStore>) -> Self {
        self.store = Some(store);
        self
    }
    /// Adds a provider.
    pub fn provider(mut self, provider: DynProvider) -> Self {
        self.providers.push(provider);
        self
    }
    /// Adds a pool.
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }
    /// The demand source.
    pub fn demand(mut self, demand: Arc<dyn Demand>) -> Self {
        self.demand = Some(demand);
        self
    }
    /// The clock (tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates everything (settings, pools against the providers, every
    /// launch config with its provider) and builds the fleet. Nothing is
    /// started and nothing written on error.
    pub fn build(self) -> Result<Fleet> {
        self.config.validate()?;
        let store = self
            .store
            .ok_or_else(|| Error::invalid_config("store", "a store is required"))?;
        let demand = self
            .demand
            .ok_or_else(|| Error::invalid_config("demand", "a demand source is required"))?;
        let mut providers = BTreeMap::new();
        for p in self.providers {
            if providers.insert(p.id().to_string(), p.clone()).is_some() {
                return Err(Error::invalid_config(
                    "providers",
                    format!("duplicate provider id `{}`", p.id()),
                ));
            }
        }
        let ids: Vec<&str> = providers.keys().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        for (i, pool) in self.pools.iter().enumerate() {
            let at = |e: Error| match e.kind() {
                ErrorKind::InvalidConfig { field } => Error::invalid_config(
                    format!("pools[{i}].{field}"),
                    format!("pool `{}`: {}", pool.pool_id, e.message()),
                ),
                _ => e,
            };
            pool.validate(&ids).map_err(at)?;
            if !seen.insert(pool.pool_id.clone()) {
                return Err(Error::invalid_config(
                    format!("pools[{i}].pool_id"),
                    format!("duplicate pool id `{}`", pool.pool_id),
                ));
            }
            let provider = &providers[&pool.provider_id];
            for (j, lc) in pool.launch_configs.iter().enumerate() {
                provider.validate(&lc.launch).map_err(|e| match e.kind() {
                    ErrorKind::InvalidConfig { field } => Error::invalid_config(
                        format!("pools[{i}].launch_configs[{j}].{field}"),
                        format!("pool `{}`: {}", pool.pool_id, e.message()),
                    ),
                    _ => e,
                })?;
            }
        }
        let offerings = offering::resolve(&self.pools, &providers)?;
        let pool_wakes = self
            .pools
            .iter()
            .map(|p| (p.pool_id.clone(), tokio::sync::Notify::new()))
            .collect();
        Ok(Fleet {
            shared: Arc::new(Shared {
                owner: self
                    .owner
                    .unwrap_or_else(|| format!("replica-{}", uuid::Uuid::new_v4().simple())),
                config: self.config,
                store,
                providers,
                pools: self.pools,
                demand,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                offerings,
                pool_wakes,
                partitions_changed: tokio::sync::Notify::new(),
                last_targets: Mutex::new(HashMap::new()),
                warnings: LogGate::default(),
                last_scale_in: Mutex::new(HashMap::new()),
                surplus_left: Mutex::new(HashMap::new()),
                store_id: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

/// Counts of a pool's workers by phase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Workers per phase.
    pub by_phase: BTreeMap<&'static str, u64>,
    /// Workers meant to run that are not in a final phase.
    pub wanted: u64,
}

impl Fleet {
    /// A builder.
    pub fn builder() -> FleetBuilder {
        FleetBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn WorkerStore> {
        &self.shared.store
    }

    /// This replica's lease owner id.
    pub fn owner(&self) -> &str {
        &self.shared.owner
    }

    /// The pools.
    pub fn pools(&self) -> &[PoolConfig] {
        &self.shared.pools
    }

    /// One provisioning pass over every pool.
    pub async fn provision_once(&self) -> Result<Vec<(String, PoolReport)>> {
        let mut out = Vec::new();
        for pool in &self.shared.pools {
            out.push((
                pool.pool_id.clone(),
                provisioner::provision_pool(&self.shared, pool).await?,
            ));
        }
        Ok(out)
    }

    /// Claims each provider's due workers once and steps them (what the
    /// scanners do continuously in [`run`](Fleet::run)), for embedders that
    /// drive their own loop and for tests. Returns how many were stepped.
    pub async fn scan_once(&self) -> Result<usize> {
        scanner::scan_once(&self.shared).await
    }

    /// One orphan sweep with no memory of earlier sweeps (the grace period
    /// counts from each resource's creation time when the cloud reports it).
    pub async fn sweep_once(&self) -> Result<SweepReport> {
        self.sweep_with(SweepOptions::default()).await
    }

    /// One orphan sweep as [`sweep_once`](Fleet::sweep_once), run as
    /// `opts` says (a dry run, or an adoption).
    pub async fn sweep_with(&self, opts: SweepOptions) -> Result<SweepReport> {
        sweeper::sweep(&self.shared, &mut sweeper::Memory::default(), opts).await
    }

    /// Tags every unclaimed resource (carrying no store id: made before
    /// store ids) whose worker is live in this store with this store's id,
    /// so later sweeps treat it as this store's. Deletes nothing.
    pub async fn adopt_unclaimed(&self) -> Result<SweepReport> {
        self.sweep_with(SweepOptions {
            adopt: true,
            dry_run: false,
        })
        .await
    }

    /// One retention pass (what [`run`](Fleet::run) does after each orphan
    /// sweep): deletes final workers that finished longer than
    /// [`FleetConfig::retention`] ago and pool errors past
    /// [`FleetConfig::pool_errors_kept`] or the retention.
    pub async fn prune_once(&self) -> Result<RetentionReport> {
        retention::prune(&self.shared).await
    }

    /// Records that a worker registered (or renewed its registration)
    /// without the worker API: no proof, secret or heartbeats, so scale-in
    /// may remove it directly. Workers with an agent use
    /// [`register`](Fleet::register) instead.
    pub async fn register_worker(&self, worker_id: &str) -> Result<()> {
        for _ in 0..5 {
            let Some(mut w) = self.shared.store.get_worker(worker_id).await? else {
                return Err(Error::not_found(format!("worker {worker_id} not found")));
            };
            if w.phase != Phase::Running || w.desired != DesiredState::Running {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("worker {worker_id} is {:?}, not running", w.phase),
                ));
            }
            let first = w.registered_at.is_none();
            let now = self.shared.clock.now();
            w.registered_at = Some(now);
            if first {
                w.transitioned_at = Some(now);
            }
            match self.shared.store.update_worker(&w).await {
                Ok(stored) => {
                    if first {
                        events::emit(&stored, &events::Transition::Registered);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == &ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("worker {worker_id} kept changing; registration not recorded"),
        ))
    }

    /// Counts of `pool_id`'s workers by phase.
    pub async fn pool_status(&self, pool_id: &str) -> Result<PoolStatus> {
        let workers = self
            .shared
            .store
            .list_workers(&crate::store::WorkerFilter::pool(pool_id))
            .await?;
        let mut s = PoolStatus::default();
        for w in workers {
            *s.by_phase.entry(w.phase.as_str()).or_default() += 1;
            if w.desired == DesiredState::Running && !w.phase.is_final() {
                s.wanted += 1;
            }
        }
        Ok(s)
    }
}
