//! Limiter benchmark: does one limit shared by several clones hold under
//! saturation, and what does the whole stack cost per request?
//!
//! ```text
//! cargo run --release -p skyfleet -- bench limiter --json
//! ```
//!
//! 1. Saturation: `--clones` (8) clones of one [`Transport`], each driven by
//!    `--tasks` (8) looping callers, share a limit of `--rps` (1000/s, burst
//!    `--burst`, 20) on one key for `--secs` (10 s) against an axum server on
//!    127.0.0.1. The server counts what it receives in the window:
//!    `observed_rps = received / secs`, `ratio = observed / configured`
//!    (target 0.95..=1.01; the initial burst adds `burst / secs` calls/s).
//! 2. Overhead: `--requests` (3000) sequential GETs through the bare reqwest
//!    client and as many through the whole stack (limits far above the load,
//!    so nothing waits), interleaved in batches of 100 to cancel drift; the
//!    medians and `overhead_share = (stack - bare) / bare` (target < 0.10).
//!
//! 3. The stack's own CPU cost per call, over an in-process service that
//!    answers at once (`stack_only_us`, mean of 20 000 calls).
//!
//! Prints one JSON object with `--json`, a readable summary otherwise. Every
//! figure is measured in this run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use skyfleet_core::transport::{
    ApiClass, Key, Limit, RequestExt, ReqwestService, Transport, TransportConfig,
};
use tower::ServiceExt;

use super::harness::{BenchError, Report};
use super::stats::Distribution;

/// Options of `skyfleet bench limiter`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The shared limit, calls per second.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    rps: u32,
    /// The limit's burst.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    burst: u32,
    /// Seconds of saturation.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    secs: u64,
    /// Clones of the transport sharing the limit.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    clones: usize,
    /// Looping callers per clone.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    tasks: usize,
    /// Sequential requests for the overhead measurement.
    #[arg(long, default_value_t = 3000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    requests: usize,
}

fn key() -> Key {
    Key::new("bench", "account", "loopback", ApiClass::Read)
}

fn request(url: &str) -> Request<Bytes> {
    // The URL was built from a socket address: always a valid request.
    Request::get(url)
        .body(Bytes::new())
        .expect("valid request")
        .with_key(key())
        .with_operation("Get")
}

/// Runs `skyfleet bench limiter`.
pub async fn run(args: &Args) -> Result<Report, BenchError> {
    let received = Arc::new(AtomicU64::new(0));
    let r = received.clone();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            r.fetch_add(1, Ordering::Relaxed);
            async { "ok" }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // 1. Saturation.
    let config = TransportConfig::default()
        .with_limit(
            "bench",
            ApiClass::Read,
            Limit::per_second(args.rps, args.burst),
        )
        .with_max_concurrency(args.clones * args.tasks);
    let transport = Transport::builder().config(config).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    let start_count = received.load(Ordering::SeqCst);
    let start = Instant::now();
    for _ in 0..args.clones {
        let clone = transport.clone();
        for _ in 0..args.tasks {
            let (t, stop, url) = (clone.clone(), stop.clone(), url.clone());
            workers.push(tokio::spawn(async move {
                let mut failures = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if t.send(request(&url)).await.is_err() {
                        failures += 1;
                    }
                }
                failures
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let in_window = received.load(Ordering::SeqCst) - start_count;
    let window = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let mut failures = 0;
    for w in workers {
        failures += w.await?;
    }
    let observed_rps = in_window as f64 / window;
    let ratio = observed_rps / f64::from(args.rps);

    // 2. Overhead on loopback, one request at a time.
    let fast = TransportConfig::default().with_limit(
        "bench",
        ApiClass::Read,
        Limit::per_second(1_000_000, 1_000_000),
    );
    let stack = Transport::builder().config(fast.clone()).build()?;
    let bare = ReqwestService::from_config(&fast)?;
    let (mut bare_lat, mut stack_lat) = (Vec::new(), Vec::new());
    // Warm both connection pools.
    for _ in 0..50 {
        bare.clone().oneshot(request(&url)).await?;
        stack.send(request(&url)).await?;
    }
    let batch = 100;
    while bare_lat.len() < args.requests {
        for _ in 0..batch {
            let t0 = Instant::now();
            bare.clone().oneshot(request(&url)).await?;
            bare_lat.push(t0.elapsed());
        }
        for _ in 0..batch {
            let t0 = Instant::now();
            stack.send(request(&url)).await?;
            stack_lat.push(t0.elapsed());
        }
    }
    let samples = bare_lat.len();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let median_us = |v: Vec<Duration>| Distribution::new(v.into_iter().map(us).collect()).median();
    let bare_median = median_us(bare_lat).unwrap_or(f64::NAN);
    let stack_median = median_us(stack_lat).unwrap_or(f64::NAN);
    let overhead = stack_median - bare_median;
    let share = overhead / bare_median;

    // 3. The stack's own cost, without a network: the same stack over an
    // in-process service that answers at once.
    let instant = tower::service_fn(|_req: Request<Bytes>| async {
        Ok::<_, skyfleet_core::Error>(http::Response::new(Bytes::new()))
    });
    let in_process = Transport::builder().config(fast).build_with(instant)?;
    let n = 20_000u32;
    for _ in 0..1000 {
        in_process.send(request(&url)).await?;
    }
    let t0 = Instant::now();
    for _ in 0..n {
        in_process.send(request(&url)).await?;
    }
    let stack_only_us = us(t0.elapsed()) / f64::from(n);

    let snapshot = transport.metrics().snapshot().get(&key());
    let out = serde_json::json!({
        "bench": "limiter",
        "configured_rps": args.rps,
        "burst": args.burst,
        "observed_rps": (observed_rps * 10.0).round() / 10.0,
        "ratio": (ratio * 10000.0).round() / 10000.0,
        "clones": args.clones,
        "callers": args.clones * args.tasks,
        "window_s": (window * 1000.0).round() / 1000.0,
        "received_in_window": in_window,
        "stack_calls": snapshot.calls,
        "failed_calls": failures,
        "overhead_samples": samples,
        "bare_median_us": (bare_median * 10.0).round() / 10.0,
        "stack_median_us": (stack_median * 10.0).round() / 10.0,
        "overhead_us": (overhead * 10.0).round() / 10.0,
        "overhead_share": (share * 10000.0).round() / 10000.0,
        "stack_only_us": (stack_only_us * 100.0).round() / 100.0,
    });
    let text = format!(
        "saturation: {} clones x {} callers, configured {} rps (burst {}), observed {:.1} rps over {:.2} s, ratio {:.4}\n\
         overhead: bare reqwest median {:.1} us, whole stack median {:.1} us, +{:.1} us ({:.1} %) over {} sequential requests each",
        args.clones, args.tasks, args.rps, args.burst, observed_rps, window, ratio,
        bare_median, stack_median, overhead, share * 100.0, samples
    );
    Ok(Report {
        value: out,
        ok: true,
        text: Some(text),
    })
}
