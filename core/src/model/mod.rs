//! The worker model: what a pool asks for ([`PoolConfig`], [`WorkerSpec`]) and
//! what the store remembers about each worker ([`Worker`]).
//!
//! A worker's record is the single source of truth the fleet runtime resumes
//! from: the provider's own progress lives in [`Worker::provider_state`] as
//! JSON, so a process killed at any instant can be replaced by another that
//! reads the record and carries on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::failure::Failure;

mod lifecycle;
mod registration;

pub use lifecycle::Lifecycle;
pub use registration::{Drain, DrainReason, Registration};

/// Tag (label) keys every cloud resource skyfleet creates carries, so the
/// orphan sweeper can tell our resources from everyone else's.
pub mod tag {
    /// The id of the fleet manager that owns the resource.
    pub const MANAGER: &str = "skyfleet-manager";
    /// The pool the worker belongs to.
    pub const POOL: &str = "skyfleet-pool";
    /// The worker id.
    pub const WORKER: &str = "skyfleet-worker";
    /// The provider id.
    pub const PROVIDER: &str = "skyfleet-provider";
    /// The random id of the store that created the worker
    /// ([`StoreIdentity::id`](crate::store::StoreIdentity::id): 32
    /// lowercase hex digits, a valid tag and label value everywhere). The
    /// orphan sweeper deletes only resources carrying its own store's id.
    pub const STORE: &str = "skyfleet-store";
}

/// What a worker should become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Provisioned and running.
    Running,
    /// Torn down, every cloud resource deleted.
    Removed,
}

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Being provisioned: resources are being created.
    Requested,
    /// Provisioned and running.
    Running,
    /// Being torn down.
    Stopping,
    /// Torn down: no cloud resource remains. Final.
    Stopped,
    /// Gave up: provisioning failed and whatever was created is gone. Final.
    Failed,
}

impl Phase {
    /// All phases, in life order.
    pub const ALL: [Phase; 5] = [
        Phase::Requested,
        Phase::Running,
        Phase::Stopping,
        Phase::Stopped,
        Phase::Failed,
    ];

    /// The stable name stored in databases.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Requested => "requested",
            Phase::Running => "running",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
            Phase::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Phase> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::internal(format!("unknown phase `{s}` in store")))
    }

    /// Whether the phase is final: nothing more happens to the worker.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Stopped | Phase::Failed)
    }
}

/// Who owns a cloud resource: the tags every resource of a worker carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipTags {
    /// The manager (fleet) id; the orphan sweeper lists resources by it.
    pub manager_id: String,
    /// The pool id.
    pub pool_id: String,
    /// The worker id.
    pub worker_id: String,
    /// The provider id.
    pub provider_id: String,
    /// The id of the store that created the worker ([`tag::STORE`]).
    /// `None` in worker specs stored before store ids existed: their
    /// resources carry no store tag and the sweeper never deletes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// Extra tags from the pool config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl OwnershipTags {
    /// All tags as key/value pairs, ours first.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = self.extra.clone();
        m.insert(tag::MANAGER.into(), self.manager_id.clone());
        m.insert(tag::POOL.into(), self.pool_id.clone());
        m.insert(tag::WORKER.into(), self.worker_id.clone());
        m.insert(tag::PROVIDER.into(), self.provider_id.clone());
        // The store tag is ours alone: a pool's extra tag of that name
        // would let resources of a store-less spec pass for a store's.
        m.remove(tag::STORE);
        if let Some(store) = &self.store_id {
            m.insert(tag::STORE.into(), store.clone());
        }
        m
    }
}

/// The scope of an orphan sweep: resources of this manager on this provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipScope {
    /// The manager id the resources are tagged with.
    pub manager_id: String,
    /// The provider id.
    pub provider_id: String,
}

