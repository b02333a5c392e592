//! skyfleet core.
pub mod error;
pub mod transport;
pub use error::{Error, ErrorKind, Result};
