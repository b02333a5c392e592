//! Health of running workers: transient instance-view 404s are tolerated
//! for a bounded streak; a longer streak, or a VM deleted behind our back,
//! fails the worker and tears down the rest.

mod common;

use common::*;
use serde_json::json;
use skyfleet_core::provider::apply_step;
use skyfleet_core::{Phase, Provider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_view_404_streaks() {
    let env = Env::start().await;
    let p = env.provider();
    let mut w = worker("hv-1", launch(false, 0));
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running);

    // One 404: tolerated, recorded, and the streak resets after a good read.
    env.set_faults(
        json!([{"cloud": "azure", "operation": "VirtualMachines_InstanceView",
        "count": 1, "effect": {"kind": "not_found_reads", "count": 1}}]),
    )
    .await;
    let s = p.step(&w).await.unwrap();
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.state["instance_view_404s"], 1);
    assert!(s.error.is_some());
    apply_step(&mut w, &s, time::OffsetDateTime::now_utc());
    let s = p.step(&w).await.unwrap();
    assert_eq!(s.state["instance_view_404s"], 0);
    apply_step(&mut w, &s, time::OffsetDateTime::now_utc());

    // Three in a row (more than the default 2): failed and torn down.
    env.set_faults(
        json!([{"cloud": "azure", "operation": "VirtualMachines_InstanceView",
        "count": 3, "effect": {"kind": "not_found_reads", "count": 1}}]),
    )
    .await;
    for _ in 0..3 {
        let s = p.step(&w).await.unwrap();
        apply_step(&mut w, &s, time::OffsetDateTime::now_utc());
    }
    assert_eq!(w.phase, Phase::Stopping);
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(
        w.last_error.unwrap().code.as_deref(),
        Some("InstanceViewMissing")
    );
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_deleted_behind_our_back_fails_the_worker() {
    let env = Env::start().await;
    let p = env.provider();
    let mut l = launch(true, 0);
    l["delete_with_vm"] = json!(false);
    let mut w = worker("hv-2", l);
    drive(&p, &mut w, &[Phase::Running]).await;
    let url = format!(
        "{}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/sf-hv-2-vm?api-version=2024-07-01",
        env.mock.url()
    );
    let r = env.http.delete(url).bearer_auth("x").send().await.unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(w.last_error.unwrap().code.as_deref(), Some("VmMissing"));
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

/// The mock has no power actions, so a deallocated VM is simulated by
/// rewriting its instance view on the way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deallocated_vm_fails_the_worker_and_is_removed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use skyfleet_azure::{AzureBuilder, Credential};
    use skyfleet_core::transport::{ReqwestService, Transport};

    let env = Env::start().await;
    let cfg = env.config();
    let tc = skyfleet_azure::AzureBuilder::from_config(cfg.clone()).transport_config();
    let inner = ReqwestService::from_config(&tc).unwrap();
    let deallocated = Arc::new(AtomicBool::new(false));
    let flag = deallocated.clone();
    let svc = tower::service_fn(move |req: http::Request<Bytes>| {
        let mut inner = inner.clone();
        let flag = flag.clone();
        async move {
            let iv = req.uri().path().ends_with("/instanceView");
            let resp = tower::Service::call(&mut inner, req).await?;
            if !(iv && flag.load(Ordering::SeqCst)) {
                return Ok(resp);
            }
            let (parts, _) = resp.into_parts();
            let body = br#"{"statuses":[{"code":"ProvisioningState/succeeded"},{"code":"PowerState/deallocated"}]}"#;
            Ok(http::Response::from_parts(parts, Bytes::from_static(body)))
        }
    });
    let transport = Transport::builder().config(tc).build_with(svc).unwrap();
    let p = AzureBuilder::from_config(cfg)
        .with_transport(transport)
        .with_token_source(Arc::new(Credential::static_token("t")))
        .build()
        .unwrap();
    let mut w = worker("hv-3", launch(false, 1));
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running);
    deallocated.store(true, Ordering::SeqCst);
    w.next_check_at = time::OffsetDateTime::now_utc();
    drive(&p, &mut w, &[]).await;
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(
        w.last_error.unwrap().code.as_deref(),
        Some("PowerState/deallocated")
    );
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}
