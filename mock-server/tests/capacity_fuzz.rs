//! Property test (the proptest twin of the `mock_capacity_json` fuzz
//! target): random bodies for `PUT /_mock/stockouts`, `POST
//! /_mock/interrupt` and `PUT /_mock/interruptions` never panic; each
//! endpoint answers 200 exactly when its parser takes the body, and 400
//! with the parser's message otherwise.

use axum::body::Body;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use skyfleet_mock::app;
use skyfleet_mock::capacity::control::{parse_interrupt, parse_rates, parse_stockouts};
use skyfleet_mock::Ctx;
use tower::ServiceExt;

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("0.5".to_string()),
        Just("2".to_string()),
        Just("1e400".to_string()),
        Just("\"aws\"".to_string()),
        Just("\"gcp\"".to_string()),
        Just("\"azure\"".to_string()),
        Just("\"ibm\"".to_string()),
        Just("\"spot\"".to_string()),
        Just("\"on_demand\"".to_string()),
        Just("\"*\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"bad code!\"".to_string()),
        Just("[\"i-1\"]".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("cloud"),
        Just("location"),
        Just("instance_type"),
        Just("capacity_type"),
        Just("code"),
        Just("instances"),
        Just("fraction"),
        Just("per_instance_per_hour"),
        Just("other"),
    ]
    .prop_map(str::to_string)
}

fn object() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), leaf()), 0..6).prop_map(|fields| {
        let inner: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", inner.join(","))
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        object(),
        prop::collection::vec(object(), 0..3)
            .prop_map(|o| format!("{{\"stockouts\":[{}]}}", o.join(","))),
        prop::collection::vec(object(), 0..3)
            .prop_map(|o| format!("{{\"rates\":[{}]}}", o.join(","))),
        ".{0,40}",
    ]
}

async fn send(router: axum::Router, method: &str, path: &str, body: String) -> (u16, Value) {
    let req = http::Request::builder()
        .method(method)
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
    fn endpoints_and_parsers_agree(which in 0u8..3, body in body()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (method, path, parsed) = match which {
            0 => ("PUT", "/_mock/stockouts", parse_stockouts(body.as_bytes()).map(|_| ())),
            1 => ("POST", "/_mock/interrupt", parse_interrupt(body.as_bytes()).map(|_| ())),
            _ => ("PUT", "/_mock/interruptions", parse_rates(body.as_bytes()).map(|_| ())),
        };
        let router = app::router(app::Shared::new(Ctx::new(7)));
        let (status, json) = rt.block_on(send(router, method, path, body.clone()));
        match parsed {
            Ok(()) => prop_assert_eq!(status, 200, "{} {}: {}", path, body, json),
            Err(message) => {
                prop_assert_eq!(status, 400, "{} {}: {}", path, body, json);
                prop_assert_eq!(json["error"].as_str(), Some(message.as_str()));
            }
        }
    }
}
