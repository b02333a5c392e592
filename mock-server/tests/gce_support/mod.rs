//! Helpers shared by the Compute Engine tests: a `Gce` with its own context,
//! in-process calls through the router, and a loopback server.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skyfleet_mock::ctx::Ctx;
use skyfleet_mock::gce::{Gce, GceConfig};
use tower::ServiceExt;

/// The zone every test uses.
pub const ZONE: &str = "us-central1-a";

/// A fresh Compute Engine at time scale `scale`.
pub fn gce(scale: f64) -> (Ctx, Arc<Gce>, Router) {
    let ctx = Ctx::new(7);
    ctx.set_time_scale(scale).unwrap();
    let gce = Gce::new(ctx.clone());
    let router = gce.router();
    (ctx, gce, router)
}

/// Config with short, round lifecycle durations (ms before scaling).
pub fn quick_config() -> GceConfig {
    GceConfig {
        provisioning_ms: 1_000,
        staging_ms: 1_000,
        stopping_ms: 1_000,
        deleting_ms: 1_000,
        operation_pending_ms: 0,
        insert_operation_ms: 2_000,
        start_operation_ms: 2_000,
        stop_operation_ms: 1_000,
        delete_operation_ms: 1_000,
        ..GceConfig::default()
    }
}

/// `projects/{project}/zones/us-central1-a` under `/compute/v1/`.
pub fn zone_url(project: &str) -> String {
    format!("/compute/v1/projects/{project}/zones/{ZONE}")
}

/// An instance body with the required fields and `labels`.
pub fn vm(name: &str, labels: Value) -> Value {
    json!({
        "name": name,
        "machineType": format!("zones/{ZONE}/machineTypes/e2-small"),
        "disks": [{"boot": true, "autoDelete": true,
                   "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12", "diskSizeGb": "10"}}],
        "networkInterfaces": [{"network": "global/networks/default",
                               "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
        "labels": labels,
        "metadata": {"items": [{"key": "startup-script", "value": "echo hi"}]},
        "scheduling": {"preemptible": false},
        "serviceAccounts": [{"email": "default", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}],
    })
}

/// The raw response of one in-process request (with a bearer token).
pub async fn raw(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&Value>,
) -> http::Response<Body> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "compute.test:443")
        .header("authorization", "Bearer test-token")
        .header("content-type", "application/json")
        .body(match body {
            Some(b) => Body::from(b.to_string()),
            None => Body::empty(),
        })
        .unwrap();
    router.clone().oneshot(req).await.unwrap()
}

/// Status and JSON body of one in-process request.
pub async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let resp = raw(router, method, uri, body).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

/// Asserts `v` is a Google error with this status and reason.
pub fn assert_google_error(status: StatusCode, v: &Value, want: u16, reason: &str) {
    assert_eq!(status.as_u16(), want, "{v}");
    assert_eq!(v["error"]["code"], want, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert_eq!(v["error"]["errors"][0]["reason"], reason, "{v}");
    assert!(v["error"]["errors"][0]["domain"].is_string(), "{v}");
}

/// Serves `router` on a loopback port; the base URL without a trailing slash.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// Polls an operation with reqwest (over loopback) until DONE.
pub async fn follow(client: &reqwest::Client, op: &Value) -> Value {
    let link = op["selfLink"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let v: Value = client
            .post(format!("{link}/wait"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "DONE" {
            return v;
        }
    }
    panic!("operation never finished: {link}");
}
