//! Property tests for every endpoint's body: arbitrary bytes and arbitrary
//! JSON values never panic and never produce a 500; the answer is a 2xx or
//! a JSON `ErrorBody` whose code matches the status.

mod common;

use axum::Router;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use skyfleet_core::protocol::paths;

const ENDPOINTS: [&str; 4] = [
    paths::REGISTER,
    paths::REREGISTER,
    paths::HEARTBEAT,
    paths::DRAINED,
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `body` to `path` (with the right secret, so the body is read) and
/// checks the answer's shape.
fn check(rt: &tokio::runtime::Runtime, app: &Router, path: &str, body: Vec<u8>) {
    let (resp, bytes) = rt.block_on(send(app, post(path, Some(SECRET), body)));
    let status = resp.status();
    assert_ne!(status.as_u16(), 500, "{}", String::from_utf8_lossy(&bytes));
    if status.is_success() {
        let _: Value = serde_json::from_slice(&bytes).expect("a 2xx answer is JSON");
    } else {
        error_body(status, &bytes);
    }
}

/// Arbitrary JSON, up to a few levels deep, biased towards the field names
/// the endpoints read so the strict parsers get past the first key.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("workerId".to_string()),
        Just("workerPoolId".to_string()),
        Just("proof".to_string()),
        Just("kind".to_string()),
        Just("secret".to_string()),
        Just("state".to_string()),
        Just("running".to_string()),
        Just("capacityUsed".to_string()),
        Just("tasksCompleted".to_string()),
        "\\PC{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("w-1".to_string()),
            Just("idle".to_string()),
            Just("busy".to_string()),
            Just("static_secret".to_string()),
            Just(PROOF.to_string()),
            "\\PC{0,24}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_fail_the_server(
        endpoint in 0..4usize,
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let rt = runtime();
        let (app, _) = app(roomy());
        check(&rt, &app, ENDPOINTS[endpoint], body);
    }

    #[test]
    fn arbitrary_json_never_fails_the_server(endpoint in 0..4usize, value in any_json()) {
        let rt = runtime();
        let (app, _) = app(roomy());
        check(&rt, &app, ENDPOINTS[endpoint], serde_json::to_vec(&value).unwrap());
    }

    /// Near-valid bodies: a valid one with one field replaced by anything.
    #[test]
    fn mutated_valid_bodies_never_fail_the_server(
        endpoint in 0..4usize,
        field in prop_oneof![
            Just("workerId"), Just("workerPoolId"), Just("proof"), Just("state"),
            Just("running"), Just("capacityUsed"), Just("tasksCompleted"), Just("extra"),
        ],
        value in any_json(),
    ) {
        let rt = runtime();
        let (app, _) = app(roomy());
        let mut base: Value = match endpoint {
            0 => serde_json::from_str(&register(WORKER, PROOF)).unwrap(),
            2 => serde_json::from_str(&heartbeat(WORKER, 1)).unwrap(),
            _ => serde_json::from_str(&worker_body(WORKER)).unwrap(),
        };
        base[field] = value;
        check(&rt, &app, ENDPOINTS[endpoint], serde_json::to_vec(&base).unwrap());
    }
}

#[test]
fn valid_bodies_pass_the_same_check() {
    // The property's check accepts real answers: a valid body is a 200.
    let rt = runtime();
    let (app, fake) = app(roomy());
    check(
        &rt,
        &app,
        paths::REGISTER,
        register(WORKER, PROOF).into_bytes(),
    );
    check(
        &rt,
        &app,
        paths::HEARTBEAT,
        heartbeat(WORKER, 1).into_bytes(),
    );
    check(
        &rt,
        &app,
        paths::REREGISTER,
        worker_body(WORKER).into_bytes(),
    );
    check(&rt, &app, paths::DRAINED, worker_body(WORKER).into_bytes());
    assert_eq!(fake.calls.lock().unwrap().len(), 4);
}
