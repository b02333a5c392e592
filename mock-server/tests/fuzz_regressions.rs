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
