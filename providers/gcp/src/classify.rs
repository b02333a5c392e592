//! Google's error JSON and operation error codes, classified into
//! [`ErrorKind`]s a caller can act on.
//!
//! An API error is `{"error": {"code": 403, "message": ..., "status": ...,
//! "errors": [{"reason": "rateLimitExceeded", ...}], "details": [...]}}`; a
//! failed zone operation answers 200 with `"error": {"errors": [{"code":
//! "ZONE_RESOURCE_POOL_EXHAUSTED", ...}]}` in its body.

use std::time::Duration;

use serde::Deserialize;
use skyfleet_core::provider::names::GCP;
use skyfleet_core::{Error, ErrorKind};

/// The body of a Google API error.
#[derive(Debug, Deserialize)]
struct Envelope {
    error: ApiError,
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    errors: Vec<Item>,
    #[serde(default)]
    details: Vec<Detail>,
}

#[derive(Debug, Deserialize)]
struct Item {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Detail {
    #[serde(default)]
    reason: Option<String>,
}

/// Operation error codes that mean "no capacity or no quota here: try
/// another zone or machine type".
const CAPACITY_CODES: [&str; 7] = [
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
    "QUOTA_EXCEEDED",
    "quotaExceeded",
    "VM_MIN_COUNT_NOT_REACHED",
    "RESOURCE_EXHAUSTED",
    "STOCKOUT",
];

/// Reasons of throttles.
const THROTTLE_REASONS: [&str; 4] = [
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "RATE_LIMIT_EXCEEDED",
    "RESOURCE_OPERATION_RATE_EXCEEDED",
];

/// The kind of a cloud error code (an operation's `errors[].code` or an API
/// error's reason), when the code alone decides it.
pub fn kind_of_code(code: &str) -> Option<ErrorKind> {
    if CAPACITY_CODES.contains(&code) {
        Some(ErrorKind::CapacityOrQuota)
    } else if THROTTLE_REASONS.contains(&code) {
        Some(ErrorKind::Throttled { retry_after: None })
    } else {
        match code {
            "notFound" | "RESOURCE_NOT_FOUND" => Some(ErrorKind::NotFound),
            "alreadyExists" | "RESOURCE_ALREADY_EXISTS" => Some(ErrorKind::AlreadyExists),
            // The resource is busy with another operation: try again later.
            "resourceNotReady" | "RESOURCE_NOT_READY" => Some(ErrorKind::Transient),
            _ => None,
        }
    }
}

/// Whether `message` tells of a stockout whatever its code: Compute's
/// "The zone '...' does not have enough resources available to fulfill the
/// request", or a message naming a stockout.
pub fn is_stockout_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("does not have enough resources available") || m.contains("stockout")
}

/// The error of a failed zone operation with this `code` and `message`:
/// capacity codes (and any code with a stockout message) are
/// `CapacityOrQuota`, anything else `OperationFailed`.
pub fn operation_error(code: &str, message: &str) -> Error {
    let kind = kind_of_code(code)
        .or_else(|| is_stockout_message(message).then_some(ErrorKind::CapacityOrQuota))
        .unwrap_or(ErrorKind::OperationFailed);
    Error::new(kind, format!("operation failed: {message}"))
        .with_code(code)
        .with_provider(GCP)
}

/// The field named in a Compute message such as "Invalid value for field
/// 'resource.machineType': ...".
fn field_in(message: &str) -> Option<String> {
    let rest = message.split("field '").nth(1)?;
    let field = rest.split('\'').next()?;
    (!field.is_empty()).then(|| field.to_string())
}

/// Classifies an error answer of `method` (HTTP `status`, `body`, and the
/// `Retry-After` the transport read, if any).
pub fn api_error(method: &str, status: u16, body: &[u8], retry_after: Option<Duration>) -> Error {
    let parsed = serde_json::from_slice::<Envelope>(body)
        .ok()
        .map(|e| e.error);
    let api = parsed.unwrap_or_default();
    let reason = api
        .errors
        .iter()
        .find_map(|i| i.reason.clone())
        .or_else(|| api.details.iter().find_map(|d| d.reason.clone()));
    let message = if api.message.is_empty() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("{method}: HTTP {status}: {text}")
    } else {
        format!("{method}: HTTP {status}: {}", api.message)
    };
    let by_reason = reason.as_deref().and_then(kind_of_code);
    let kind = match (status, by_reason) {
        (_, Some(ErrorKind::Throttled { .. })) | (429, _) => ErrorKind::Throttled { retry_after },
        (_, Some(k)) => k,
        (401, _) => ErrorKind::Unauthenticated,
        (403, _) => ErrorKind::PermissionDenied,
        (404, _) => ErrorKind::NotFound,
        (409, _) => ErrorKind::AlreadyExists,
        (400 | 412 | 413, _) => ErrorKind::InvalidConfig {
            field: field_in(&api.message)
                .map(|f| format!("launch ({f})"))
                .unwrap_or_else(|| "launch".into()),
        },
        (s, _) if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Internal,
    };
    let code = reason
        .or(api.status)
        .unwrap_or_else(|| format!("HTTP{status}"));
    Error::new(kind, message).with_code(code).with_provider(GCP)
}

