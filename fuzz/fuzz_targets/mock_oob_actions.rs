//! The mock's out-of-band action endpoint
//! (`POST /_mock/resources/{id}/actions`): the first byte of an input picks
//! the id (an EC2 instance id, an ARM VM id, or neither), the rest is the
//! body, sent to a mock holding no VM.
//!
//! The mock must never panic. The parser (`parse_action`) and the endpoint
//! must agree: a body the parser refuses is 400 with `{"error": <the
//! parser's message>}`; one it takes reaches the cloud, which checks its own
//! rules before the lookup, as the clouds validate input first: 400 for
//! `deallocate` on EC2, which has none, and for tags a cloud refuses
//! (EC2's reserved `aws:` prefix, ARM's forbidden name characters, Compute
//! Engine's label format: a message starting `tags: `); else 404, since no
//! VM has the id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skyfleet_fuzz::{mock_router, runtime, send, RawRequest};
use skyfleet_mock::out_of_band::{parse_action, Action};

const IDS: [&str; 3] = [
    "i-0000000000000dead",
    "%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.Compute%2FvirtualMachines%2Fv",
    "vm-1",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let id = IDS[usize::from(which) % IDS.len()];
    let path = format!("/_mock/resources/{id}/actions");
    let router = mock_router();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("127.0.0.1"),
    );
    let req = RawRequest {
        method: http::Method::POST,
        uri: path.parse().expect("a valid path"),
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    };
    let answer = runtime().block_on(send(&router, req));
    let json: serde_json::Value =
        serde_json::from_slice(&answer.body).expect("the control API answers JSON");
    match parse_action(body) {
        Ok(Action::Deallocate) if id.starts_with("i-") => {
            assert_eq!(answer.status, 400, "{path}: {json}")
        }
        Ok(Action::SetTags(_)) => {
            let cloud_rule = answer.status == 400
                && json["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("tags: "));
            assert!(answer.status == 404 || cloud_rule, "{path}: {json}");
        }
        Ok(_) => assert_eq!(answer.status, 404, "{path}: {json}"),
        Err(message) => {
            assert_eq!(answer.status, 400, "{path}: {json}");
            assert_eq!(json["error"].as_str(), Some(message.as_str()), "{path}");
        }
    }
});
