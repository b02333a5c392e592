//! Azure Resource Manager and the Azure AD token endpoints. Placeholder: filled by the ARM work.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::ctx::{Ctx, ResourceView};

/// ARM settings (lifecycle durations, throttle limits).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ArmConfig {}

/// The ARM part of the mock.
pub struct Arm {
    #[allow(dead_code)]
    ctx: Ctx,
}

impl Arm {
    /// A new, empty EC2.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Arm { ctx })
    }
    /// Routes (`/subscriptions/...`, token endpoints).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
    /// Applies new settings.
    pub fn set_config(&self, _config: ArmConfig) {}
    /// Live resources.
    pub fn resources(&self) -> Vec<ResourceView> {
        Vec::new()
    }
    /// Clears one subscription (or all).
    pub fn reset(&self, _scope: Option<&str>) {}
}

/// An error in ARM JSON format.
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    (
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        format!("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>0</RequestID></Response>"),
    )
        .into_response()
}
