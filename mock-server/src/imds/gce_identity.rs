//! Compute Engine's identity token (`instance/service-accounts/default/
//! identity?audience=A&format=full`): an RS256 JWT with Google's claims,
//! signed by the key the mock's JWKS (`/oauth2/v3/certs`) publishes; the
//! same keys as PEM certificates at `/oauth2/v1/certs`; and the service
//! account's access token.
//!
//! `format=standard` (the default) carries `iss`, `aud`, `azp`, `sub`,
//! `iat` and `exp`; `format=full` adds `email`, `email_verified` and
//! `google.compute_engine` {`project_id`, `project_number`, `zone`,
//! `instance_id`, `instance_name`, `instance_creation_timestamp`}. Tokens
//! last an hour (`exp = iat + 3600`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::facts::GceVm;
use super::gce::{project_number, respond, service_account_email};
use super::trust::{Material, TrustError};
use super::{name, query_param, Imds};

/// Google's issuer.
pub const ISSUER: &str = "https://accounts.google.com";
/// How long an identity token lasts.
pub const LIFETIME_S: u64 = 3600;
/// The longest audience accepted.
const MAX_AUDIENCE: usize = 2048;

/// The service account's unique id: 21 digits derived from its email (as
/// stable as Google's).
pub fn unique_id(email: &str) -> String {
    let h = email.bytes().fold(0x8422_2325_cbf2_9ce4u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("1{:020}", h % 100_000_000_000_000_000)
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A signed JWT with `claims`.
pub fn sign(m: &Material, claims: &Value) -> Result<String, TrustError> {
    let header = json!({"alg": "RS256", "kid": m.google.kid, "typ": "JWT"});
    let input = format!("{}.{}", b64(&header), b64(claims));
    let sig = m.google.key.sign_sha256(input.as_bytes())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The claims of `vm`'s identity token for `audience` issued at `iat`.
pub fn claims(vm: &GceVm, audience: &str, full: bool, iat: u64) -> Value {
    let email = service_account_email(vm).unwrap_or_default();
    let sub = unique_id(&email);
    let mut c = Map::new();
    c.insert("aud".into(), audience.into());
    c.insert("azp".into(), sub.clone().into());
    c.insert("exp".into(), (iat + LIFETIME_S).into());
    c.insert("iat".into(), iat.into());
    c.insert("iss".into(), ISSUER.into());
    c.insert("sub".into(), sub.into());
    if full {
        c.insert("email".into(), email.into());
        c.insert("email_verified".into(), true.into());
        c.insert(
            "google".into(),
            json!({"compute_engine": {
                "instance_creation_timestamp": vm.created_unix,
                "instance_id": vm.id.to_string(),
                "instance_name": vm.name,
                "project_id": vm.project,
                "project_number": project_number(&vm.project),
                "zone": vm.zone,
            }}),
        );
    }
    Value::Object(c)
}

fn bad_request(message: &str) -> Response {
    respond(
        StatusCode::BAD_REQUEST,
        "text/html; charset=UTF-8",
        format!("{message}\n"),
    )
}

/// `.../identity?audience=A[&format=standard|full]`.
pub async fn identity(imds: &Imds, vm: &GceVm, query: Option<&str>) -> Response {
    let audience = query_param(query, "audience").unwrap_or_default();
    if audience.is_empty() {
        return bad_request("non-empty audience parameter required");
    }
    if audience.len() > MAX_AUDIENCE {
        return bad_request("audience parameter too long");
    }
    let full = match query_param(query, "format").as_deref() {
        None | Some("standard") => false,
        Some("full") => true,
        Some(_) => return bad_request("format must be one of: standard, full"),
    };
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let signed = match imds.trust.material().await {
        Ok(m) => sign(&m, &claims(vm, &audience, full, iat)),
        Err(e) => Err(e),
    };
    match signed {
        Ok(jwt) => respond(StatusCode::OK, "application/text", jwt),
        Err(e) => {
            tracing::error!(error = %e, "cannot sign the identity token");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "Internal Server Error\n",
            )
        }
    }
}

/// `.../token`: an access token (the mock's Compute API does not check it
/// against anything but its shape).
pub fn access_token() -> Response {
    let token = format!("ya29.mock-{}", uuid::Uuid::new_v4().simple());
    let body = json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"});
    respond(StatusCode::OK, "application/json", body.to_string())
}

/// `GET /oauth2/v3/certs`: the JWKS.
pub async fn jwks(State(imds): State<Arc<Imds>>) -> Response {
    let mut resp = match imds.trust.material().await {
        Ok(m) => {
            let key = &m.google;
            Json(json!({"keys": [{
                "alg": "RS256",
                "e": URL_SAFE_NO_PAD.encode(key.key.exponent()),
                "kid": key.kid,
                "kty": "RSA",
                "n": URL_SAFE_NO_PAD.encode(key.key.modulus()),
                "use": "sig",
            }]}))
            .into_response()
        }
        Err(e) => unavailable(e),
    };
    name(&mut resp, "oauth2.certs");
    resp
}

/// `GET /oauth2/v1/certs`: `{kid: PEM certificate}`.
pub async fn pem_certs(State(imds): State<Arc<Imds>>) -> Response {
    let mut resp = match imds.trust.material().await {
        Ok(m) => Json(json!({ m.google.kid.clone(): m.google.cert.pem })).into_response(),
        Err(e) => unavailable(e),
    };
    name(&mut resp, "oauth2.certs");
    resp
}

fn unavailable(e: TrustError) -> Response {
    tracing::error!(error = %e, "no trust material");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"error": "the signing keys are not available"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_21_stable_digits() {
        let a = unique_id("a@b");
        assert_eq!(a.len(), 21);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, unique_id("a@b"));
        assert_ne!(a, unique_id("a@c"));
    }
}
