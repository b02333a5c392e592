//! What every ARM request carries through the handlers (subscription, base
//! URL for operation URLs, api-version, clock, injected faults) and the checks
//! ARM makes before any resource provider sees a request: bearer token,
//! api-version, operation name.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

use super::error::{error_response, ArmError};
use super::path::{NoRoute, Target};
use super::routes;
use super::store::{Kind, OpError};
use super::view::ReadOpts;
use super::MAX_BODY;

/// The longest an operation may be scheduled ahead (caps absurd configs).
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// One ARM request as the handlers see it.
#[derive(Debug, Clone)]
pub struct Req {
    /// Subscription id as sent.
    pub sub: String,
    /// `scheme://host[:port]` of this request, for absolute operation URLs.
    pub base: String,
    /// The `api-version` value, restricted to URL-safe characters.
    pub api_version_q: String,
    /// The request path.
    pub path: String,
    /// Now.
    pub now: Instant,
    /// Now, wall clock.
    pub wall: OffsetDateTime,
    /// The global time scale.
    pub scale: f64,
    /// `$expand` options.
    pub read: ReadOpts,
    /// `$skiptoken` of a list page.
    pub skip: usize,
    /// `statusOnly` of a VM list, as sent (checked by the list).
    pub status_only: Option<String>,
    /// `skipShutdown` of a VM `powerOff`, as sent (checked by the action).
    pub skip_shutdown: Option<String>,
    /// A `fail_operation` fault: the operation this request starts fails.
    pub fail: Option<OpError>,
    /// A `not_found_reads` fault: reads of the resource answer 404 this often.
    pub not_found_reads: Option<u32>,
    /// A `stuck` fault: the operation this request starts never ends.
    pub stuck: bool,
    /// The shared context (stockouts).
    pub ctx: crate::ctx::Ctx,
}

impl Req {
    /// `d` times the time scale, capped.
    pub fn scaled(&self, d: Duration) -> Duration {
        let s = d.as_secs_f64() * self.scale;
        if s.is_finite() && s >= 0.0 {
            Duration::try_from_secs_f64(s)
                .unwrap_or(MAX_DURATION)
                .min(MAX_DURATION)
        } else {
            Duration::ZERO
        }
    }
}

/// The query parameters ARM cares about.
#[derive(Debug, Default)]
pub struct Query {
    /// `api-version`, if present and non-empty.
    pub api_version: Option<String>,
    /// `$expand` options.
    pub read: ReadOpts,
    /// `$skiptoken` of a list page.
    pub skip: usize,
    /// `statusOnly`, as sent.
    pub status_only: Option<String>,
    /// `skipShutdown`, as sent.
    pub skip_shutdown: Option<String>,
}

/// Parses the query string (percent-decoded, keys case-insensitive).
pub fn query(q: Option<&str>) -> Query {
    let mut out = Query::default();
    let pairs: Vec<(String, String)> = q
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    for (k, v) in pairs {
        if k.eq_ignore_ascii_case("api-version") && !v.is_empty() {
            out.api_version = Some(v);
        } else if k.eq_ignore_ascii_case("$skiptoken") {
            out.skip = v.parse().unwrap_or(0);
        } else if k.eq_ignore_ascii_case("statusOnly") {
            out.status_only = Some(v);
        } else if k.eq_ignore_ascii_case("skipShutdown") {
            out.skip_shutdown = Some(v);
        } else if k.eq_ignore_ascii_case("$expand") {
            for e in v.split(',') {
                let e = e.trim();
                out.read.instance_view |= e.eq_ignore_ascii_case("instanceView");
                out.read.user_data |= e.eq_ignore_ascii_case("userData");
            }
        }
    }
    out
}

/// The api-version restricted to characters safe to put back into a URL.
pub fn url_safe(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .collect()
}

