//! Faults: failed operations at each resource, hung calls, throttles,
//! expired operation URLs, bad launch configs and garbled ARM answers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use serde_json::json;
use skyfleet_azure::{AzureBuilder, AzureProvider, Credential};
use skyfleet_core::provider::apply_step;
use skyfleet_core::transport::{ReqwestService, Transport};
use skyfleet_core::{ErrorKind, Phase, Provider};

fn field_of(e: &skyfleet_core::Error) -> String {
    match e.kind() {
        ErrorKind::InvalidConfig { field } => field.clone(),
        k => panic!("unexpected kind {k:?}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_operation_at_each_resource_tears_down() {
    let env = Env::start().await;
    let cases = [
        (
            "f-pip",
            "PublicIPAddresses_CreateOrUpdate",
            "pip",
            "PublicIPCountLimitReached",
            "capacity_or_quota",
        ),
        (
            "f-nic",
            "NetworkInterfaces_CreateOrUpdate",
            "nic",
            "InternalExecutionError",
            "operation_failed",
        ),
        (
            "f-disk",
            "Disks_CreateOrUpdate",
            "d0",
            "InternalDiskManagementError",
            "operation_failed",
        ),
        (
            "f-vm",
            "VirtualMachines_CreateOrUpdate",
            "vm",
            "AllocationFailed",
            "capacity_or_quota",
        ),
    ];
    let rules: Vec<_> = cases
        .iter()
        .map(|(id, op, suffix, code, _)| {
            json!({"cloud": "azure", "operation": op, "resource": format!("*sf-{id}-{suffix}*"),
                   "count": 1, "effect": {"kind": "fail_operation", "code": code, "message": "injected"}})
        })
        .collect();
    env.set_faults(json!(rules)).await;
    let p = env.provider();
    let runs = cases.iter().map(|(id, _, _, code, kind)| {
        let p = p.clone();
        async move {
            let mut w = worker(id, launch(true, 1));
            drive(&p, &mut w, &[Phase::Running]).await;
            assert_eq!(w.phase, Phase::Failed, "{id}");
            let e = w.last_error.clone().expect("error recorded");
            assert_eq!(e.code.as_deref(), Some(*code), "{id}: {e:?}");
            assert_eq!(e.kind, *kind, "{id}: {e:?}");
        }
    });
    futures_join(runs).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.ours().await.is_empty(), "{:#?}", env.ours().await);
}

async fn futures_join<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let handles: Vec<_> = fs.collect();
    for f in handles {
        f.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_is_cut_by_the_transport_timeout() {
    let env = Env::start().await;
    env.set_faults(
        json!([{"cloud": "azure", "operation": "VirtualMachines_CreateOrUpdate",
        "count": 1, "effect": {"kind": "hang"}}]),
    )
    .await;
    let mut cfg = env.config();
    cfg.transport.attempt_timeout_ms = Some(800);
    cfg.transport.overall_timeout_ms = Some(1_000);
    cfg.transport.max_attempts = Some(1);
    let p = AzureBuilder::from_config(cfg).build().unwrap();
    let mut w = worker("h-1", launch(false, 0));
    let started = Instant::now();
    let errors = drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    let timeouts: Vec<_> = errors
        .iter()
        .filter(|e| e.kind() == &ErrorKind::Timeout)
        .collect();
    assert_eq!(timeouts.len(), 1, "{errors:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(env.count("virtualMachine").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_retry_after_is_honoured() {
    let env = Env::start().await;
    env.set_faults(
        json!([{"cloud": "azure", "operation": "NetworkInterfaces_CreateOrUpdate",
        "count": 1, "effect": {"kind": "throttle", "retry_after_s": 200}}]),
    )
    .await;
    let p = env.provider();
    let w = worker("t-1", launch(false, 0));
    let started = Instant::now();
    let s = p.step(&w).await.expect("the transport waits and retries");
    // 200 s at time_scale 0.01 is announced as 2 s; unscaled, the transport
    // would pause its 120 s maximum.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert_eq!(s.phase, Phase::Requested);
    let stats = env.stats().await;
    let rows = stats["operations"].as_array().unwrap();
    let nic_puts: Vec<_> = rows
        .iter()
        .filter(|r| r["operation"] == "NetworkInterfaces_CreateOrUpdate")
        .map(|r| (r["status"].as_u64().unwrap(), r["count"].as_u64().unwrap()))
        .collect();
    assert!(nic_puts.contains(&(429, 1)), "{nic_puts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_operation_url_is_recovered_by_name() {
    let env = Env::start_scaled(0.05).await;
    let p = env.provider();
    let mut w = worker("e-1", launch(false, 0));
    // Step until the VM create is in flight.
    loop {
        tokio::time::sleep(skyfleet_core::clock::until(
            time::OffsetDateTime::now_utc(),
            w.next_check_at,
        ))
        .await;
        let s = p.step(&w).await.unwrap();
        apply_step(&mut w, &s, time::OffsetDateTime::now_utc());
        if w.provider_state["create"][1]["op"].is_object() {
            break;
        }
    }
    // The operation record expires: its URL now answers 404.
    let url = w.provider_state["create"][1]["op"]["op"]["poll_url"]
        .as_str()
        .unwrap()
        .to_string();
    let expired = match url.rfind("/operations/") {
        Some(i) => format!("{}/operations/expired-op?api-version=2024-07-01", &url[..i]),
        None => panic!("unexpected poll url {url}"),
    };
    w.provider_state["create"][1]["op"]["op"]["poll_url"] = json!(expired);
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);
    assert_eq!(env.count("virtualMachine").await, 1);
    let stats = env.stats().await;
    let asked = stats["operations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["operation"] == "VirtualMachines_Get");
    assert!(asked, "the VM was asked for by name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_refuses_bad_launch_configs() {
    let env = Env::start().await;
    let p = env.provider();
    let mut l = launch(false, 0);
    l.as_object_mut().unwrap().remove("subnet_id");
    assert_eq!(field_of(&p.validate(&l).unwrap_err()), "launch.subnet_id");
    let mut l = launch(false, 0);
    l.as_object_mut().unwrap().remove("location");
    assert_eq!(field_of(&p.validate(&l).unwrap_err()), "launch.location");
    let mut l = launch(false, 0);
    l.as_object_mut().unwrap().remove("vm_size");
    assert_eq!(field_of(&p.validate(&l).unwrap_err()), "launch.vm_size");
    let mut l = launch(false, 0);
    l["name_prefix"] = json!("Not-Valid");
    assert_eq!(field_of(&p.validate(&l).unwrap_err()), "launch.name_prefix");
    p.validate(&launch(true, 2)).unwrap();
    // A worker with a bad launch config fails without creating anything.
    let mut w = worker("v-1", l);
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Failed);
    assert_eq!(w.last_error.unwrap().kind, "invalid_config");
    assert!(env.ours().await.is_empty());
}

/// A transport whose first `n` answers matching `pred` are garbled.
fn garbling_provider(
    env: &Env,
    n: usize,
    pred: fn(&http::Request<Bytes>) -> bool,
) -> AzureProvider {
    let cfg = env.config();
    let inner = ReqwestService::from_config(
        &skyfleet_azure::AzureBuilder::from_config(cfg.clone()).transport_config(),
    )
    .unwrap();
    let left = Arc::new(AtomicUsize::new(n));
    let svc = tower::service_fn(move |req: http::Request<Bytes>| {
        let mut inner = inner.clone();
        let left = left.clone();
        async move {
            let garble = pred(&req)
                && left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok();
            let resp = tower::Service::call(&mut inner, req).await?;
            if !garble {
                return Ok(resp);
            }
            let (mut parts, _) = resp.into_parts();
            parts.headers.remove("azure-asyncoperation");
            parts.headers.remove("location");
            Ok(http::Response::from_parts(
                parts,
                Bytes::from_static(b"{\"properties\": <garbage"),
            ))
        }
    });
    let transport = Transport::builder()
        .config(skyfleet_azure::AzureBuilder::from_config(cfg.clone()).transport_config())
        .build_with(svc)
        .unwrap();
    AzureBuilder::from_config(cfg)
        .with_transport(transport)
        .with_token_source(Arc::new(Credential::static_token("t")))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_answers_fail_the_step_clearly_without_panic() {
    let env = Env::start().await;
    // The first NIC PUT answer is garbage: the step fails with a clear error
    // and the next one repeats the PUT (idempotent by name).
    let p = garbling_provider(&env, 1, |r| r.method() == http::Method::PUT);
    let w0 = worker("g-put", launch(false, 0));
    let e = p.step(&w0).await.unwrap_err();
    assert_eq!(e.code(), Some("GarbledResponse"), "{e}");
    assert!(e.message().contains("garbled ARM response"), "{e}");
    let mut w = w0.clone();
    drive(&p, &mut w, &[Phase::Running]).await;
    assert_eq!(w.phase, Phase::Running, "{:?}", w.last_error);

    // Two garbled operation polls are recorded on the worker and tolerated.
    let p = garbling_provider(&env, 2, |r| r.uri().path().contains("/operations/"));
    let mut w = worker("g-poll", launch(false, 0));
    let mut seen_garbled = false;
    let give_up = Instant::now() + Duration::from_secs(30);
    while w.phase != Phase::Running {
        assert!(Instant::now() < give_up);
        tokio::time::sleep(skyfleet_core::clock::until(
            time::OffsetDateTime::now_utc(),
            w.next_check_at,
        ))
        .await;
        let s = p.step(&w).await.unwrap();
        if let Some(err) = &s.error {
            seen_garbled |= err.code.as_deref() == Some("GarbledResponse");
        }
        apply_step(&mut w, &s, time::OffsetDateTime::now_utc());
    }
    assert!(seen_garbled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_is_clamped_to_max_server_delay() {
    use skyfleet_core::transport::MAX_SERVER_DELAY;
    let env = Env::start().await;
    env.set_faults(json!([{"cloud": "azure", "operation": "*",
        "effect": {"kind": "throttle", "retry_after_s": 999_999_999_999u64}}]))
        .await;
    let mut c = env.config();
    c.transport.max_attempts = Some(1);
    let p = AzureBuilder::from_config(c).build().expect("provider");
    let mut w = worker("absurd-1", launch(false, 0));
    let e = loop {
        match p.step(&w).await {
            Ok(s) => apply_step(&mut w, &s, time::OffsetDateTime::now_utc()),
            Err(e) => break e,
        }
        assert!(w.phase != Phase::Running, "the throttle was never seen");
    };
    assert!(matches!(e.kind(), ErrorKind::Throttled { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(MAX_SERVER_DELAY));
    // What the scanner does with it stays in range.
    let _ = time::OffsetDateTime::now_utc() + e.retry_after().unwrap();
}
