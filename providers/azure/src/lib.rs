//! skyfleet provider for Azure: the public IP -> NIC -> disk -> VM chain as
//! a resumable state machine over ARM REST.
//!
//! Azure needs several asynchronous calls per VM (each a request plus polls
//! of an operation), calls sometimes hang, and a process may die at any
//! instant. Taskcluster's worker-manager met all of this in production; this
//! crate makes its lessons structural:
//!
//! - `chain`: one step at a time, at most one mutating ARM call per step,
//!   names derived from the worker id and persisted with the first call, GET
//!   by name as the source of truth, teardown of whatever may exist;
//! - `client`: every ARM request through the shared transport (timeouts,
//!   retries, rate limits per subscription and API class), long-running
//!   operations as persisted handles polled on the server's `Retry-After`;
//! - `credential`: `azure_identity` credentials, cached and refreshed
//!   before expiry;
//! - `classify`: ARM error codes to skyfleet error kinds;
//! - `idempotency`: resource names derived from the worker id;
//! - `launch`: a pool's launch config ([`AzureLaunch`], spot settings
//!   included) and `offering`: its [`offering`] (location, size, spot or
//!   regular, quota scope);
//! - `identity`: workers' attested data documents, checked with
//!   `skyfleet-identity`;
//! - [`AzureBuilder`]: the one way to build an [`AzureProvider`].
//!
//! ```no_run
//! # async fn demo() -> skyfleet_core::Result<()> {
//! use skyfleet_azure::AzureBuilder;
//! let provider = AzureBuilder::new("00000000-0000-0000-0000-000000000000")
//!     .with_resource_groups(["workers"])
//!     .build()?;
//! # let _ = provider; Ok(()) }
//! ```
#![warn(missing_docs)]

mod builder;
mod chain;
mod classify;
mod client;
mod credential;
mod idempotency;
mod identity;
mod launch;
mod offering;
pub mod profile;
mod provider;
mod resources;

pub use builder::{AzureBuilder, AzureConfig, TransportSettings};
pub use credential::{Credential, CredentialConfig};
pub use launch::{AzureLaunch, DataDisk, ImageRef, OsDisk, MAX_USER_DATA};
pub use offering::{offering, vm_family, SPOT_SERIES};
pub use provider::AzureProvider;
pub use skyfleet_core::provider::support::Secret;
/// How attested data documents are verified (roots, AIA, signer domain):
/// [`AzureBuilder::with_attestation`].
pub use skyfleet_identity::azure::AzureConfig as AttestationConfig;

/// Internals reached by tests and the fuzz crate: NOT a stable API.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::chain::ChainState;
    pub use crate::classify::{from_response, parse_error_body};
    pub use crate::client::{
        ArmAnswer, ArmClient, ArmOperation, ArmResponse, PollKind, PollOutcome, ResourceType,
        Started,
    };

    /// The ARM client `provider` sends through.
    pub fn client(provider: &crate::AzureProvider) -> &ArmClient {
        provider.client()
    }
}
