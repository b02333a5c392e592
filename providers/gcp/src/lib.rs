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
//! # fn demo() -> skyfleet_core::Result<()> {
//! use skyfleet_gcp::{Credentials, GcpBuilder};
//! let provider = GcpBuilder::new("my-project")
//!     .with_credentials(Credentials::Auto)
//!     .with_zones(["us-central1-a"])
//!     .build()?;
//! # let _ = provider; Ok(()) }
//! ```
//!
//! Inside, the crate has the shape every skyfleet cloud crate has: `builder`
//! ([`GcpBuilder`]), `credential` ([`Credentials`] and the token cache),
//! `client` (Compute REST), `classify` (Google errors to
//! [`ErrorKind`](skyfleet_core::ErrorKind)s), `idempotency` (instance names
//! and `requestId`s), `labels` (ownership labels), `launch` ([`GceLaunch`], its `scheduling`
//! in [`Scheduling`]), `offering` (a launch config's [`offering`]),
//! `state` ([`GceState`], what is persisted per worker), and the step machine:
//! `plan` (what a step must do, from the worker alone), `decide` (what the
//! answer means) and `provider` ([`GcpProvider`], which makes the calls);
//! `identity` verifies the instances' identity tokens.
#![warn(missing_docs)]

mod builder;
mod classify;
mod client;
mod credential;
mod decide;
mod idempotency;
mod identity;
mod labels;
mod launch;
mod offering;
mod plan;
pub mod profile;
mod provider;
mod scheduling;
mod state;

pub use builder::{GcpBuilder, DEFAULT_ENDPOINT};
pub use credential::{Credentials, COMPUTE_SCOPE};
pub use launch::{GceLaunch, ServiceAccount};
pub use offering::{machine_series, offering};
pub use provider::GcpProvider;
pub use scheduling::Scheduling;
/// The identity token settings ([`GcpBuilder::with_identity`]) and the
/// worker service account ([`GcpBuilder::with_worker_service_account`]).
pub use skyfleet_identity::gcp::{
    GcpConfig as IdentityConfig, ServiceAccount as WorkerServiceAccount,
};
pub use state::{GceState, Teardown};

/// Internals for the fuzz targets and tests: **not stable API**, available
/// with the `testing` feature only.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::classify::api_error;
    pub use crate::client::{Instance, OperationError, OperationErrors, ZoneOperation};
}