/// `scheme://host` of the request: the scheme from an absolute-form URI, an
/// `http::uri::Scheme` request extension (set by the server for TLS), or
/// `X-Forwarded-Proto`, else `https` when `tls` (see `Arm::set_tls`); the
/// host from `Host` or the URI.
pub fn base_url(parts: &Parts, tls: bool) -> String {
    let scheme = parts
        .uri
        .scheme_str()
        .map(str::to_string)
        .or_else(|| {
            parts
                .extensions
                .get::<http::uri::Scheme>()
                .map(|s| s.as_str().to_string())
        })
        .or_else(|| {
            parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .filter(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
                .map(str::to_ascii_lowercase)
        })
        .unwrap_or_else(|| if tls { "https" } else { "http" }.into());
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1".into());
    format!("{scheme}://{host}")
}

/// True when the request carries `Authorization: Bearer <token>`.
pub fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("Bearer") && !token.trim().is_empty()
        })
}

/// 401 `InvalidAuthenticationToken` with ARM's `WWW-Authenticate` challenge.
pub fn unauthorized() -> Response {
    let mut res = error_response(
        401,
        "InvalidAuthenticationToken",
        "The access token is missing or invalid. The authentication failed because of missing 'Authorization' header.",
    );
    res.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", \
             error_description=\"The authentication failed because of missing 'Authorization' header.\"",
        ),
    );
    res
}

/// The operationId of Azure's REST specs for `method` on `target`.
pub fn operation_name(
    target: &Result<Target, super::path::NoRoute>,
    method: &Method,
) -> &'static str {
    let m = match *method {
        Method::GET | Method::HEAD => 0,
        Method::PUT => 1,
        Method::DELETE => 2,
        _ => 3,
    };
    let pick = |names: [&'static str; 3]| names.get(m).copied().unwrap_or("Unsupported");
    match target {
        Err(_) => "Unknown",
        Ok(Target::ResourceGroup { .. }) if *method == Method::PATCH => "ResourceGroups_Update",
        Ok(Target::Resource { kind, .. }) if *method == Method::PATCH => match kind {
            Kind::VirtualNetwork => "VirtualNetworks_UpdateTags",
            Kind::PublicIp => "PublicIPAddresses_UpdateTags",
            Kind::NetworkInterface => "NetworkInterfaces_UpdateTags",
            Kind::Disk => "Disks_Update",
            Kind::VirtualMachine => "VirtualMachines_Update",
        },
        Ok(Target::ResourceGroup { .. }) => {
            if *method == Method::HEAD {
                "ResourceGroups_CheckExistence"
            } else {
                pick([
                    "ResourceGroups_Get",
                    "ResourceGroups_CreateOrUpdate",
                    "ResourceGroups_Delete",
                ])
            }
        }
        Ok(Target::Subnet { .. }) => {
            pick(["Subnets_Get", "Subnets_CreateOrUpdate", "Subnets_Delete"])
        }
        Ok(Target::InstanceView { .. }) => "VirtualMachines_InstanceView",
        Ok(Target::VmAction { action, .. }) => action.operation_id(),
        Ok(Target::List { kind, rg }) => match (kind, rg.is_some()) {
            (Kind::VirtualNetwork, true) => "VirtualNetworks_List",
            (Kind::VirtualNetwork, false) => "VirtualNetworks_ListAll",
            (Kind::PublicIp, true) => "PublicIPAddresses_List",
            (Kind::PublicIp, false) => "PublicIPAddresses_ListAll",
            (Kind::NetworkInterface, true) => "NetworkInterfaces_List",
            (Kind::NetworkInterface, false) => "NetworkInterfaces_ListAll",
            (Kind::Disk, true) => "Disks_ListByResourceGroup",
            (Kind::Disk, false) => "Disks_List",
            (Kind::VirtualMachine, true) => "VirtualMachines_List",
            (Kind::VirtualMachine, false) => "VirtualMachines_ListAll",
        },
        Ok(Target::OperationStatus { .. }) => "AzureAsyncOperations_Get",
        Ok(Target::OperationResult { .. }) => "OperationResults_Get",
        Ok(Target::Resource { kind, .. }) => pick(match kind {
            Kind::VirtualNetwork => [
                "VirtualNetworks_Get",
                "VirtualNetworks_CreateOrUpdate",
                "VirtualNetworks_Delete",
            ],
            Kind::PublicIp => [
                "PublicIPAddresses_Get",
                "PublicIPAddresses_CreateOrUpdate",
                "PublicIPAddresses_Delete",
            ],
            Kind::NetworkInterface => [
                "NetworkInterfaces_Get",
                "NetworkInterfaces_CreateOrUpdate",
                "NetworkInterfaces_Delete",
            ],
            Kind::Disk => ["Disks_Get", "Disks_CreateOrUpdate", "Disks_Delete"],
            Kind::VirtualMachine => [
                "VirtualMachines_Get",
                "VirtualMachines_CreateOrUpdate",
                "VirtualMachines_Delete",
            ],
        }),
    }
}

