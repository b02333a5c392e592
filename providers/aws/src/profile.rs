//! EC2's [`CloudProfile`]: its published request limits and how it says
//! "throttled" and "no capacity" in its XML bodies. Registered on the
//! transport the provider is given ([`register`]).
//!
//! | class | default | published limit |
//! |---|---|---|
//! | read | 20/s, burst 100 | non-mutating bucket 100, refill 20/s |
//! | poll | 10/s, burst 50 | `DescribeInstances` unfiltered bucket 50, refill 10/s |
//! | write | 5/s, burst 50 | mutating bucket 50, refill 5/s |
//! | delete | 5/s, burst 100 | `TerminateInstances` bucket 100, refill 5/s |
//! | op `RunInstances`, `StartInstances` | 2/s, burst 5 | bucket 5, refill 2/s |
//! | op `CreateTags`, `DeleteTags` | 10/s, burst 100 | bucket 100, refill 10/s |
//!
//! The defaults are at or just under the published limits, so a fleet that
//! keeps to them is not throttled in steady state; a `TransportConfig`
//! setting overrides them (raised account limits, shared quotas).

use bytes::Bytes;
use http::Response;
use skyfleet_core::provider::names::AWS;
use skyfleet_core::transport::{
    body_contains, retry_after, ApiClass, CloudProfile, Limit, Outcome, Transport,
};

/// EC2's profile (see the module doc).
pub fn profile() -> CloudProfile {
    let mut p = CloudProfile::new(AWS)
        .with_limit(ApiClass::Read, Limit::per_second(20, 100))
        .with_limit(ApiClass::Poll, Limit::per_second(10, 50))
        .with_limit(ApiClass::Write, Limit::per_second(5, 50))
        .with_limit(ApiClass::Delete, Limit::per_second(5, 100))
        .with_classifier(classify);
    for op in ["RunInstances", "StartInstances"] {
        p = p.with_operation_limit(op, Limit::per_second(2, 5));
    }
    for op in ["CreateTags", "DeleteTags"] {
        p = p.with_operation_limit(op, Limit::per_second(10, 100));
    }
    p
}

/// Registers EC2's profile on `transport` (idempotent).
pub fn register(transport: &Transport) {
    // The profile's limits are constants, valid by the unit test below.
    if let Err(e) = transport.register_profile(profile()) {
        tracing::error!(error = %e, "EC2 transport profile refused");
    }
}

/// EC2 query API errors: `<Code>RequestLimitExceeded</Code>` in a 503 (or
/// 400) is a throttle; a capacity shortage in a 5xx
/// (`InsufficientInstanceCapacity` comes with 500) is final: retrying at
/// once only delays the answer the caller needs, that this launch config
/// has no capacity now, so it can steer to another one.
pub fn classify(resp: &Response<Bytes>) -> Option<Outcome> {
    let status = resp.status().as_u16();
    let body = resp.body();
    if (status == 503 || status == 400)
        && body_contains(
            body,
            &[
                b"<Code>RequestLimitExceeded</Code>",
                b"<Code>Throttling</Code>",
                b"<Code>ThrottlingException</Code>",
            ],
        )
    {
        return Some(Outcome::Throttled {
            retry_after: retry_after(resp.headers()),
        });
    }
    if resp.status().is_server_error()
        && status != 501
        && body_contains(
            body,
            &[
                b"<Code>InsufficientInstanceCapacity</Code>",
                b"<Code>InsufficientHostCapacity</Code>",
                b"<Code>InsufficientReservedInstanceCapacity</Code>",
                b"<Code>InsufficientCapacity</Code>",
            ],
        )
    {
        return Some(Outcome::Final);
    }
    None
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
        let p = profile();
        p.validate().unwrap();
        let c = TransportConfig::default().with_profile(p);
        c.validate().unwrap();
        assert_eq!(
            c.limit_for(AWS, ApiClass::Read),
            (ApiClass::Read, Limit::per_second(20, 100))
        );
        assert_eq!(
            c.limit_for(AWS, ApiClass::Poll).1,
            Limit::per_second(10, 50)
        );
        assert_eq!(
            c.limit_for(AWS, ApiClass::Write).1,
            Limit::per_second(5, 50)
        );
        assert_eq!(
            c.limit_for(AWS, ApiClass::Delete).1,
            Limit::per_second(5, 100)
        );
        assert_eq!(
            c.operation_limit(AWS, "RunInstances"),
            Some(Limit::per_second(2, 5))
        );
        assert_eq!(
            c.operation_limit(AWS, "DeleteTags"),
            Some(Limit::per_second(10, 100))
        );
        assert_eq!(c.operation_limit(AWS, "DescribeInstances"), None);
    }

    #[test]
    fn throttles_and_stockouts() {
        let c = TransportConfig::default().with_profile(profile());
        let ec2 = "<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        assert_eq!(
            c.classify(AWS, &resp(503, &[("x-amz-retry-after", "1500")], ec2)),
            Outcome::Throttled {
                retry_after: Some(Duration::from_millis(1500))
            }
        );
        assert_eq!(
            c.classify(AWS, &resp(400, &[], "<Code>Throttling</Code>")),
            Outcome::Throttled { retry_after: None }
        );
        let stockout = "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code></Error></Errors></Response>";
        assert_eq!(c.classify(AWS, &resp(500, &[], stockout)), Outcome::Final);
        assert_eq!(
            c.classify(AWS, &resp(500, &[], "<Code>InternalError</Code>")),
            Outcome::Transient
        );
        assert_eq!(c.classify(AWS, &resp(503, &[], "")), Outcome::Transient);
        assert_eq!(
            c.classify(AWS, &resp(429, &[("retry-after", "7")], "")),
            Outcome::Throttled {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(c.classify(AWS, &resp(200, &[], "")), Outcome::Success);
        // Another provider's keys are not read as EC2's.
        assert_eq!(
            c.classify("other", &resp(503, &[], ec2)),
            Outcome::Transient
        );
    }
}
