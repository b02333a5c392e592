//! Demand sources that poll a service, for skyfleet's fleet runtime.
//!
//! Core keeps the [`Demand`](skyfleet_core::fleet::Demand) trait and the
//! in-process [`FixedDemand`](skyfleet_core::fleet::FixedDemand); this crate
//! holds the sources that ask a service over HTTP:
//!
//! - [`HttpDemand`]: a JSON endpoint answering `{"pending": N, "claimed": M}`;
//! - [`TaskclusterDemand`]: a Taskcluster deployment's queue counts.
//!
//! ```no_run
//! use std::sync::Arc;
//! use skyfleet_core::fleet::Demand;
//! use skyfleet_demand::TaskclusterDemand;
//!
//! # fn main() -> skyfleet_core::Result<()> {
//! let demand: Arc<dyn Demand> =
//!     Arc::new(TaskclusterDemand::new("https://tc.example.com")?);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod fetch;
mod http;
mod taskcluster;

pub use http::HttpDemand;
pub use taskcluster::TaskclusterDemand;
