//! `skyfleet status`: a fleet at a glance, from a process separate from it.
//!
//! The store gives each pool's bounds and target (the provisioner's last
//! decision), its workers by state, its errors of the last hour by kind,
//! the launch configs avoided after capacity errors and the oldest worker
//! still requested. The replicas' `/metrics` endpoints (`--metrics`, any
//! number, summed) give each provider partition's scanner lag p99 and the
//! API calls per minute by class, from the change between two scrapes: a
//! one-shot status samples for `--sample` seconds; `--watch` uses the
//! scrapes of the last five minutes.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;

use crate::inspect::{open_store, print_json};
use crate::store_url;

mod prom;
mod render;
mod report;

pub use report::{unavailable_of, Unavailable};

/// How far back `--watch` computes rates and lag from.
const WATCH_WINDOW: Duration = Duration::from_secs(300);

/// `skyfleet status`'s arguments.
#[derive(Debug, Clone)]
pub struct StatusArgs {
    /// Store URL.
    pub store: String,
    /// One JSON object (per redraw with `--watch`).
    pub json: bool,
    /// Redraw every `interval`.
    pub watch: bool,
    /// Time between redraws.
    pub interval: Duration,
    /// Metrics endpoints of the replicas.
    pub metrics: Vec<String>,
    /// Sampling window of a one-shot status with metrics.
    pub sample: Duration,
}

fn client() -> Result<reqwest::Client, ExitCode> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| {
            eprintln!("skyfleet status: HTTP client: {e}");
            ExitCode::FAILURE
        })
}

/// Prints a redraw: one JSON line, or the screen cleared and the text.
fn redraw(report: &report::Report, json: bool) -> bool {
    if json {
        return match serde_json::to_string(report) {
            Ok(s) => {
                println!("{s}");
                true
            }
            Err(e) => {
                eprintln!("skyfleet status: {e}");
                false
            }
        };
    }
    // Clear the screen and go home, as `watch` does.
    print!("\x1b[2J\x1b[H{}", render::text(report));
    true
}

/// Runs `skyfleet status`.
pub async fn run(args: StatusArgs) -> ExitCode {
    let store = match open_store(&args.store).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let label = store_url::redacted(&args.store);
    let client = match client() {
        Ok(c) => c,
        Err(c) => return c,
    };
    if !args.watch {
        let metrics = if args.metrics.is_empty() {
            None
        } else {
            let (before, _) = report::round(&client, &args.metrics).await;
            tokio::time::sleep(args.sample).await;
            let (after, errors) = report::round(&client, &args.metrics).await;
            for e in &errors {
                eprintln!("skyfleet status: metrics {e}");
            }
            Some(report::from_metrics(&args.metrics, &before, &after))
        };
        let mut r =
            match report::from_store(store.as_ref(), &label, OffsetDateTime::now_utc()).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("skyfleet status: {e}");
                    return ExitCode::FAILURE;
                }
            };
        r.metrics = metrics;
        if args.json {
            return print_json("status", &r);
        }
        print!("{}", render::text(&r));
        return ExitCode::SUCCESS;
    }
    // Rounds of the last WATCH_WINDOW, oldest first (bounded by the window
    // over the interval, which is at least a second).
    let keep = (WATCH_WINDOW.as_secs() / args.interval.as_secs().max(1)) as usize + 2;
    let mut rounds: VecDeque<prom::Round> = VecDeque::with_capacity(keep);
    loop {
        let mut r =
            match report::from_store(store.as_ref(), &label, OffsetDateTime::now_utc()).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("skyfleet status: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(args.interval) => continue,
                        _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
                    }
                }
            };
        if !args.metrics.is_empty() {
            let (now, _) = report::round(&client, &args.metrics).await;
            rounds.push_back(now);
            while rounds.len() > keep || rounds.len() > 2 && rounds[1].at.elapsed() >= WATCH_WINDOW
            {
                rounds.pop_front();
            }
            if let (Some(first), Some(last)) = (rounds.front(), rounds.back()) {
                r.metrics = Some(report::from_metrics(&args.metrics, first, last));
            }
        }
        if !redraw(&r, args.json) {
            return ExitCode::FAILURE;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}
