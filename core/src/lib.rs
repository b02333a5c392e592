//! skyfleet core: the worker model, the [`Provider`] trait, the operation
//! engine, the shared transport, worker stores and (later) the fleet runtime.
//!
//! The pieces, and why they are shaped as they are:
//! - [`model`]: what a pool asks for and what the store remembers per worker.
//!   The record, not process memory, is the source of truth, so any process
//!   can resume any worker.
//! - [`provider::Provider`]: one step at a time, at most one mutating cloud
//!   call per step, names and idempotency tokens derived from the worker id.
//! - [`operation::Operation`]: a persisted handle of one async cloud
//!   operation, with a deadline and a bounded error streak.
//! - [`store`]: memory, SQLite (embedded default) and PostgreSQL (replicas),
//!   with leases and optimistic concurrency.
//! - [`transport`]: the tower stack every cloud call flows through.
//! - [`protocol`]: what a worker's agent and the manager say to each other.
//! - [`fleet`]: the runtime a worker-manager embeds: provisioner, per-provider
//!   scanners, estimator, orphan sweeper.
//! - `testing` (feature `testing`, not a stable API): an in-memory fake
//!   cloud and provider, shared fixtures and the store conformance suite.
#![warn(missing_docs)]

pub mod clock;
pub mod error;
pub mod failure;
pub mod fleet;
mod log_gate;
pub mod metrics_catalogue;
pub mod model;
pub mod offering;
pub mod operation;
pub mod protocol;
pub mod provider;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transport;
mod wire_secs;

pub use error::{Error, ErrorKind, Result};
pub use failure::Failure;
pub use model::{
    DesiredState, LaunchConfig, Lifecycle, OwnedResource, OwnershipScope, OwnershipTags, Phase,
    PoolConfig, Worker, WorkerError, WorkerSpec,
};
pub use operation::{FinalState, Operation, OperationStatus, PollPolicy};
pub use provider::{
    Bootstrap, BootstrapError, DynProvider, IdentityProof, Provider, ProviderExt, Step,
    VerifiedIdentity,
};
pub use store::WorkerStore;
