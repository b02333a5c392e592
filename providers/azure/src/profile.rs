//! ARM's [`CloudProfile`]: its published request limits and how it says
//! "no capacity". Registered on the transport the provider is given
//! ([`register`]).
//!
//! | class | default | published limit |
//! |---|---|---|
//! | read, poll | 25/s, burst 250 | reads bucket 250, refill 25/s |
//! | write, delete | 10/s, burst 200 | writes/deletes bucket 200, refill 10/s |
//!
//! ARM polls are reads, so the poll class shares the read bucket. ARM
//! throttles with `429` and `Retry-After` (or `x-ms-retry-after-ms`), which
//! the transport's neutral reading already understands.

use bytes::Bytes;
use http::Response;
use skyfleet_core::provider::names::AZURE;
use skyfleet_core::transport::{body_contains, ApiClass, CloudProfile, Limit, Outcome, Transport};

/// ARM's profile (see the module doc).
pub fn profile() -> CloudProfile {
    CloudProfile::new(AZURE)
        .with_limit(ApiClass::Read, Limit::per_second(25, 250))
        .with_limit(ApiClass::Poll, Limit::per_second(25, 250))
        .with_limit(ApiClass::Write, Limit::per_second(10, 200))
        .with_limit(ApiClass::Delete, Limit::per_second(10, 200))
        .with_shared_bucket(ApiClass::Poll, ApiClass::Read)
        .with_classifier(classify)
}

/// Registers ARM's profile on `transport` (idempotent).
pub fn register(transport: &Transport) {
    // The profile's limits are constants, valid by the unit test below.
    if let Err(e) = transport.register_profile(profile()) {
        tracing::error!(error = %e, "ARM transport profile refused");
    }
}

/// A 5xx whose body reports an allocation failure is final: retrying at
/// once only delays the answer that this launch config has no capacity.
pub fn classify(resp: &Response<Bytes>) -> Option<Outcome> {
    let status = resp.status();
    (status.is_server_error()
        && status != http::StatusCode::NOT_IMPLEMENTED
        && body_contains(
            resp.body(),
            &[b"\"AllocationFailed\"", b"\"ZonalAllocationFailed\""],
        ))
    .then_some(Outcome::Final)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use skyfleet_core::transport::TransportConfig;

    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Bytes> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Bytes::from_static(body.as_bytes())).unwrap()
    }

    #[test]
    fn limits_are_valid_and_calibrated() {
        let c = TransportConfig::default().with_profile(profile());
        c.validate().unwrap();
        assert_eq!(
            c.limit_for(AZURE, ApiClass::Read),
            (ApiClass::Read, Limit::per_second(25, 250))
        );
        assert_eq!(
            c.limit_for(AZURE, ApiClass::Poll),
            (ApiClass::Read, Limit::per_second(25, 250))
        );
        assert_eq!(
            c.limit_for(AZURE, ApiClass::Write),
            (ApiClass::Write, Limit::per_second(10, 200))
        );
        assert_eq!(
            c.limit_for(AZURE, ApiClass::Delete).1,
            Limit::per_second(10, 200)
        );
    }

    #[test]
    fn throttles_and_allocation_failures() {
        let c = TransportConfig::default().with_profile(profile());
        assert_eq!(
            c.classify(AZURE, &resp(429, &[("x-ms-retry-after-ms", "250")], "")),
            Outcome::Throttled {
                retry_after: Some(Duration::from_millis(250))
            }
        );
        let alloc = r#"{"error":{"code":"AllocationFailed","message":"no room"}}"#;
        assert_eq!(c.classify(AZURE, &resp(500, &[], alloc)), Outcome::Final);
        assert_eq!(c.classify(AZURE, &resp(500, &[], "{}")), Outcome::Transient);
        assert_eq!(c.classify(AZURE, &resp(501, &[], alloc)), Outcome::Final);
        assert_eq!(c.classify(AZURE, &resp(409, &[], "{}")), Outcome::Final);
    }
}
