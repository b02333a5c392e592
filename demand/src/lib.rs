//! Demand sources that poll a service, for skyfleet's fleet runtime.
//!
//! Core keeps the [`Demand`](skyfleet_core::fleet::Demand) trait and the
//! in-process [`FixedDemand`](skyfleet_core::fleet::FixedDemand); this crate
//! holds the sources that ask a service over HTTP:
//!
//! - [`HttpDemand`]: a JSON endpoint answering `{"pending": N, "claimed": M}`;
//! - [`TaskclusterDemand`]: a Taskcluster deployment's queue counts, signed
//!   with Hawk when [`TaskclusterCredentials`] are given or set in the
//!   environment.
//!
//! Both bound every request by a timeout (10 s unless `with_timeout` says
//! otherwise) and every answer by a size cap (1 MiB), follow no redirect,
//! and classify failures by [`ErrorKind`](skyfleet_core::ErrorKind): a
//! timeout, 5xx, 401, 403, 404 and 429 each have their kind, and an answer
//! that is not the expected counts (a negative, fractional, textual or
//! larger-than-`u64` count, a missing field) is `Internal`. Messages name
//! the request's scheme, host, port and path, never credentials.
//!
//! ```no_run
//! use std::sync::Arc;
//! use skyfleet_core::fleet::Demand;
//! use skyfleet_demand::TaskclusterDemand;
//!
//! # fn main() -> skyfleet_core::Result<()> {
//! // Signed when TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN are set.
//! let demand: Arc<dyn Demand> =
//!     Arc::new(TaskclusterDemand::new("https://tc.example.com")?.with_env_credentials()?);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod fetch;
mod http;
mod taskcluster;
#[cfg(test)]
mod test_server;

pub use http::HttpDemand;
pub use taskcluster::{
    TaskclusterCredentials, TaskclusterDemand, ACCESS_TOKEN_VAR, CERTIFICATE_VAR, CLIENT_ID_VAR,
    LEGACY_RECHECK, ROOT_URL_VAR,
};