/// One cloud resource found carrying our ownership tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnedResource {
    /// The cloud's id of the resource (ARM id, instance id, self link).
    pub id: String,
    /// Its kind (`instance`, `virtualMachine`, `networkInterface`, ...).
    pub kind: String,
    /// The worker id from its tags, if tagged with one.
    pub worker_id: Option<String>,
    /// The store id from its tags ([`tag::STORE`]), if tagged with one:
    /// the sweeper deletes only resources of its own store, and reports
    /// those with none as unclaimed.
    #[serde(default)]
    pub store_id: Option<String>,
    /// When it was created, when the cloud says.
    pub created_at: Option<OffsetDateTime>,
    /// All its tags.
    pub tags: BTreeMap<String, String>,
}

impl OwnedResource {
    /// A resource with its worker and store ids read from `tags`
    /// ([`tag::WORKER`], [`tag::STORE`]).
    pub fn from_tags(
        id: String,
        kind: impl Into<String>,
        created_at: Option<OffsetDateTime>,
        tags: BTreeMap<String, String>,
    ) -> Self {
        OwnedResource {
            id,
            kind: kind.into(),
            worker_id: tags.get(tag::WORKER).cloned(),
            store_id: tags.get(tag::STORE).cloned(),
            created_at,
            tags,
        }
    }
}

/// One way to launch a worker in a pool, chosen by weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchConfig {
    /// A stable id, used to steer away from a config after capacity errors.
    pub id: String,
    /// Relative weight when choosing among launch configs; must be > 0.
    #[serde(default = "LaunchConfig::default_weight")]
    pub weight: f64,
    /// Capacity one worker of this config provides (tasks it runs at once).
    #[serde(default = "LaunchConfig::default_capacity")]
    pub capacity_per_worker: u32,
    /// The tier: the provisioner launches from the lowest tier that has an
    /// available offering (for example spot types at 0, on-demand at 1),
    /// choosing by weight inside it. Default 0.
    #[serde(default)]
    pub tier: u32,
    /// The provider-specific launch parameters, validated by the provider.
    pub launch: serde_json::Value,
}

impl LaunchConfig {
    fn default_weight() -> f64 {
        1.0
    }
    fn default_capacity() -> u32 {
        1
    }
}

