//! Compute Engine fault rules (every effect), per-minute throttling in both
//! answer modes, and the time scale.

mod gce_support;

use std::time::{Duration, Instant};

use gce_support::*;
use serde_json::{json, Value};
use skyfleet_mock::ctx::{Ctx, DropConnection, FaultRule, OperationName};
use skyfleet_mock::gce::{GceConfig, GceThrottle};

fn rules(ctx: &Ctx, v: Value) {
    let rules: Vec<FaultRule> = serde_json::from_value(v).unwrap();
    ctx.set_faults(rules).unwrap();
}

async fn wait_done(router: &axum::Router, op: &Value) -> Value {
    let path = format!(
        "{}/operations/{}",
        zone_url(op["zone"].as_str().unwrap().split('/').nth(6).unwrap()),
        op["name"].as_str().unwrap()
    );
    for _ in 0..500 {
        let (s, v) = call(router, "GET", &path, None).await;
        assert_eq!(s, 200, "{v}");
        if v["status"] == "DONE" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("operation not done");
}

#[tokio::test]
async fn fail_operation_ends_done_with_error_and_http_fields() {
    let (ctx, gce, router) = gce(0.01);
    gce.set_config(quick_config());
    rules(
        &ctx,
        json!([
            {"cloud": "gcp", "operation": "compute.instances.insert", "resource": "vm-full*", "count": 1,
             "effect": {"kind": "fail_operation", "code": "ZONE_RESOURCE_POOL_EXHAUSTED"}},
            {"cloud": "gcp", "operation": "compute.instances.insert", "resource": "vm-quota", "count": 1,
             "effect": {"kind": "fail_operation", "code": "QUOTA_EXCEEDED", "message": "Quota 'CPUS' exceeded."}}
        ]),
    );
    let base = zone_url("f1");
    let (s, op) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-full-1", json!({}))),
    )
    .await;
    assert_eq!(s, 200, "the request itself is accepted");
    assert!(op.get("error").is_none(), "no error before DONE");
    let done = wait_done(&router, &op).await;
    assert_eq!(
        done["error"]["errors"][0]["code"],
        "ZONE_RESOURCE_POOL_EXHAUSTED"
    );
    assert!(done["error"]["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("does not have enough resources"));
    assert_eq!(done["httpErrorStatusCode"], 503);
    assert_eq!(done["httpErrorMessage"], "SERVICE UNAVAILABLE");
    let (s, v) = call(&router, "GET", &format!("{base}/instances/vm-full-1"), None).await;
    assert_google_error(s, &v, 404, "notFound");
    assert!(gce.resources().is_empty(), "no instance remains");

    let (_, op) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-quota", json!({}))),
    )
    .await;
    let done = wait_done(&router, &op).await;
    assert_eq!(done["error"]["errors"][0]["code"], "QUOTA_EXCEEDED");
    assert_eq!(
        done["error"]["errors"][0]["message"],
        "Quota 'CPUS' exceeded."
    );
    assert_eq!(done["httpErrorStatusCode"], 403);
    assert_eq!(done["httpErrorMessage"], "FORBIDDEN");

    // A failed stop leaves the instance running.
    let (_, op) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-ok", json!({}))),
    )
    .await;
    wait_done(&router, &op).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    rules(
        &ctx,
        json!([{"cloud": "gcp", "operation": "compute.instances.stop", "effect": {"kind": "fail_operation", "code": "INTERNAL_ERROR"}}]),
    );
    let (_, op) = call(
        &router,
        "POST",
        &format!("{base}/instances/vm-ok/stop"),
        None,
    )
    .await;
    let done = wait_done(&router, &op).await;
    assert_eq!(done["httpErrorStatusCode"], 500);
    let (_, v) = call(&router, "GET", &format!("{base}/instances/vm-ok"), None).await;
    assert_eq!(v["status"], "RUNNING");
}

