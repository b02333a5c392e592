//! What a response means for the transport: success, throttle, transient
//! failure or a final answer; and how long the cloud asked us to wait.
//!
//! Throttles do not look the same on every cloud: ARM and most HTTP APIs send
//! `429`; EC2 sends `503` (sometimes `400`) with `RequestLimitExceeded` or
//! `Throttling` in its XML body; GCE sends `403` with `rateLimitExceeded` or
//! `userRateLimitExceeded`. The rate limiter (to pause the key) and the retry
//! policy (to retry) both rely on [`classify_response`], so they always agree.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};

use super::retry::RetryInfo;
use crate::{Error, ErrorKind, Result};

/// The transport's reading of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 1xx, 2xx or 3xx answer.
    Success,
    /// The cloud asked us to slow down, perhaps saying for how long.
    Throttled {
        /// The delay from `Retry-After`, `x-ms-retry-after-ms`,
        /// `retry-after-ms` or `x-amz-retry-after`, when one was given and
        /// well formed.
        retry_after: Option<Duration>,
    },
    /// A 5xx other than 501: worth another attempt.
    Transient,
    /// A final answer (4xx, 501) that another attempt would not change.
    Final,
}

/// How many bytes of a body are searched for throttle codes.
const BODY_SCAN_LIMIT: usize = 8 * 1024;

/// Classifies a response (status, headers and, for EC2 and GCE throttles,
/// the error code in the body).
pub fn classify_response(resp: &Response<Bytes>) -> Outcome {
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS || body_says_throttled(status, resp.body()) {
        return Outcome::Throttled {
            retry_after: retry_after(resp.headers()),
        };
    }
    if status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && !body_says_no_capacity(resp.body())
    {
        return Outcome::Transient;
    }
    if status.is_client_error() || status.is_server_error() {
        return Outcome::Final;
    }
    Outcome::Success
}

fn body_says_throttled(status: StatusCode, body: &Bytes) -> bool {
    let code = status.as_u16();
    if code != 503 && code != 400 && code != 403 {
        return false;
    }
    let head = &body[..body.len().min(BODY_SCAN_LIMIT)];
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    match code {
        // EC2 query API errors: <Code>RequestLimitExceeded</Code>.
        503 | 400 => {
            has(b"<Code>RequestLimitExceeded</Code>")
                || has(b"<Code>Throttling</Code>")
                || has(b"<Code>ThrottlingException</Code>")
        }
        // GCE: {"error": {"errors": [{"reason": "rateLimitExceeded"}]}}
        _ => has(b"rateLimitExceeded") || has(b"userRateLimitExceeded"),
    }
}

/// Whether a 5xx body reports a capacity or quota shortage (EC2 sends
/// `InsufficientInstanceCapacity` with 500). Retrying at once only delays
/// the answer the caller needs: that this launch config has no capacity now,
/// so it can steer to another one.
fn body_says_no_capacity(body: &Bytes) -> bool {
    let head = &body[..body.len().min(BODY_SCAN_LIMIT)];
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    has(b"<Code>InsufficientInstanceCapacity</Code>")
        || has(b"<Code>InsufficientHostCapacity</Code>")
        || has(b"<Code>InsufficientReservedInstanceCapacity</Code>")
        || has(b"<Code>InsufficientCapacity</Code>")
        || has(b"ZONE_RESOURCE_POOL_EXHAUSTED")
        || has(b"\"AllocationFailed\"")
        || has(b"\"ZonalAllocationFailed\"")
}

/// The delay a response asks for, from (in this order) `x-ms-retry-after-ms`,
/// `retry-after-ms`, `x-amz-retry-after` (all milliseconds) and `Retry-After`
/// (seconds or an HTTP date). A malformed value is ignored and logged.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms", "x-amz-retry-after"] {
        if let Some(v) = headers.get(name) {
            match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(ms) => return Some(Duration::from_millis(ms)),
                None => tracing::warn!(header = name, value = ?v, "ignoring malformed retry delay"),
            }
        }
    }
    let v = headers.get(http::header::RETRY_AFTER)?;
    let parsed = v.to_str().ok().and_then(parse_retry_after);
    if parsed.is_none() {
        tracing::warn!(value = ?v, "ignoring malformed Retry-After");
    }
    parsed
}

