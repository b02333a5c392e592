//! Token endpoints: Azure AD (Entra ID) client credentials,
//! `POST /{tenant}/oauth2/v2.0/token`, as `azure_identity`'s
//! `ClientSecretCredential`, `ClientCertificateCredential` and
//! `ClientAssertionCredential` call it, with the client secret or the
//! client assertion (`assertion`) checked against the apps of
//! `azure.entra_apps`; the OpenID discovery documents MSAL fetches first
//! (`discovery`); and the managed-identity endpoint (`managed`).
//!
//! Access tokens are unsigned JWT-shaped strings: ARM here accepts any bearer
//! token, and clients treat tokens as opaque.

mod assertion;
mod discovery;
mod managed;

pub(crate) use assertion::RegisteredCert;
pub use discovery::{instance_discovery, jwks, openid_configuration};
pub use managed::managed_identity;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{HeaderValue, Method, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{finish, Arm, EntraApp};
use assertion::{Expected, Refusal};
use crate::ctx::{Cloud, DropConnection, FaultEffect};
use crate::delay::Delay;

/// Lifetime of an Azure AD token, as Azure AD reports it.
const ENTRA_LIFETIME_S: i64 = 3599;
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

fn refuse(r: Refusal) -> Response {
    aad_error(r.status, r.error, r.code, &r.description)
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
    let base = arm.base_url(&parts);
    let mut res = entra_inner(&arm, &parts.method, &tenant, &base, body).await;
    finish(&parts.headers, &mut res, OP);
    res
}

async fn entra_inner(
    arm: &Arm,
    method: &Method,
    tenant: &str,
    base: &str,
    body: axum::body::Body,
) -> Response {
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
    let apps = arm.cfg();
    if let Err(r) = authenticate(&apps.entra_apps, tenant, base, client_id, &field) {
        return refuse(r);
    }
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


/// Compares secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Authenticates the client of a token request in `tenant`: in a tenant
/// with registered apps the client id must be one of them, a secret must be
/// its secret and an assertion signed with its certificate's key; in an
/// open tenant any secret and any well-formed assertion pass.
fn authenticate<'a>(
    apps: &[EntraApp],
    tenant: &str,
    base: &str,
    client_id: &str,
    field: &impl Fn(&str) -> Option<&'a str>,
) -> Result<(), Refusal> {
    let mut in_tenant = apps
        .iter()
        .filter(|a| a.tenant.eq_ignore_ascii_case(tenant))
        .peekable();
    let app = match in_tenant.peek() {
        None => None,
        Some(_) => Some(
            in_tenant
                .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
                .ok_or_else(|| Refusal {
                    status: StatusCode::BAD_REQUEST,
                    error: "unauthorized_client",
                    code: 700016,
                    description: format!(
                        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. \
                         This can happen if the application has not been installed by the administrator of the tenant \
                         or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                    ),
                })?,
        ),
    };
    if let (Some(secret), Some(app)) = (field("client_secret"), app) {
        if !app.client_secret.as_deref().is_some_and(|s| same(s, secret)) {
            return Err(Refusal {
                status: StatusCode::UNAUTHORIZED,
                error: "invalid_client",
                code: 7000215,
                description: format!(
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, \
                     not the client secret ID, for a secret added to app '{}'.",
                    app.client_id
                ),
            });
        }
    }
    if let Some(jwt) = field("client_assertion") {
        let certs: Option<Vec<RegisteredCert>> = app.map(|a| {
            a.certificate_pem
                .as_deref()
                .and_then(|pem| RegisteredCert::from_pem(pem).ok())
                .into_iter()
                .collect()
        });
        let audiences = [
            format!("{base}/{tenant}/oauth2/v2.0/token"),
            format!("{base}/{tenant}/oauth2/token"),
            format!("{base}/{tenant}/v2.0"),
        ];
        let expected = Expected {
            client_id,
            audiences: &audiences,
            now: OffsetDateTime::now_utc().unix_timestamp(),
        };
        assertion::check(jwt, &expected, certs.as_deref())?;
    }
    Ok(())
}
