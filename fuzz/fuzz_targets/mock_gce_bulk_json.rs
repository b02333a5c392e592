//! The mock's `instances.bulkInsert` body parser, through the router: each
//! part of an input (up to 3, separated by `--` lines) is the JSON body of
//! one `POST .../zones/us-central1-a/instances/bulkInsert` against one
//! fresh mock, followed by an `instances.aggregatedList` read page by page.
//!
//! The mock must never panic nor answer 500. A bulk insert answers a
//! `compute#operation` of type `bulkInsert`, or Google's error shape
//! (`error.code` equal to the status, a message, `errors[0].reason`) with
//! 400, 404 or 409. The instances listed (time scale 0: booted at once)
//! are exactly the sum of the `count`s of the accepted requests: a refused
//! request creates nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{mock_router, runtime, send, split_parts, RawRequest};

const PATH: &str = "/compute/v1/projects/fz/zones/us-central1-a/instances/bulkInsert";

fn request(method: &str, uri: &str, body: &[u8]) -> RawRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("127.0.0.1"),
    );
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer t"),
    );
    RawRequest {
        method: method.parse().expect("a valid method"),
        uri: uri.parse().expect("a valid URI"),
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    }
}

/// `count` of an accepted body: a number or a decimal string.
fn count(body: &[u8]) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(body).expect("an accepted body is JSON");
    match &v["count"] {
        serde_json::Value::Number(n) => n.as_u64().expect("an accepted count is a u64"),
        serde_json::Value::String(s) => s.parse().expect("an accepted count parses"),
        other => panic!("accepted without a count: {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let router = mock_router();
    runtime().block_on(async {
        let mut expected = 0u64;
        for body in split_parts(data).into_iter().take(3) {
            let answer = send(&router, request("POST", PATH, body)).await;
            let status = answer.status;
            assert_ne!(status, 500, "{:?}", answer.body);
            let v: serde_json::Value = serde_json::from_slice(&answer.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", answer.body));
            if status == 200 {
                assert_eq!(v["kind"], "compute#operation", "{v}");
                assert_eq!(v["operationType"], "bulkInsert", "{v}");
                expected += count(body);
            } else {
                assert!(matches!(status, 400 | 404 | 409), "{status}: {v}");
                assert_eq!(v["error"]["code"].as_u64(), Some(u64::from(status)), "{v}");
                assert!(v["error"]["message"].is_string(), "{v}");
                assert!(v["error"]["errors"][0]["reason"].is_string(), "{v}");
            }
        }
        // Every instance, page by page (at most 500 a page).
        let mut listed = 0u64;
        let mut token = String::new();
        for _ in 0..10 {
            let uri = format!("/compute/v1/projects/fz/aggregated/instances?pageToken={token}");
            let answer = send(&router, request("GET", &uri, b"")).await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            let v: serde_json::Value =
                serde_json::from_slice(&answer.body).expect("a list is JSON");
            if let Some(items) = v["items"].as_object() {
                for entry in items.values() {
                    listed += entry["instances"].as_array().map_or(0, |a| a.len() as u64);
                }
            }
            match v["nextPageToken"].as_str() {
                Some(t) => token = t.to_string(),
                None => break,
            }
        }
        assert_eq!(listed, expected);
    });
});