/// Parses a `Retry-After` value: delay-seconds or an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). A date in the past means no delay.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    let at = SystemTime::from(at);
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Turns a non-success response into an [`Error`] (the usual ending of a
/// provider's call when it has no better mapping for the cloud's codes):
/// throttles become [`ErrorKind::Throttled`], 5xx [`ErrorKind::Transient`],
/// 401 `Unauthenticated`, 403 `PermissionDenied`, 404 `NotFound`, 409
/// `Conflict`, other statuses `Internal`. The message says how many attempts
/// were made and why the retries stopped, from the response's [`RetryInfo`].
pub fn error_for_status(resp: Response<Bytes>) -> Result<Response<Bytes>> {
    let outcome = classify_response(&resp);
    let status = resp.status();
    let kind = match outcome {
        Outcome::Success => return Ok(resp),
        Outcome::Throttled { retry_after } => ErrorKind::Throttled { retry_after },
        Outcome::Transient => ErrorKind::Transient,
        Outcome::Final => match status {
            StatusCode::UNAUTHORIZED => ErrorKind::Unauthenticated,
            StatusCode::FORBIDDEN => ErrorKind::PermissionDenied,
            StatusCode::NOT_FOUND => ErrorKind::NotFound,
            StatusCode::CONFLICT => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        },
    };
    let mut msg = format!("HTTP {status}");
    if let Some(info) = resp.extensions().get::<RetryInfo>() {
        msg.push_str(&format!(
            " after {} attempt(s); retries stopped: {}",
            info.attempts, info.stop
        ));
    }
    Err(Error::new(kind, msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Bytes> {
        let mut b = Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Bytes::from_static(body.as_bytes())).unwrap()
    }

    #[test]
    fn throttles_of_every_cloud() {
        assert_eq!(
            classify_response(&resp(429, &[("retry-after", "7")], "")),
            Outcome::Throttled {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        let ec2 = "<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        assert_eq!(
            classify_response(&resp(503, &[("x-amz-retry-after", "1500")], ec2)),
            Outcome::Throttled {
                retry_after: Some(Duration::from_millis(1500))
            }
        );
        let gce = r#"{"error":{"code":403,"errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert_eq!(
            classify_response(&resp(403, &[], gce)),
            Outcome::Throttled { retry_after: None }
        );
        assert_eq!(
            classify_response(&resp(429, &[("x-ms-retry-after-ms", "250")], "")),
            Outcome::Throttled {
                retry_after: Some(Duration::from_millis(250))
            }
        );
        assert_eq!(classify_response(&resp(403, &[], "{}")), Outcome::Final);
        assert_eq!(classify_response(&resp(503, &[], "")), Outcome::Transient);
        assert_eq!(classify_response(&resp(501, &[], "")), Outcome::Final);
        let stockout = "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code></Error></Errors></Response>";
        assert_eq!(classify_response(&resp(500, &[], stockout)), Outcome::Final);
        assert_eq!(
            classify_response(&resp(500, &[], "<Code>InternalError</Code>")),
            Outcome::Transient
        );
        assert_eq!(classify_response(&resp(200, &[], "")), Outcome::Success);
    }

    #[test]
    fn malformed_retry_after_is_ignored() {
        assert_eq!(
            classify_response(&resp(429, &[("retry-after", "soon")], "")),
            Outcome::Throttled { retry_after: None }
        );
        assert_eq!(
            classify_response(&resp(429, &[("x-ms-retry-after-ms", "-3")], "")),
            Outcome::Throttled { retry_after: None }
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37"), None);
    }

    #[test]
    fn error_for_status_maps_kinds() {
        assert!(error_for_status(resp(200, &[], "")).is_ok());
        let e = error_for_status(resp(503, &[], "")).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::Transient);
        let e = error_for_status(resp(404, &[], "")).unwrap_err();
        assert_eq!(e.kind(), &ErrorKind::NotFound);
    }
}
