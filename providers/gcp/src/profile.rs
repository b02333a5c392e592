//! Compute Engine's [`CloudProfile`]: its published request limits and how
//! it says "throttled" and "no capacity" in its JSON bodies. Registered on
//! the transport the provider is given ([`register`]).
//!
//! | class | default | published limit |
//! |---|---|---|
//! | every class | 1440/min, burst 60 | 1500/min per group, synchronised windows |
//!
//! GCE deletes are mutations and share the write group. GCE counts per
//! fixed, synchronised minute, which a GCRA cannot mirror exactly, so the
//! defaults are chosen such that any 60 s window admits at most
//! `60 + 24 × 60 = 1500` calls: never more than the published group limit,
//! whichever way the windows fall.

use bytes::Bytes;
use http::Response;
use skyfleet_core::provider::names::GCP;
use skyfleet_core::transport::{
    body_contains, retry_after, ApiClass, CloudProfile, Limit, Outcome, Transport,
};

/// Compute Engine's profile (see the module doc).
pub fn profile() -> CloudProfile {
    let mut p = CloudProfile::new(GCP)
        .with_shared_bucket(ApiClass::Delete, ApiClass::Write)
        .with_classifier(classify);
    for c in ApiClass::ALL {
        p = p.with_limit(c, Limit::per_minute(1440, 60));
    }
    p
}

/// Registers Compute Engine's profile on `transport` (idempotent).
pub fn register(transport: &Transport) {
    // The profile's limits are constants, valid by the unit test below.
    if let Err(e) = transport.register_profile(profile()) {
        tracing::error!(error = %e, "GCE transport profile refused");
    }
}

/// GCE throttles with `403` and `rateLimitExceeded` (or
/// `userRateLimitExceeded`) as the error reason; a 5xx reporting
/// `ZONE_RESOURCE_POOL_EXHAUSTED` is final (no capacity in that zone now).
pub fn classify(resp: &Response<Bytes>) -> Option<Outcome> {
    let status = resp.status();
    if status == http::StatusCode::FORBIDDEN
        && body_contains(
            resp.body(),
            &[b"rateLimitExceeded", b"userRateLimitExceeded"],
        )
    {
        return Some(Outcome::Throttled {
            retry_after: retry_after(resp.headers()),
        });
    }
    (status.is_server_error()
        && status != http::StatusCode::NOT_IMPLEMENTED
        && body_contains(resp.body(), &[b"ZONE_RESOURCE_POOL_EXHAUSTED"]))
    .then_some(Outcome::Final)
}

#[cfg(test)]
mod tests {
    use skyfleet_core::transport::TransportConfig;

    use super::*;

    fn resp(status: u16, body: &'static str) -> Response<Bytes> {
        Response::builder()
            .status(status)
            .body(Bytes::from_static(body.as_bytes()))
            .unwrap()
    }

    #[test]
    fn limits_are_valid_and_calibrated() {
        let c = TransportConfig::default().with_profile(profile());
        c.validate().unwrap();
        let gcp = c.limit_for(GCP, ApiClass::Read).1;
        // Any 60 s window admits burst + rate * 60 calls: at most the published 1500/min.
        assert!(f64::from(gcp.burst) + gcp.rate_per_second() * 60.0 <= 1500.0);
        assert_eq!(
            c.limit_for(GCP, ApiClass::Delete),
            (ApiClass::Write, Limit::per_minute(1440, 60))
        );
        assert_eq!(c.limit_for(GCP, ApiClass::Poll).0, ApiClass::Poll);
    }

    #[test]
    fn throttles_and_stockouts() {
        let c = TransportConfig::default().with_profile(profile());
        let gce = r#"{"error":{"code":403,"errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert_eq!(
            c.classify(GCP, &resp(403, gce)),
            Outcome::Throttled { retry_after: None }
        );
        assert_eq!(c.classify(GCP, &resp(403, "{}")), Outcome::Final);
        let stockout = r#"{"error":{"errors":[{"reason":"ZONE_RESOURCE_POOL_EXHAUSTED"}]}}"#;
        assert_eq!(c.classify(GCP, &resp(503, stockout)), Outcome::Final);
        assert_eq!(c.classify(GCP, &resp(503, "")), Outcome::Transient);
    }
}
