//! Compute Engine and the Google OAuth token endpoint. Placeholder: filled by the GCE work.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::ctx::{Ctx, ResourceView};

/// Compute Engine settings (lifecycle durations, throttle limits).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct GceConfig {}

/// The Compute Engine part of the mock.
pub struct Gce {
    #[allow(dead_code)]
    ctx: Ctx,
}

impl Gce {
    /// A new, empty EC2.
    pub fn new(ctx: Ctx) -> Arc<Self> {
        Arc::new(Gce { ctx })
    }
    /// Routes (`/compute/v1/projects/...`, `POST /token`).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
    }
    /// Applies new settings.
    pub fn set_config(&self, _config: GceConfig) {}
    /// Live resources.
    pub fn resources(&self) -> Vec<ResourceView> {
        Vec::new()
    }
    /// Clears one project (or all).
    pub fn reset(&self, _scope: Option<&str>) {}
}

/// An error in Google JSON format.
pub fn error_response(status: u16, code: &str, message: &str) -> Response {
    (
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST),
        format!("<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>0</RequestID></Response>"),
    )
        .into_response()
}
