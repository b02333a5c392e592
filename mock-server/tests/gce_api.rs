//! Compute Engine instances and operations: insert, requestId replay, get,
//! list with label filters and pages, stop/start/delete, auth, bad input.

mod gce_support;

use std::time::Duration;

use gce_support::*;
use serde_json::{json, Value};

use gce_support::follow;

#[tokio::test]
async fn insert_follows_operation_to_running_over_loopback() {
    let (_ctx, gce, router) = gce(0.01);
    gce.set_config(quick_config());
    let base = serve(router).await;
    let client = reqwest::Client::new();
    let url = format!("{base}{}/instances", zone_url("p1"));
    let resp = client
        .post(&url)
        .query(&[
            ("requestId", "0b6b3d4e-4c1f-4a59-9b67-2a5d0c8f1e11"),
            ("alt", "json"),
        ])
        .bearer_auth("t")
        .json(&vm("vm-1", json!({"pool": "a"})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let op: Value = resp.json().await.unwrap();
    assert_eq!(op["kind"], "compute#operation");
    assert_eq!(op["operationType"], "insert");
    assert!(op["id"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(op["targetId"].as_str().unwrap().parse::<u64>().is_ok());
    assert!(op["name"].as_str().unwrap().starts_with("operation-"));
    assert!(matches!(op["status"].as_str(), Some("PENDING" | "RUNNING")));
    assert_eq!(
        op["zone"],
        format!("{base}/compute/v1/projects/p1/zones/{ZONE}")
    );
    assert_eq!(
        op["targetLink"],
        format!("{base}/compute/v1/projects/p1/zones/{ZONE}/instances/vm-1")
    );
    assert!(op["insertTime"].is_string() && op["user"].is_string());
    assert!(op.get("endTime").is_none());

    let done = follow(&client, &op).await;
    assert_eq!(done["name"], op["name"]);
    assert_eq!(done["progress"], 100);
    assert!(done["startTime"].is_string() && done["endTime"].is_string());
    assert!(done.get("error").is_none() && done.get("httpErrorStatusCode").is_none());

    let inst: Value = loop {
        let v: Value = client
            .get(done["targetLink"].as_str().unwrap())
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "RUNNING" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(inst["kind"], "compute#instance");
    assert_eq!(inst["id"], op["targetId"]);
    assert_eq!(inst["labels"]["pool"], "a");
    assert_eq!(
        inst["machineType"],
        format!("{base}/compute/v1/projects/p1/zones/{ZONE}/machineTypes/e2-small")
    );
    assert_eq!(inst["selfLink"], op["targetLink"]);
    assert_eq!(
        inst["disks"][0]["source"],
        format!("{base}/compute/v1/projects/p1/zones/{ZONE}/disks/vm-1")
    );
    assert!(inst["networkInterfaces"][0]["networkIP"]
        .as_str()
        .unwrap()
        .starts_with("10."));
    assert_eq!(inst["metadata"]["items"][0]["key"], "startup-script");
    let rs = gce.resources();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].state, "RUNNING");
    assert_eq!(rs[0].partition, "p1");
}

#[tokio::test]
async fn status_goes_provisioning_staging_running() {
    let (_ctx, gce, router) = gce(0.05);
    gce.set_config(quick_config());
    let base = zone_url("p2");
    let (s, _) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    assert_eq!(s, 200);
    let mut seen = Vec::new();
    for _ in 0..400 {
        let (_, v) = call(&router, "GET", &format!("{base}/instances/vm-1"), None).await;
        let st = v["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&st) {
            seen.push(st.clone());
        }
        if st == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(seen, ["PROVISIONING", "STAGING", "RUNNING"]);
}

#[tokio::test]
async fn request_id_replay_returns_the_same_operation_and_one_instance() {
    let (_ctx, _gce, router) = gce(0.0);
    let url = format!(
        "{}/instances?requestId=6f1c2a9e-1b7d-4c3e-8f2a-0d9e8b7c6a51",
        zone_url("p3")
    );
    let (s1, op1) = call(&router, "POST", &url, Some(&vm("vm-1", json!({})))).await;
    let (s2, op2) = call(&router, "POST", &url, Some(&vm("vm-1", json!({})))).await;
    assert_eq!((s1.as_u16(), s2.as_u16()), (200, 200));
    assert_eq!(op1["name"], op2["name"]);
    assert_eq!(op1["id"], op2["id"]);
    let (_, list) = call(
        &router,
        "GET",
        &format!("{}/instances", zone_url("p3")),
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Without the request id, the same name is a conflict.
    let (s, v) = call(
        &router,
        "POST",
        &format!("{}/instances", zone_url("p3")),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    assert_google_error(s, &v, 409, "alreadyExists");

    // Request ids must be UUIDs, and not the zero UUID.
    for bad in ["nope", "00000000-0000-0000-0000-000000000000"] {
        let url = format!("{}/instances?requestId={bad}", zone_url("p3"));
        let (s, v) = call(&router, "POST", &url, Some(&vm("vm-2", json!({})))).await;
        assert_google_error(s, &v, 400, "invalid");
    }

    // Delete is idempotent by request id too.
    let del = format!(
        "{}/instances/vm-1?requestId=9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        zone_url("p3")
    );
    let (_, d1) = call(&router, "DELETE", &del, None).await;
    let (_, d2) = call(&router, "DELETE", &del, None).await;
    assert_eq!(d1["name"], d2["name"]);
    assert_eq!(d1["operationType"], "delete");
}

#[tokio::test]
async fn list_filters_by_label_and_status_with_pages() {
    let (_ctx, _gce, router) = gce(0.0);
    let base = zone_url("p4");
    for i in 0..7 {
        let pool = if i % 2 == 0 { "a" } else { "b" };
        let (s, _) = call(
            &router,
            "POST",
            &format!("{base}/instances"),
            Some(&vm(&format!("vm-{i}"), json!({"pool": pool}))),
        )
        .await;
        assert_eq!(s, 200);
    }
    let filter = "labels.pool%20%3D%20%22a%22";
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{base}/instances?filter={filter}&maxResults=3");
        if let Some(t) = &token {
            url.push_str(&format!("&pageToken={t}"));
        }
        let (s, v) = call(&router, "GET", &url, None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["kind"], "compute#instanceList");
        pages += 1;
        for item in v["items"].as_array().unwrap() {
            assert_eq!(item["labels"]["pool"], "a");
            names.push(item["name"].as_str().unwrap().to_string());
        }
        match v["nextPageToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["vm-0", "vm-2", "vm-4", "vm-6"]);
    assert_eq!(pages, 2);

    let (_, v) = call(
        &router,
        "GET",
        &format!("{base}/instances?filter=status%20%3D%20RUNNING"),
        None,
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 7);
    let (_, v) = call(
        &router,
        "GET",
        &format!("{base}/instances?filter=status%20!%3D%20RUNNING"),
        None,
    )
    .await;
    assert!(v.get("items").is_none());

    let (s, v) = call(
        &router,
        "GET",
        &format!("{base}/instances?filter=bogus%20%3D%201"),
        None,
    )
    .await;
    assert_google_error(s, &v, 400, "invalid");
    let (s, v) = call(
        &router,
        "GET",
        &format!("{base}/instances?maxResults=501"),
        None,
    )
    .await;
    assert_google_error(s, &v, 400, "invalid");
    let (s, v) = call(
        &router,
        "GET",
        &format!("{base}/instances?pageToken=%25%25"),
        None,
    )
    .await;
    assert_google_error(s, &v, 400, "invalid");
}

#[tokio::test]
async fn stop_start_delete() {
    let (_ctx, gce, router) = gce(0.01);
    gce.set_config(quick_config());
    let base = zone_url("p5");
    let inst = format!("{base}/instances/vm-1");
    call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    let wait_for = |want: &'static str| {
        let router = router.clone();
        let inst = inst.clone();
        async move {
            for _ in 0..500 {
                let (s, v) = call(&router, "GET", &inst, None).await;
                if want == "GONE" && s == 404 {
                    assert_google_error(s, &v, 404, "notFound");
                    return;
                }
                if v["status"] == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            panic!("never reached {want}");
        }
    };
    wait_for("RUNNING").await;
    let (s, op) = call(&router, "POST", &format!("{inst}/stop"), None).await;
    assert_eq!(s, 200);
    assert_eq!(op["operationType"], "stop");
    let (_, v) = call(&router, "GET", &inst, None).await;
    assert_eq!(v["status"], "STOPPING");
    wait_for("TERMINATED").await;
    let (_, op) = call(&router, "POST", &format!("{inst}/start"), None).await;
    assert_eq!(op["operationType"], "start");
    wait_for("RUNNING").await;
    let (_, op) = call(&router, "DELETE", &inst, None).await;
    assert_eq!(op["operationType"], "delete");
    wait_for("GONE").await;
    assert!(gce.resources().is_empty());
    let (s, v) = call(&router, "POST", &format!("{inst}/stop"), None).await;
    assert_google_error(s, &v, 404, "notFound");
    // The name is free again.
    let (s, _) = call(
        &router,
        "POST",
        &format!("{base}/instances"),
        Some(&vm("vm-1", json!({}))),
    )
    .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn bad_input_gets_google_errors() {
    let (_ctx, _gce, router) = gce(0.0);
    let url = format!("{}/instances", zone_url("p6"));
    let mut body = vm("Bad_Name", json!({}));
    let (s, v) = call(&router, "POST", &url, Some(&body)).await;
    assert_google_error(s, &v, 400, "invalid");
    body["name"] = json!("a".repeat(64));
    let (s, v) = call(&router, "POST", &url, Some(&body)).await;
    assert_google_error(s, &v, 400, "invalid");
    body["name"] = json!("ok-name");
    body.as_object_mut().unwrap().remove("machineType");
    let (s, v) = call(&router, "POST", &url, Some(&body)).await;
    assert_google_error(s, &v, 400, "required");
    let mut body = vm("ok-name", json!({"Bad": "x"}));
    let (s, v) = call(&router, "POST", &url, Some(&body)).await;
    assert_google_error(s, &v, 400, "invalid");
    body["labels"] = json!({});
    body["disks"] = json!([]);
    let (s, v) = call(&router, "POST", &url, Some(&body)).await;
    assert_google_error(s, &v, 400, "invalid");
    let (s, v) = call(&router, "POST", &url, Some(&json!("just a string"))).await;
    assert_google_error(s, &v, 400, "invalid");

    let resp = raw(&router, "POST", &url, None).await;
    assert_eq!(resp.status(), 400);

    let (s, v) = call(
        &router,
        "GET",
        &format!("{}/instances/missing", zone_url("p6")),
        None,
    )
    .await;
    assert_google_error(s, &v, 404, "notFound");
    assert_eq!(
        v["error"]["message"],
        format!("The resource 'projects/p6/zones/{ZONE}/instances/missing' was not found")
    );
    let (s, v) = call(
        &router,
        "GET",
        &format!("{}/operations/operation-1", zone_url("p6")),
        None,
    )
    .await;
    assert_google_error(s, &v, 404, "notFound");
    let (s, v) = call(
        &router,
        "GET",
        "/compute/v1/projects/p6/global/whatever",
        None,
    )
    .await;
    assert_google_error(s, &v, 404, "notFound");
    let (s, v) = call(&router, "PUT", &url, None).await;
    assert_google_error(s, &v, 404, "notFound");
    let (s, v) = call(
        &router,
        "GET",
        &format!("{}/instances/UPPER", zone_url("p6")),
        None,
    )
    .await;
    assert_google_error(s, &v, 400, "invalidParameter");
}

#[tokio::test]
async fn requests_need_a_bearer_token() {
    let (_ctx, gce, router) = gce(0.0);
    let base = serve(router).await;
    let url = format!("{base}{}/instances/vm-1", zone_url("p7"));
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(v["error"]["errors"][0]["reason"], "required");

    // Anonymous clients get in when auth is off.
    gce.set_config(skyfleet_mock::gce::GceConfig {
        require_auth: false,
        ..Default::default()
    });
    assert_eq!(reqwest::get(&url).await.unwrap().status(), 404);
}

#[tokio::test]
async fn reset_clears_one_project() {
    let (_ctx, gce, router) = gce(0.0);
    for p in ["pa", "pb"] {
        call(
            &router,
            "POST",
            &format!("{}/instances", zone_url(p)),
            Some(&vm("vm-1", json!({}))),
        )
        .await;
    }
    assert_eq!(gce.resources().len(), 2);
    gce.reset(Some("pa"));
    let rs = gce.resources();
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].partition, "pb");
    gce.reset(None);
    assert!(gce.resources().is_empty());
}

/// `instances.setLabels` replaces the labels when given the current
/// fingerprint (the new labels and a new fingerprint are then read back),
/// and refuses a stale fingerprint with 412 `conditionNotMet`, changing
/// nothing.
#[tokio::test]
async fn set_labels_needs_the_current_fingerprint() {
    let (_ctx, gce, router) = gce(0.01);
    gce.set_config(quick_config());
    let base = serve(router).await;
    let client = reqwest::Client::new();
    let url = format!("{base}{}/instances", zone_url("p1"));
    let op: Value = client
        .post(&url)
        .bearer_auth("t")
        .json(&vm("vm-l", json!({"pool": "a"})))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    follow(&client, &op).await;
    let get = || async {
        client
            .get(format!("{url}/vm-l"))
            .bearer_auth("t")
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = get().await;
    let fp = before["labelFingerprint"].as_str().unwrap().to_string();
    let set = |labels: Value, fp: String| {
        client
            .post(format!("{url}/vm-l/setLabels"))
            .bearer_auth("t")
            .json(&json!({"labels": labels, "labelFingerprint": fp}))
            .send()
    };
    let resp = set(json!({"pool": "a", "skyfleet-store": "s1"}), fp.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let op: Value = resp.json().await.unwrap();
    assert_eq!(op["operationType"], "setLabels");
    assert_eq!(follow(&client, &op).await["status"], "DONE");
    let after = get().await;
    assert_eq!(
        after["labels"],
        json!({"pool": "a", "skyfleet-store": "s1"})
    );
    assert_ne!(after["labelFingerprint"], before["labelFingerprint"]);

    // The fingerprint read before the change is stale now.
    let resp = set(json!({"pool": "b"}), fp).await.unwrap();
    assert_eq!(resp.status(), 412);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["errors"][0]["reason"], "conditionNotMet", "{e}");
    assert_eq!(get().await["labels"]["pool"], "a");
    // Invalid labels are refused as on insert.
    let fp = after["labelFingerprint"].as_str().unwrap().to_string();
    let resp = set(json!({"Bad": "x"}), fp).await.unwrap();
    assert_eq!(resp.status(), 400);
}
