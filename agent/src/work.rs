//! What the agent manages: a [`WorkSource`] (the binary's is a command,
//! [`crate::command::CommandWork`]; a worker written in Rust implements it
//! itself), told of its registration and asked for its state.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use skyfleet_core::protocol::Activity;
use skyfleet_core::provider::support::Secret;
use time::OffsetDateTime;

/// What a registered worker received: hand it to the work. `Debug` shows
/// no secret.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The worker id.
    pub worker_id: String,
    /// The pool.
    pub worker_pool_id: String,
    /// The manager's root URL.
    pub root_url: String,
    /// The pool's worker config.
    pub worker_config: serde_json::Value,
    /// The worker secret (rotated by reregistration).
    pub secret: Secret,
    /// When the secret expires.
    pub expires: OffsetDateTime,
}

/// What the work is doing, as reported in heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkStatus {
    /// [`Activity::Idle`] or [`Activity::Busy`] (the agent says
    /// `draining` itself).
    pub activity: Activity,
    /// Tasks running now.
    pub running: u32,
    /// Capacity units in use now.
    pub capacity_used: u32,
    /// Tasks completed since the worker started.
    pub tasks_completed: u64,
}

impl WorkStatus {
    /// Idle, nothing running, `tasks_completed` done.
    pub fn idle(tasks_completed: u64) -> Self {
        WorkStatus {
            activity: Activity::Idle,
            running: 0,
            capacity_used: 0,
            tasks_completed,
        }
    }

    /// Busy with `running` tasks (at least one capacity unit in use).
    pub fn busy(running: u32, tasks_completed: u64) -> Self {
        WorkStatus {
            activity: Activity::Busy,
            running,
            capacity_used: running.max(1),
            tasks_completed,
        }
    }
}

/// Why the work could not be started or told of a new secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkError {
    /// The worker config file could not be written.
    #[error("cannot write the worker config to {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Anything else an embedder's work reports.
    #[error("{0}")]
    Other(String),
}

/// The work an agent manages.
///
/// The agent calls [`start`](Self::start) once after registering, then
/// [`status`](Self::status) before every heartbeat,
/// [`rotated`](Self::rotated) after every renewal of the secret, and
/// [`stop`](Self::stop) once: when told to drain or terminate, or when
/// the agent itself is stopped.
pub trait WorkSource: Send {
    /// Starts the work with the worker's registration.
    fn start(
        &mut self,
        registration: &Registration,
    ) -> impl Future<Output = Result<(), WorkError>> + Send;

    /// The secret was renewed (`registration` holds the new one).
    fn rotated(
        &mut self,
        registration: &Registration,
    ) -> impl Future<Output = Result<(), WorkError>> + Send;

    /// What the work is doing now. When unsure, say busy: a worker
    /// wrongly reported idle may be removed under a task.
    fn status(&mut self) -> impl Future<Output = WorkStatus> + Send;

    /// Takes no new work and stops what runs: politely first, by force
    /// once `grace` has passed. Returns when nothing runs.
    fn stop(&mut self, grace: Duration) -> impl Future<Output = ()> + Send;
}
