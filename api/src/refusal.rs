//! [`Refusal`]: every error answer of the worker API, its status and its
//! [`ErrorBody`], and the reductions that keep request contents out of
//! error messages.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use skyfleet_core::protocol::{ErrorBody, ErrorCode, MAX_BODY_BYTES};
use skyfleet_core::{Error, ErrorKind};

/// The one body of every `401`: whatever failed (no such worker, wrong or
/// expired secret, missing header, a proof that did not hold), the answer
/// is these bytes.
pub const UNAUTHORIZED_BODY: &str = r#"{"code":"unauthorized","message":"unauthorized"}"#;

/// The longest field path or worker id an error message or log line shows.
const MAX_SHOWN_CHARS: usize = 64;

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `401`: one answer for every authentication or identity failure.
    Unauthorized,
    /// `400`: the message names what was wrong, never a value.
    BadRequest(String),
    /// `413`: the body is larger than [`MAX_BODY_BYTES`].
    PayloadTooLarge,
    /// `429` with `Retry-After` in whole seconds.
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// `409`.
    Conflict,
    /// `503`, with `Retry-After` when known.
    Unavailable {
        /// Seconds to wait, when the cause said.
        retry_after: Option<u64>,
    },
    /// `500`: details are logged, never answered.
    Internal,
    /// `404`: no such endpoint.
    NoSuchEndpoint,
    /// `405`: the endpoint takes `POST` only.
    MethodNotAllowed,
}

impl Refusal {
    /// The service error's answer: identity failures and unknown workers
    /// are all [`Refusal::Unauthorized`]; only kinds a worker can act on
    /// are told apart.
    pub(crate) fn from_service(error: &Error) -> Refusal {
        match error.kind() {
            ErrorKind::IdentityRejected { .. }
            | ErrorKind::NotFound
            | ErrorKind::Unauthenticated
            | ErrorKind::PermissionDenied => Refusal::Unauthorized,
            ErrorKind::Conflict | ErrorKind::AlreadyExists => Refusal::Conflict,
            ErrorKind::InvalidConfig { field } if !field.is_empty() => {
                Refusal::BadRequest(format!("invalid value at `{}`", shown(field)))
            }
            ErrorKind::InvalidConfig { .. } => Refusal::BadRequest("invalid request".into()),
            ErrorKind::Throttled { retry_after } => Refusal::Unavailable {
                retry_after: retry_after.map(crate::rate_limit::retry_after_secs),
            },
            ErrorKind::Timeout | ErrorKind::Transient => Refusal::Unavailable { retry_after: None },
            _ => Refusal::Internal,
        }
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Conflict => StatusCode::CONFLICT,
            Refusal::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::NoSuchEndpoint => StatusCode::NOT_FOUND,
            Refusal::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The stable code.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            Refusal::Unauthorized => ErrorCode::Unauthorized,
            Refusal::BadRequest(_)
            | Refusal::PayloadTooLarge
            | Refusal::NoSuchEndpoint
            | Refusal::MethodNotAllowed => ErrorCode::BadRequest,
            Refusal::RateLimited { .. } => ErrorCode::RateLimited,
            Refusal::Conflict => ErrorCode::Conflict,
            Refusal::Unavailable { .. } => ErrorCode::Unavailable,
            Refusal::Internal => ErrorCode::Internal,
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Unauthorized => "unauthorized".into(),
            Refusal::BadRequest(m) => m.clone(),
            Refusal::PayloadTooLarge => {
                format!("the request body is larger than {MAX_BODY_BYTES} bytes")
            }
            Refusal::RateLimited { retry_after } => {
                format!("too many requests from this source; retry in {retry_after} s")
            }
            Refusal::Conflict => "the worker cannot do this now".into(),
            Refusal::Unavailable { .. } => "the manager cannot answer now; retry later".into(),
            Refusal::Internal => "internal error".into(),
            Refusal::NoSuchEndpoint => "no such endpoint".into(),
            Refusal::MethodNotAllowed => "method not allowed; use POST".into(),
        }
    }

    /// The wire body.
    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code(),
            message: self.message(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let bytes = match self {
            Refusal::Unauthorized => UNAUTHORIZED_BODY.as_bytes().to_vec(),
            // ErrorBody is two strings: serializing it cannot fail; the
            // fallback is a fixed internal-error body all the same.
            _ => serde_json::to_vec(&self.body())
                .unwrap_or_else(|_| br#"{"code":"internal","message":"internal error"}"#.to_vec()),
        };
        let mut response = json_response(self.status(), bytes);
        let headers = response.headers_mut();
        let retry_after = match &self {
            Refusal::RateLimited { retry_after } => Some(*retry_after),
            Refusal::Unavailable { retry_after } => *retry_after,
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self == Refusal::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self == Refusal::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

/// A JSON answer that no cache keeps (bodies carry worker secrets).
pub(crate) fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Reads a request body as `T`, strictly (no trailing data). A failure
/// names its category, the field path and the position, but never a value
/// from the body (serde's own messages can quote them).
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        Refusal::BadRequest(describe(e.inner(), Some(&path)))
    })?;
    de.end()
        .map_err(|e| Refusal::BadRequest(describe(&e, None)))?;
    Ok(value)
}

