//! Azure Resource Manager over the shared transport: the request client
//! ([`client`]) and the long-running operation engine ([`lro`]).

pub mod client;
pub mod lro;

pub use client::{ArmClient, ArmResponse, ResourceType};
pub use lro::{ArmOperation, PollKind, PollOutcome, Started};
