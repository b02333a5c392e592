//! skyfleet provider for AWS EC2: instances through aws-sdk-ec2, with every
//! call routed through the shared transport.
//!
//! - [`config`]: the provider's regions, endpoint and credentials;
//! - [`launch`]: the launch config of a pool (EC2's field names) and the
//!   UserData skyfleet writes;
//! - [`token`]: the RunInstances `ClientToken`, derived from the worker id;
//! - [`state`]: what is persisted on each worker between steps;
//! - [`client`]: one aws-sdk-ec2 client per region over the transport;
//! - [`classify`]: EC2 error codes as skyfleet error kinds;
//! - [`provider`]: the [`skyfleet_core::Provider`] implementation;
//! - [`connector`]: the aws-smithy HTTP client over the shared transport.
#![warn(missing_docs)]

pub mod classify;
pub mod client;
pub mod config;
pub mod connector;
pub mod launch;
pub mod profile;
pub mod provider;
pub mod state;
pub mod token;

pub use config::{AwsConfig, CredentialsSource, Secret, Timings};
pub use launch::Ec2Launch;
pub use provider::AwsProvider;
pub use state::AwsState;
