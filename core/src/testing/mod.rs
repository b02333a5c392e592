//! Test support (feature `testing`): **not a stable API**; it changes with
//! the tests that use it.
//!
//! - The `testing` provider: an in-memory fake cloud with configurable
//!   latencies and injectable failures. It is a real provider:
//!   [`TestingCloud`] keeps instances, creates them idempotently by name
//!   (like an ARM PUT or an EC2 `ClientToken`), boots them after a delay, and
//!   deletes them; [`TestingProvider`] drives workers through it one step at
//!   a time, obeying the [`Provider`](crate::provider::Provider) rules (at
//!   most one mutating call per step, names derived from the worker id).
//!   Core's own tests of the stores and the fleet runtime run on it.
//! - [`fixtures`]: worker records, specs and ownership tags for tests.
//! - The store conformance suite is
//!   [`store::conformance`](crate::store::conformance), behind the same
//!   feature.

mod cloud;
pub mod fixtures;
mod provider;

pub use cloud::{CallKind, TestingCloud, TestingConfig};
pub use provider::{TestingProvider, TestingState};
