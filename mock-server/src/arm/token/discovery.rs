//! The discovery documents MSAL (and so azure-identity for Python) fetches
//! before its first token request, every URL in them pointing at the mock
//! (the scheme and `Host` of the request):
//!
//! - `GET /{tenant}/v2.0/.well-known/openid-configuration`: the tenant's
//!   OpenID Connect metadata (`token_endpoint`, `authorization_endpoint`,
//!   `issuer`, `jwks_uri`, ...);
//! - `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=URL`:
//!   instance discovery, for an authorization endpoint on the mock's own
//!   host (another host is an unknown instance, `AADSTS50049`);
//! - `GET /{tenant}/discovery/v2.0/keys`: the signing keys, an empty set
//!   (the mock's access tokens are unsigned).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::json;

use super::{aad_error, json_response};
use crate::arm::{finish, Arm};

/// The tenant segment of a path (`/{tenant}/...`).
fn tenant_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or_default()
}

/// 405 for anything but GET and HEAD.
fn only_get(method: &Method) -> Option<Response> {
    (*method != Method::GET && *method != Method::HEAD).then(|| {
        aad_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            900561,
            "The endpoint only accepts GET requests.",
        )
    })
}

/// The tenant's OpenID Connect metadata, its URLs under `base`.
fn openid_document(base: &str, tenant: &str) -> serde_json::Value {
    let at = |p: &str| format!("{base}/{tenant}/{p}");
    // Multi-tenant aliases have no single issuer: Entra ID answers a template.
    let issuer_tenant = match tenant.to_ascii_lowercase().as_str() {
        "common" | "organizations" | "consumers" => "{tenantid}".to_string(),
        _ => tenant.to_string(),
    };
    let host = base.split_once("://").map_or(base, |(_, h)| h);
    json!({
        "token_endpoint": at("oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": at("discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": format!("{base}/oidc/userinfo"),
        "authorization_endpoint": at("oauth2/v2.0/authorize"),
        "device_authorization_endpoint": at("oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": at("oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
        "kerberos_endpoint": at("kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": host,
        "cloud_graph_host_name": host,
        "msgraph_host": host,
        "rbac_url": base,
    })
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (operation name
/// `AzureAD_OpenIdConfiguration`).
pub async fn openid_configuration(State(arm): State<Arc<Arm>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let mut res = only_get(&parts.method).unwrap_or_else(|| {
        let base = arm.base_url(&parts);
        json_response(StatusCode::OK, openid_document(&base, tenant_of(parts.uri.path())))
    });
    finish(&parts.headers, &mut res, "AzureAD_OpenIdConfiguration");
    res
}

/// `GET /{tenant}/discovery/v2.0/keys` (operation name `AzureAD_Keys`).
pub async fn jwks(State(_arm): State<Arc<Arm>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let mut res = only_get(&parts.method)
        .unwrap_or_else(|| json_response(StatusCode::OK, json!({"keys": []})));
    finish(&parts.headers, &mut res, "AzureAD_Keys");
    res
}

/// `GET /common/discovery/instance` (operation name
/// `AzureAD_InstanceDiscovery`).
pub async fn instance_discovery(State(arm): State<Arc<Arm>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let base = arm.base_url(&parts);
    let mut res = only_get(&parts.method)
        .unwrap_or_else(|| instance(&base, parts.uri.query().unwrap_or_default()));
    finish(&parts.headers, &mut res, "AzureAD_InstanceDiscovery");
    res
}

fn instance(base: &str, query: &str) -> Response {
    let q: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let field = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(version) = field("api-version") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90014,
            "The required field 'api-version' is missing from the request.",
        );
    };
    let Some(endpoint) = field("authorization_endpoint") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90014,
            "The required field 'authorization_endpoint' is missing from the request.",
        );
    };
    // `https://HOST[:PORT]/TENANT/oauth2/v2.0/authorize` on the mock's own
    // host; MSAL for Python drops the port (it sends the hostname only).
    let hostname = |authority: &str| {
        authority
            .rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map_or(authority, |(h, _)| h)
            .to_ascii_lowercase()
    };
    let own = hostname(base.split_once("://").map_or(base, |(_, h)| h));
    let tenant = endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .filter(|(authority, _)| hostname(authority) == own)
        .map(|(_, path)| path.split(['/', '?', '#']).next().unwrap_or_default())
        .filter(|t| !t.is_empty());
    let Some(tenant) = tenant else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({
                "error": "invalid_instance",
                "error_description": format!(
                    "AADSTS50049: Unknown or invalid instance. The authorization endpoint {endpoint} is not on {base}."
                ),
                "error_codes": [50049],
            }),
        );
    };
    let host = base.split_once("://").map_or(base, |(_, h)| h);
    json_response(
        StatusCode::OK,
        json!({
            "tenant_discovery_endpoint": format!("{base}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": version,
            "metadata": [{
                "preferred_network": host,
                "preferred_cache": host,
                "aliases": [host],
            }],
        }),
    )
}
