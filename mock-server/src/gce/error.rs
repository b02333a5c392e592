//! Google's JSON error format, and the errors Compute Engine answers with.
//!
//! Every error body is `{"error":{"code":S,"message":M,"errors":[{"message":M,
//! "domain":D,"reason":R}]}}`. Clients branch on `errors[].reason`
//! (google-api-python-client retries a 403 only when it is
//! `rateLimitExceeded`), so it is always present.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

/// An error in Google's JSON format, with `code` as the reason of the one
/// entry of `errors[]` (domain `global`, or `usageLimits` for rate limits).
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    GceError::api(status, code, message).into_response()
}

/// An error Compute Engine answers with instead of a result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GceError {
    /// A plain API error.
    Api {
        /// HTTP status.
        status: u16,
        /// `errors[0].reason`.
        reason: String,
        /// The message.
        message: String,
    },
    /// No (or no usable) `Authorization: Bearer` header.
    Unauthenticated,
    /// A rate quota was exceeded.
    Throttled {
        /// 403 or 429.
        status: u16,
        /// The quota metric's display name (`Queries`, `Read requests`).
        metric: &'static str,
        /// The project.
        project: String,
        /// The wait to announce (`Retry-After` and/or `retry-after-ms`).
        retry_after: crate::delay::Delay,
    },
}

impl GceError {
    /// A plain error with this status, reason and message.
    pub(crate) fn api(status: u16, reason: &str, message: &str) -> Self {
        GceError::Api {
            status,
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    /// 400 `invalid`: a field has a bad value.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        GceError::Api {
            status: 400,
            reason: "invalid".into(),
            message: message.into(),
        }
    }

    /// 400 `invalid` for `field` with `value`, in Compute's wording.
    pub(crate) fn invalid_field(field: &str, value: &str, why: &str) -> Self {
        Self::invalid(format!(
            "Invalid value for field '{field}': '{value}'. {why}"
        ))
    }

    /// 400 `required`: a field is missing.
    pub(crate) fn required(field: &str) -> Self {
        GceError::Api {
            status: 400,
            reason: "required".into(),
            message: format!("Required field '{field}' not specified"),
        }
    }

    /// 404 `notFound` for a resource path such as `projects/p/zones/z/instances/vm`.
    pub(crate) fn not_found(resource: &str) -> Self {
        GceError::Api {
            status: 404,
            reason: "notFound".into(),
            message: format!("The resource '{resource}' was not found"),
        }
    }

    /// 409 `alreadyExists` for a resource path.
    pub(crate) fn already_exists(resource: &str) -> Self {
        GceError::Api {
            status: 409,
            reason: "alreadyExists".into(),
            message: format!("The resource '{resource}' already exists"),
        }
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    resp
}

impl IntoResponse for GceError {
    fn into_response(self) -> Response {
        match self {
            GceError::Api {
                status,
                reason,
                message,
            } => {
                let status = status_code(status);
                let domain = if reason == "rateLimitExceeded" {
                    "usageLimits"
                } else {
                    "global"
                };
                json_response(
                    status,
                    &json!({"error": {
                        "code": status.as_u16(),
                        "message": message,
                        "errors": [{"message": message, "domain": domain, "reason": reason}],
                    }}),
                )
            }
            GceError::Unauthenticated => {
                let message = "Request is missing required authentication credential. \
                    Expected OAuth 2 access token, login cookie or other valid authentication \
                    credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
                let mut resp = json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"error": {
                        "code": 401,
                        "message": message,
                        "errors": [{
                            "message": "Login Required.",
                            "domain": "global",
                            "reason": "required",
                            "location": "Authorization",
                            "locationType": "header",
                        }],
                        "status": "UNAUTHENTICATED",
                    }}),
                );
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
                );
                resp
            }
            GceError::Throttled {
                status,
                metric,
                project,
                retry_after,
            } => {
                let message = format!(
                    "Quota exceeded for quota metric '{metric}' and limit '{metric} per minute' \
                     of service 'compute.googleapis.com' for consumer 'project_number:{project}'."
                );
                let errors = json!([{"message": message, "domain": "usageLimits", "reason": "rateLimitExceeded"}]);
                let body = if status == 429 {
                    json!({"error": {
                        "code": 429,
                        "message": message,
                        "errors": errors,
                        "status": "RESOURCE_EXHAUSTED",
                        "details": [{
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "RATE_LIMIT_EXCEEDED",
                            "domain": "googleapis.com",
                            "metadata": {
                                "service": "compute.googleapis.com",
                                "consumer": format!("projects/{project}"),
                                "quota_metric": metric,
                            },
                        }],
                    }})
                } else {
                    json!({"error": {"code": 403, "message": message, "errors": errors}})
                };
                let code = if status == 429 {
                    StatusCode::TOO_MANY_REQUESTS
                } else {
                    StatusCode::FORBIDDEN
                };
                let mut resp = json_response(code, &body);
                retry_after.insert_headers(resp.headers_mut());
                resp
            }
        }
    }
}