#[tokio::test]
async fn not_found_reads_hide_a_new_instance() {
    let (ctx, _gce, router) = gce(0.0);
    rules(
        &ctx,
        json!([{"cloud": "gcp", "operation": "compute.instances.insert",
                        "effect": {"kind": "not_found_reads", "count": 2}}]),
    );
    let base = zone_url("f2");
    call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    for _ in 0..2 {
        let (s, v) = call(&router, "GET", &format!("{base}/instances/vm-1"), None).await;
        assert_google_error(s, &v, 404, "notFound");
    }
    let (s, _) = call(&router, "GET", &format!("{base}/instances/vm-1"), None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn error_latency_hang_and_reset_faults() {
    let (ctx, _gce, router) = gce(0.0);
    ctx.set_max_hang(Duration::from_millis(30));
    let base = zone_url("f3");
    call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    let get = format!("{base}/instances/vm-1");

    rules(
        &ctx,
        json!([{"cloud": "gcp", "operation": "compute.instances.get", "count": 1,
        "effect": {"kind": "error", "status": 503, "code": "backendError", "message": "Backend Error"}}]),
    );
    let (s, v) = call(&router, "GET", &get, None).await;
    assert_google_error(s, &v, 503, "backendError");
    assert_eq!(call(&router, "GET", &get, None).await.0, 200);

    rules(
        &ctx,
        json!([{"cloud": "gcp", "operation": "*", "count": 1, "effect": {"kind": "latency", "ms": 60}}]),
    );
    let t = Instant::now();
    assert_eq!(call(&router, "GET", &get, None).await.0, 200);
    assert!(t.elapsed() >= Duration::from_millis(60));

    for effect in [json!({"kind": "hang"}), json!({"kind": "reset"})] {
        rules(
            &ctx,
            json!([{"cloud": "gcp", "operation": "compute.instances.get", "count": 1, "effect": effect}]),
        );
        let resp = raw(&router, "GET", &get, None).await;
        assert!(resp.extensions().get::<DropConnection>().is_some());
        assert_eq!(
            resp.extensions().get::<OperationName>().unwrap().0,
            "compute.instances.get"
        );
    }
}

#[tokio::test]
async fn throttle_fault_answers_403_or_429() {
    let (ctx, gce, router) = gce(0.0);
    let base = zone_url("f4");
    rules(
        &ctx,
        json!([{"cloud": "gcp", "operation": "compute.instances.list", "count": 2,
                        "effect": {"kind": "throttle", "retry_after_s": 7}}]),
    );
    let url = format!("{base}/instances");
    let (s, v) = call(&router, "GET", &url, None).await;
    assert_google_error(s, &v, 403, "rateLimitExceeded");
    assert_eq!(v["error"]["errors"][0]["domain"], "usageLimits");
    gce.set_config(GceConfig {
        throttle: GceThrottle {
            status: 429,
            ..Default::default()
        },
        ..Default::default()
    });
    // The wait is scaled: 7 s at time_scale 0.5 is 3.5 s.
    ctx.set_time_scale(0.5).unwrap();
    let resp = raw(&router, "GET", &url, None).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "4");
    assert_eq!(resp.headers()["retry-after-ms"], "3500");
    let (s, v) = call(&router, "GET", &url, None).await;
    assert_eq!(s, 200, "{v}");
}

#[tokio::test]
async fn per_minute_windows_throttle_by_group_and_project() {
    for status in [403u16, 429] {
        let (_ctx, gce, router) = gce(0.0);
        gce.set_config(GceConfig {
            throttle: GceThrottle {
                enabled: true,
                status,
                read_requests_per_minute: 3,
                ..Default::default()
            },
            ..Default::default()
        });
        let base = zone_url("f5");
        call(
            &router,
            "POST",
            &format!("{base}/instances"),
            Some(&vm("vm-1", json!({}))),
        )
        .await;
        for _ in 0..3 {
            assert_eq!(
                call(&router, "GET", &format!("{base}/instances/vm-1"), None)
                    .await
                    .0,
                200
            );
        }
        let (s, v) = call(&router, "GET", &format!("{base}/instances/vm-1"), None).await;
        assert_google_error(s, &v, status, "rateLimitExceeded");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Read requests"));
        if status == 429 {
            assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        }
        // Other groups and other projects have their own windows.
        assert_eq!(
            call(&router, "GET", &format!("{base}/instances"), None)
                .await
                .0,
            200
        );
        assert_eq!(
            call(
                &router,
                "GET",
                &format!("{}/instances/vm-1", zone_url("other")),
                None
            )
            .await
            .0,
            404
        );
    }
}

#[tokio::test]
async fn time_scale_stretches_and_shrinks_lifecycles() {
    // Scale 1: a default boot takes 15 s, so the instance is still PROVISIONING.
    let (ctx, _gce, router) = gce(1.0);
    let base = zone_url("f6");
    let (_, op) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (_, v) = call(&router, "GET", &format!("{base}/instances/vm-1"), None).await;
    assert_eq!(v["status"], "PROVISIONING");
    // wait with a short cap returns early, not DONE.
    ctx.set_time_scale(0.0001).unwrap();
    let t = Instant::now();
    let (s, w) = call(
        &router,
        "POST",
        &format!("{base}/operations/{}/wait", op["name"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(w["status"], "DONE");
    assert!(t.elapsed() < Duration::from_secs(5));

    // Scale 0.001: the same defaults take 15 ms.
    let (_ctx, _gce, router) = gce(0.001);
    let (_, op) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    let (_, w) = call(
        &router,
        "POST",
        &format!("{base}/operations/{}/wait", op["name"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(w["status"], "DONE");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, v) = call(&router, "GET", &format!("{base}/instances/vm-1"), None).await;
    assert_eq!(v["status"], "RUNNING");
}

/// `lose_answer`: the insert is carried out (the instance exists) but the
/// connection is dropped without an answer.
#[tokio::test]
async fn a_lost_answer_still_inserts_the_instance() {
    let (ctx, _gce, router) = gce(0.0);
    ctx.set_max_hang(Duration::from_millis(30));
    let base = zone_url("f3");
    rules(
        &ctx,
        json!([{"cloud": "gcp", "operation": "compute.instances.insert", "count": 1,
            "effect": {"kind": "lose_answer"}}]),
    );
    let resp = raw(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-lost", json!({}))),
    )
    .await;
    assert!(resp.extensions().get::<DropConnection>().is_some());
    assert_eq!(ctx.faults()[0].count, Some(0));
    let (s, v) = call(&router, "GET", &format!("{base}/instances/vm-lost"), None).await;
    assert_eq!(s, 200, "the lost insert landed: {v}");
}
