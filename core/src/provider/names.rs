//! The provider type names ([`Provider::kind`](super::Provider::kind)), also
//! the first part of every transport [`Key`](crate::transport::Key) and the
//! `provider` of errors and metrics. Use these constants instead of
//! literals, so a typo is a compile error rather than a key of its own.

/// Amazon EC2.
pub const AWS: &str = "aws";
/// Microsoft Azure (ARM).
pub const AZURE: &str = "azure";
/// Google Compute Engine.
pub const GCP: &str = "gcp";
/// A fixed set of machines.
pub const STATIC: &str = "static";
/// The in-memory provider of core's `testing` module (feature `testing`).
pub const TESTING: &str = "testing";
