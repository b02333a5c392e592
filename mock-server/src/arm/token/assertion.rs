//! Client assertions (`client_assertion`, RFC 7523 JWTs signed with the
//! app's certificate key) as Entra ID checks them: `RS256` or `PS256`,
//! `aud` the token endpoint, `iss` = `sub` = the client id, `exp` in the
//! future, `nbf` (if given) in the past, a `jti`; and, for a registered
//! app, the certificate named by the `x5t#S256` or `x5t` header registered
//! and its key verifying the signature.

use aws_lc_rs::digest;
use const_oid::db::rfc5912::RSA_ENCRYPTION;
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use der::Decode;
use http::StatusCode;
use serde_json::{Map, Value};

/// Seconds of clock skew tolerated on `exp` and `nbf`.
const SKEW_S: i64 = 300;


/// A refusal: status, OAuth error, AADSTS code and description.
#[derive(Debug, PartialEq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

fn malformed(why: &str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        error: "invalid_request",
        code: 50027,
        description: format!("JWT token is invalid or malformed: {why}."),
    }
}

fn invalid_client(code: u32, description: String) -> Refusal {
    Refusal {
        status: StatusCode::UNAUTHORIZED,
        error: "invalid_client",
        code,
        description,
    }
}

/// A registered certificate: its thumbprints and RSA public key.
#[derive(Debug, Clone)]
pub(crate) struct RegisteredCert {
    sha1: Vec<u8>,
    sha256: Vec<u8>,
    /// The PKCS#1 `RSAPublicKey`.
    key: Vec<u8>,
}

impl RegisteredCert {
    /// Parses the first `CERTIFICATE` block of a PEM document (other
    /// blocks, such as a private key, are skipped).
    pub(crate) fn from_pem(pem: &str) -> Result<RegisteredCert, String> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let start = pem
            .find(BEGIN)
            .ok_or("no -----BEGIN CERTIFICATE----- block")?
            + BEGIN.len();
        let len = pem[start..]
            .find(END)
            .ok_or("no -----END CERTIFICATE----- line")?;
        let b64: String = pem[start..start + len]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|e| format!("the certificate is not base64: {e}"))?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| format!("not an X.509 certificate: {e}"))?;
        let spki = &cert.tbs_certificate.subject_public_key_info;
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!(
                "the certificate's key is not RSA (algorithm {})",
                spki.algorithm.oid
            ));
        }
        Ok(RegisteredCert {
            sha1: digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der)
                .as_ref()
                .to_vec(),
            sha256: digest::digest(&digest::SHA256, &der).as_ref().to_vec(),
            key: spki.subject_public_key.raw_bytes().to_vec(),
        })
    }
}

/// What the assertion must say.
pub(crate) struct Expected<'a> {
    /// The client id of the request.
    pub client_id: &'a str,
    /// The accepted audiences (the token endpoint's URLs).
    pub audiences: &'a [String],
    /// Unix seconds now.
    pub now: i64,
}

/// Decodes one base64url JWT segment (padding tolerated) as a JSON object.
fn segment(s: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// Checks `assertion`; with `certs` (the app is registered) its signature
/// too, against the certificate its header names.
pub(crate) fn check(
    assertion: &str,
    expected: &Expected<'_>,
    certs: Option<&[RegisteredCert]>,
) -> Result<(), Refusal> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [head_b64, claims_b64, sig_b64] = parts.as_slice() else {
        return Err(malformed("not three dot-separated segments"));
    };
    let head = segment(head_b64).ok_or_else(|| malformed("the header is not base64url JSON"))?;
    let claims =
        segment(claims_b64).ok_or_else(|| malformed("the payload is not base64url JSON"))?;
    let alg = match head.get("alg").and_then(Value::as_str) {
        Some("RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => &signature::RSA_PSS_2048_8192_SHA256,
        _ => return Err(malformed("the alg header must be RS256 or PS256")),
    };
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64.trim_end_matches('='))
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("the signature is not base64url"))?;
    let text = |k: &str| claims.get(k).and_then(Value::as_str);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => expected.audiences.iter().any(|e| e.eq_ignore_ascii_case(a)),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(|a| {
            expected.audiences.iter().any(|e| e.eq_ignore_ascii_case(a))
        }),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid_client(
            700023,
            "Client assertion audience claim does not match Realm issuer.".into(),
        ));
    }
    let is_client = |k: &str| text(k).is_some_and(|v| v.eq_ignore_ascii_case(expected.client_id));
    if !is_client("iss") || !is_client("sub") {
        return Err(invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter."
                .into(),
        ));
    }
    let exp = claims
        .get("exp")
        // MSAL for Python sends fractional seconds.
        .and_then(Value::as_f64)
        .map(|f| f as i64)
        .ok_or_else(|| malformed("the exp claim is missing"))?;
    let nbf = match claims.get("nbf") {
        None => None,
        Some(v) => Some(v.as_f64().map(|f| f as i64).ok_or_else(|| malformed("the nbf claim is not a number"))?),
    };
    if exp <= expected.now - SKEW_S || nbf.is_some_and(|n| n > expected.now + SKEW_S) {
        return Err(invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, expiry time of assertion {exp}.",
                expected.now
            ),
        ));
    }
    if text("jti").is_none_or(str::is_empty) {
        return Err(malformed("the jti claim is missing"));
    }
    let Some(certs) = certs else {
        return Ok(());
    };
    let thumb = |k: &str| {
        head.get(k)
            .and_then(Value::as_str)
            .and_then(|t| URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok())
    };
    let cert = match (thumb("x5t#S256"), thumb("x5t")) {
        (Some(t), _) => certs.iter().find(|c| c.sha256 == t).ok_or(t),
        (None, Some(t)) => certs.iter().find(|c| c.sha1 == t).ok_or(t),
        (None, None) => Err(Vec::new()),
    };
    let cert = cert.map_err(|t| {
        let hex: String = t.iter().map(|b| format!("{b:02X}")).collect();
        invalid_client(
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. \
                 [Reason - The key was not found., Thumbprint of key used by client: '{hex}']"
            ),
        )
    })?;
    let signed = &assertion[..head_b64.len() + 1 + claims_b64.len()];
    UnparsedPublicKey::new(alg, &cert.key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| {
            invalid_client(
                700027,
                "Client assertion failed signature validation.".into(),
            )
        })
}
