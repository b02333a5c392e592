//! skyfleet provider for AWS EC2: instances through aws-sdk-ec2, with every
//! call routed through the shared transport.
//!
//! Build one with [`AwsBuilder`]; it is an [`skyfleet_core::Provider`].
//! Inside, one module per concept:
//!
//! - `builder`: the settings (regions, endpoint, credentials, timings) and
//!   the one way to construct the provider;
//! - `credential`: where credentials come from;
//! - `launch`: the launch config of a pool (EC2's field names) and the
//!   UserData skyfleet writes;
//! - `idempotency`: the RunInstances `ClientToken`, derived from the worker;
//! - `offering`: the offering (zone or region, type, spot or on-demand,
//!   quota scope) of a launch config;
//! - `state`: what is persisted on each worker between steps;
//! - `plan` and `decide`: the step machine, as pure functions;
//! - `client`: one aws-sdk-ec2 client per region, the few calls made;
//! - `classify`: EC2 error codes as skyfleet error kinds;
//! - `connector`: the aws-smithy HTTP client over the shared transport;
//! - `provider`: the [`skyfleet_core::Provider`] implementation carrying
//!   the steps out;
//! - `identity`: worker identity proofs (instance identity documents),
//!   checked with `skyfleet-identity`.
//!
//! The `testing` feature adds test hooks (`AwsProvider::sdk_client`);
//! they are not stable API.
#![warn(missing_docs)]

mod builder;
mod classify;
mod client;
mod connector;
mod credential;
mod decide;
mod idempotency;
mod identity;
mod launch;
mod offering;
mod plan;
mod profile;
mod provider;
mod state;

pub use builder::{AwsBuilder, Timings};
pub use connector::TransportConnector;
pub use credential::CredentialsSource;
pub use launch::{BlockDevice, Ebs, Ec2Launch, MarketOptions, Placement, SpotOptions};
pub use offering::{offering, quota_class};
pub use provider::AwsProvider;
/// A secret string that never shows in `Debug` or logs (core's one type).
pub use skyfleet_core::provider::support::Secret;
/// The trust of instance identity documents (certificates per region).
pub use skyfleet_identity::aws::{AwsTrust, SignatureForm};
pub use state::{AwsState, Teardown, TeardownReason};