/// A pool of workers on one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool id, such as `proj-ci/linux-large`.
    pub pool_id: String,
    /// The provider id the pool's workers run on.
    pub provider_id: String,
    /// Capacity kept even when there is no demand.
    #[serde(default)]
    pub min_capacity: u32,
    /// Capacity never exceeded.
    pub max_capacity: u32,
    /// Share of pending work to provision for (1.0: one capacity per task).
    #[serde(default = "PoolConfig::default_ratio")]
    pub scaling_ratio: f64,
    /// Idle capacity kept on top of demand (a warm pool), in capacity
    /// units; counted from what registered workers report.
    #[serde(default)]
    pub min_idle: u32,
    /// Time after a scale-in before the next one (demand that dips for a
    /// moment does not drain workers it will want back).
    #[serde(with = "crate::wire_secs::secs", default)]
    pub scale_in_cooldown: std::time::Duration,
    /// The launch configs, at least one.
    pub launch_configs: Vec<LaunchConfig>,
    /// Time limits.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Extra tags put on every resource.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl PoolConfig {
    /// The spec of a worker `worker_id` of this pool from its launch config
    /// `lc`, with the ownership tags every resource of it carries (but no
    /// store id: the provisioner sets [`OwnershipTags::store_id`]).
    pub fn worker_spec(
        &self,
        lc: &LaunchConfig,
        worker_id: String,
        manager_id: &str,
    ) -> WorkerSpec {
        WorkerSpec {
            pool_id: self.pool_id.clone(),
            provider_id: self.provider_id.clone(),
            launch_config_id: lc.id.clone(),
            launch: lc.launch.clone(),
            capacity: lc.capacity_per_worker,
            lifecycle: self.lifecycle.clone(),
            tags: OwnershipTags {
                manager_id: manager_id.to_string(),
                pool_id: self.pool_id.clone(),
                worker_id: worker_id.clone(),
                provider_id: self.provider_id.clone(),
                store_id: None,
                extra: self.tags.clone(),
            },
            worker_id,
        }
    }

    fn default_ratio() -> f64 {
        1.0
    }

    /// Checks the config, naming the offending field: min <= max, a scaling
    /// ratio in (0, 1], at least one launch config, unique launch config ids,
    /// weights > 0, capacity per worker > 0, and a provider among `providers`.
    pub fn validate(&self, providers: &[&str]) -> Result<()> {
        if self.pool_id.trim().is_empty() {
            return Err(Error::invalid_config("pool_id", "must not be empty"));
        }
        if !providers.contains(&self.provider_id.as_str()) {
            return Err(Error::invalid_config(
                "provider_id",
                format!(
                    "unknown provider `{}` (known: {})",
                    self.provider_id,
                    providers.join(", ")
                ),
            ));
        }
        if self.min_capacity > self.max_capacity {
            return Err(Error::invalid_config(
                "min_capacity",
                format!(
                    "min_capacity {} is greater than max_capacity {}",
                    self.min_capacity, self.max_capacity
                ),
            ));
        }
        if self.min_idle > self.max_capacity {
            return Err(Error::invalid_config(
                "min_idle",
                format!(
                    "min_idle {} is greater than max_capacity {}",
                    self.min_idle, self.max_capacity
                ),
            ));
        }
        if !(self.scaling_ratio > 0.0 && self.scaling_ratio <= 1.0) {
            return Err(Error::invalid_config(
                "scaling_ratio",
                format!("must be within (0, 1], got {}", self.scaling_ratio),
            ));
        }
        if self.launch_configs.is_empty() {
            return Err(Error::invalid_config(
                "launch_configs",
                "at least one launch config is required",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, lc) in self.launch_configs.iter().enumerate() {
            if lc.id.trim().is_empty() {
                return Err(Error::invalid_config(
                    format!("launch_configs[{i}].id"),
                    "must not be empty",
                ));
            }
            if !seen.insert(lc.id.as_str()) {
                return Err(Error::invalid_config(
                    format!("launch_configs[{i}].id"),
                    format!("duplicate launch config id `{}`", lc.id),
                ));
            }
            if !(lc.weight > 0.0 && lc.weight.is_finite()) {
                return Err(Error::invalid_config(
                    format!("launch_configs[{i}].weight"),
                    format!("must be a finite number > 0, got {}", lc.weight),
                ));
            }
            if lc.capacity_per_worker == 0 {
                return Err(Error::invalid_config(
                    format!("launch_configs[{i}].capacity_per_worker"),
                    "must be at least 1",
                ));
            }
        }
        self.lifecycle.validate("lifecycle")
    }
}

/// Everything needed to create one worker; fixed for its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The worker id: unique, and the seed of every cloud name and
    /// idempotency token derived for it.
    pub worker_id: String,
    /// The pool.
    pub pool_id: String,
    /// The provider.
    pub provider_id: String,
    /// The launch config the worker was created from.
    pub launch_config_id: String,
    /// The provider-specific launch parameters (validated by the provider).
    pub launch: serde_json::Value,
    /// Capacity the worker provides.
    pub capacity: u32,
    /// Time limits.
    pub lifecycle: Lifecycle,
    /// Ownership tags for every resource.
    pub tags: OwnershipTags,
}

