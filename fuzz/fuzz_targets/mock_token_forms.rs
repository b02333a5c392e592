//! The mock's token endpoints: arbitrary bytes as the form body of Google's
//! `POST /token` and Entra's `POST /{tenant}/oauth2/v2.0/token` (in an open
//! tenant and in `mock-tenant`, where the default app is registered), as
//! the `client_assertion` of an otherwise good Entra request and the
//! `assertion` of a Google JWT-bearer grant, and as the query of MSAL's
//! instance discovery. The first byte picks the mode.
//!
//! The mock must never panic or answer 500; every 4xx is the cloud's OAuth
//! error JSON (a string `error`, and for Entra `error_codes`), every 200 a
//! token (discovery: a `tenant_discovery_endpoint`).
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{mock_router, runtime, send, RawRequest};

fn form(pairs: &[(&str, &str)]) -> Bytes {
    Bytes::from(serde_urlencoded::to_string(pairs).unwrap_or_default())
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (method, uri, body, entra) = match mode % 6 {
        0 => (
            Method::POST,
            "/token".to_string(),
            Bytes::copy_from_slice(rest),
            false,
        ),
        1 => (
            Method::POST,
            "/open-tenant/oauth2/v2.0/token".into(),
            Bytes::copy_from_slice(rest),
            true,
        ),
        2 => (
            Method::POST,
            "/mock-tenant/oauth2/v2.0/token".into(),
            Bytes::copy_from_slice(rest),
            true,
        ),
        3 => (
            Method::POST,
            "/mock-tenant/oauth2/v2.0/token".into(),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "mock-client"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &*text),
                ("scope", "https://management.azure.com/.default"),
            ]),
            true,
        ),
        4 => (
            Method::POST,
            "/token".into(),
            form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &*text),
            ]),
            false,
        ),
        _ => {
            let q = serde_urlencoded::to_string([
                ("api-version", "1.1"),
                ("authorization_endpoint", &*text),
            ])
            .unwrap_or_default();
            (
                Method::GET,
                format!("/common/discovery/instance?{q}"),
                Bytes::new(),
                true,
            )
        }
    };
    let Ok(uri) = http::Uri::try_from(uri) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        HeaderValue::from_static("127.0.0.1:8600"),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let router = mock_router();
    runtime().block_on(async {
        let answer = send(
            &router,
            RawRequest {
                method,
                uri,
                headers,
                body,
            },
        )
        .await;
        let status = answer.status;
        assert_ne!(status, 500, "mode {mode}: {:?}", answer.body);
        let v: serde_json::Value = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|e| panic!("mode {mode}: {status} not JSON ({e}): {:?}", answer.body));
        // 413 past the router's 1 MiB limit is the cloud's general error JSON.
        if (400..500).contains(&status) && status != 413 {
            assert!(v["error"].is_string(), "mode {mode}: {status} {v}");
            if entra {
                assert!(v["error_codes"][0].is_u64(), "mode {mode}: {status} {v}");
            }
        } else if status == 200 {
            let ok = v["access_token"].is_string() || v["tenant_discovery_endpoint"].is_string();
            assert!(ok, "mode {mode}: {v}");
        }
    });
});
