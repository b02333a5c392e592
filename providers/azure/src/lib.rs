//! skyfleet provider for Azure: the public IP -> NIC -> disk -> VM chain as
//! a resumable state machine over ARM REST.
//!
//! Azure needs several asynchronous calls per VM (each a request plus polls
//! of an operation), calls sometimes hang, and a process may die at any
//! instant. Taskcluster's worker-manager met all of this in production; this
//! crate makes its lessons structural:
//!
//! - [`chain`]: one step at a time, at most one mutating ARM call per step,
//!   names derived from the worker id and persisted with the first call, GET
//!   by name as the source of truth, teardown of whatever may exist;
//! - [`arm::lro`]: long-running operations as persisted handles, polled on
//!   the server's `Retry-After`, with a deadline and a bounded error streak;
//! - [`arm::client`]: every ARM request through the shared transport
//!   (timeouts, retries, rate limits per subscription and API class);
//! - [`credential`]: `azure_identity` credentials, cached and refreshed
//!   before expiry;
//! - [`classify`]: ARM error codes to skyfleet error kinds;
//! - [`health`]: instance-view power state of running workers;
//! - [`provider`]: the [`skyfleet_core::Provider`] implementation.
//!
//! ```no_run
//! # async fn demo() -> skyfleet_core::Result<()> {
//! use skyfleet_azure::{AzureConfig, AzureProvider};
//! let mut config = AzureConfig::new("00000000-0000-0000-0000-000000000000");
//! config.resource_groups = vec!["workers".into()];
//! let provider = AzureProvider::new(config)?;
//! # let _ = provider; Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod arm;
pub mod chain;
pub mod classify;
pub mod config;
pub mod credential;
pub mod health;
pub mod naming;
pub mod profile;
pub mod provider;
pub mod resources;

pub use config::{AzureConfig, AzureLaunch, DataDisk, ImageRef, OsDisk, TransportSettings};
pub use credential::{Credential, CredentialConfig, SecretString};
pub use provider::AzureProvider;
