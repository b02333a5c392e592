//! The mock's capacity control API (`PUT /_mock/stockouts`,
//! `POST /_mock/interrupt`, `PUT /_mock/interruptions`): the first byte of
//! an input picks the endpoint, the rest is the body.
//!
//! The mock must never panic. Each body's parser (`parse_stockouts`,
//! `parse_interrupt`, `parse_rates`) and the endpoint must agree: a body
//! the parser takes is answered 200 with JSON, one it refuses is 400 with
//! `{"error": <the parser's message>}`, never anything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{mock_router, runtime, send, RawRequest};
use skyfleet_mock::capacity::control::{parse_interrupt, parse_rates, parse_stockouts};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let (method, path, parsed) = match which % 3 {
        0 => ("PUT", "/_mock/stockouts", parse_stockouts(body).map(|_| ())),
        1 => (
            "POST",
            "/_mock/interrupt",
            parse_interrupt(body).map(|_| ()),
        ),
        _ => ("PUT", "/_mock/interruptions", parse_rates(body).map(|_| ())),
    };
    let router = mock_router();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("127.0.0.1"),
    );
    let req = RawRequest {
        method: method.parse().expect("a valid method"),
        uri: path.parse().expect("a valid path"),
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    };
    let answer = runtime().block_on(send(&router, req));
    let json: serde_json::Value =
        serde_json::from_slice(&answer.body).expect("the control API answers JSON");
    match parsed {
        Ok(()) => assert_eq!(answer.status, 200, "{path}: {json}"),
        Err(message) => {
            assert_eq!(answer.status, 400, "{path}: {json}");
            assert_eq!(json["error"].as_str(), Some(message.as_str()), "{path}");
        }
    }
});
