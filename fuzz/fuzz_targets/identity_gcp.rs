//! Compute Engine identity tokens from arbitrary bytes.
//!
//! The input is a JWT (as text); a verifier whose key set (served from
//! memory) holds one RSA key checks it. No input may panic; none may
//! verify (nothing is signed with the key); the key set is fetched at most
//! once per input (a fresh verifier each, at a fixed time).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{gcp_jwks, runtime};
use skyfleet_identity::gcp::{GcpConfig, GcpExpected, GcpVerifier};
use skyfleet_identity::testing::MemoryFetch;

const JWKS: &str = "http://127.0.0.1:1/oauth2/v3/certs";

fuzz_target!(|data: &[u8]| {
    let jwt = String::from_utf8_lossy(data);
    let fetch = Arc::new(MemoryFetch::new());
    fetch.set(JWKS, gcp_jwks());
    let v = GcpVerifier::new(
        GcpConfig::new("https://manager.example.com")
            .with_jwks_url(JWKS)
            .with_fetcher(fetch.clone()),
    )
    .expect("a valid configuration");
    let want = GcpExpected {
        project_id: "proj-1".into(),
        instance_id: Some("4000000000000000001".into()),
        ..GcpExpected::default()
    };
    let now = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).expect("a time");
    runtime().block_on(async {
        assert!(v.verify(&jwt, &want, now).await.is_err());
        assert!(v.verify(&jwt, &want, now).await.is_err());
    });
    assert!(fetch.gets() <= 1, "{} fetches", fetch.gets());
});
