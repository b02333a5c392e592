//! skyfleet-agent: the worker side of skyfleet.
//!
//! On a worker VM, the agent finds out who it is from its cloud's
//! instance-metadata service ([`metadata`]), registers with the manager
//! named in its bootstrap document ([`client`]), hands the worker config
//! and secret to its work, heartbeats what the work is doing, renews the
//! secret before it expires, and honours the manager's `drain` (stop the
//! work, confirm `drained`) and `terminate`.
//!
//! The work is a [`WorkSource`]: the `skyfleet-agent` binary runs a command
//! ([`CommandWork`]); a worker written in Rust embeds an [`Agent`] with its
//! own.
//!
//! ```no_run
//! use skyfleet_agent::{Agent, AgentConfig, CommandWork};
//! # async fn demo() -> Result<(), skyfleet_agent::AgentError> {
//! let work = CommandWork::new("my-worker", ["--flag"], "/run/skyfleet/worker.json");
//! let outcome = Agent::new(AgentConfig::default()).run(work).await?;
//! println!("{outcome:?}");
//! # Ok(()) }
//! ```
//!
//! The agent runs on every worker, so it depends only on what it needs to
//! speak HTTP and JSON: neither aws-sdk-*, nor the provider crates, nor the
//! mock.

pub mod agent;
pub mod client;
pub mod command;
pub mod config_file;
pub mod decide;
pub mod metadata;
pub mod retry;
pub mod status_file;
pub mod work;

pub use agent::{Agent, AgentConfig, AgentError, Outcome};
pub use client::{ClientError, ManagerClient};
pub use command::CommandWork;
pub use metadata::{Cloud, MetadataError, MetadataSource, WorkerIdentity};
pub use retry::RetryPolicy;
pub use work::{Registration, WorkError, WorkSource, WorkStatus};

/// A transport error with its causes (reqwest's own message says only
/// "error sending request").
pub(crate) fn describe_http_error(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
