//! `skyfleet bench <scenario> --json`: every benchmark scenario that needs
//! more than one crate (see BENCHMARKS.md): the shared limiter, the Azure
//! chain, AWS and GCP providers, identity verification, scale-in,
//! capacity (spot, stockouts, interruptions), isolation, crash and soak.
//!
//! Every scenario runs on the CLI's one runtime and prints one [`harness::Report`];
//! the provider scenarios step workers through the one drive loop
//! ([`drive`]), read the mock through [`crate::mockctl`] and compute their
//! figures with [`stats`]. Each cloud's module keeps only its fixtures:
//! arguments, worker launch, provider construction, crash model.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub mod aws;
pub mod azure;
mod capacity;
mod crash;
mod drive;
pub mod gcp;
mod harness;
pub mod identity;
mod isolation;
pub mod limiter;
mod scale;
pub(crate) mod scale_in;
mod soak;
pub mod stats;

use harness::BenchError;

/// A benchmark scenario.
#[derive(Debug, clap::Subcommand)]
pub enum Scenario {
    /// The shared rate limit under saturation (clones sharing one limit)
    /// and the transport stack's overhead over bare reqwest on loopback.
    Limiter(limiter::Args),
    /// The Azure chain: provision and tear down N workers against the
    /// in-process mock; calls per worker against the minimum, time-to-running
    /// overhead, CPU per worker, leaks and duplicates.
    Azure(azure::Args),
    /// The AWS provider: create, check (batched) and delete N workers on the
    /// mock; calls per worker, leaks, duplicates.
    Aws(aws::Args),
    /// The GCP provider: create, check (batched) and delete N workers on the
    /// mock; calls per worker, leaks, duplicates.
    Gcp(gcp::Args),
    /// Worker identity proofs: verifications per second per cloud on one
    /// core with warm caches, p50/p99, and p99 with cold caches.
    Identity(identity::Args),
    /// Scale-in under swinging load: up to N AWS workers on the mock, each
    /// with a simulated agent running simulated tasks; busy workers
    /// terminated, tasks lost, idle capacity against `min_idle`, and the
    /// time from a drop in load to the surplus gone.
    ScaleIn(scale_in::Args),
    /// Capacity that survives the cloud saying no: a pool per cloud over
    /// six spot and on-demand offerings, two stocked out for part of the
    /// run and spot workers interrupted at random; coverage, spot share,
    /// notice-to-replacement times, creates to marked offerings, leaks.
    Capacity(capacity::Args),
    /// The whole runtime at fleet size against a mock in its own process:
    /// due-check lag, calls per check, time to running, CPU per
    /// worker-hour and memory per worker, out-of-band deletes noticed,
    /// leaks and duplicates.
    Scale(scale::Args),
    /// Pools on all three mock clouds; every Azure call hangs. Compares the
    /// AWS and GCP time to running with and without the hung Azure, and
    /// checks that the Azure workers are removed at their provisioning
    /// deadline without a leak.
    Isolation {
        /// Workers per pool.
        #[arg(long, default_value_t = 20)]
        workers: u32,
        /// Print JSON (the only output format; accepted for uniformity).
        #[arg(long)]
        json: bool,
    },
    /// Runs a fleet as a child process against a standalone mock and
    /// SIGKILLs it at random (seeded) moments during provisioning and
    /// teardown, restarting it each time from the same SQLite store; then
    /// lets it converge and counts leaks, duplicates and unconverged workers.
    Crash {
        /// How many times to kill the fleet (seven in eight while a
        /// mutating call is in flight, one at a random moment).
        #[arg(long, default_value_t = 20)]
        kills: u32,
        /// Kills per phase: scale-out and teardown phases alternate, each
        /// converging without kills after its own, until the kills are
        /// spent (0: one of each, half the kills each).
        #[arg(long, default_value_t = 0)]
        kills_per_phase: u32,
        /// Workers per cloud.
        #[arg(long, default_value_t = 10)]
        workers: u32,
        /// RNG seed for the kill moments.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Faults the mock injects: `none`, or `broken` (every create
        /// fails: the bench must fail, since no worker reaches running).
        #[arg(long, value_enum, default_value_t = crate::demo::Faults::None)]
        faults: crate::demo::Faults,
        /// Give up on each phase's convergence after this many seconds
        /// (the run then fails).
        #[arg(long, default_value_t = 240)]
        converge_timeout_s: u64,
        /// Print JSON (the only output format).
        #[arg(long)]
        json: bool,
    },
    /// The demo under the mixed fault soak (10 % 5xx, 5 % throttles, 1 %
    /// hangs, 5 % failed async operations, eventual-consistency 404s):
    /// provisions and tears down W workers per cloud.
    Soak {
        /// Workers per cloud.
        #[arg(long, default_value_t = 100)]
        workers: u32,
        /// The fault mix: `mixed`, or `broken` (every create fails: the
        /// soak must fail).
        #[arg(long, default_value = "mixed")]
        faults: String,
        /// Give up on each phase after this many seconds.
        #[arg(long, default_value_t = 900)]
        timeout_s: u64,
        /// Print JSON (the only output format).
        #[arg(long)]
        json: bool,
    },
    /// (internal) The child process of `bench crash`.
    #[command(hide = true)]
    CrashChild {
        /// The mock's URL.
        #[arg(long)]
        mock_url: String,
        /// The mock's certificate (PEM file).
        #[arg(long)]
        cert: PathBuf,
        /// The SQLite file.
        #[arg(long)]
        store: PathBuf,
        /// Workers per cloud wanted (0 tears down).
        #[arg(long)]
        workers: u32,
    },
}

/// Runs a scenario and prints its report.
pub async fn run(scenario: Scenario) -> ExitCode {
    let (result, json) = match scenario {
        Scenario::Limiter(args) => (limiter::run(&args).await, args.json),
        Scenario::Azure(args) => (azure::run(&args).await, args.json),
        Scenario::Aws(args) => (aws::run(&args).await, args.json),
        Scenario::Gcp(args) => (gcp::run(&args).await, args.json),
        Scenario::Identity(args) => (identity::run(&args).await, args.json),
        Scenario::ScaleIn(args) => (scale_in::run(&args).await, args.json),
        Scenario::Capacity(args) => (capacity::run(&args).await, args.json),
        Scenario::Scale(args) => (scale::run(&args).await, args.json),
        Scenario::Isolation { workers, .. } => (isolation::run(workers).await, true),
        Scenario::Crash {
            kills,
            kills_per_phase,
            workers,
            seed,
            faults,
            converge_timeout_s,
            ..
        } => (
            crash::run(crash::CrashArgs {
                kills,
                kills_per_phase,
                workers,
                seed,
                faults,
                converge_timeout: Duration::from_secs(converge_timeout_s),
            })
            .await,
            true,
        ),
        Scenario::Soak {
            workers,
            faults,
            timeout_s,
            ..
        } => (soak::run(workers, &faults, timeout_s).await, true),
        Scenario::CrashChild {
            mock_url,
            cert,
            store,
            workers,
        } => return crash::child(mock_url, cert, store, workers).await,
    };
    match result {
        Ok(report) => report.print(json),
        Err(BenchError::Usage(e)) => {
            eprintln!("skyfleet bench: {e}");
            ExitCode::from(2)
        }
        Err(BenchError::Failed(e)) => {
            eprintln!("skyfleet bench: {e}");
            ExitCode::FAILURE
        }
    }
}
