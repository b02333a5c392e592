//! What a response means for the transport: success, throttle, transient
//! failure or a final answer; and how long the cloud asked us to wait.
//!
//! [`classify_response`] is the cloud-neutral reading: status and headers
//! (`429` is a throttle, 5xx but 501 transient). Clouds that say more in
//! their bodies (EC2's `RequestLimitExceeded` in a `503`, GCE's
//! `rateLimitExceeded` in a `403`, capacity shortages in a `500`) register a
//! [`CloudProfile`](super::CloudProfile) whose classifier reads them first
//! ([`TransportConfig::classify`](super::TransportConfig::classify)). The
//! rate limiter (to pause the key) and the retry policy (to retry) both use
//! that one reading, so they always agree, and the final response carries it
//! (an [`Outcome`] extension) for [`error_for_status`].

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

/// Classifies a response by its status and headers alone (the neutral
/// reading; see the module doc).
pub fn classify_response(resp: &Response<Bytes>) -> Outcome {
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Outcome::Throttled {
            retry_after: retry_after(resp.headers()),
        };
    }
    if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
        return Outcome::Transient;
    }
    if status.is_client_error() || status.is_server_error() {
        return Outcome::Final;
    }
    Outcome::Success
}

/// How many bytes of a body [`body_contains`] searches.
pub const BODY_SCAN_LIMIT: usize = 8 * 1024;

/// Whether the first [`BODY_SCAN_LIMIT`] bytes of `body` contain one of
/// `needles` (for cloud classifiers looking for error codes).
pub fn body_contains(body: &[u8], needles: &[&[u8]]) -> bool {
    let head = &body[..body.len().min(BODY_SCAN_LIMIT)];
    needles
        .iter()
        .any(|n| !n.is_empty() && head.windows(n.len()).any(|w| w == *n))
}

/// The longest delay a server may ask for: longer values (a
/// `Retry-After: 999999999999`, a date in year 9999) are read as this, so
/// every later `now + delay` stays in range. The scanner and the retry
/// policy clamp further to their own maxima.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(3600);

/// The delay a response asks for, from (in this order) `x-ms-retry-after-ms`,
/// `retry-after-ms`, `x-amz-retry-after` (all milliseconds) and `Retry-After`
/// (seconds or an HTTP date), at most [`MAX_SERVER_DELAY`]. A malformed value
/// is ignored and logged.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    for name in ["x-ms-retry-after-ms", "retry-after-ms", "x-amz-retry-after"] {
        if let Some(v) = headers.get(name) {
            match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                Some(ms) => return Some(Duration::from_millis(ms).min(MAX_SERVER_DELAY)),
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
/// (`Sun, 06 Nov 1994 08:49:37 GMT`). A date in the past means no delay; a
/// delay longer than [`MAX_SERVER_DELAY`] (or too many digits for a `u64`)
/// is read as [`MAX_SERVER_DELAY`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            value
                .parse::<u64>()
                .map_or(MAX_SERVER_DELAY, Duration::from_secs)
                .min(MAX_SERVER_DELAY),
        );
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
            .unwrap_or(Duration::ZERO)
            .min(MAX_SERVER_DELAY),
    )
}

/// Turns a non-success response into an [`Error`] (the usual ending of a
/// provider's call when it has no better mapping for the cloud's codes),
/// by the transport's [`Outcome`] of it (see the module doc), or the
/// neutral one for a response that did not come through a transport:
/// throttles become [`ErrorKind::Throttled`], 5xx [`ErrorKind::Transient`],
/// 401 `Unauthenticated`, 403 `PermissionDenied`, 404 `NotFound`, 409
/// `Conflict`, other statuses `Internal`. The message says how many attempts
/// were made and why the retries stopped, from the response's [`RetryInfo`].
pub fn error_for_status(resp: Response<Bytes>) -> Result<Response<Bytes>> {
    let outcome = resp
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or_else(|| classify_response(&resp));
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
    fn neutral_reading_of_status_and_headers() {
        assert_eq!(
            classify_response(&resp(429, &[("retry-after", "7")], "")),
            Outcome::Throttled {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify_response(&resp(429, &[("x-ms-retry-after-ms", "250")], "")),
            Outcome::Throttled {
                retry_after: Some(Duration::from_millis(250))
            }
        );
        // Bodies are the clouds' business (their profiles).
        let ec2 = "<Response><Errors><Error><Code>RequestLimitExceeded</Code></Error></Errors></Response>";
        assert_eq!(classify_response(&resp(503, &[], ec2)), Outcome::Transient);
        let gce = r#"{"error":{"code":403,"errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert_eq!(classify_response(&resp(403, &[], gce)), Outcome::Final);
        assert_eq!(classify_response(&resp(503, &[], "")), Outcome::Transient);
        assert_eq!(classify_response(&resp(501, &[], "")), Outcome::Final);
        assert_eq!(classify_response(&resp(200, &[], "")), Outcome::Success);
    }

    #[test]
    fn error_for_status_uses_the_transports_outcome() {
        let mut r = resp(403, &[], "");
        r.extensions_mut()
            .insert(Outcome::Throttled { retry_after: None });
        let e = error_for_status(r).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Throttled { .. }));
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
    fn absurd_server_delays_are_clamped_to_max_server_delay() {
        for (name, value) in [
            ("retry-after", "999999999999"),
            ("retry-after", "99999999999999999999999999"),
            ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
            ("x-ms-retry-after-ms", "18446744073709551615"),
            ("x-amz-retry-after", "86400000"),
            ("retry-after-ms", "999999999999999"),
        ] {
            assert_eq!(
                classify_response(&resp(429, &[(name, value)], "")),
                Outcome::Throttled {
                    retry_after: Some(MAX_SERVER_DELAY)
                },
                "{name}: {value}"
            );
        }
        assert_eq!(parse_retry_after("86400"), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("30"), Some(Duration::from_secs(30)));
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
