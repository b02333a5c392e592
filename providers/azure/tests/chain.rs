//! The chain against the mock cloud over TLS: to running with and without a
//! public IP and with data disks, then teardown to nothing.

mod common;

use common::*;
use skyfleet_core::{DesiredState, Phase, Provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_without_public_ip_runs_and_tears_down() {
    let env = Env::start().await;
    let p = env.provider();
    let mut w = worker("w-plain", launch(false, 0));
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    assert_eq!(env.count("virtualMachine").await, 1);
    assert_eq!(env.count("networkInterface").await, 1);
    assert_eq!(env.count("publicIPAddress").await, 0);
    assert_eq!(env.count("disk").await, 1, "the OS disk");
    let nic = env
        .ours()
        .await
        .into_iter()
        .find(|r| r["kind"] == "networkInterface")
        .unwrap();
    assert_eq!(nic["name"], "sf-w-plain-nic");
    assert_eq!(nic["tags"]["skyfleet-manager"], MANAGER);
    assert_eq!(nic["tags"]["skyfleet-worker"], "w-plain");

    // A health check of the running worker keeps it running.
    w.next_check_at = time::OffsetDateTime::now_utc();
    let s = p.step(&w).await.unwrap();
    assert_eq!(s.phase, Phase::Running);

    w.desired = DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Stopped, "{:?}", w.last_error);
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_with_public_ip_and_data_disks() {
    let env = Env::start().await;
    let p = env.provider();
    let mut w = worker("w-full", launch(true, 2));
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    assert_eq!(env.count("virtualMachine").await, 1);
    assert_eq!(env.count("publicIPAddress").await, 1);
    assert_eq!(env.count("disk").await, 3, "OS disk and two data disks");
    w.desired = DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Stopped, "{:?}", w.last_error);
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_one_by_one_without_cascade() {
    let env = Env::start().await;
    let p = env.provider();
    let mut l = launch(true, 1);
    l["delete_with_vm"] = serde_json::json!(false);
    let mut w = worker("w-nocascade", l);
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    w.desired = DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Stopped, "{:?}", w.last_error);
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_during_teardown_mean_later_not_failure() {
    let env = Env::start().await;
    env.set_faults(serde_json::json!([
        {"cloud": "azure", "operation": "NetworkInterfaces_Delete", "count": 2,
         "effect": {"kind": "error", "status": 400, "code": "NicInUse", "message": "in use"}},
        {"cloud": "azure", "operation": "PublicIPAddresses_Delete", "count": 1,
         "effect": {"kind": "error", "status": 409, "code": "AnotherOperationInProgress", "message": "busy"}}
    ]))
    .await;
    let p = env.provider();
    let mut l = launch(true, 0);
    l["delete_with_vm"] = serde_json::json!(false);
    let mut w = worker("w-busy", l);
    drive(&p, &mut w, &[Phase::Running]).await;
    w.desired = DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    let errors = drive(&p, &mut w, &[]).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(w.phase, Phase::Stopped);
    let e = w.last_error.expect("the busy answers were recorded");
    assert!(
        matches!(
            e.code.as_deref(),
            Some("NicInUse") | Some("AnotherOperationInProgress")
        ),
        "{e:?}"
    );
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_with_an_explicit_os_disk() {
    let env = Env::start().await;
    let p = env.provider();
    let mut bad = explicit_os_launch();
    bad["image"]["version"] = serde_json::json!("latest");
    assert!(p.validate(&bad).is_err());
    let mut w = worker("w-osdisk", explicit_os_launch());
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    let disks: Vec<_> = env
        .ours()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "disk")
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(disks.len(), 2, "{disks:?}");
    assert!(disks.contains(&"sf-w-osdisk-os".to_string()), "{disks:?}");
    w.desired = DesiredState::Removed;
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Stopped, "{:?}", w.last_error);
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}