/// A JSON error as category, path and position.
fn describe(e: &serde_json::Error, path: Option<&str>) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Syntax => "malformed JSON",
        Category::Eof => "truncated or empty JSON",
        Category::Io => "unreadable body",
        Category::Data => "unexpected field, type or value",
    };
    let mut message = format!("invalid request body: {what}");
    // Serde names a missing field by its wire name, which is ours, not
    // the caller's.
    if let Some(field) = missing_field(&e.to_string()) {
        message.push_str(&format!(": missing field `{field}`"));
    }
    if let Some(path) = path.filter(|p| !p.is_empty() && *p != ".") {
        message.push_str(&format!(" at `{}`", shown(path)));
    }
    if e.line() > 0 {
        message.push_str(&format!(" (line {}, column {})", e.line(), e.column()));
    }
    message
}

/// The field name of serde's "missing field `x`" message, when it is a
/// plain identifier.
fn missing_field(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("missing field `")?;
    let name = &rest[..rest.find('`')?];
    let plain = !name.is_empty()
        && name.len() <= MAX_SHOWN_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then_some(name)
}

/// `text` made safe to show: characters outside a plain path alphabet
/// become `?`, and it is cut to [`MAX_SHOWN_CHARS`].
pub(crate) fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.[]:/".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().count() > MAX_SHOWN_CHARS {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyfleet_core::protocol::HeartbeatRequest;

    #[test]
    fn json_errors_name_the_place_but_not_the_value() {
        let e = parse_body::<HeartbeatRequest>(br#"{"workerId":"w","state":"s3cret-state"}"#)
            .unwrap_err();
        let Refusal::BadRequest(m) = e else {
            panic!("{e:?}")
        };
        assert!(m.contains("`state`"), "{m}");
        assert!(!m.contains("s3cret"), "{m}");

        let e = parse_body::<HeartbeatRequest>(br#"{"state":"idle"}"#).unwrap_err();
        assert_eq!(
            e,
            Refusal::BadRequest(
                "invalid request body: unexpected field, type or value: missing field `workerId` (line 1, column 16)"
                    .into()
            )
        );
        let e = parse_body::<HeartbeatRequest>(br#"{"workerId": 12345678}"#).unwrap_err();
        let Refusal::BadRequest(m) = e else { panic!() };
        assert!(!m.contains("12345678"), "{m}");
        assert!(m.contains("workerId"), "{m}");

        let e = parse_body::<HeartbeatRequest>(br#"{"workerId":"w","state":"idle"} trailing"#)
            .unwrap_err();
        let Refusal::BadRequest(m) = e else { panic!() };
        assert!(m.starts_with("invalid request body: malformed JSON"), "{m}");
        assert!(!m.contains("trailing"), "{m}");
        assert!(parse_body::<HeartbeatRequest>(b"").is_err());
    }

    #[test]
    fn service_errors_map_to_codes_without_details() {
        let cases = [
            (Error::identity_rejected("bad_signature"), 401),
            (Error::not_found("worker w-1 secret abc"), 401),
            (Error::new(ErrorKind::Unauthenticated, "x"), 401),
            (Error::new(ErrorKind::Conflict, "x"), 409),
            (Error::invalid_config("capacityUsed", "x"), 400),
            (Error::new(ErrorKind::Timeout, "x"), 503),
            (Error::new(ErrorKind::Transient, "x"), 503),
            (Error::internal("db password=hunter2"), 500),
            (Error::new(ErrorKind::OperationFailed, "x"), 500),
        ];
        for (error, status) in cases {
            let refusal = Refusal::from_service(&error);
            assert_eq!(refusal.status().as_u16(), status, "{error}");
            assert_eq!(refusal.code().status(), status, "{error}");
            let body = serde_json::to_string(&refusal.body()).unwrap();
            assert!(!body.contains("hunter2") && !body.contains("abc"), "{body}");
            assert!(!body.contains("bad_signature"), "{body}");
        }
        let throttled = Error::new(
            ErrorKind::Throttled {
                retry_after: Some(std::time::Duration::from_millis(2500)),
            },
            "x",
        );
        assert_eq!(
            Refusal::from_service(&throttled),
            Refusal::Unavailable {
                retry_after: Some(3)
            }
        );
    }

    #[test]
    fn the_unauthorized_body_is_the_error_body_of_unauthorized() {
        let parsed: ErrorBody = serde_json::from_str(UNAUTHORIZED_BODY).unwrap();
        assert_eq!(parsed, Refusal::Unauthorized.body());
    }

    #[test]
    fn shown_text_is_cut_and_plain() {
        assert_eq!(shown("proof.kind"), "proof.kind");
        assert_eq!(shown("a\"b\nc"), "a?b?c");
        let long = "x".repeat(100);
        assert_eq!(shown(&long).len(), MAX_SHOWN_CHARS + 3);
    }
}
