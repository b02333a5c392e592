//! Issue #17 on Azure, against skyfleet's mock ARM: the spot VM shape,
//! each capacity and quota code classified on the failed worker (as a
//! refused PUT and as a failed operation), a spot VM evicted (deleted
//! behind skyfleet's back, or deallocated) seen by the provider, and the
//! offering of a launch config.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use skyfleet_core::clock::{Clock, SystemClock};
use skyfleet_core::model::LaunchConfig;
use skyfleet_core::offering::{CapacityClass, CapacityType, InterruptionSource};
use skyfleet_core::provider::apply_step;
use skyfleet_core::{ErrorKind, Phase, Provider, Step, Worker};

fn spot_launch() -> Value {
    let mut l = launch(false, 0);
    l["priority"] = json!("Spot");
    l["max_price"] = json!(0.05);
    l
}

fn vm_url(env: &Env, worker_id: &str) -> String {
    format!(
        "{}/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/sf-{worker_id}-vm?api-version=2024-07-01",
        env.mock.url()
    )
}

/// Steps `w` until its phase is in `until` or final; every step taken.
async fn steps_until(p: &dyn Provider, w: &mut Worker, until: &[Phase]) -> Vec<Step> {
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    let mut steps = Vec::new();
    while !(until.contains(&w.phase) || w.phase.is_final()) {
        assert!(std::time::Instant::now() < give_up, "stuck: {w:#?}");
        let wait = skyfleet_core::clock::until(SystemClock.now(), w.next_check_at);
        if !wait.is_zero() {
            tokio::time::sleep(wait.min(Duration::from_millis(200))).await;
        }
        if let Ok(s) = p.step(w).await {
            apply_step(w, &s, SystemClock.now());
            steps.push(s);
        }
    }
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spot_worker_is_a_spot_vm_deleted_on_eviction() {
    let env = Env::start().await;
    let p = env.provider();
    let mut w = worker("sp-1", spot_launch());
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running);
    let vm: Value = env
        .http
        .get(vm_url(&env, "sp-1"))
        .bearer_auth("x")
        .send()
        .await
        .expect("get vm")
        .json()
        .await
        .expect("json");
    let props = &vm["properties"];
    assert_eq!(props["priority"], "Spot", "{vm}");
    assert_eq!(props["evictionPolicy"], "Delete");
    assert_eq!(props["billingProfile"]["maxPrice"], 0.05);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_capacity_code_fails_the_worker_with_its_code() {
    let env = Env::start().await;
    let quota = "Operation could not be completed as it results in exceeding approved \
                 standardDSv5Family Cores quota.";
    let codes = [
        ("SkuNotAvailable", "The requested size is not available."),
        ("AllocationFailed", "Allocation failed."),
        ("ZonalAllocationFailed", "Allocation failed in the zone."),
        ("OverconstrainedAllocationRequest", "Overconstrained."),
        (
            "OverconstrainedZonalAllocationRequest",
            "Overconstrained in the zone.",
        ),
        ("QuotaExceeded", quota),
        ("OperationNotAllowed", quota),
    ];
    let mut cases = Vec::new();
    for (n, (code, message)) in codes.iter().enumerate() {
        cases.push((format!("cs{n}"), *code, *message, "error"));
        cases.push((format!("ca{n}"), *code, *message, "fail_operation"));
    }
    let rules: Vec<Value> = cases
        .iter()
        .map(|(id, code, message, kind)| {
            let effect = if *kind == "error" {
                json!({"kind": "error", "status": 409, "code": code, "message": message})
            } else {
                json!({"kind": "fail_operation", "code": code, "message": message})
            };
            json!({"cloud": "azure", "operation": "VirtualMachines_CreateOrUpdate",
                   "resource": format!("*sf-{id}-vm*"), "count": 1, "effect": effect})
        })
        .collect();
    env.set_faults(json!(rules)).await;
    let p = env.provider();
    let mut runs = Vec::new();
    for (id, code, _, kind) in cases.clone() {
        let p = p.clone();
        runs.push(tokio::spawn(async move {
            let mut w = worker(&id, spot_launch());
            let steps = steps_until(&p, &mut w, &[]).await;
            assert_eq!(w.phase, Phase::Failed, "{id} {code} {kind}");
            let e = w.last_error.clone().expect("error recorded");
            assert_eq!(e.kind, ErrorKind::CapacityOrQuota, "{id} {kind}: {e:?}");
            assert_eq!(e.code.as_deref(), Some(code), "{id} {kind}");
            let last = steps
                .last()
                .and_then(|s| s.error.clone())
                .expect("on the last step");
            assert_eq!(last.code.as_deref(), Some(code));
            assert!(steps.iter().all(|s| s.interruption.is_none()));
            let want = if code.contains("Quota") || code == "OperationNotAllowed" {
                CapacityClass::Quota
            } else {
                CapacityClass::Capacity
            };
            assert_eq!(CapacityClass::of_code(Some(code)), want, "{code}");
        }));
    }
    for r in runs {
        r.await.expect("case");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_spot_vm_is_reported_once_and_torn_down() {
    let env = Env::start().await;
    let p = env.provider();
    for (id, spot) in [("ev-1", true), ("ev-2", false)] {
        let l = if spot {
            spot_launch()
        } else {
            launch(false, 0)
        };
        let mut w = worker(id, l);
        drive(&p, &mut w, &[Phase::Running]).await;
        let r = env
            .http
            .delete(vm_url(&env, id))
            .bearer_auth("x")
            .send()
            .await
            .expect("delete");
        assert!(r.status().is_success());
        tokio::time::sleep(Duration::from_millis(600)).await;
        w.next_check_at = SystemClock.now();
        let steps = steps_until(&p, &mut w, &[]).await;
        let seen: Vec<_> = steps
            .iter()
            .filter_map(|s| s.interruption.clone())
            .collect();
        if spot {
            assert_eq!(seen.len(), 1, "{steps:?}");
            assert_eq!(seen[0].source, InterruptionSource::Provider);
            assert_eq!(seen[0].detail, "evicted");
        } else {
            assert!(seen.is_empty(), "a regular VM is not evicted");
        }
        assert!(w.phase.is_final());
        assert_eq!(
            w.last_error.clone().unwrap().code.as_deref(),
            Some("VmMissing")
        );
    }
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

/// The mock has no power actions (nor evictions yet), so a spot VM
/// deallocated by an eviction (`evictionPolicy: Deallocate`) is simulated
/// by rewriting its instance view on the way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deallocated_spot_vm_is_an_eviction() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use skyfleet_azure::{AzureBuilder, Credential};
    use skyfleet_core::transport::{ReqwestService, Transport};

    let env = Env::start().await;
    let cfg = env.config();
    let tc = AzureBuilder::from_config(cfg.clone()).transport_config();
    let inner = ReqwestService::from_config(&tc).expect("service");
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
    let transport = Transport::builder()
        .config(tc)
        .build_with(svc)
        .expect("transport");
    let p = AzureBuilder::from_config(cfg)
        .with_transport(transport)
        .with_token_source(Arc::new(Credential::static_token("t")))
        .build()
        .expect("provider");
    let mut l = spot_launch();
    l["eviction_policy"] = json!("Deallocate");
    let mut w = worker("ev-3", l);
    drive(&p, &mut w, &[Phase::Running]).await;
    let vm: Value = env
        .http
        .get(vm_url(&env, "ev-3"))
        .bearer_auth("x")
        .send()
        .await
        .expect("get vm")
        .json()
        .await
        .expect("json");
    assert_eq!(vm["properties"]["evictionPolicy"], "Deallocate", "{vm}");
    deallocated.store(true, Ordering::SeqCst);
    w.next_check_at = SystemClock.now();
    let steps = steps_until(&p, &mut w, &[]).await;
    let seen: Vec<_> = steps
        .iter()
        .filter_map(|s| s.interruption.clone())
        .collect();
    assert_eq!(seen.len(), 1, "{steps:?}");
    assert_eq!(seen[0].detail, "evicted");
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(
        w.last_error.clone().unwrap().code.as_deref(),
        Some("PowerState/deallocated")
    );
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offering_of_a_launch_config() {
    let env = Env::start().await;
    let p = env.provider();
    let lc = LaunchConfig {
        id: "lc-spot".into(),
        weight: 1.0,
        capacity_per_worker: 1,
        tier: 0,
        launch: spot_launch(),
    };
    let o = p.offering(&lc).expect("offering");
    assert_eq!(o.location, LOCATION);
    assert_eq!(o.instance_type, "Standard_D2s_v5");
    assert_eq!(o.capacity_type, CapacityType::Spot);
    assert_eq!(o.quota_scope.as_deref(), Some("eastus/spot/lowPriority"));
    let mut regular = lc.clone();
    regular.launch = launch(false, 0);
    let o = p.offering(&regular).expect("offering");
    assert_eq!(o.capacity_type, CapacityType::OnDemand);
    assert_eq!(
        o.quota_scope.as_deref(),
        Some("eastus/on_demand/standardDSv5Family")
    );
    let mut bad = lc.clone();
    bad.launch["eviction_policy"] = json!("Stop");
    for e in [
        p.offering(&bad).unwrap_err(),
        p.validate(&bad.launch).unwrap_err(),
    ] {
        assert!(
            matches!(e.kind(), ErrorKind::InvalidConfig { field } if field == "launch.eviction_policy"),
            "{e}"
        );
    }
}
