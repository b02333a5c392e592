//! ARM error codes to skyfleet [`ErrorKind`]s, so callers act on a class
//! instead of parsing strings.
//!
//! - capacity and quota (`AllocationFailed`, `ZonalAllocationFailed`,
//!   `SkuNotAvailable`, `OperationNotAllowed` on create, quota codes,
//!   `PublicIPCountLimitReached`): [`ErrorKind::CapacityOrQuota`], so a
//!   provisioner can steer to another launch config; they arrive either on
//!   the initial PUT or, asynchronously, in a failed operation's status;
//! - 401 and 403: [`ErrorKind::Unauthenticated`] / [`ErrorKind::PermissionDenied`];
//! - 429 and ARM's throttle codes: [`ErrorKind::Throttled`] with `Retry-After`;
//! - 409 `AnotherOperationInProgress` and the delete-ordering codes
//!   (`NicInUse`, ...): "busy", retried later, never a failure;
//! - 400 request errors: [`ErrorKind::InvalidConfig`] at `launch` (the
//!   request is built from the launch config); 5xx: [`ErrorKind::Transient`].

use std::time::Duration;

use serde::Deserialize;
use skyfleet_core::{Error, ErrorKind};

/// Codes meaning "no capacity or no quota for this request".
pub const CAPACITY_CODES: &[&str] = &[
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
    "SkuNotAvailable",
    "OperationNotAllowed",
    "PublicIPCountLimitReached",
    "ResourceQuotaExceeded",
    "QuotaExceeded",
];

/// Codes meaning "another operation or a dependent holds the resource: try
/// again later" (delete ordering, concurrent operations).
pub const BUSY_CODES: &[&str] = &[
    "AnotherOperationInProgress",
    "RetryableErrorDueToAnotherOperation",
    "NicInUse",
    "InUseSubnetCannotBeDeleted",
    "PublicIPAddressCannotBeDeleted",
    "PublicIPAddressInUse",
    "OperationNotAllowed",
    "Conflict",
];

/// Codes of ARM throttling answers.
pub const THROTTLE_CODES: &[&str] = &["TooManyRequests", "SubscriptionRequestsThrottled"];

#[derive(Deserialize)]
struct Envelope {
    error: Option<Body>,
}

#[derive(Deserialize)]
struct Body {
    code: Option<String>,
    message: Option<String>,
}

/// The `code` and `message` of ARM's error envelope
/// (`{"error":{"code":..,"message":..}}`), if the body is one.
pub fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    let env: Envelope = serde_json::from_slice(body).ok()?;
    let b = env.error?;
    Some((b.code.unwrap_or_default(), b.message.unwrap_or_default()))
}

fn has(list: &[&str], code: &str) -> bool {
    list.iter().any(|c| c.eq_ignore_ascii_case(code))
}

/// Whether `code` means "capacity or quota".
pub fn is_capacity(code: &str) -> bool {
    has(CAPACITY_CODES, code)
}

/// Whether `code` means "busy, retry later" (in a delete).
pub fn is_busy(code: &str) -> bool {
    has(BUSY_CODES, code)
}

/// The kind of an ARM error answer.
pub fn kind_for(status: u16, code: &str, retry_after: Option<Duration>) -> ErrorKind {
    if status == 429 || has(THROTTLE_CODES, code) {
        return ErrorKind::Throttled { retry_after };
    }
    if is_capacity(code) {
        return ErrorKind::CapacityOrQuota;
    }
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400 | 422 => ErrorKind::InvalidConfig {
            field: "launch".into(),
        },
        500..=599 => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    }
}

/// An error for an ARM answer with a non-success status.
pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>, what: &str) -> Error {
    let (code, message) = parse_error_body(body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        (String::new(), text)
    });
    let code = if code.is_empty() {
        format!("HTTP{status}")
    } else {
        code
    };
    Error::new(
        kind_for(status, &code, retry_after),
        format!("{what}: HTTP {status}: {message}"),
    )
    .with_code(code)
    .with_provider("azure")
}

/// The error of an operation that ended `Failed` with `code`.
pub fn operation_failed(code: &str, message: &str, what: &str) -> Error {
    let kind = if is_capacity(code) {
        ErrorKind::CapacityOrQuota
    } else {
        ErrorKind::OperationFailed
    };
    Error::new(kind, format!("{what} failed: {message}"))
        .with_code(code.to_string())
        .with_provider("azure")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let e = from_response(
            409,
            br#"{"error":{"code":"OperationNotAllowed","message":"quota"}}"#,
            None,
            "PUT vm",
        );
        assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota);
        assert_eq!(e.code(), Some("OperationNotAllowed"));
        let e = from_response(429, b"", Some(Duration::from_secs(3)), "GET");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.code(), Some("HTTP429"));
        assert_eq!(
            from_response(
                401,
                br#"{"error":{"code":"ExpiredAuthenticationToken","message":""}}"#,
                None,
                "x"
            )
            .kind(),
            &ErrorKind::Unauthenticated
        );
        assert_eq!(
            from_response(403, b"{}", None, "x").kind(),
            &ErrorKind::PermissionDenied
        );
        assert_eq!(
            from_response(502, b"<html>", None, "x").kind(),
            &ErrorKind::Transient
        );
        for code in [
            "AllocationFailed",
            "ZonalAllocationFailed",
            "SkuNotAvailable",
            "PublicIPCountLimitReached",
        ] {
            assert_eq!(
                operation_failed(code, "m", "VM create").kind(),
                &ErrorKind::CapacityOrQuota
            );
        }
        assert_eq!(
            operation_failed("InternalExecutionError", "m", "x").kind(),
            &ErrorKind::OperationFailed
        );
        assert!(is_busy("NicInUse") && is_busy("anotheroperationinprogress"));
    }
}
