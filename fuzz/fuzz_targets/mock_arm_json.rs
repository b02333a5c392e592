//! The mock's Azure Resource Manager API: arbitrary requests (method,
//! path, query, headers, JSON or not body; several per input separated by
//! `--` lines, against one fresh mock, so a vnet PUT can be followed by a
//! NIC in it) through the whole router. Subscription
//! `00000000-0000-0000-0000-00000000f022` has group `rg` and `vnet/default`
//! before the first request.
//!
//! The mock must never panic. Under `/subscriptions/` every answer carries
//! `x-ms-request-id`, is never a 500, and every 4xx (but HEAD's) is ARM's
//! error JSON with `error.code` and `error.message`. Requests without an
//! `Authorization` get `Bearer t`; the control API (`/_mock/...`) is out of
//! scope and skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{azure_network, mock_router, parse_request, runtime, send, split_parts};

fuzz_target!(|data: &[u8]| {
    let router = mock_router();
    runtime().block_on(async {
        // The group `rg` and `vnet/default` the chain's requests expect.
        azure_network(&router).await;
        for part in split_parts(data).into_iter().take(8) {
            let Some(mut req) = parse_request(part) else {
                continue;
            };
            let path = req.uri.path().to_string();
            if path.starts_with("/_mock") {
                continue;
            }
            if !req.headers.contains_key(http::header::AUTHORIZATION) {
                req.headers.insert(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_static("Bearer t"),
                );
            }
            let head = req.method == http::Method::HEAD;
            let answer = send(&router, req).await;
            // ARM proper; `/{tenant}/oauth2/...` is Entra's token endpoint
            // (whose errors are OAuth's, without a request id), even for a
            // tenant that starts with "subscriptions".
            let arm = (path == "/subscriptions" || path.starts_with("/subscriptions/"))
                && !path.contains("/oauth2/");
            if !arm {
                continue;
            }
            let status = answer.status;
            assert!(
                answer.headers.contains_key("x-ms-request-id"),
                "{path}: {status} without x-ms-request-id"
            );
            assert_ne!(status, 500, "{path}: {:?}", answer.body);
            if (400..500).contains(&status) && !head {
                let v: serde_json::Value =
                    serde_json::from_slice(&answer.body).unwrap_or_else(|e| {
                        panic!("{path}: {status} not JSON ({e}): {:?}", answer.body)
                    });
                let code = v["error"]["code"].as_str().unwrap_or("");
                assert!(
                    !code.is_empty() && v["error"]["message"].is_string(),
                    "{path}: {status} {v}"
                );
            }
        }
    });
});
