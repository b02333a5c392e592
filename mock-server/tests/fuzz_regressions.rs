//! Inputs on which the cargo-fuzz targets (`fuzz/`) found bugs in the mock,
//! kept as plain tests. The same inputs are in `fuzz/regressions/<target>/`.

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::Value;
use skyfleet_mock::app::{self, cloud_for_path};
use skyfleet_mock::ctx::Cloud;
use skyfleet_mock::Ctx;
use tower::ServiceExt;

async fn get(path: &str) -> (u16, Value) {
    let router = app::router(app::Shared::new(Ctx::new(7)));
    let req = http::Request::builder()
        .uri(path)
        .header("authorization", "Bearer t")
        .body(Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// `mock_gce_json`, fuzz/regressions/mock_gce_json/compute_path_with_oauth2_*:
/// an unknown path under `/compute/` with an `oauth2` segment was taken for
/// Entra's token endpoint and got ARM's error shape.
#[tokio::test]
async fn compute_path_with_oauth2_segment_gets_a_google_404() {
    assert_eq!(cloud_for_path("/compute/x/oauth2/y"), Some(Cloud::Gcp));
    assert_eq!(
        cloud_for_path("/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"),
        Some(Cloud::Azure)
    );
    for path in [
        "/compute/x/oauth2/y",
        "/compute/oauth2/v2.0/tokenproject/zones/europe-west1-b/operations/operation-123",
    ] {
        assert_eq!(cloud_for_path(path), Some(Cloud::Gcp), "{path}");
        let (status, v) = get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(v["error"]["code"].as_u64(), Some(404), "{path}: {v}");
        assert!(v["error"]["message"].is_string(), "{path}: {v}");
        assert_eq!(v["error"]["errors"][0]["reason"], "notFound", "{path}: {v}");
    }
}

/// `mock_oob_actions`, fuzz/regressions/mock_oob_actions/arm_tag_name_with_percent:
/// ARM checks its tag-name rule before looking the VM up, so an unknown VM
/// with a forbidden tag name is 400 naming the key, not 404. The target's
/// oracle expected 404 for every body the generic parser takes; it now
/// allows each cloud's own tag rules.
#[tokio::test]
async fn arm_tag_rule_comes_before_the_lookup() {
    let router = app::router(app::Shared::new(Ctx::new(7)));
    let id = "%2Fsubscriptions%2Fs%2FresourceGroups%2Fg%2Fproviders%2FMicrosoft.Compute%2FvirtualMachines%2Fv";
    let post = |body: &'static str| {
        http::Request::builder()
            .method("POST")
            .uri(format!("/_mock/resources/{id}/actions"))
            .header("host", "127.0.0.1")
            .body(Body::from(body))
            .unwrap()
    };
    let bad = router
        .clone()
        .oneshot(post(r#"{"action":"set_tags","tags":{"t%":"set_ta"}}"#))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let v: Value =
        serde_json::from_slice(&bad.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with("tags: name `t%`"), "{e}");
    let fine = router
        .oneshot(post(r#"{"action":"set_tags","tags":{"t":"set_ta"}}"#))
        .await
        .unwrap();
    assert_eq!(fine.status().as_u16(), 404);
}
