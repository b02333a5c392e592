//! ARM error codes to skyfleet [`ErrorKind`]s, so callers act on a class
//! instead of parsing strings.
//!
//! - capacity and quota (`AllocationFailed`, `ZonalAllocationFailed`,
//!   `Overconstrained(Zonal)AllocationRequest`, `SkuNotAvailable`,
//!   `OperationNotAllowed` with a quota message, quota codes,
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

/// Codes that mean "quota exhausted" only when their message says quota
/// (ARM answers `OperationNotAllowed` both for "exceeding approved
/// standardDSv5Family Cores quota" and for "disk already attached").
pub const QUOTA_MESSAGE_CODES: &[&str] = &["OperationNotAllowed"];

/// Whether `code` alone means "capacity or quota".
pub fn is_capacity(code: &str) -> bool {
    has(CAPACITY_CODES, code)
}

/// Whether an answer with `code` and `message` means "capacity or quota":
/// a capacity code, or `OperationNotAllowed` whose message mentions quota.
pub fn is_capacity_error(code: &str, message: &str) -> bool {
    is_capacity(code)
        || (has(QUOTA_MESSAGE_CODES, code) && message.to_ascii_lowercase().contains("quota"))
}

/// Whether `code` means "busy, retry later" (in a delete).
pub fn is_busy(code: &str) -> bool {
    has(BUSY_CODES, code)
}

/// The kind of an ARM error answer.
pub fn kind_for(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<Duration>,
) -> ErrorKind {
    if status == 429 || has(THROTTLE_CODES, code) {
        return ErrorKind::Throttled { retry_after };
    }
    if is_capacity_error(code, message) {
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
        kind_for(status, &code, &message, retry_after),
        format!("{what}: HTTP {status}: {message}"),
    )
    .with_code(code)
    .with_provider("azure")
}

/// The error of an operation that ended `Failed` with `code`.
pub fn operation_failed(code: &str, message: &str, what: &str) -> Error {
    let kind = if is_capacity_error(code, message) {
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

    /// Every capacity and quota code of issue #17, as a refused request
    /// and as a failed operation, with its class.
    #[test]
    fn capacity_codes_are_classified_with_their_class() {
        use skyfleet_core::offering::CapacityClass;
        let quota_msg = "Operation could not be completed as it results in exceeding approved \
                         standardDSv5Family Cores quota.";
        for (code, message, class) in [
            ("SkuNotAvailable", "not available", CapacityClass::Capacity),
            ("AllocationFailed", "no capacity", CapacityClass::Capacity),
            (
                "ZonalAllocationFailed",
                "no capacity",
                CapacityClass::Capacity,
            ),
            (
                "OverconstrainedAllocationRequest",
                "too narrow",
                CapacityClass::Capacity,
            ),
            (
                "OverconstrainedZonalAllocationRequest",
                "too narrow",
                CapacityClass::Capacity,
            ),
            ("QuotaExceeded", quota_msg, CapacityClass::Quota),
            ("OperationNotAllowed", quota_msg, CapacityClass::Quota),
        ] {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
            for status in [400, 409] {
                let e = from_response(status, body.as_bytes(), None, "PUT vm");
                assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota, "{code} {status}");
                assert_eq!(e.code(), Some(code));
            }
            let e = operation_failed(code, message, "VM create");
            assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota, "{code}");
            assert_eq!(e.code(), Some(code));
            assert_eq!(CapacityClass::of_code(e.code()), class, "{code}");
        }
        // OperationNotAllowed without quota is not capacity.
        let e = from_response(
            409,
            br#"{"error":{"code":"OperationNotAllowed","message":"Disk d is attached to VM v."}}"#,
            None,
            "DELETE disk",
        );
        assert_eq!(e.kind(), &ErrorKind::Conflict);
        assert_eq!(
            operation_failed("OperationNotAllowed", "not now", "x").kind(),
            &ErrorKind::OperationFailed
        );
    }
}
