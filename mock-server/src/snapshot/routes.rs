//! `POST /_mock/snapshot` (take) and `PUT /_mock/snapshot` (restore).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};

use crate::app::Shared;

/// The snapshot routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_mock/snapshot", post(take).put(restore))
        .with_state(shared)
}

async fn take(State(s): State<Arc<Shared>>) -> Response {
    match super::take(&s) {
        Ok(body) => (
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => crate::control::json_error(500, &format!("cannot take a snapshot: {e}")),
    }
}

async fn restore(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match super::parse(&body) {
        Ok(r) => {
            super::restore(&s, r);
            http::StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            let status =
                http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
            (status, Json(e.body())).into_response()
        }
    }
}
