//! The managed-identity endpoint `GET /metadata/identity/oauth2/token`
//! (IMDS style; also serves `IDENTITY_ENDPOINT` App Service clients).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use super::{access_token, json_response, token_fault};
use crate::arm::{finish, Arm};

/// Lifetime of a managed-identity token, as IMDS reports it.
const MI_LIFETIME_S: i64 = 86399;

fn imds_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(
        status,
        json!({"error": error, "error_description": description}),
    )
}

/// `GET /metadata/identity/oauth2/token` (operation name `ManagedIdentity_Token`).
pub async fn managed_identity(State(arm): State<Arc<Arm>>, req: Request) -> Response {
    const OP: &str = "ManagedIdentity_Token";
    let (parts, _) = req.into_parts();
    let mut res = mi_inner(&arm, &parts).await;
    finish(&parts.headers, &mut res, OP);
    res
}

async fn mi_inner(arm: &Arm, parts: &http::request::Parts) -> Response {
    if parts.method != Method::GET {
        return imds_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "The request method is not allowed.",
        );
    }
    let metadata = parts
        .headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !metadata {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    let q: Vec<(String, String)> = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let field = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    if field("api-version").is_none() {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = field("resource") else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'resource' is missing",
        );
    };
    let identity = field("client_id")
        .or(field("object_id"))
        .or(field("msi_res_id"))
        .unwrap_or("system-assigned");
    if let Some(res) = token_fault(arm, "ManagedIdentity_Token", identity).await {
        return res;
    }
    let client_id = field("client_id").map(str::to_string).unwrap_or_else(|| {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, identity.as_bytes()).to_string()
    });
    let now = OffsetDateTime::now_utc().unix_timestamp();
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access_token("mock-tenant", resource, &client_id, MI_LIFETIME_S),
            "client_id": client_id,
            "expires_in": MI_LIFETIME_S.to_string(),
            "expires_on": (now + MI_LIFETIME_S).to_string(),
            "ext_expires_in": MI_LIFETIME_S.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}
