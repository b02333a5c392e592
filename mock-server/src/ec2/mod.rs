//! EC2 Query API (Version 2016-11-15). Placeholder: filled by the EC2 work.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::ctx::{Ctx, ResourceView};

/// EC2 settings (lifecycle durations, throttle limits).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Ec2Config {}

/// The EC2 half of the mock.
pub struct Ec2 {
    #[allow(dead_code)]
    ctx: Ctx,
}

impl Ec2 {
    /// A new, empty EC2.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Ec2 { ctx })
    }
    /// Routes (`POST /`).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
    /// Applies new settings.
    pub fn set_config(&self, _config: Ec2Config) {}
    /// Live resources.
    pub fn resources(&self) -> Vec<ResourceView> {
        Vec::new()
    }
    /// Clears one account (or all).
    pub fn reset(&self, _scope: Option<&str>) {}
}

/// An error in EC2's XML format.
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    (
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        format!("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>0</RequestID></Response>"),
    )
        .into_response()
}