impl WorkerSpec {
    /// Checks the fields that do not depend on the provider; the message
    /// names the offending field.
    pub fn validate(&self) -> Result<()> {
        let id_ok = !self.worker_id.is_empty()
            && self.worker_id.len() <= 38
            && self
                .worker_id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && self.worker_id.starts_with(|c: char| c.is_ascii_lowercase());
        if !id_ok {
            return Err(Error::invalid_config(
                "worker_id",
                format!(
                    "`{}` must be 1-38 characters of a-z, 0-9 and '-', starting with a letter \
                     (it is the stem of every cloud resource name)",
                    self.worker_id
                ),
            ));
        }
        if self.pool_id.is_empty() {
            return Err(Error::invalid_config("pool_id", "must not be empty"));
        }
        if self.provider_id.is_empty() {
            return Err(Error::invalid_config("provider_id", "must not be empty"));
        }
        if self.capacity == 0 {
            return Err(Error::invalid_config("capacity", "must be at least 1"));
        }
        if self.tags.worker_id != self.worker_id {
            return Err(Error::invalid_config(
                "tags.worker_id",
                "must equal the worker id",
            ));
        }
        self.lifecycle.validate("lifecycle")
    }
}

/// The last error recorded on a worker: a [`Failure`] stamped with when it
/// happened.
pub type WorkerError = Failure;

/// The persisted record of one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// What was asked for.
    pub spec: WorkerSpec,
    /// What the worker should become.
    pub desired: DesiredState,
    /// Where it is.
    pub phase: Phase,
    /// The provider's own resumable state (names, operation handles, ids).
    pub provider_state: serde_json::Value,
    /// When the scanner should step the worker next.
    #[serde(with = "time::serde::rfc3339")]
    pub next_check_at: OffsetDateTime,
    /// Optimistic-concurrency version: an update must carry the version it read.
    pub version: i64,
    /// The runtime instance holding the lease, if any.
    #[serde(default)]
    pub lease_owner: Option<String>,
    /// When the lease ends.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub lease_expires_at: Option<OffsetDateTime>,
    /// The last error, if any.
    #[serde(default)]
    pub last_error: Option<WorkerError>,
    /// Step errors in a row (reset by a successful step); paces retries.
    #[serde(default)]
    pub step_errors: u32,
    /// Why the worker is being (or was) removed, if it is.
    #[serde(default)]
    pub removal_reason: Option<String>,
    /// When the record was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the worker first reported running, if it has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub running_at: Option<OffsetDateTime>,
    /// When the worker last registered (or renewed its registration).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub registered_at: Option<OffsetDateTime>,
    /// When the worker last changed phase, desired state or registration
    /// (requested, running, registered, removed, stopping, stopped,
    /// failed): what `skyfleet workers` shows as its last transition.
    /// `None` in records written before it existed, until their next
    /// transition.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub transitioned_at: Option<OffsetDateTime>,
    /// The scheduling partition (region or zone) the provider placed the
    /// worker in ([`Provider::partition`](crate::Provider::partition)). The
    /// runtime runs one scanner per (provider, partition) and each claims
    /// only its own partition's workers, so a hung region stalls only
    /// itself. `None`: the provider has no partitions (or the record
    /// predates them; the next step fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// The offering the worker was launched on
    /// ([`Provider::offering`](crate::Provider::offering) of its launch
    /// config), set by the provisioner. `None` in records written before
    /// offerings existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offering: Option<crate::offering::Offering>,
}

impl Worker {
    /// A new record in phase `Requested`, due for its first step at `now`.
    pub fn new(spec: WorkerSpec, now: OffsetDateTime) -> Self {
        Worker {
            spec,
            desired: DesiredState::Running,
            phase: Phase::Requested,
            provider_state: serde_json::Value::Null,
            next_check_at: now,
            version: 0,
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            step_errors: 0,
            removal_reason: None,
            created_at: now,
            running_at: None,
            registered_at: None,
            transitioned_at: Some(now),
            partition: None,
            offering: None,
        }
    }

    /// The worker id.
    pub fn id(&self) -> &str {
        &self.spec.worker_id
    }

    /// When provisioning must have finished.
    pub fn provisioning_deadline(&self) -> OffsetDateTime {
        self.created_at + self.spec.lifecycle.provisioning_deadline
    }
}

#[cfg(test)]
mod tests;
