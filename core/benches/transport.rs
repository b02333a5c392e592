//! Per-request overhead of the transport stack against the bare reqwest
//! client on loopback: the overhead half of `skyfleet bench limiter`, in the
//! core crate so it builds in a minute instead of the CLI's fifteen, for
//! profiling (`valgrind --tool=callgrind`, `strace -c -f`).
//!
//! ```text
//! cargo bench -p skyfleet-core --bench transport -- [both|bare|stack|inproc] [N]
//! ```
//!
//! `both` (default) interleaves batches of 100 bare and stack GETs and
//! prints the medians; `bare` or `stack` runs only one path (to compare
//! syscall or instruction counts of the two); `inproc` runs the stack over
//! an in-process service (its own CPU cost). Same runtime shape as the CLI
//! bench: a two-worker multi-thread runtime, the caller in `block_on`, the
//! axum server spawned on the workers, and a global tracing subscriber that
//! enables nothing (the CLI installs one filtering at `error`; without any,
//! tracing's `log` fallback would run for every disabled span and inflate
//! the stack's cost).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use skyfleet_core::transport::{
    ApiClass, Key, Limit, RequestExt, ReqwestService, Transport, TransportConfig,
};
use tower::ServiceExt;

fn request(url: &str) -> Request<Bytes> {
    Request::get(url)
        .body(Bytes::new())
        .expect("valid request")
        .with_key(Key::new("bench", "account", "loopback", ApiClass::Read))
        .with_operation("Get")
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2].as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args.first().cloned().unwrap_or_else(|| "both".to_owned());
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let fast = TransportConfig::default().with_limit(
            "bench",
            ApiClass::Read,
            Limit::per_second(1_000_000, 1_000_000),
        );
        let stack = Transport::builder()
            .config(fast.clone())
            .build()
            .expect("stack");
        let bare = ReqwestService::from_config(&fast).expect("client");
        for _ in 0..50 {
            bare.clone().oneshot(request(&url)).await.expect("bare");
            stack.send(request(&url)).await.expect("stack");
        }
        match mode.as_str() {
            "bare" => {
                for _ in 0..n {
                    bare.clone().oneshot(request(&url)).await.expect("bare");
                }
            }
            "stack" => {
                for _ in 0..n {
                    stack.send(request(&url)).await.expect("stack");
                }
            }
            "inproc" => {
                let instant = tower::service_fn(|_req: Request<Bytes>| async {
                    Ok::<_, skyfleet_core::Error>(http::Response::new(Bytes::new()))
                });
                let t = Transport::builder()
                    .config(fast)
                    .build_with(instant)
                    .expect("stack");
                let t0 = Instant::now();
                for _ in 0..n {
                    t.send(request(&url)).await.expect("inproc");
                }
                println!(
                    "inproc: {:.2} us/call",
                    t0.elapsed().as_secs_f64() * 1e6 / n as f64
                );
            }
            _ => {
                let (mut b, mut s) = (Vec::new(), Vec::new());
                while b.len() < n {
                    for _ in 0..100 {
                        let t0 = Instant::now();
                        bare.clone().oneshot(request(&url)).await.expect("bare");
                        b.push(t0.elapsed());
                    }
                    for _ in 0..100 {
                        let t0 = Instant::now();
                        stack.send(request(&url)).await.expect("stack");
                        s.push(t0.elapsed());
                    }
                }
                let (bm, sm) = (median(b), median(s));
                println!(
                    "bare {bm:.1} us, stack {sm:.1} us, overhead {:.1} us = {:.1} %",
                    sm - bm,
                    (sm - bm) / bm * 100.0
                );
            }
        }
    });
}
