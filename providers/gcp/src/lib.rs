//! skyfleet provider for Google Compute Engine: Compute REST over the shared
//! transport, tokens through `gcp_auth`.
//!
//! What it fixes in Taskcluster's Google provider: the insert's `requestId`
//! derives from the worker id (stable across retries *and* restarts, so a
//! resumed insert never creates a second VM); zone operations are followed
//! on a persisted backoff schedule with a deadline, and a failed one is
//! classified by its error code (`ZONE_RESOURCE_POOL_EXHAUSTED`,
//! `QUOTA_EXCEEDED` are [`ErrorKind::CapacityOrQuota`](skyfleet_core::ErrorKind::CapacityOrQuota))
//! and torn down; running workers are checked with one `instances.list` per
//! zone instead of one `instances.get` per worker.
//!
//! ```no_run
//! # async fn demo() -> skyfleet_core::Result<()> {
//! use skyfleet_gcp::{Credentials, GcpConfig, GcpProvider};
//! let provider = GcpProvider::new(
//!     GcpConfig::new("my-project")
//!         .with_credentials(Credentials::Auto)
//!         .with_zones(["us-central1-a"]),
//! )?;
//! # let _ = provider; Ok(()) }
//! ```
//!
//! Modules: [`config`] (provider and launch configs), [`token`] (cached
//! tokens), [`request_id`], [`client`] (Compute REST), [`classify`] (Google
//! errors), [`labels`] (ownership labels), [`state`] (what is persisted per
//! worker) and [`provider`] (the step machine).
#![warn(missing_docs)]

pub mod classify;
pub mod client;
pub mod config;
pub mod labels;
pub mod profile;
pub mod provider;
pub mod request_id;
pub mod state;
pub mod token;

pub use config::{Credentials, GceLaunch, GcpConfig, ServiceAccount};
pub use provider::GcpProvider;
pub use state::GceState;
