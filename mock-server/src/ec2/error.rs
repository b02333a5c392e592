//! EC2 errors: the real codes and HTTP statuses, written in EC2's XML error
//! shape (`<Response><Errors><Error><Code>..`, `<RequestID>`).

use axum::response::{IntoResponse, Response};

use super::xml::Xml;

/// One EC2 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Error {
    /// HTTP status.
    pub status: u16,
    /// EC2 error code, e.g. `InvalidInstanceID.NotFound`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Extra headers, e.g. `x-amz-retry-after` on a throttle.
    pub retry_after_ms: Option<u64>,
}

impl Ec2Error {
    /// An error with any status, code and message.
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Ec2Error {
        Ec2Error {
            status,
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// 400 `MissingParameter`.
    pub fn missing(name: &str) -> Ec2Error {
        Ec2Error::new(
            400,
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    }

    /// 400 `InvalidParameterValue`.
    pub fn invalid_value(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new(400, "InvalidParameterValue", message)
    }

    /// 400 `InvalidParameterCombination`.
    pub fn invalid_combination(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new(400, "InvalidParameterCombination", message)
    }

    /// 400 `InvalidInstanceID.Malformed`.
    pub fn malformed_instance_id(id: &str) -> Ec2Error {
        Ec2Error::new(
            400,
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"i-...\")"),
        )
    }

    /// 400 `InvalidInstanceID.NotFound` for one or more ids.
    pub fn instances_not_found(ids: &[&str]) -> Ec2Error {
        let message = if ids.len() == 1 {
            format!("The instance ID '{}' does not exist", ids[0])
        } else {
            format!("The instance IDs '{}' do not exist", ids.join(", "))
        };
        Ec2Error::new(400, "InvalidInstanceID.NotFound", message)
    }

    /// 400 `IncorrectInstanceState`.
    pub fn incorrect_state(message: impl Into<String>) -> Ec2Error {
        Ec2Error::new(400, "IncorrectInstanceState", message)
    }

    /// 412 `DryRunOperation`.
    pub fn dry_run() -> Ec2Error {
        Ec2Error::new(
            412,
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        )
    }

    /// 503 `RequestLimitExceeded`, with `x-amz-retry-after` in milliseconds.
    pub fn throttled(retry_after_ms: u64) -> Ec2Error {
        Ec2Error {
            retry_after_ms: Some(retry_after_ms),
            ..Ec2Error::new(503, "RequestLimitExceeded", "Request limit exceeded.")
        }
    }

    /// 400 `InvalidPaginationToken`.
    pub fn bad_token(token: &str) -> Ec2Error {
        Ec2Error::new(
            400,
            "InvalidPaginationToken",
            format!("Invalid pagination token: {token}"),
        )
    }
}

impl IntoResponse for Ec2Error {
    fn into_response(self) -> Response {
        let mut resp = super::error_response(self.status, &self.code, &self.message);
        if let Some(ms) = self.retry_after_ms {
            if let Ok(v) = http::HeaderValue::from_str(&ms.to_string()) {
                resp.headers_mut().insert("x-amz-retry-after", v);
            }
        }
        resp
    }
}

/// The XML body of an EC2 error.
pub fn error_xml(code: &str, message: &str, request_id: &str) -> String {
    let mut x = Xml::bare(256 + message.len());
    x.open("Response");
    x.open("Errors");
    x.open("Error");
    x.leaf("Code", code);
    x.leaf("Message", message);
    x.close("Error");
    x.close("Errors");
    x.leaf("RequestID", request_id);
    x.close("Response");
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&x.into_string());
    s
}
