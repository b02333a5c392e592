//! Property test (the proptest twin of the `mock_oob_actions` fuzz
//! target): random bodies for `POST /_mock/resources/{id}/actions` never
//! panic; a body the parser refuses is 400 with the parser's message, one
//! it takes reaches the cloud, which checks its own rules first (400 for
//! `deallocate` on EC2 and for tags the cloud refuses, with a message
//! starting `tags: `), then the lookup (404 in a mock holding no VM).

use axum::body::Body;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use skyfleet_mock::app;
use skyfleet_mock::out_of_band::{parse_action, Action};
use skyfleet_mock::Ctx;
use tower::ServiceExt;

const IDS: [&str; 4] = [
    "i-0000000000000dead",
    "%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.Compute%2FvirtualMachines%2Fv",
    "4711",
    "vm-1",
];

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("1".to_string()),
        Just("\"delete\"".to_string()),
        Just("\"stop\"".to_string()),
        Just("\"start\"".to_string()),
        Just("\"deallocate\"".to_string()),
        Just("\"set_tags\"".to_string()),
        Just("\"reboot\"".to_string()),
        Just("{}".to_string()),
        Just("{\"team\":\"blue\"}".to_string()),
        Just("{\"\":\"x\"}".to_string()),
        Just("{\"Team\":\"x\\u0001\"}".to_string()),
        Just("[]".to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("action"), Just("tags"), Just("other")].prop_map(str::to_string)
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec((key(), leaf()), 0..4).prop_map(|fields| {
            let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", inner.join(","))
        }),
        ".{0,40}",
    ]
}

async fn send(router: axum::Router, path: &str, body: String) -> (u16, Value) {
    let req = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", "127.0.0.1")
        .body(Body::from(body))
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn endpoint_and_parser_agree(which in 0usize..4, body in body()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let id = IDS[which];
        let path = format!("/_mock/resources/{id}/actions");
        let router = app::router(app::Shared::new(Ctx::new(7)));
        let (status, json) = rt.block_on(send(router, &path, body.clone()));
        match parse_action(body.as_bytes()) {
            Ok(Action::Deallocate) if which == 0 || which == 2 => {
                prop_assert_eq!(status, 400, "{} {}: {}", path, body, json);
                let e = json["error"].as_str().unwrap_or_default();
                prop_assert!(e.contains("deallocate"), "{}", e);
            }
            Ok(Action::SetTags(t)) if which == 2 && t.keys().any(|k| !k.starts_with(|c: char| c.is_lowercase())) => {
                prop_assert_eq!(status, 400, "{} {}: {}", path, body, json);
            }
            Ok(Action::SetTags(_)) => {
                let cloud_rule = status == 400
                    && json["error"].as_str().is_some_and(|e| e.starts_with("tags: "));
                prop_assert!(status == 404 || cloud_rule, "{} {}: {}", path, body, json);
            }
            Ok(_) => prop_assert_eq!(status, 404, "{} {}: {}", path, body, json),
            Err(message) => {
                prop_assert_eq!(status, 400, "{} {}: {}", path, body, json);
                prop_assert_eq!(json["error"].as_str(), Some(message.as_str()));
            }
        }
    }
}
