//! `skyfleet`: the command line of the skyfleet SDK.
//!
//! - `skyfleet demo`: a fleet on the embedded mock cloud and SQLite;
//! - `skyfleet mock`: serve the mock cloud;
//! - `skyfleet run --config fleet.toml`: run a fleet;
//! - `skyfleet workers`, `skyfleet errors`: read the store;
//! - `skyfleet bench <scenario> --json`: benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use skyfleet_core::store::WorkerFilter;
use skyfleet_core::Phase;

mod bench;
mod config;
mod demo;
mod mock_clouds;
mod mockctl;
mod providers;
mod run;
mod wait;

/// Provision fleets of cloud workers on AWS, Google Cloud, Azure and static
/// machines, or try it all on the built-in mock cloud.
#[derive(Debug, Parser)]
#[command(name = "skyfleet", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a demo fleet on the embedded mock cloud (AWS, GCP and Azure pools)
    /// with a SQLite store: provision N workers per pool with progress bars,
    /// tear them down, and print a summary. Exits 1 if anything leaked.
    Demo {
        /// Workers per pool.
        #[arg(long, default_value_t = 10)]
        workers: u32,
        /// Faults the mock injects.
        #[arg(long, value_enum, default_value_t = demo::Faults::None)]
        faults: demo::Faults,
        /// Print the summary as one JSON object instead of bars and a table.
        #[arg(long)]
        json: bool,
        /// Store URL (default: SQLite in a temporary directory).
        #[arg(long)]
        store: Option<String>,
        /// Give up on each phase after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_s: u64,
    },
    /// Serve the mock cloud (EC2, ARM and Compute Engine on one address).
    Mock {
        /// Address to listen on (loopback unless --allow-non-loopback).
        #[arg(long, default_value = "127.0.0.1:8600")]
        listen: SocketAddr,
        /// Serve HTTPS with a self-signed certificate (Azure SDKs need it).
        #[arg(long)]
        tls: bool,
        /// Write the certificate PEM here (with --tls).
        #[arg(long, requires = "tls")]
        cert_out: Option<PathBuf>,
        /// Allow a non-loopback listen address (the mock has no auth).
        #[arg(long)]
        allow_non_loopback: bool,
    },
    /// Run a fleet from a config file until SIGINT or SIGTERM, then release
    /// its leases and stop.
    Run {
        /// The fleet config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Store URL, overriding the config's `fleet.store`.
        #[arg(long)]
        store: Option<String>,
        /// Serve Prometheus metrics on this address (`/metrics`): workers
        /// per pool and phase, steps, step latency, API calls by class and
        /// status.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
    },
    /// List workers in a store.
    Workers {
        /// Store URL.
        #[arg(long, default_value = "sqlite:skyfleet.db")]
        store: String,
        /// Only this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only this phase (requested, running, stopping, stopped, failed).
        #[arg(long)]
        phase: Option<String>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List a pool's recent errors.
    Errors {
        /// Store URL.
        #[arg(long, default_value = "sqlite:skyfleet.db")]
        store: String,
        /// The pool.
        #[arg(long)]
        pool: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Run a benchmark scenario and print one JSON object.
    Bench {
        #[command(subcommand)]
        scenario: bench::Scenario,
    },
}

fn init_tracing(quiet: bool) {
    // aws-smithy's connection-poisoning interceptor logs an error whenever a
    // retryable failure happens on a connector that does not expose its
    // connection (ours sends through the shared tower stack, which manages
    // its own pool): noise, not a fault, so it is silenced by default.
    let default = if quiet {
        "error,aws_smithy_runtime::client::http::connection_poisoning=off"
    } else {
        "warn,aws_smithy_runtime::client::http::connection_poisoning=off"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The name of the runtime's threads (`/proc` shows it), by which `bench
/// azure` tells the CLI's CPU time from its mock's.
pub const RUNTIME_THREADS: &str = "sf-rt";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The one runtime: every command, every benchmark scenario runs on it.
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .thread_name(RUNTIME_THREADS)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skyfleet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Demo {
            workers,
            faults,
            json,
            store,
            timeout_s,
        } => {
            init_tracing(true);
            let args = demo::DemoArgs {
                workers,
                faults,
                json,
                store,
                timeout: Duration::from_secs(timeout_s),
            };
            match demo::run(args).await {
                Ok(summary) => {
                    if json {
                        match serde_json::to_string(&summary) {
                            Ok(s) => println!("{s}"),
                            Err(e) => {
                                eprintln!("skyfleet demo: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    } else {
                        demo::print_table(&summary);
                    }
                    if summary.leaked_resources > 0
                        || summary.duplicate_vms > 0
                        || summary.unconverged_workers > 0
                    {
                        eprintln!(
                            "skyfleet demo: {} leaked resources, {} unconverged workers",
                            summary.leaked_resources, summary.unconverged_workers
                        );
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!("skyfleet demo: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Mock {
            listen,
            tls,
            cert_out,
            allow_non_loopback,
        } => {
            init_tracing(false);
            mock(listen, tls, cert_out, allow_non_loopback).await
        }
        Command::Run {
            config,
            store,
            metrics_listen,
        } => {
            init_tracing(false);
            if let Some(addr) = metrics_listen {
                if let Err(e) = metrics_exporter_prometheus::PrometheusBuilder::new()
                    .with_http_listener(addr)
                    .install()
                {
                    eprintln!("skyfleet run: --metrics-listen {addr}: {e}");
                    return ExitCode::from(2);
                }
            }
            run::run(&config, store).await
        }
        Command::Workers {
            store,
            pool,
            phase,
            json,
        } => workers(&store, pool, phase, json).await,
        Command::Errors { store, pool, limit } => errors(&store, &pool, limit).await,
        Command::Bench { scenario } => {
            init_tracing(true);
            bench::run(scenario).await
        }
    }
}

async fn mock(listen: SocketAddr, tls: bool, cert_out: Option<PathBuf>, allow: bool) -> ExitCode {
    let mock = match skyfleet_mock::MockCloud::builder()
        .listen(listen)
        .tls(tls)
        .allow_non_loopback(allow)
        .start()
        .await
    {
        Ok(m) => m,
        Err(e @ skyfleet_mock::MockError::NonLoopback(_)) => {
            eprintln!("skyfleet mock: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("skyfleet mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Some(pem)) = (&cert_out, mock.cert_pem()) {
        if let Err(e) = std::fs::write(path, pem) {
            eprintln!("skyfleet mock: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{}", mock.url());
    let _ = tokio::signal::ctrl_c().await;
    mock.shutdown().await;
    ExitCode::SUCCESS
}

async fn open_store(url: &str) -> Result<Arc<dyn skyfleet_core::WorkerStore>, ExitCode> {
    skyfleet_core::store::open(url).await.map_err(|e| {
        eprintln!("skyfleet: store {url}: {e}");
        ExitCode::from(2)
    })
}

async fn workers(url: &str, pool: Option<String>, phase: Option<String>, json: bool) -> ExitCode {
    let store = match open_store(url).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    let mut filter = WorkerFilter {
        pool_id: pool,
        ..Default::default()
    };
    if let Some(p) = phase {
        match Phase::parse(&p) {
            Ok(p) => filter.phases = vec![p],
            Err(_) => {
                eprintln!(
                    "skyfleet workers: --phase `{p}`: expected one of requested, running, stopping, stopped, failed"
                );
                return ExitCode::from(2);
            }
        }
    }
    let ws = match store.list_workers(&filter).await {
        Ok(w) => w,
        Err(e) => {
            eprintln!("skyfleet workers: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        match serde_json::to_string_pretty(&ws) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("skyfleet workers: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<40} {:<20} {:<14} {:<16} {:<10} {:<8} last error",
        "worker", "pool", "provider", "partition", "phase", "desired"
    );
    for w in ws {
        println!(
            "{:<40} {:<20} {:<14} {:<16} {:<10} {:<8} {}",
            w.id(),
            w.spec.pool_id,
            w.spec.provider_id,
            w.partition.as_deref().unwrap_or("-"),
            w.phase.as_str(),
            format!("{:?}", w.desired).to_lowercase(),
            w.last_error
                .as_ref()
                .map(|e| format!("{}: {}", e.kind, e.message))
                .unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

async fn errors(url: &str, pool: &str, limit: usize) -> ExitCode {
    let store = match open_store(url).await {
        Ok(s) => s,
        Err(c) => return c,
    };
    match store.list_pool_errors(pool, limit).await {
        Ok(v) => {
            for e in v {
                println!(
                    "{}  {:<18} {:<10} {}  {}",
                    e.reported_at,
                    e.kind.name(),
                    e.launch_config_id.unwrap_or_default(),
                    e.title,
                    e.message
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("skyfleet errors: {e}");
            ExitCode::FAILURE
        }
    }
}
