//! Token endpoints: Azure AD (Entra ID) client credentials,
//! `POST /{tenant}/oauth2/v2.0/token`, as `azure_identity`'s
//! `ClientSecretCredential` (and `ClientAssertionCredential`) call it, and the
//! managed-identity endpoint `GET /metadata/identity/oauth2/token` (IMDS
//! style; also serves `IDENTITY_ENDPOINT` App Service clients).
//!
//! Access tokens are unsigned JWT-shaped strings: ARM here accepts any bearer
//! token, and clients treat tokens as opaque.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderValue, Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use super::{finish, Arm};
use crate::ctx::{Cloud, DropConnection, FaultEffect};
use crate::delay::Delay;

/// Lifetime of an Azure AD token, as Azure AD reports it.
const ENTRA_LIFETIME_S: i64 = 3599;
/// Lifetime of a managed-identity token, as IMDS reports it.
const MI_LIFETIME_S: i64 = 86399;
/// The largest token request body taken.
const MAX_FORM: usize = 64 * 1024;

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    res.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    res
}

/// Azure AD's error JSON. The description carries no characters JSON must
/// escape: azure_identity 1.0 reads it as a borrowed string.
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let now = OffsetDateTime::now_utc();
    let trace = uuid::Uuid::new_v4();
    let corr = uuid::Uuid::new_v4();
    let ts = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let desc: String = format!(
        "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"
    )
    .chars()
    .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
    .collect();
    json_response(
        status,
        json!({
            "error": error,
            "error_description": desc,
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace.to_string(),
            "correlation_id": corr.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

fn missing(param: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{param}'."),
    )
}

/// An unsigned JWT-shaped access token.
fn access_token(tenant: &str, audience: &str, app: &str, lifetime: i64) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let header = json!({"typ": "JWT", "alg": "none"});
    let claims = json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now, "nbf": now, "exp": now + lifetime,
        "appid": app, "tid": tenant, "oid": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, app.as_bytes()).to_string(),
        "sub": app, "ver": "1.0", "uti": uuid::Uuid::new_v4().simple().to_string(),
    });
    let sig: [u8; 32] = rand::random();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

/// Applies a fault rule to a token request; `Some` answers instead.
async fn token_fault(arm: &Arm, op: &str, resource: &str) -> Option<Response> {
    match arm.ctx.fault(Cloud::Azure, op, resource)? {
        FaultEffect::Latency { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            None
        }
        // A token request changes nothing: a lost answer is a hang.
        FaultEffect::Hang | FaultEffect::LoseAnswer => {
            arm.ctx.hang().await;
            Some(aad_error(
                StatusCode::GATEWAY_TIMEOUT,
                "temporarily_unavailable",
                50001,
                "The service timed out.",
            ))
        }
        FaultEffect::Error {
            status,
            code,
            message,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            Some(aad_error(status, &code, 90000, &message))
        }
        FaultEffect::FailOperation { code, message } => {
            Some(aad_error(StatusCode::BAD_REQUEST, &code, 90000, &message))
        }
        FaultEffect::Throttle { retry_after_s } => {
            let mut res = aad_error(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                50196,
                "The server terminated an operation because it encountered a client request loop.",
            );
            Delay::scaled(Duration::from_secs(retry_after_s), arm.ctx.time_scale())
                .insert_headers(res.headers_mut());
            Some(res)
        }
        FaultEffect::Reset => {
            let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            res.extensions_mut().insert(DropConnection);
            Some(res)
        }
        // A token request starts no operation: nothing to hold.
        FaultEffect::NotFoundReads { .. } | FaultEffect::Stuck => None,
    }
}

/// `POST /{tenant}/oauth2/v2.0/token` (operation name `AzureAD_Token`).
pub async fn entra(State(arm): State<Arc<Arm>>, req: Request) -> Response {
    const OP: &str = "AzureAD_Token";
    let (parts, body) = req.into_parts();
    let tenant = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut res = entra_inner(&arm, &parts.method, &tenant, body).await;
    finish(&parts.headers, &mut res, OP);
    res
}

async fn entra_inner(arm: &Arm, method: &Method, tenant: &str, body: axum::body::Body) -> Response {
    if *method != Method::POST {
        return aad_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts POST requests.",
        );
    }
    if let Some(res) = token_fault(arm, "AzureAD_Token", tenant).await {
        return res;
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
        return aad_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            90020,
            "The request body is too large.",
        );
    };
    let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must be form-urlencoded.",
        );
    };
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(grant) = field("grant_type") else {
        return missing("grant_type");
    };
    if grant != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let Some(client_id) = field("client_id") else {
        return missing("client_id");
    };
    match (field("client_secret"), field("client_assertion")) {
        (None, None) => {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        }
        (None, Some(_)) if field("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") => {
            return missing("client_assertion_type");
        }
        _ => {}
    }
    let Some(scope) = field("scope") else {
        return missing("scope");
    };
    let Some(audience) = scope
        .strip_suffix("/.default")
        .filter(|a| !a.is_empty() && !a.contains(' '))
    else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value \
                 with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    };
    json_response(
        StatusCode::OK,
        json!({
            "token_type": "Bearer",
            "expires_in": ENTRA_LIFETIME_S,
            "ext_expires_in": ENTRA_LIFETIME_S,
            "access_token": access_token(tenant, audience, client_id, ENTRA_LIFETIME_S),
        }),
    )
}

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
