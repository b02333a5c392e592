//! [`Registration`]: what the manager knows of a worker's agent once it has
//! registered through the worker API: its secret's digest, its heartbeats,
//! and whether it has been asked to drain.
//!
//! Kept apart from the [`Worker`](super::Worker) record on purpose: the
//! scanner rewrites a worker's record at every step, and heartbeats (one per
//! worker every few tens of seconds) would otherwise make those writes fail
//! their version check. The registration has its own version, and it is the
//! fence of every decision about the agent: a drain or a removal is written
//! to it first, conditionally, so a heartbeat that reported busy in the
//! meantime makes the decision fail rather than be taken on stale facts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::protocol::Activity;

/// The manager's record of a registered worker's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The worker.
    pub worker_id: String,
    /// Its pool.
    pub pool_id: String,
    /// Optimistic-concurrency version (1 when created).
    pub version: i64,
    /// SHA-256 (hex) of the current worker secret, bound to the worker id;
    /// the secret itself is never stored.
    pub secret_sha256: String,
    /// When the current secret stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// When it registered.
    #[serde(with = "time::serde::rfc3339")]
    pub registered_at: OffsetDateTime,
    /// Its last heartbeat (its registration until the first one).
    #[serde(with = "time::serde::rfc3339")]
    pub last_heartbeat_at: OffsetDateTime,
    /// What it last reported doing.
    pub activity: Activity,
    /// When it last reported busy.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_busy_at: Option<OffsetDateTime>,
    /// Since when it has reported idle without a break (`None` while busy).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub idle_since: Option<OffsetDateTime>,
    /// Tasks it last reported running.
    #[serde(default)]
    pub running: u32,
    /// Capacity units it last reported in use.
    #[serde(default)]
    pub capacity_used: u32,
    /// Tasks it has completed, as it last reported.
    #[serde(default)]
    pub tasks_completed: u64,
    /// The drain asked of it, if any.
    #[serde(default)]
    pub drain: Option<Drain>,
    /// Set once the manager decided to remove the worker (the removal
    /// reason's label): later heartbeats are answered `terminate`.
    #[serde(default)]
    pub removal: Option<String>,
}

impl Registration {
    /// A fresh registration at `now`, idle, with the secret digest and its
    /// expiry.
    pub fn new(
        worker_id: impl Into<String>,
        pool_id: impl Into<String>,
        secret_sha256: String,
        now: OffsetDateTime,
        expires: OffsetDateTime,
    ) -> Self {
        Registration {
            worker_id: worker_id.into(),
            pool_id: pool_id.into(),
            version: 0,
            secret_sha256,
            expires,
            registered_at: now,
            last_heartbeat_at: now,
            activity: Activity::Idle,
            last_busy_at: None,
            idle_since: Some(now),
            running: 0,
            capacity_used: 0,
            tasks_completed: 0,
            drain: None,
            removal: None,
        }
    }

    /// Whether it last reported holding no work (idle, or draining with
    /// nothing running).
    pub fn is_idle(&self) -> bool {
        match self.activity {
            Activity::Idle => true,
            Activity::Busy => false,
            Activity::Draining => self.running == 0 && self.capacity_used == 0,
        }
    }
}

/// Why a worker was asked to drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainReason {
    /// The pool has more capacity than it needs.
    ScaleIn,
    /// It was idle longer than the pool's `idle_timeout`.
    IdleTimeout,
    /// It completed the pool's `max_tasks`.
    MaxTasks,
    /// It ran longer than the pool's `max_lifetime`.
    MaxLifetime,
}

impl DrainReason {
    /// Every reason, in a fixed order (metrics register each at zero).
    pub const ALL: [DrainReason; 4] = [
        DrainReason::ScaleIn,
        DrainReason::IdleTimeout,
        DrainReason::MaxTasks,
        DrainReason::MaxLifetime,
    ];

    /// The stable name (`scale_in`, `idle_timeout`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DrainReason::ScaleIn => "scale_in",
            DrainReason::IdleTimeout => "idle_timeout",
            DrainReason::MaxTasks => "max_tasks",
            DrainReason::MaxLifetime => "max_lifetime",
        }
    }
}

/// A drain asked of a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// Why.
    pub reason: DrainReason,
    /// When it was asked.
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// When it is removed even if still busy (the pool's `drain_timeout`);
    /// `None`: it is waited for.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deadline: Option<OffsetDateTime>,
    /// When the worker confirmed it holds no work.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub drained_at: Option<OffsetDateTime>,
}