/// The name a fault rule's `resource` glob is matched against.
pub fn fault_resource(target: &Target) -> &str {
    match target {
        Target::ResourceGroup { rg } | Target::List { rg: Some(rg), .. } => rg,
        Target::List { rg: None, .. } => "",
        Target::Resource { name, .. }
        | Target::Subnet { name, .. }
        | Target::InstanceView { name, .. }
        | Target::VmAction { name, .. } => name,
        Target::OperationStatus { id } | Target::OperationResult { id } => id,
    }
}

/// A request that passed ARM's admission checks.
pub struct Admitted<'a> {
    /// Subscription id as sent.
    pub sub: &'a str,
    /// What the path addresses.
    pub target: Target,
    /// `api-version`.
    pub api_version: String,
    /// The other query parameters.
    pub query: Query,
}

/// The checks before any bucket or resource provider sees a request, in
/// ARM's order: bearer token (401), `api-version` (400), a routable path
/// with a subscription (404), a method the target allows (405). The
/// refusal is boxed: a `Response` is large and this is the hot path's `Ok`.
pub fn admit<'a>(
    parts: &Parts,
    sub: Option<&'a str>,
    target: Result<Target, NoRoute>,
) -> Result<Admitted<'a>, Box<Response>> {
    if !has_bearer(&parts.headers) {
        return Err(Box::new(unauthorized()));
    }
    let query = query(parts.uri.query());
    let Some(api_version) = query.api_version.clone() else {
        let e = ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
        return Err(Box::new(e.into_response()));
    };
    let (sub, target) = match (sub, target) {
        (Some(s), Ok(t)) => (s, t),
        (_, Err(nr)) => return Err(Box::new(error_response(404, nr.code, &nr.message))),
        (None, Ok(_)) => {
            return Err(Box::new(error_response(
                404,
                "NotFound",
                "No subscription in the path.",
            )))
        }
    };
    if !routes::allowed(&target, &parts.method) {
        let e = ArmError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "The requested resource does not support http method '{}'.",
                parts.method
            ),
        );
        return Err(Box::new(e.into_response()));
    }
    Ok(Admitted {
        sub,
        target,
        api_version,
        query,
    })
}

/// The JSON body of a PUT or PATCH (`null` for other methods): at most
/// [`MAX_BODY`] bytes (else 413), valid JSON (else 400).
pub async fn read_body(m: &Method, body: Body) -> Result<Value, Response> {
    if *m != Method::PUT && *m != Method::PATCH {
        return Ok(Value::Null);
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        let msg = format!("The request content size exceeds the maximum size of {MAX_BODY} bytes.");
        return Err(error_response(413, "RequestEntityTooLarge", &msg));
    };
    serde_json::from_slice::<Value>(&bytes).map_err(|e| {
        ArmError::invalid_content(format!(
            "The request content was invalid and could not be deserialized: '{e}'."
        ))
        .into_response()
    })
}
