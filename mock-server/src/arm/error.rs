//! ARM's error envelope (`{"error":{"code":..,"message":..}}`, OData v4 style)
//! and the errors the ARM handlers return.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// An error ARM answers with: an HTTP status, ARM's error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    /// HTTP status.
    pub status: StatusCode,
    /// ARM error code (`ResourceNotFound`, `NicInUse`, ...).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// The wait to announce (throttling answers), as `Retry-After` and/or
    /// `retry-after-ms` (see `crate::delay`).
    pub retry_after: Option<crate::delay::Delay>,
    /// The property at fault (`target` of the envelope), if named.
    pub target: Option<String>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

/// The JSON bytes of ARM's error envelope.
pub(crate) fn error_json(code: &str, message: &str) -> Vec<u8> {
    error_json_target(code, message, None)
}

/// The JSON bytes of ARM's error envelope naming the property at fault.
fn error_json_target(code: &str, message: &str, target: Option<&str>) -> Vec<u8> {
    // Serializing borrowed strings cannot fail; fall back to a fixed body
    // rather than panic.
    serde_json::to_vec(&Envelope {
        error: Body {
            code,
            message,
            target,
        },
    })
    .unwrap_or_else(|_| br#"{"error":{"code":"InternalServerError","message":""}}"#.to_vec())
}

impl ArmError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after: None,
            target: None,
        }
    }

    /// 400 `InvalidParameter` naming the property at fault in `target`.
    pub fn invalid_parameter(target: &str, message: impl Into<String>) -> Self {
        let mut e = Self::bad_request("InvalidParameter", message);
        e.target = Some(target.to_string());
        e
    }

    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 409 with `code`.
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 404 `ResourceNotFound` for a resource of `type_name` (`Microsoft.Compute/virtualMachines/vm1`).
    pub fn resource_not_found(type_and_name: &str, rg: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{type_and_name}' under resource group '{rg}' was not found. \
                 For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// 404 `ResourceGroupNotFound`.
    pub fn group_not_found(rg: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{rg}' could not be found."),
        )
    }

    /// 409 `AnotherOperationInProgress`.
    pub fn another_operation(id: &str) -> Self {
        Self::conflict(
            "AnotherOperationInProgress",
            format!(
                "Operation on resource '{id}' was not allowed because another operation is in progress on it. \
                 Retry the request after the operation completes."
            ),
        )
    }

    /// 400 `InvalidRequestContent`.
    pub fn invalid_content(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidRequestContent", message)
    }

    /// 400 `InvalidResourceReference` for a reference that points nowhere.
    pub fn bad_reference(referenced: &str, by: &str) -> Self {
        Self::bad_request(
            "InvalidResourceReference",
            format!(
                "Resource {referenced} referenced by resource {by} was not found. Please make sure that the \
                 referenced resource exists, and that both resources are in the same region."
            ),
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let mut res = error_response(self.status.as_u16(), &self.code, &self.message);
        if let Some(t) = &self.target {
            *res.body_mut() =
                axum::body::Body::from(error_json_target(&self.code, &self.message, Some(t)));
        }
        if let Some(d) = self.retry_after {
            d.insert_headers(res.headers_mut());
        }
        res
    }
}

/// An error response in ARM's JSON format, with `Content-Type` and a fresh
/// `x-ms-request-id`. A status outside 400..=599 becomes 500.
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, error_json(code, message)).into_response();
    let h = res.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-ms-request-id", v);
    }
    res
}
