//! `POST /token`: Google's OAuth 2.0 token endpoint, for service accounts
//! (the JWT-bearer grant, RFC 7523), which `gcp_auth` and Google's other
//! libraries call with a key file whose `token_uri` points here, and for
//! users (`grant_type=refresh_token`, see `refresh`), which they call with
//! the `authorized_user` file `gcloud auth application-default login`
//! writes.
//!
//! The client signs the JWT with its private key; the mock has no public key
//! to check the signature against, so it checks only the shape and claims
//! (`iss`, `scope`, `aud`, `iat`/`exp` within an hour) and issues an opaque
//! access token that the Compute routes accept.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::ctx::OperationName;

use super::Gce;

mod refresh;

/// The service-account grant.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The operation name the journal records for token requests.
const METHOD: &str = "oauth2.token";

/// Seconds of clock skew tolerated on `iat`.
const SKEW_S: i64 = 300;

/// An OAuth error: `{"error":..,"error_description":..}`.
#[derive(Debug, PartialEq)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            json!({"error": self.error, "error_description": self.description}),
        )
    }
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> OAuthError {
    OAuthError {
        status,
        error,
        description: description.to_string(),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, max-age=0, must-revalidate"),
    );
    resp
}

fn invalid_grant(description: &str) -> OAuthError {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// Decodes one base64url JWT segment (padded or not) as a JSON object.
fn segment(s: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Checks a JWT-bearer assertion's claims; `Err` is the error response.
fn check_assertion(assertion: &str, now: i64) -> Result<(), OAuthError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [head, claims, sig] = parts.as_slice() else {
        return Err(invalid_grant(
            "Invalid JWT: not three dot-separated segments.",
        ));
    };
    if sig.is_empty() {
        return Err(invalid_grant("Invalid JWT Signature."));
    }
    let head = segment(head).ok_or_else(|| invalid_grant("Invalid JWT: bad header."))?;
    if head.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(invalid_grant(
            "Invalid JWT: unsupported 'alg' (RS256 expected).",
        ));
    }
    let claims = segment(claims).ok_or_else(|| invalid_grant("Invalid JWT: bad claim set."))?;
    let text = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if text("iss").is_none() {
        return Err(invalid_grant("Invalid JWT: 'iss' is missing."));
    }
    if text("aud").is_none() {
        return Err(invalid_grant("Invalid JWT: Failed audience check."));
    }
    if text("scope").is_none() {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        ));
    }
    let number = |k: &str| claims.get(k).and_then(Value::as_i64);
    let timeframe = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
                     reasonable timeframe. Check your iat and exp values in the JWT claim.";
    match (number("iat"), number("exp")) {
        (Some(iat), Some(exp))
            if iat <= now + SKEW_S && exp > now && exp > iat && exp - iat <= 3600 => {}
        _ => return Err(invalid_grant(timeframe)),
    }
    Ok(())
}

impl Gce {
    /// Serves `POST /token`.
    pub(crate) async fn serve_token(self: Arc<Self>, req: Request) -> Response {
        let mut resp = self.token(req).await;
        resp.extensions_mut()
            .insert(OperationName(METHOD.to_string()));
        resp
    }

    async fn token(&self, req: Request) -> Response {
        match self.grant(req).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        }
    }

    async fn grant(&self, req: Request) -> Result<Response, OAuthError> {
        let body = to_bytes(req.into_body(), 64 * 1024).await.map_err(|_| {
            oauth_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "Request body too large.",
            )
        })?;
        let form = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body).map_err(|_| {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Malformed form body.",
            )
        })?;
        let field = |k: &str| {
            form.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let grant = field("grant_type").unwrap_or("");
        if grant == refresh::REFRESH_TOKEN {
            let config = self.config();
            refresh::check(&config.authorized_users, field)?;
            let scope = field("scope")
                .filter(|s| !s.is_empty())
                .unwrap_or(refresh::DEFAULT_SCOPE);
            return Ok(self.access_token(Some(scope)));
        }
        if grant != JWT_BEARER {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {grant}"),
            ));
        }
        let assertion = field("assertion")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| invalid_grant("Missing required parameter: assertion"))?;
        check_assertion(assertion, OffsetDateTime::now_utc().unix_timestamp())?;
        Ok(self.access_token(None))
    }

    /// A fresh opaque access token (the Compute routes take any bearer
    /// token), with the granted `scope` when there is one.
    fn access_token(&self, scope: Option<&str>) -> Response {
        let expires_in = self.config().token_expires_in_s;
        let mut body = json!({
            "access_token": format!("ya29.mock-{}", self.ctx.hex_id(40)),
            "expires_in": expires_in,
            "token_type": "Bearer",
        });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        json_response(StatusCode::OK, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: Value) -> String {
        let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        format!("{head}.{}.c2ln", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn assertions() {
        let now = 1_700_000_000;
        let good = json!({"iss": "a@b", "scope": "s", "aud": "http://x/token", "iat": now, "exp": now + 3595});
        assert!(check_assertion(&jwt(good.clone()), now).is_ok());
        let mut no_scope = good.clone();
        no_scope.as_object_mut().unwrap().remove("scope");
        assert!(check_assertion(&jwt(no_scope), now).is_err());
        let mut long = good.clone();
        long["exp"] = json!(now + 7200);
        assert!(check_assertion(&jwt(long), now).is_err());
        assert!(check_assertion("a.b", now).is_err());
        assert!(check_assertion("!!.??.x", now).is_err());
    }
}
