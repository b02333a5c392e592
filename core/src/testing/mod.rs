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
//!   Its launch configs name offerings (`region`, `size`, `capacity_type`,
//!   `quota_scope`); tests make offerings stock out and workers get
//!   interrupted ([`TestingProvider::stock_out`],
//!   [`TestingProvider::interrupt`]).
//! - [`fixtures`]: worker records, specs and ownership tags for tests.
//! - The store conformance suite is
//!   [`store::conformance`](crate::store::conformance), behind the same
//!   feature.

mod cloud;
pub mod fixtures;
mod offerings;
mod provider;

pub use cloud::{CallKind, TestingCloud, TestingConfig};
pub use provider::{TestingProvider, TestingState};
