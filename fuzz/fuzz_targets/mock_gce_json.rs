//! The mock's Compute Engine API: arbitrary requests (method, path, query,
//! headers, JSON or not body; several per input separated by `--` lines,
//! against one fresh mock) through the whole router.
//!
//! The mock must never panic. Under `/compute/` it must answer JSON: a 200
//! whose `kind` is `compute#...`, or Google's error shape (`error.code`
//! equal to the status, `error.message`, `error.errors[0].reason`), never a
//! 500. Requests without an `Authorization` get `Bearer t`; the control API
//! (`/_mock/...`) is out of scope and skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{mock_router, parse_request, runtime, send, split_parts};

fuzz_target!(|data: &[u8]| {
    let router = mock_router();
    runtime().block_on(async {
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
            // `/{tenant}/oauth2/v2.0/token` is Entra's token endpoint, for
            // any tenant (even `compute`): the mock serves every cloud on
            // one address.
            let entra = {
                let s: Vec<&str> = path.split('/').collect();
                s.len() == 5 && s[2] == "oauth2" && s[3] == "v2.0" && s[4] == "token"
            };
            if !path.starts_with("/compute/") || head || entra {
                continue;
            }
            let status = answer.status;
            assert_ne!(status, 500, "{path}: {:?}", answer.body);
            let v: serde_json::Value = serde_json::from_slice(&answer.body)
                .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {:?}", answer.body));
            if status >= 400 {
                assert_eq!(
                    v["error"]["code"].as_u64(),
                    Some(u64::from(status)),
                    "{path}: {v}"
                );
                assert!(v["error"]["message"].is_string(), "{path}: {v}");
                assert!(v["error"]["errors"][0]["reason"].is_string(), "{path}: {v}");
            } else {
                assert_eq!(status, 200, "{path}: {v}");
                assert!(
                    v["kind"].as_str().unwrap_or("").starts_with("compute#"),
                    "{path}: {v}"
                );
            }
        }
    });
});
