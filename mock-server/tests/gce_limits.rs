//! The per-project limits of Compute Engine: the `INSTANCES` quota
//! (`instance_limit`), which fails an insert's operation with
//! `QUOTA_EXCEEDED` and gives a bulk insert what fits if that is at least
//! its `minCount`, and `operation_limit`, beyond which the oldest
//! operations (and their request ids) are forgotten.

mod gce_support;

use gce_support::*;
use http::StatusCode;
use serde_json::{json, Value};
use skyfleet_mock::gce::GceConfig;
use skyfleet_mock::MockConfig;

/// A Compute Engine at time scale 0 (every operation is done at once) with
/// these limits.
fn limited(instances: u32, operations: u32) -> axum::Router {
    let (_ctx, gce, router) = gce(0.0);
    gce.set_config(GceConfig {
        instance_limit: instances,
        operation_limit: operations,
        ..quick_config()
    });
    router
}

async fn insert(router: &axum::Router, project: &str, name: &str) -> Value {
    let (s, op) = call(
        router,
        "POST",
        &format!("{}/instances", zone_url(project)),
        Some(&vm(name, json!({}))),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{op}");
    op
}

/// The operation `op` as `zoneOperations.get` answers it now.
async fn get_op(router: &axum::Router, project: &str, op: &Value) -> (StatusCode, Value) {
    let name = op["name"].as_str().unwrap();
    call(
        router,
        "GET",
        &format!("{}/operations/{name}", zone_url(project)),
        None,
    )
    .await
}

/// The names of the zone's instances.
async fn names(router: &axum::Router, project: &str) -> Vec<String> {
    let (s, v) = call(
        router,
        "GET",
        &format!("{}/instances", zone_url(project)),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn assert_quota_failure(op: &Value, limit: u32) {
    assert_eq!(op["status"], "DONE", "{op}");
    let e = &op["error"]["errors"][0];
    assert_eq!(e["code"], "QUOTA_EXCEEDED", "{op}");
    assert_eq!(
        e["message"],
        format!("Quota 'INSTANCES' exceeded.  Limit: {limit}.0 in region us-central1."),
        "{op}"
    );
    let info = &e["errorDetails"][0]["quotaInfo"];
    assert_eq!(
        info["metricName"], "compute.googleapis.com/instances",
        "{op}"
    );
    assert_eq!(info["limitName"], "INSTANCES-per-project-region", "{op}");
    assert_eq!(info["dimensions"]["region"], "us-central1", "{op}");
    assert_eq!(info["limit"].as_f64(), Some(f64::from(limit)), "{op}");
    assert_eq!(op["httpErrorStatusCode"], 403, "{op}");
    assert_eq!(op["httpErrorMessage"], "FORBIDDEN", "{op}");
}

#[tokio::test]
async fn an_insert_beyond_the_instance_quota_fails_its_operation_and_creates_nothing() {
    let router = limited(2, 100);
    for name in ["a", "b"] {
        let (_, op) = get_op(&router, "p1", &insert(&router, "p1", name).await).await;
        assert_eq!(op["status"], "DONE", "{op}");
        assert!(op.get("error").is_none(), "{op}");
    }
    let op = insert(&router, "p1", "c").await;
    let (s, done) = get_op(&router, "p1", &op).await;
    assert_eq!(s, StatusCode::OK);
    assert_quota_failure(&done, 2);
    assert_eq!(done["operationType"], "insert");
    assert!(
        done["targetLink"]
            .as_str()
            .unwrap()
            .ends_with("/instances/c"),
        "{done}"
    );
    let (s, v) = call(
        &router,
        "GET",
        &format!("{}/instances/c", zone_url("p1")),
        None,
    )
    .await;
    assert_google_error(s, &v, 404, "notFound");
    assert_eq!(names(&router, "p1").await, ["a", "b"]);

    // The quota is per project: another one still has room.
    let (_, other) = get_op(&router, "p2", &insert(&router, "p2", "c").await).await;
    assert!(other.get("error").is_none(), "{other}");

    // A deleted instance stops counting once it is gone.
    let (s, del) = call(
        &router,
        "DELETE",
        &format!("{}/instances/a", zone_url("p1")),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{del}");
    let (_, op) = get_op(&router, "p1", &insert(&router, "p1", "c").await).await;
    assert!(op.get("error").is_none(), "{op}");
    assert_eq!(names(&router, "p1").await, ["b", "c"]);
}

#[tokio::test]
async fn a_zero_quota_refuses_every_insert() {
    let router = limited(0, 100);
    let (_, op) = get_op(&router, "p", &insert(&router, "p", "a").await).await;
    assert_quota_failure(&op, 0);
    assert!(names(&router, "p").await.is_empty());
}

#[tokio::test]
async fn a_bulk_insert_gets_what_fits_if_that_is_at_least_its_min_count() {
    let router = limited(3, 100);
    insert(&router, "p", "solo").await;
    let bulk = |count: u64, min: u64| {
        json!({"count": count, "minCount": min, "namePattern": "w-#",
               "instanceProperties": {"machineType": "e2-small",
                   "disks": [{"boot": true, "initializeParams": {"sourceImage": "projects/debian-cloud/global/images/family/debian-12"}}],
                   "networkInterfaces": [{"network": "global/networks/default"}]}})
    };
    let url = format!("{}/instances/bulkInsert", zone_url("p"));

    // Room for 2, at least 3 wanted: nothing is created.
    let (s, op) = call(&router, "POST", &url, Some(&bulk(4, 3))).await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let (_, done) = get_op(&router, "p", &op).await;
    assert_quota_failure(&done, 3);
    assert_eq!(done["operationType"], "bulkInsert");
    assert_eq!(names(&router, "p").await, ["solo"]);

    // Room for 2, at least 2 wanted: 2 of the 4 are created.
    let (s, op) = call(&router, "POST", &url, Some(&bulk(4, 2))).await;
    assert_eq!(s, StatusCode::OK, "{op}");
    let (_, done) = get_op(&router, "p", &op).await;
    assert!(done.get("error").is_none(), "{done}");
    assert_eq!(names(&router, "p").await, ["solo", "w-1", "w-2"]);

    // Full: even one is refused.
    let (_, op) = call(&router, "POST", &url, Some(&bulk(1, 1))).await;
    assert_quota_failure(&get_op(&router, "p", &op).await.1, 3);
    assert_eq!(names(&router, "p").await.len(), 3);
}

#[tokio::test]
async fn operations_beyond_the_limit_are_forgotten_with_their_request_ids() {
    let router = limited(100, 3);
    let rid = |i: u32| format!("6f1c2d3e-0000-4000-8000-00000000000{i}");
    let mut ops = Vec::new();
    for i in 0..5 {
        let (s, op) = call(
            &router,
            "POST",
            &format!("{}/instances?requestId={}", zone_url("p"), rid(i)),
            Some(&vm(&format!("vm-{i}"), json!({}))),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{op}");
        ops.push(op);
    }
    for (i, op) in ops.iter().enumerate() {
        let (s, v) = get_op(&router, "p", op).await;
        if i < 2 {
            assert_google_error(s, &v, 404, "notFound");
        } else {
            assert_eq!(s, StatusCode::OK, "{v}");
            assert_eq!(v["name"], op["name"]);
        }
    }
    let (s, v) = call(
        &router,
        "GET",
        &format!("{}/operations", zone_url("p")),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().unwrap().len(), 3, "{v}");

    // A remembered request id answers its operation again; a forgotten one
    // is a new request (here refused: the instance exists).
    let (s, again) = call(
        &router,
        "POST",
        &format!("{}/instances?requestId={}", zone_url("p"), rid(4)),
        Some(&vm("vm-4", json!({}))),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["name"], ops[4]["name"]);
    let (s, v) = call(
        &router,
        "POST",
        &format!("{}/instances?requestId={}", zone_url("p"), rid(0)),
        Some(&vm("vm-0", json!({}))),
    )
    .await;
    assert_google_error(s, &v, 409, "alreadyExists");
}

#[test]
fn limits_are_configurable_and_checked() {
    let cfg =
        MockConfig::from_json(r#"{"gcp": {"instance_limit": 7, "operation_limit": 9}}"#).unwrap();
    let gcp = cfg.gcp.unwrap();
    assert_eq!((gcp.instance_limit, gcp.operation_limit), (7, 9));
    assert_eq!(GceConfig::default().instance_limit, 10_000);
    assert_eq!(GceConfig::default().operation_limit, 100_000);
    let err = MockConfig::from_json(r#"{"gcp": {"operation_limit": 0}}"#).unwrap_err();
    assert!(err.starts_with("gcp.operation_limit"), "{err}");
    let err = MockConfig::from_json(r#"{"gcp": {"instance_limit": -1}}"#).unwrap_err();
    assert!(err.starts_with("gcp.instance_limit"), "{err}");
}
