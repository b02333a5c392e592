//! [`CommandWork`]: a command as the agent's work (the binary's
//! `skyfleet-agent -- my-worker --flag`).
//!
//! The registration is written to a 0600 file whose path the command gets
//! in `SKYFLEET_WORKER_CONFIG` (never the secret in its arguments or
//! environment); the status file's path, if any, in
//! `SKYFLEET_STATUS_FILE`. The command runs in its own process group, so
//! the polite SIGTERM and the SIGKILL after the grace reach the children
//! it started too.
//!
//! Its status: while it runs, what its status file says, busy when the file
//! is missing or unreadable; once it has exited, idle (its exit counted as
//! a completed task).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::config_file;
use crate::status_file;
use crate::work::{Registration, WorkError, WorkSource, WorkStatus};

/// The environment variable naming the worker config file.
pub const CONFIG_ENV: &str = "SKYFLEET_WORKER_CONFIG";
/// The environment variable naming the status file.
pub const STATUS_ENV: &str = "SKYFLEET_STATUS_FILE";
/// How long to wait for a process to go after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// A command managed by the agent.
#[derive(Debug)]
pub struct CommandWork {
    program: OsString,
    args: Vec<OsString>,
    config_path: PathBuf,
    status_path: Option<PathBuf>,
    child: Option<Child>,
    /// The highest `tasksCompleted` the status file reported.
    file_completed: u64,
    /// Exits of the command (each counted as a task).
    exits: u64,
}

impl CommandWork {
    /// `program args...`, its registration written to `config_path`.
    pub fn new(
        program: impl Into<OsString>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
        config_path: impl Into<PathBuf>,
    ) -> Self {
        CommandWork {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            config_path: config_path.into(),
            status_path: None,
            child: None,
            file_completed: 0,
            exits: 0,
        }
    }

    /// With a status file the command writes.
    pub fn with_status_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.status_path = Some(path.into());
        self
    }

    fn write_config(&self, reg: &Registration) -> Result<(), WorkError> {
        config_file::write_private(&self.config_path, &config_file::contents(reg)).map_err(
            |source| WorkError::ConfigFile {
                path: self.config_path.clone(),
                source,
            },
        )
    }

    fn record_exit(&mut self, status: ExitStatus) {
        self.child = None;
        self.exits += 1;
        if status.success() {
            tracing::info!(%status, "the command exited");
        } else {
            tracing::warn!(%status, "the command exited with a failure");
        }
    }

    async fn read_status_file(&mut self) -> Option<status_file::FileStatus> {
        let path = self.status_path.as_ref()?;
        let text = tokio::fs::read_to_string(path).await.ok()?;
        let s = status_file::parse(&text)?;
        self.file_completed = self.file_completed.max(s.tasks_completed);
        Some(s)
    }
}

/// Sends `signal` to the process group led by `pid`.
fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    // The group is the child's own (started as a group leader); Linux does
    // not reuse an id while a group of that id has members.
    let rc = unsafe { libc::kill(-pid, signal) };
    if rc != 0 {
        tracing::debug!(pid, signal, error = %std::io::Error::last_os_error(), "kill");
    }
}

impl WorkSource for CommandWork {
    async fn start(&mut self, reg: &Registration) -> Result<(), WorkError> {
        self.write_config(reg)?;
        if let Some(p) = &self.status_path {
            // A file left by an earlier run must not speak for this one.
            let _ = tokio::fs::remove_file(p).await;
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env(CONFIG_ENV, &self.config_path)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(p) = &self.status_path {
            cmd.env(STATUS_ENV, p);
        }
        let child = cmd.spawn().map_err(|source| WorkError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            source,
        })?;
        tracing::info!(pid = child.id(), program = %self.program.to_string_lossy(), "command started");
        self.child = Some(child);
        Ok(())
    }

    async fn rotated(&mut self, reg: &Registration) -> Result<(), WorkError> {
        self.write_config(reg)
    }

    async fn status(&mut self) -> WorkStatus {
        let exited = match self.child.as_mut().map(Child::try_wait) {
            None => None,
            Some(Ok(Some(status))) => Some(status),
            Some(Ok(None)) => {
                return match self.read_status_file().await {
                    Some(s) if s.activity == skyfleet_core::protocol::Activity::Idle => {
                        WorkStatus::idle(self.file_completed + self.exits)
                    }
                    Some(s) => WorkStatus::busy(s.running, self.file_completed + self.exits),
                    None => WorkStatus::busy(0, self.file_completed + self.exits),
                };
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot check the command; reporting busy");
                return WorkStatus::busy(0, self.file_completed + self.exits);
            }
        };
        if let Some(status) = exited {
            self.record_exit(status);
        }
        WorkStatus::idle(self.file_completed + self.exits)
    }

    async fn stop(&mut self, grace: Duration) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let Some(pid) = child.id() else {
            return;
        };
        signal_group(pid, libc::SIGTERM);
        tracing::info!(
            pid,
            grace_s = grace.as_secs(),
            "sent SIGTERM to the command"
        );
        let status = match tokio::time::timeout(grace, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(pid, "the command outlived its grace; sending SIGKILL");
                signal_group(pid, libc::SIGKILL);
                match tokio::time::timeout(KILL_WAIT, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        tracing::error!(pid, "the command did not die after SIGKILL");
                        return;
                    }
                }
            }
        };
        // What the leader left behind in its group goes with it.
        signal_group(pid, libc::SIGKILL);
        match status {
            Ok(s) => self.record_exit(s),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for the command");
                self.child = None;
            }
        }
    }
}