/// An answer that is not the JSON it should be.
pub fn malformed(method: &str, what: &str, e: &dyn std::fmt::Display) -> Error {
    Error::internal(format!(
        "{method}: malformed answer from Compute Engine ({what}): {e}"
    ))
    .with_code("MalformedResponse")
    .with_provider(GCP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_errors_are_classified() {
        let throttle = br#"{"error":{"code":403,"message":"Quota exceeded for quota metric 'Queries'","errors":[{"message":"x","domain":"usageLimits","reason":"rateLimitExceeded"}]}}"#;
        let e = api_error("compute.instances.insert", 403, throttle, None);
        assert!(matches!(e.kind(), ErrorKind::Throttled { .. }), "{e}");
        assert_eq!(e.code(), Some("rateLimitExceeded"));
        let denied = br#"{"error":{"code":403,"message":"Required 'compute.instances.create' permission","errors":[{"reason":"forbidden"}]}}"#;
        assert_eq!(
            api_error("m", 403, denied, None).kind(),
            &ErrorKind::PermissionDenied
        );
        let quota = br#"{"error":{"code":403,"message":"Quota 'CPUS' exceeded.","errors":[{"reason":"quotaExceeded"}]}}"#;
        assert_eq!(
            api_error("m", 403, quota, None).kind(),
            &ErrorKind::CapacityOrQuota
        );
        assert_eq!(
            api_error("m", 401, b"{}", None).kind(),
            &ErrorKind::Unauthenticated
        );
        let r429 = br#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"slow"}}"#;
        let e = api_error("m", 429, r429, Some(Duration::from_secs(2)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let bad = br#"{"error":{"code":400,"message":"Invalid value for field 'resource.machineType': 'x'.","errors":[{"reason":"invalid"}]}}"#;
        assert_eq!(
            api_error("m", 400, bad, None).kind(),
            &ErrorKind::InvalidConfig {
                field: "launch (resource.machineType)".into()
            }
        );
        let e = api_error("m", 502, b"<html>bad gateway</html>", None);
        assert_eq!(e.kind(), &ErrorKind::Transient);
        assert!(e.message().contains("bad gateway"), "{e}");
    }

    /// Every capacity and quota code of issue #17, as a failed operation
    /// and as an API answer, with its class.
    #[test]
    fn capacity_codes_are_classified_with_their_class() {
        use skyfleet_core::offering::CapacityClass;
        for (code, class) in [
            ("ZONE_RESOURCE_POOL_EXHAUSTED", CapacityClass::Capacity),
            (
                "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                CapacityClass::Capacity,
            ),
            ("STOCKOUT", CapacityClass::Capacity),
            ("QUOTA_EXCEEDED", CapacityClass::Quota),
            ("quotaExceeded", CapacityClass::Quota),
        ] {
            let e = operation_error(code, "no");
            assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota, "{code}");
            assert_eq!(e.code(), Some(code));
            assert_eq!(CapacityClass::of_code(e.code()), class, "{code}");
            let body = format!(
                r#"{{"error":{{"code":403,"message":"no","errors":[{{"reason":"{code}"}}]}}}}"#
            );
            let e = api_error("compute.instances.insert", 403, body.as_bytes(), None);
            assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota, "{code}");
            assert_eq!(e.code(), Some(code));
        }
        // A stockout told only by the message keeps its code.
        let e = operation_error(
            "RESOURCE_NOT_AVAILABLE",
            "The zone 'projects/p/zones/us-central1-a' does not have enough resources \
             available to fulfill the request. Try a different zone, or try again later.",
        );
        assert_eq!(e.kind(), &ErrorKind::CapacityOrQuota);
        assert_eq!(e.code(), Some("RESOURCE_NOT_AVAILABLE"));
        assert_eq!(
            operation_error("UNSUPPORTED_OPERATION", "stopped").kind(),
            &ErrorKind::OperationFailed
        );
    }

    #[test]
    fn operation_codes() {
        assert_eq!(
            operation_error("ZONE_RESOURCE_POOL_EXHAUSTED", "no").kind(),
            &ErrorKind::CapacityOrQuota
        );
        assert_eq!(
            operation_error("QUOTA_EXCEEDED", "no").kind(),
            &ErrorKind::CapacityOrQuota
        );
        let e = operation_error("UNSUPPORTED_OPERATION", "no");
        assert_eq!(e.kind(), &ErrorKind::OperationFailed);
        assert_eq!(e.code(), Some("UNSUPPORTED_OPERATION"));
    }
}
