//! Clouds that change behind the client's back: out-of-band actions
//! (`POST /_mock/resources/{id}/actions`) on each cloud's VMs, their bad
//! input, and the eventual-consistency windows of each cloud's reads.

mod capacity_support;
mod imds_support;

use capacity_support::*;
use imds_support::{azure_vm, gce_instance, run_instance, Got};
use serde_json::{json, Value};
use skyfleet_mock::{MockCloud, MockConfig};

/// `POST /_mock/resources/{id}/actions` (the id URL-encoded).
async fn act(mock: &MockCloud, id: &str, body: Value) -> Got {
    let path = format!("/_mock/resources/{}/actions", id.replace('/', "%2F"));
    control(mock, "POST", &path, Some(body)).await
}

/// `POST /_mock/resources/{id}/actions` with a raw body.
async fn act_raw(mock: &MockCloud, id: &str, body: &str) -> Got {
    let resp = imds_support::client()
        .post(format!("{}/_mock/resources/{id}/actions", mock.url()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

/// The resource `id` as `GET /_mock/resources` lists it.
async fn listed(mock: &MockCloud, id: &str) -> Option<Value> {
    let all = control(mock, "GET", "/_mock/resources", None).await.json();
    all.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        .cloned()
}

fn error(got: &Got) -> String {
    got.json()["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn aws_delete_stop_start_and_tags_act_as_the_console() {
    let mock = mock(0.01).await;
    let gone = run_instance(&mock, &[]).await;
    let got = act(&mock, &gone, json!({"action": "delete"})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let v = got.json();
    assert_eq!(v["cloud"], "aws");
    assert_eq!(v["action"], "delete");
    assert_eq!(v["resource"]["state"], "shutting-down", "{v}");
    let body = until(20, "terminated", || async {
        let b = ec2_describe(&mock, &gone).await;
        b.contains("<name>terminated</name>").then_some(b)
    })
    .await;
    assert_eq!(
        between(&body, "<stateReason><code>", "</code>"),
        Some("Client.UserInitiatedShutdown"),
        "{body}"
    );
    assert!(
        listed(&mock, &gone).await.is_none(),
        "terminated: not listed"
    );
    // A second delete of a terminated instance changes nothing.
    assert_eq!(
        act(&mock, &gone, json!({"action": "delete"})).await.status,
        200
    );

    let id = run_instance(&mock, &[]).await;
    let got = act(&mock, &id, json!({"action": "stop"})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    until(20, "stopped", || async {
        ec2_describe(&mock, &id)
            .await
            .contains("<name>stopped</name>")
            .then_some(())
    })
    .await;
    let got = act(&mock, &id, json!({"action": "start"})).await;
    assert_eq!(got.json()["resource"]["state"], "pending", "{}", got.text());
    until(20, "running again", || async {
        ec2_describe(&mock, &id)
            .await
            .contains("<name>running</name>")
            .then_some(())
    })
    .await;
    let got = act(
        &mock,
        &id,
        json!({"action": "set_tags", "tags": {"team": "blue"}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["resource"]["tags"], json!({"team": "blue"}));
    assert!(ec2_describe(&mock, &id)
        .await
        .contains("<key>team</key><value>blue</value>"));

    let got = act(
        &mock,
        &id,
        json!({"action": "set_tags", "tags": {"aws:x": "y"}}),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(error(&got).contains("`aws:x`"), "{}", got.text());
    let got = act(&mock, &id, json!({"action": "deallocate"})).await;
    assert_eq!(got.status, 400);
    let e = error(&got);
    assert!(e.contains("deallocate") && e.contains("aws"), "{e}");
    let spot = run_instance(&mock, &SPOT).await;
    let got = act(&mock, &spot, json!({"action": "stop"})).await;
    assert_eq!(got.status, 409, "{}", got.text());
    assert!(error(&got).contains("one-time Spot"), "{}", got.text());
    let got = act(&mock, "i-0000000000000dead", json!({"action": "stop"})).await;
    assert_eq!(got.status, 404);
    assert!(error(&got).contains("i-0000000000000dead"));
}

#[tokio::test]
async fn bad_action_bodies_and_ids_are_refused_with_the_field_named() {
    let mock = mock(0.01).await;
    let id = run_instance(&mock, &[]).await;
    for (body, wants) in [
        ("{", "EOF while parsing"),
        (
            r#"{"action": "reboot"}"#,
            "action: unknown variant `reboot`",
        ),
        (r#"{"action": "set_tags"}"#, "tags: required"),
        (r#"{"action": "stop", "tags": {"a": "b"}}"#, "not `stop`"),
        (
            r#"{"action": "set_tags", "tags": {"": "b"}}"#,
            "tags: key ``",
        ),
        (r#"{"action": "set_tags", "tags": {"a": 1}}"#, "tags.a:"),
        (r#"{"action": "stop", "why": "x"}"#, "unknown field `why`"),
    ] {
        let got = act_raw(&mock, &id, body).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text());
        let e = error(&got);
        assert!(e.contains(wants), "{body}: {e}");
    }
    let got = act_raw(&mock, "%FF", r#"{"action": "delete"}"#).await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(error(&got).starts_with("id:"), "{}", got.text());
    let got = act(&mock, "vm-name", json!({"action": "delete"})).await;
    assert_eq!(got.status, 404, "{}", got.text());
    assert!(ec2_describe(&mock, &id)
        .await
        .contains("<name>running</name>"));
}

#[tokio::test]
async fn gcp_stop_start_labels_and_delete_act_as_the_console() {
    let mock = mock(0.001).await;
    let project = "oob-project";
    let vm = gce_instance(&mock, project, "oob-1", json!([])).await;
    let id = vm["id"].as_str().unwrap().to_string();
    let got = act(&mock, &id, json!({"action": "stop"})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    gce_wait_status(&mock, project, "oob-1", "TERMINATED").await;
    act(&mock, &id, json!({"action": "start"})).await;
    gce_wait_status(&mock, project, "oob-1", "RUNNING").await;
    let got = act(
        &mock,
        &id,
        json!({"action": "set_tags", "tags": {"team": "blue"}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let v = gce_get(&mock, project, "oob-1").await.json();
    assert_eq!(v["labels"], json!({"team": "blue"}));
    let got = act(
        &mock,
        &id,
        json!({"action": "set_tags", "tags": {"Team": "blue"}}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert!(error(&got).contains("label key `Team`"), "{}", got.text());
    let got = act(&mock, &id, json!({"action": "deallocate"})).await;
    assert_eq!(got.status, 400);
    assert!(error(&got).contains("gcp"), "{}", got.text());

    let got = act(&mock, &id, json!({"action": "delete"})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    until(20, "gone", || async {
        (gce_get(&mock, project, "oob-1").await.status == 404).then_some(())
    })
    .await;
    let got = act(&mock, &id, json!({"action": "start"})).await;
    assert_eq!(got.status, 404, "{}", got.text());
}

#[tokio::test]
async fn azure_power_changes_show_in_the_instance_view_and_delete_cascades() {
    let mock = imds_support::mock().await;
    let vm = azure_vm(&mock, "oob-vm", None).await;
    let id = vm["id"].as_str().unwrap().to_string();
    let view = || async {
        let got = json_call(
            "GET",
            &arm_url(&mock, &format!("{}/instanceView", vm_path("oob-vm"))),
            None,
        )
        .await;
        assert_eq!(got.status, 200, "{}", got.text());
        got.json()["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["code"].as_str())
            .find(|c| c.starts_with("PowerState/"))
            .map(str::to_string)
    };
    assert_eq!(view().await.as_deref(), Some("PowerState/running"));
    for (action, settled) in [
        ("deallocate", "PowerState/deallocated"),
        ("start", "PowerState/running"),
        ("stop", "PowerState/stopped"),
    ] {
        let got = act(&mock, &id, json!({"action": action})).await;
        assert_eq!(got.status, 200, "{action}: {}", got.text());
        until(20, settled, || async {
            (view().await.as_deref() == Some(settled)).then_some(())
        })
        .await;
    }
    let got = act(
        &mock,
        &id,
        json!({"action": "set_tags", "tags": {"a/b": "c"}}),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(error(&got).contains("name `a/b`"), "{}", got.text());
    let got = act(
        &mock,
        &id,
        json!({"action": "set_tags", "tags": {"a": "b"}}),
    )
    .await;
    assert_eq!(
        got.json()["resource"]["tags"],
        json!({"a": "b"}),
        "{}",
        got.text()
    );

    let got = act(&mock, &id, json!({"action": "delete"})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["resource"]["state"], "Deleting");
    until(20, "VM gone", || async {
        let got = json_call("GET", &arm_url(&mock, &vm_path("oob-vm")), None).await;
        (got.status == 404).then_some(())
    })
    .await;
    // The NIC went with it (`deleteOption: Delete`); the group stays.
    let all = control(&mock, "GET", "/_mock/resources?cloud=azure", None)
        .await
        .json();
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(!kinds.contains(&"virtualMachine"), "{kinds:?}");
    assert!(!kinds.contains(&"networkInterface"), "{kinds:?}");
    assert!(kinds.contains(&"resourceGroup"), "{kinds:?}");
    let got = act(&mock, &id, json!({"action": "delete"})).await;
    assert_eq!(got.status, 404, "{}", got.text());
}

/// A mock at scale 0.01 whose reads lag `window_ms` (simulated) on every
/// cloud.
async fn lagging(window_ms: u64) -> MockCloud {
    let cfg = MockConfig::from_json(&format!(
        r#"{{"aws": {{"consistency_window_ms": {window_ms}}},
             "gcp": {{"consistency_window_ms": {window_ms}}},
             "azure": {{"consistency_window_s": {}}}}}"#,
        window_ms as f64 / 1000.0
    ))
    .unwrap();
    MockCloud::builder()
        .time_scale(0.01)
        .config(cfg)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn aws_new_instances_are_not_found_within_the_window() {
    // 100 s simulated: 1 s real.
    let mock = lagging(100_000).await;
    let (status, body) = ec2_raw(
        &mock,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-0abcdef1234567890"),
            ("InstanceType", "m5.large"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = between(&body, "<instanceId>", "</instanceId>")
        .unwrap()
        .to_string();
    let (status, body) = ec2_raw(
        &mock,
        &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("InvalidInstanceID.NotFound"), "{body}");
    let (_, body) = ec2_raw(&mock, &[("Action", "DescribeInstances")]).await;
    assert!(!body.contains(&id), "listed within the window: {body}");
    // The mock's own view is not lagging.
    assert!(listed(&mock, &id).await.is_some());
    until(10, "visible", || async {
        let (status, body) = ec2_raw(
            &mock,
            &[("Action", "DescribeInstances"), ("InstanceId.1", &id)],
        )
        .await;
        (status == 200 && body.contains(&id)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn gcp_lists_lag_behind_inserts_and_deletes_but_get_does_not() {
    let mock = lagging(50_000).await;
    let project = "lag-project";
    let got = gce_insert(&mock, project, "lag-1", "e2-small", json!({})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(gce_get(&mock, project, "lag-1").await.status, 200);
    let names = || async {
        let v = json_call("GET", &gce_instances(&mock, project), None)
            .await
            .json();
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert!(names().await.is_empty(), "listed within the window");
    until(10, "listed", || async {
        (names().await == ["lag-1"]).then_some(())
    })
    .await;
    let got = json_call(
        "DELETE",
        &format!("{}/lag-1", gce_instances(&mock, project)),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    until(10, "get answers 404", || async {
        (gce_get(&mock, project, "lag-1").await.status == 404).then_some(())
    })
    .await;
    assert_eq!(names().await, ["lag-1"], "still listed after the delete");
    until(10, "unlisted", || async {
        names().await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn azure_lists_lag_behind_creates_but_get_does_not() {
    let mock = lagging(100_000).await;
    let url = arm_url(&mock, "");
    let got = json_call("PUT", &url, Some(json!({"location": "westeurope"}))).await;
    assert!(got.status < 300, "{}", got.text());
    let path = "/providers/Microsoft.Network/publicIPAddresses/lag-ip";
    let got = json_call(
        "PUT",
        &arm_url(&mock, path),
        Some(
            json!({"location": "westeurope", "properties": {"publicIPAllocationMethod": "Static"}}),
        ),
    )
    .await;
    assert!(got.status < 300, "{}", got.text());
    assert_eq!(
        json_call("GET", &arm_url(&mock, path), None).await.status,
        200
    );
    let list = arm_url(&mock, "/providers/Microsoft.Network/publicIPAddresses");
    let count = || async {
        let v = json_call("GET", &list, None).await.json();
        v["value"].as_array().map(Vec::len).unwrap_or(usize::MAX)
    };
    assert_eq!(count().await, 0, "listed within the window");
    until(10, "listed", || async {
        (count().await == 1).then_some(())
    })
    .await;
    let got = json_call("DELETE", &arm_url(&mock, path), None).await;
    assert!(got.status < 300, "{}", got.text());
    until(10, "get answers 404", || async {
        (json_call("GET", &arm_url(&mock, path), None).await.status == 404).then_some(())
    })
    .await;
    assert_eq!(count().await, 1, "still listed after the delete");
    until(10, "unlisted", || async {
        (count().await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn stuck_operations_never_finish_on_any_cloud() {
    let mock = mock(0.001).await;
    let rules = json!([
        {"cloud": "aws", "operation": "RunInstances", "count": 1, "effect": {"kind": "stuck"}},
        {"cloud": "gcp", "operation": "compute.instances.insert", "resource": "stuck-*",
         "effect": {"kind": "stuck"}},
        {"cloud": "azure", "operation": "*", "resource": "*stuck*", "effect": {"kind": "stuck"}},
    ]);
    let got = control(&mock, "PUT", "/_mock/faults", Some(rules)).await;
    assert_eq!(got.status, 200, "{}", got.text());

    let (status, body) = ec2_raw(
        &mock,
        &[
            ("Action", "RunInstances"),
            ("ImageId", "ami-0abcdef1234567890"),
            ("InstanceType", "m5.large"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let stuck = between(&body, "<instanceId>", "</instanceId>")
        .unwrap()
        .to_string();
    // The rule is used up: the next launch runs.
    let free = run_instance(&mock, &[]).await;

    let got = gce_insert(&mock, "stuck-project", "stuck-1", "e2-small", json!({})).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let op = got.json()["name"].as_str().unwrap().to_string();
    let ops = gce_operations(&mock, "stuck-project");

    let rg = json_call(
        "PUT",
        &arm_url(&mock, ""),
        Some(json!({"location": "westeurope"})),
    )
    .await;
    assert!(rg.status < 300, "{}", rg.text());
    let ip = arm_url(
        &mock,
        "/providers/Microsoft.Network/publicIPAddresses/stuck-ip",
    );
    let got = json_call(
        "PUT",
        &ip,
        Some(
            json!({"location": "westeurope", "properties": {"publicIPAllocationMethod": "Static"}}),
        ),
    )
    .await;
    assert!(got.status < 300, "{}", got.text());
    let status_url = got
        .header("azure-asyncoperation")
        .expect("an asynchronous operation")
        .to_string();

    // Far longer than any of these takes unstuck at this scale.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(ec2_describe(&mock, &stuck)
        .await
        .contains("<name>pending</name>"));
    assert!(ec2_describe(&mock, &free)
        .await
        .contains("<name>running</name>"));
    let got = json_call("GET", &format!("{ops}/{op}"), None).await;
    assert_eq!(got.json()["status"], "RUNNING", "{}", got.text());
    let got = gce_get(&mock, "stuck-project", "stuck-1").await;
    assert_eq!(got.json()["status"], "PROVISIONING", "{}", got.text());
    let got = json_call("GET", &ip, None).await;
    assert_eq!(
        got.json()["properties"]["provisioningState"],
        "Updating",
        "{}",
        got.text()
    );
    let got = json_call("GET", &status_url, None).await;
    assert_eq!(got.json()["status"], "InProgress", "{}", got.text());
}

#[tokio::test]
async fn a_negative_window_is_refused_naming_the_field() {
    let mock = mock(0.01).await;
    let got = control(
        &mock,
        "PUT",
        "/_mock/config",
        Some(json!({"azure": {"consistency_window_s": -1}})),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(
        error(&got).starts_with("azure.consistency_window_s:"),
        "{}",
        got.text()
    );
    let got = control(
        &mock,
        "PUT",
        "/_mock/config",
        Some(json!({"gcp": {"consistency_window_ms": -1}})),
    )
    .await;
    assert_eq!(got.status, 400, "{}", got.text());
    assert!(
        error(&got).contains("consistency_window_ms"),
        "{}",
        got.text()
    );
}
