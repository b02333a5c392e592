//! Worker identity end to end (issue 15, item 3), one module per cloud: the
//! manager side talks to the mock over TLS; the proof is fetched from the
//! mock's instance-metadata service over plain HTTP, as an agent on the VM
//! fetches it; the provider trusts only what the mock's `/_mock/trust`
//! publishes (never the testing issuers). Each proof verifies for its
//! worker, and is refused (`IdentityRejected`, with its precise reason) for
//! another worker, once the VM is deleted, after it expires, with a flipped
//! byte, with another audience or nonce, from a second mock, and a new
//! proof still verifies after the mock rotates its trust.
//!
//! Expiry is reached by moving the providers' clock (`with_clock`), the
//! clock they verify with, rather than by waiting an hour (GCE `exp`) or
//! six (Azure `expiresOn`).

mod aws;
mod azure;
mod gcp;
mod support;
