//! Interruptions of spot instances: the notice in each cloud's metadata
//! before the end, the ending each cloud gives, picks by fraction, random
//! rates, and bad control bodies.

mod capacity_support;
mod imds_support;

use capacity_support::*;
use imds_support::{get, run_instance};
use serde_json::json;
use time::OffsetDateTime;

#[tokio::test]
async fn aws_notice_shows_in_imds_then_the_instance_terminates_with_the_spot_reason() {
    // Lead time 120 s * 0.05 = 6 s.
    let mock = mock(0.05).await;
    let spot = run_instance(&mock, &SPOT).await;
    let on_demand = run_instance(&mock, &[]).await;
    let action = aws_imds(&mock, &spot, "spot/instance-action");
    assert_eq!(get(&action, &[]).await.status, 404, "no notice yet");
    assert_eq!(
        get(&aws_imds(&mock, &spot, "spot/termination-time"), &[])
            .await
            .status,
        404
    );

    let out = interrupt(&mock, "aws", &[&spot, &on_demand, "i-0000000000000dead"]).await;
    assert_eq!(out.len(), 1, "on-demand and unknown are skipped: {out:?}");
    assert_eq!(out[0]["cloud"], "aws");
    assert_eq!(out[0]["id"], spot.as_str());
    let ends = rfc3339(out[0]["ends_at"].as_str().unwrap());
    let notice = rfc3339(out[0]["notice_at"].as_str().unwrap());
    let lead = (ends - notice).as_seconds_f64();
    assert!((5.9..=6.1).contains(&lead), "lead {lead}");

    let got = get(&action, &[]).await;
    assert!(OffsetDateTime::now_utc() < ends, "checked before the end");
    assert_eq!(got.status, 200, "{}", got.text());
    let v = got.json();
    assert_eq!(v["action"], "terminate");
    let time = v["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && !time.contains('.'), "{time}");
    assert!((rfc3339(time) - ends).abs().as_seconds_f64() < 1.0);
    let got = get(&aws_imds(&mock, &spot, "spot/termination-time"), &[]).await;
    assert_eq!(got.text(), time);
    // Still running until the end.
    assert!(ec2_describe(&mock, &spot)
        .await
        .contains("<name>running</name>"));
    // A second interrupt of the same instance is skipped.
    assert!(interrupt(&mock, "aws", &[&spot]).await.is_empty());

    let body = until(30, "terminated", || async {
        let body = ec2_describe(&mock, &spot).await;
        body.contains("<name>terminated</name>").then_some(body)
    })
    .await;
    assert!(OffsetDateTime::now_utc() >= ends);
    assert_eq!(
        between(&body, "<stateReason><code>", "</code>"),
        Some("Server.SpotInstanceTermination"),
        "{body}"
    );
    assert!(body
        .contains("<message>Server.SpotInstanceTermination: Spot instance termination</message>"));
    assert!(
        body.contains("<reason>Server.SpotInstanceTermination: Spot instance termination</reason>")
    );
    assert!(ec2_describe(&mock, &on_demand)
        .await
        .contains("<name>running</name>"));

    let log = control(&mock, "GET", "/_mock/interruptions", None)
        .await
        .json();
    let all = log["interruptions"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{log}");
    assert_eq!(all[0]["instance_type"], "m5.large");
    assert_eq!(all[0]["location"], "eu-west-1a");
    assert_eq!(all[0]["ended_at"], all[0]["ends_at"]);
}

#[tokio::test]
async fn gce_preemption_sets_preempted_then_terminates_logs_the_operation_and_deletes() {
    // Lead time 30 s * 0.1 = 3 s.
    let mock = mock_quick(0.1).await;
    let project = "p-preempt";
    for (name, action) in [("g-del", "DELETE"), ("g-stop", "STOP")] {
        let sched = json!({"provisioningModel": "SPOT", "instanceTerminationAction": action});
        let got = gce_insert(&mock, project, name, "e2-small", sched).await;
        assert_eq!(got.status, 200, "{}", got.text());
        gce_wait_status(&mock, project, name, "RUNNING").await;
    }
    let preempted = gce_imds(&mock, project, "g-del", "preempted");
    let flavor = [("Metadata-Flavor", "Google")];
    assert_eq!(get(&preempted, &flavor).await.text(), "FALSE");

    let out = interrupt(&mock, "gcp", &["g-del", "g-stop"]).await;
    assert_eq!(out.len(), 2, "{out:?}");
    let ends = rfc3339(out[0]["ends_at"].as_str().unwrap());
    let got = get(&preempted, &flavor).await;
    assert!(OffsetDateTime::now_utc() < ends, "checked before the end");
    assert_eq!(got.text(), "TRUE");
    assert_eq!(
        gce_get(&mock, project, "g-stop").await.json()["status"],
        "RUNNING",
        "running through the notice"
    );
    // No preemption operation before it happens.
    let filter = "?filter=operationType%3D%22compute.instances.preempted%22";
    let list = json_call(
        "GET",
        &format!("{}{filter}", gce_operations(&mock, project)),
        None,
    )
    .await
    .json();
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");

    gce_wait_status(&mock, project, "g-stop", "TERMINATED").await;
    assert!(OffsetDateTime::now_utc() >= ends);
    let list = json_call(
        "GET",
        &format!("{}{filter}", gce_operations(&mock, project)),
        None,
    )
    .await
    .json();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    for op in items {
        assert_eq!(op["operationType"], "compute.instances.preempted");
        assert_eq!(op["status"], "DONE");
        let target = op["targetLink"].as_str().unwrap();
        assert!(target.ends_with("/instances/g-del") || target.ends_with("/instances/g-stop"));
        let name = op["name"].as_str().unwrap();
        let one = json_call(
            "GET",
            &format!("{}/{name}", gce_operations(&mock, project)),
            None,
        )
        .await;
        assert_eq!(one.status, 200);
    }
    // DELETE: gone after it stopped; STOP: stays TERMINATED.
    until(30, "g-del deleted", || async {
        (gce_get(&mock, project, "g-del").await.status == 404).then_some(())
    })
    .await;
    assert_eq!(
        gce_get(&mock, project, "g-stop").await.json()["status"],
        "TERMINATED"
    );
}

#[tokio::test]
async fn azure_eviction_posts_a_preempt_event_then_deletes_or_deallocates() {
    // Lead time 30 s * 0.1 = 3 s.
    let mock = mock_quick(0.1).await;
    let mut ids = Vec::new();
    for (name, policy) in [("z-del", "Delete"), ("z-dea", "Deallocate")] {
        let nic = azure_network(&mock, name).await;
        let vm = arm_put_done(
            &mock,
            &vm_path(name),
            vm_body(
                name,
                &nic,
                json!({"priority": "Spot", "evictionPolicy": policy}),
            ),
        )
        .await;
        assert_eq!(vm["properties"]["provisioningState"], "Succeeded");
        ids.push(vm["properties"]["vmId"].as_str().unwrap().to_string());
    }
    let events = azure_imds_get(&mock, &ids[0], "scheduledevents").await;
    assert_eq!(events.status, 200, "{}", events.text());
    let before = events.json();
    assert_eq!(before["Events"], json!([]));
    let no_header = get(&azure_imds(&mock, &ids[0], "scheduledevents"), &[]).await;
    assert_eq!(no_header.status, 400);

    let out = interrupt(&mock, "azure", &["z-del", "z-dea"]).await;
    assert_eq!(out.len(), 2, "{out:?}");
    let ends = rfc3339(out[0]["ends_at"].as_str().unwrap());
    let doc = azure_imds_get(&mock, &ids[0], "scheduledevents")
        .await
        .json();
    assert!(OffsetDateTime::now_utc() < ends, "checked before the end");
    assert!(
        doc["DocumentIncarnation"].as_u64().unwrap()
            > before["DocumentIncarnation"].as_u64().unwrap()
    );
    let e = &doc["Events"][0];
    assert_eq!(e["EventType"], "Preempt", "{doc}");
    assert_eq!(e["ResourceType"], "VirtualMachine");
    assert_eq!(e["Resources"], json!(["z-del"]));
    assert_eq!(e["EventStatus"], "Scheduled");
    assert_eq!(e["EventSource"], "Platform");
    assert_eq!(e["DurationInSeconds"], -1);
    assert!(uuid::Uuid::parse_str(e["EventId"].as_str().unwrap()).is_ok());
    let not_before = e["NotBefore"].as_str().unwrap();
    let parsed = OffsetDateTime::parse(not_before, &time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|err| panic!("{not_before}: {err}"));
    assert!((parsed - ends).abs().as_seconds_f64() < 1.0);

    // Delete: the VM and its OS disk (deleteOption Delete) go.
    let url = arm_url(&mock, &vm_path("z-del"));
    until(30, "z-del deleted", || async {
        (json_call("GET", &url, None).await.status == 404).then_some(())
    })
    .await;
    assert!(OffsetDateTime::now_utc() >= ends);
    let res = control(&mock, "GET", "/_mock/resources?cloud=azure", None)
        .await
        .json();
    let names: Vec<&str> = res
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "disk" || r["kind"] == "virtualMachine")
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with("z-del")), "{names:?}");
    // Deallocate: the VM stays, deallocated, and leaves the metadata service.
    let url = arm_url(&mock, &vm_path("z-dea"));
    let iv = json_call(
        "GET",
        &url.replace("?api-version", "/instanceView?api-version"),
        None,
    )
    .await
    .json();
    let codes: Vec<&str> = iv["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"PowerState/deallocated"), "{iv}");
    assert_eq!(
        azure_imds_get(&mock, &ids[1], "scheduledevents")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_fraction_interrupts_that_share_of_running_spot_instances_rounded_up() {
    let mock = mock(0.02).await;
    let mut spot = Vec::new();
    for _ in 0..3 {
        spot.push(run_instance(&mock, &SPOT).await);
    }
    run_instance(&mock, &[]).await;
    let got = control(
        &mock,
        "POST",
        "/_mock/interrupt",
        Some(json!({"cloud": "aws", "fraction": 0.5})),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let out = got.json()["interrupted"].as_array().unwrap().clone();
    assert_eq!(out.len(), 2, "ceil(0.5 * 3): {out:?}");
    for o in &out {
        assert!(spot.iter().any(|s| s == o["id"].as_str().unwrap()));
    }
    // The rest: one left; fraction 0 picks none.
    let got = control(
        &mock,
        "POST",
        "/_mock/interrupt",
        Some(json!({"cloud": "aws", "fraction": 0.0})),
    )
    .await;
    assert_eq!(got.json()["interrupted"], json!([]));
    let got = control(
        &mock,
        "POST",
        "/_mock/interrupt",
        Some(json!({"cloud": "aws", "fraction": 1.0})),
    )
    .await;
    assert_eq!(got.json()["interrupted"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn random_rates_interrupt_running_spot_instances_and_are_listed() {
    let mock = mock(0.02).await;
    let spot = run_instance(&mock, &SPOT).await;
    let on_demand = run_instance(&mock, &[]).await;
    let got = control(
        &mock,
        "PUT",
        "/_mock/interruptions",
        Some(json!({"rates": [{"cloud": "aws", "per_instance_per_hour": 1.0e6}]})),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["rates"][0]["per_instance_per_hour"], 1.0e6);
    let log = until(10, "a random interruption", || async {
        let log = control(&mock, "GET", "/_mock/interruptions", None)
            .await
            .json();
        (!log["interruptions"].as_array().unwrap().is_empty()).then_some(log)
    })
    .await;
    let all = log["interruptions"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{log}");
    assert_eq!(all[0]["id"], spot.as_str());
    assert_eq!(all[0]["name"], spot.as_str());
    assert_eq!(all[0]["ended_at"], json!(null));
    let _ = on_demand;
    // Rates off: nothing more happens.
    control(
        &mock,
        "PUT",
        "/_mock/interruptions",
        Some(json!({"rates": []})),
    )
    .await;
}

#[tokio::test]
async fn bad_interruption_bodies_are_400_naming_the_field() {
    let mock = mock(0.02).await;
    for (path, method, body, field) in [
        (
            "/_mock/interrupt",
            "POST",
            json!({"cloud": "ibm", "fraction": 0.5}),
            "cloud",
        ),
        (
            "/_mock/interrupt",
            "POST",
            json!({"cloud": "aws", "fraction": 1.5}),
            "fraction",
        ),
        (
            "/_mock/interrupt",
            "POST",
            json!({"cloud": "aws", "fraction": -0.1}),
            "fraction",
        ),
        (
            "/_mock/interrupt",
            "POST",
            json!({"cloud": "aws"}),
            "instances",
        ),
        (
            "/_mock/interrupt",
            "POST",
            json!({"cloud": "aws", "instances": [], "fraction": 0.1}),
            "fraction",
        ),
        (
            "/_mock/interrupt",
            "POST",
            json!({"cloud": "aws", "instances": "i-1"}),
            "instances",
        ),
        (
            "/_mock/interruptions",
            "PUT",
            json!({"rates": [{"cloud": "aws", "per_instance_per_hour": -1.0}]}),
            "per_instance_per_hour",
        ),
        (
            "/_mock/interruptions",
            "PUT",
            json!({"rates": [{"cloud": "moon", "per_instance_per_hour": 1.0}]}),
            "cloud",
        ),
        ("/_mock/interruptions", "PUT", json!({"rate": []}), "rate"),
    ] {
        let got = control(&mock, method, path, Some(body.clone())).await;
        assert_eq!(got.status, 400, "{body}: {}", got.text());
        let msg = got.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(field), "{body}: {msg}");
    }
    let log = control(&mock, "GET", "/_mock/interruptions", None)
        .await
        .json();
    assert_eq!(log, json!({"rates": [], "interruptions": []}));
}

#[tokio::test]
async fn gce_a_stop_during_the_notice_drops_the_preemption_and_a_restart_clears_it() {
    let mock = mock_quick(0.1).await;
    let project = "p-stop";
    let sched = json!({"provisioningModel": "SPOT", "instanceTerminationAction": "STOP"});
    let got = gce_insert(&mock, project, "g1", "e2-small", sched).await;
    assert_eq!(got.status, 200, "{}", got.text());
    gce_wait_status(&mock, project, "g1", "RUNNING").await;
    let out = interrupt(&mock, "gcp", &["g1"]).await;
    let ends = rfc3339(out[0]["ends_at"].as_str().unwrap());
    let url = format!("{}/g1/stop", gce_instances(&mock, project));
    assert_eq!(json_call("POST", &url, None).await.status, 200);
    gce_wait_status(&mock, project, "g1", "TERMINATED").await;
    let wait = ends - OffsetDateTime::now_utc() + time::Duration::milliseconds(200);
    if wait.is_positive() {
        tokio::time::sleep(wait.unsigned_abs()).await;
    }
    let filter = "?filter=operationType%3D%22compute.instances.preempted%22";
    let list = json_call(
        "GET",
        &format!("{}{filter}", gce_operations(&mock, project)),
        None,
    )
    .await
    .json();
    assert_eq!(list["items"], json!([]), "no preemption happened: {list}");
    // Started again, it is an ordinary running spot instance.
    let url = format!("{}/g1/start", gce_instances(&mock, project));
    assert_eq!(json_call("POST", &url, None).await.status, 200);
    gce_wait_status(&mock, project, "g1", "RUNNING").await;
    let preempted = gce_imds(&mock, project, "g1", "preempted");
    let got = get(&preempted, &[("Metadata-Flavor", "Google")]).await;
    assert_eq!(got.text(), "FALSE");
    assert_eq!(interrupt(&mock, "gcp", &["g1"]).await.len(), 1);
}
