//! skyfleet worker identity: verification of the proofs a VM gets from its
//! cloud's instance metadata service, as a library.
//!
//! A worker-manager hands credentials only to machines it created. Each
//! cloud lets a VM prove who it is; this crate checks those proofs the way
//! each cloud documents, then compares what the proof says with what the
//! provider stored for the worker:
//!
//! - [`aws`]: the instance identity document with its base64 RSA-SHA256
//!   `signature` or its `rsa2048` PKCS#7 form, against the region's AWS
//!   public certificate (the published RSA and RSA-2048 certificates of
//!   every listed region are bundled);
//! - [`gcp`]: the Compute Engine identity token (RS256 JWT, `format=full`)
//!   against Google's JWKS, cached and refetched on an unknown `kid` at most
//!   once a minute;
//! - [`azure`]: the attested data document (CMS SignedData) with its
//!   signer's chain to Microsoft's roots, intermediates carried, cached or
//!   fetched from an allow-listed AIA URL;
//! - [`static_secret`]: a per-worker secret against its stored digest.
//!
//! Every failure is one [`Rejected`] whose `Display` is the same for all
//! ([`OUTWARD_MESSAGE`]); the precise [`Reason`] is for logs and metrics
//! only. Network fetches go through [`Fetch`] ([`HttpFetch`] by default:
//! 5 s timeout, no redirects, bounded body). Cryptography is aws-lc-rs
//! (through jsonwebtoken and rustls-webpki as well); ASN.1 is the `cms`,
//! `der` and `x509-cert` crates'.
//!
//! The `testing` feature adds issuers of self-made proofs
//! (`skyfleet_identity::testing`), for tests, benchmarks and fuzz seeds.
#![warn(missing_docs)]

pub mod aws;
pub mod azure;
mod encoding;
mod error;
mod fetch;
pub mod gcp;
mod pkcs7;
pub mod static_secret;
#[cfg(feature = "testing")]
pub mod testing;
mod x509;

pub use error::{ConfigError, Reason, Rejected, OUTWARD_MESSAGE};
pub use fetch::{Fetch, FetchError, HttpFetch, FETCH_TIMEOUT, MAX_FETCH_BYTES};
