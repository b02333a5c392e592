//! ARM under `time_scale`: the polling hints are scaled (a sub-second one
//! sent as `retry-after-ms` alone, never `Retry-After: 0`), never longer
//! than the time the operation has left, and an operation is reported done
//! on the first poll after its scaled duration.

mod arm_support;

use std::time::Duration;

use arm_support::*;
use http::{Method, StatusCode};
use tokio::time::Instant;

const SUB: &str = "sub-ts";
const PIP: &str = "Microsoft.Network/publicIPAddresses";

fn ms(a: &Answer) -> u64 {
    a.header("retry-after-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no retry-after-ms: {:?}", a.headers))
}

#[tokio::test]
async fn a_scaled_operation_is_done_on_the_first_poll_after_its_scaled_duration() {
    // Every operation takes 10 s unscaled, 100 ms at time_scale 0.01; the
    // 2 s polling hint is 20 ms.
    let (_ctx, arm, r) = arm(0.01, 10.0);
    let mut cfg = config(10.0);
    cfg.retry_after_s = 2;
    arm.set_config(cfg);
    network(&r, SUB).await;
    let pip = res_path(SUB, PIP, "pip1");

    let a = send(&r, Method::PUT, &u(&pip), Some(pip_body())).await;
    let sent = Instant::now();
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(
        a.header("retry-after"),
        None,
        "no Retry-After under a second"
    );
    assert_eq!(ms(&a), 20);
    let op = path_of(a.header("azure-asyncoperation").unwrap());

    // Polled straight away: still running, the hint at most the time left.
    let p = send(&r, Method::GET, &op, None).await;
    assert_eq!(p.body["status"], "InProgress", "{}", p.body);
    assert_eq!(p.header("retry-after"), None);
    assert!((10..=20).contains(&ms(&p)), "{}", ms(&p));

    // The first poll after the scaled 100 ms: done, no hint, no tick to wait.
    tokio::time::sleep_until(sent + Duration::from_millis(100)).await;
    let p = send(&r, Method::GET, &op, None).await;
    assert_eq!(p.body["status"], "Succeeded", "{}", p.body);
    assert_eq!(p.header("retry-after-ms"), None);
    assert_eq!(p.header("retry-after"), None);
    let g = send(&r, Method::GET, &u(&pip), None).await;
    assert_eq!(g.state(), "Succeeded");

    // The same for a delete followed through Location.
    let d = send(&r, Method::DELETE, &u(&pip), None).await;
    let sent = Instant::now();
    assert_eq!(d.status, StatusCode::ACCEPTED);
    assert_eq!(d.header("retry-after"), None);
    assert_eq!(ms(&d), 20);
    let loc = path_of(d.header("location").unwrap());
    let l = send(&r, Method::GET, &loc, None).await;
    assert_eq!(l.status, StatusCode::ACCEPTED);
    assert!((10..=20).contains(&ms(&l)), "{}", ms(&l));
    tokio::time::sleep_until(sent + Duration::from_millis(100)).await;
    let l = send(&r, Method::GET, &loc, None).await;
    assert_eq!(l.status, StatusCode::NO_CONTENT);
    let g = send(&r, Method::GET, &u(&pip), None).await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_hint_is_cut_to_the_time_the_operation_has_left() {
    // A 60 s hint is 600 ms at time_scale 0.01, but the operation takes
    // 30 ms: the client is told to come back when it is done.
    let (_ctx, arm, r) = arm(0.01, 3.0);
    let mut cfg = config(3.0);
    cfg.retry_after_s = 60;
    arm.set_config(cfg);
    network(&r, SUB).await;
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(SUB, PIP, "pip2")),
        Some(pip_body()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.header("retry-after"), None);
    assert!((10..=30).contains(&ms(&a)), "{}", ms(&a));
}

#[tokio::test]
async fn a_hint_of_a_second_or_more_carries_both_headers() {
    // time_scale 0.5: the 3 s hint is 1.5 s, sent as Retry-After 2 (whole
    // seconds, rounded up) and retry-after-ms 1500.
    let (_ctx, arm, r) = arm(0.5, 10.0);
    let mut cfg = config(10.0);
    cfg.retry_after_s = 3;
    arm.set_config(cfg);
    let a = send(
        &r,
        Method::PUT,
        &u(&rg_path(SUB)),
        Some(serde_json::json!({"location": "eastus"})),
    )
    .await;
    assert!(a.status.is_success());
    let d = send(&r, Method::DELETE, &u(&rg_path(SUB)), None).await;
    assert_eq!(d.status, StatusCode::ACCEPTED);
    assert_eq!(d.header("retry-after"), Some("2"));
    assert_eq!(d.header("retry-after-ms"), Some("1500"));
}
