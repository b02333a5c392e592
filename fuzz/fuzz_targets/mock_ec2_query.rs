//! The mock's EC2 Query API: arbitrary form bodies (several per input,
//! separated by `--` lines, against one fresh mock so that a RunInstances
//! can be followed by a DescribeInstances) posted to `/`, or sent as
//! `GET /?...` when a part starts with `?`.
//!
//! The mock must never panic, and must answer well-formed XML: a 200 with
//! `<XxxResponse><requestId>`, or an EC2 error
//! (`Response/Errors/Error/{Code,Message}` and `RequestID`), never a 500.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{child, mock_router, parse_xml, runtime, send, split_parts, RawRequest};

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDFUZZ/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0";

fuzz_target!(|data: &[u8]| {
    let router = mock_router();
    runtime().block_on(async {
        for part in split_parts(data).into_iter().take(8) {
            let (method, uri, body) = match part.strip_prefix(b"?") {
                Some(query) => {
                    let Ok(uri) = http::Uri::try_from([b"/?", query].concat()) else {
                        continue;
                    };
                    (http::Method::GET, uri, bytes::Bytes::new())
                }
                None => (
                    http::Method::POST,
                    http::Uri::from_static("/"),
                    bytes::Bytes::copy_from_slice(part),
                ),
            };
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
            );
            headers.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static(AUTH),
            );
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
            let text = std::str::from_utf8(&answer.body).expect("EC2 answers are UTF-8");
            let doc =
                parse_xml(text).unwrap_or_else(|e| panic!("not well-formed XML ({e}): {text}"));
            let root = doc.root_element();
            assert_ne!(answer.status, 500, "an internal error: {text}");
            if answer.status >= 400 {
                assert_eq!(root.tag_name().name(), "Response", "{text}");
                let error = child(root, "Errors")
                    .and_then(|e| child(e, "Error"))
                    .unwrap_or_else(|| panic!("no Errors/Error: {text}"));
                let code = child(error, "Code").and_then(|c| c.text()).unwrap_or("");
                assert!(!code.is_empty(), "no error code: {text}");
                assert!(child(error, "Message").is_some(), "no message: {text}");
                let id = child(root, "RequestID")
                    .and_then(|c| c.text())
                    .unwrap_or("");
                assert!(!id.is_empty(), "no RequestID: {text}");
            } else {
                assert_eq!(answer.status, 200, "{text}");
                assert!(root.tag_name().name().ends_with("Response"), "{text}");
                assert!(child(root, "requestId").is_some(), "no requestId: {text}");
            }
        }
    });
});
