//! Property test: random methods, paths and bodies thrown at the Compute
//! router never panic and always get JSON; every error is in Google's
//! format with `error.code` equal to the HTTP status and a reason.

mod gce_support;

use gce_support::*;
use proptest::prelude::*;
use serde_json::Value;

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("instances".to_string()),
        Just("operations".to_string()),
        Just("vm-1".to_string()),
        Just("start".to_string()),
        Just("stop".to_string()),
        Just("wait".to_string()),
        "[a-zA-Z0-9%._~-]{0,12}",
    ]
}

fn body() -> impl Strategy<Value = Option<String>> {
    let json_leaf = prop_oneof![
        Just("null".to_string()),
        Just("1".to_string()),
        Just("\"x\"".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just(r#"{"name":"vm-1"}"#.to_string()),
        Just(r#"{"name":"vm-1","machineType":"zones/z/machineTypes/e2","disks":[{"source":"x"}],"networkInterfaces":[{}]}"#.to_string()),
    ];
    prop_oneof![
        Just(None),
        json_leaf.prop_map(Some),
        ".{0,64}".prop_map(Some),
        (r#"[a-zA-Z]{1,8}"#, json_any()).prop_map(|(k, v)| Some(format!(
            r#"{{"{k}":{v},"name":{v},"labels":{v},"disks":{v}}}"#
        ))),
    ]
}

fn json_any() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-3.5".to_string()),
        Just("\"A_b\"".to_string()),
        Just("[{}]".to_string()),
        Just(r#"{"a":"b"}"#.to_string()),
        Just("[[1]]".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_get_google_errors(
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PUT"), Just("PATCH")],
        project in "[a-z0-9-]{1,8}|[A-Z%]{1,4}",
        segs in proptest::collection::vec(segment(), 0..5),
        query in prop_oneof![Just(String::new()), Just("?requestId=x".to_string()), Just("?filter=(((".to_string()), Just("?maxResults=-1&pageToken=!!".to_string()), "\\?[a-zA-Z]{1,5}=[a-z0-9]{0,5}"],
        body in body(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (_ctx, _gce, router) = gce(0.0);
            let mut path = format!("/compute/v1/projects/{project}/zones/{ZONE}");
            for s in &segs {
                path.push('/');
                path.push_str(s);
            }
            path.push_str(&query);
            let Ok(uri) = path.parse::<http::Uri>() else { return };
            let req = http::Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", "Bearer t")
                .body(match &body {
                    Some(b) => axum::body::Body::from(b.clone()),
                    None => axum::body::Body::empty(),
                })
                .unwrap();
            let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
            let status = resp.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {bytes:?}"));
            if status >= 400 {
                assert_eq!(v["error"]["code"].as_u64(), Some(status as u64), "{path}: {v}");
                assert!(v["error"]["message"].is_string(), "{path}: {v}");
                assert!(v["error"]["errors"][0]["reason"].is_string(), "{path}: {v}");
            } else {
                assert_eq!(status, 200);
                assert!(v["kind"].as_str().unwrap_or("").starts_with("compute#"), "{path}: {v}");
            }
        });
    }
}
