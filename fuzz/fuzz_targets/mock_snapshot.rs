//! The mock's snapshot restore (`PUT /_mock/snapshot`): the input is the
//! body.
//!
//! The mock must never panic. The parser (`snapshot::parse`) and the
//! endpoint must agree: a body the parser takes is answered 204, one it
//! refuses is answered with the error's status (400, or 409 for another
//! version) and body. After a restore that was taken, a snapshot of the
//! restored state must itself be taken by the parser (what the mock writes,
//! it reads back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{mock_router, runtime, send, RawRequest};
use skyfleet_mock::snapshot::parse;

fn request(method: &str, body: &[u8]) -> RawRequest {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("127.0.0.1"),
    );
    RawRequest {
        method: method.parse().expect("a valid method"),
        uri: "/_mock/snapshot".parse().expect("a valid path"),
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    }
}

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    let router = mock_router();
    let answer = runtime().block_on(send(&router, request("PUT", data)));
    match parsed {
        Ok(_) => {
            assert_eq!(
                answer.status,
                204,
                "{:?}",
                String::from_utf8_lossy(&answer.body)
            );
            let taken = runtime().block_on(send(&router, request("POST", b"")));
            assert_eq!(taken.status, 200);
            if let Err(e) = parse(&taken.body) {
                panic!("the mock refuses its own snapshot: {e}");
            }
        }
        Err(e) => {
            assert_eq!(answer.status, e.status(), "{e}");
            let json: serde_json::Value =
                serde_json::from_slice(&answer.body).expect("the control API answers JSON");
            assert_eq!(json, e.body());
        }
    }
});
