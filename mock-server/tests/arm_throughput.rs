//! Rough in-process throughput of the two hot ARM calls (VM GET and an
//! operation-status poll), without sockets. Ignored by default; run with
//! `cargo test -p skyfleet-mock --test arm_throughput -- --ignored --nocapture`.

mod arm_support;

use std::time::{Duration, Instant};

use arm_support::*;
use http::{Method, StatusCode};

async fn rate(r: &axum::Router, uri: &str) -> f64 {
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < Duration::from_secs(1) {
        let a = send(r, Method::GET, uri, None).await;
        assert_eq!(a.status, StatusCode::OK);
        n += 1;
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

#[tokio::test]
#[ignore = "measurement, not a check"]
async fn vm_get_and_operation_poll_rates() {
    // Everything up to the VM finishes at once; the VM create runs an hour,
    // so its status poll reads a running operation.
    let (ctx, _arm, r) = arm(0.0, 3600.0);
    let sub = "perf";
    network(&r, sub).await;
    let nic = put_done(
        &r,
        &res_path(sub, "Microsoft.Network/networkInterfaces", "n"),
        nic_body(sub, None, false),
    )
    .await;
    ctx.set_time_scale(1.0).unwrap();
    let a = send(
        &r,
        Method::PUT,
        &u(&res_path(sub, "Microsoft.Compute/virtualMachines", "v")),
        Some(vm_image_body(nic.body["id"].as_str().unwrap(), true)),
    )
    .await;
    let op = path_of(a.header("azure-asyncoperation").unwrap());
    let vm = u(&res_path(sub, "Microsoft.Compute/virtualMachines", "v"));
    println!("VM GET: {:.0}/s", rate(&r, &vm).await);
    println!("operation poll: {:.0}/s", rate(&r, &op).await);
}
