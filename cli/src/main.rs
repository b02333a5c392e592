//! `skyfleet`: the command line of the skyfleet SDK.
//!
//! - `skyfleet demo`: a fleet on the embedded mock cloud and SQLite;
//! - `skyfleet mock`: serve the mock cloud;
//! - `skyfleet run --config fleet.toml`: run a fleet;
//! - `skyfleet status`, `skyfleet workers`, `skyfleet errors`: read the store
//!   (and the replicas' metrics);
//! - `skyfleet remove`: mark workers for removal by an operator;
//! - `skyfleet bench <scenario> --json`: benchmarks.
//!
//! `--log-level` and `--log-format` apply to every command (see
//! [`logging`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use logging::{LogFormat, LogLevel};

mod bench;
mod config;
mod demo;
mod inspect;
mod logging;
mod mock_clouds;
mod mockctl;
mod private_file;
mod providers;
mod run;
mod status;
mod store_url;
mod sweep;
mod wait;
mod worker_api;

/// Provision fleets of cloud workers on AWS, Google Cloud, Azure and static
/// machines, or try it all on the built-in mock cloud.
#[derive(Debug, Parser)]
#[command(name = "skyfleet", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level of skyfleet's own lines (others log warnings only);
    /// `RUST_LOG`, when set, wins. Default: info for `run` and `mock`,
    /// error for `demo` and `bench`, warn otherwise.
    #[arg(long, global = true, value_enum)]
    log_level: Option<LogLevel>,
    /// Log line format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a demo fleet on the embedded mock cloud (AWS, GCP and Azure pools)
    /// with a SQLite store: provision N workers per pool with progress bars,
    /// run an agent on each that registers and takes simulated tasks, drain
    /// them when the queues empty, and print a summary. Exits 1 if anything
    /// leaked or a busy worker was killed.
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
        /// Allow a non-loopback listen address. Requires --control-token.
        #[arg(long)]
        allow_non_loopback: bool,
        /// Require `Authorization: Bearer TOKEN` on the control API
        /// (`/_mock/...`; the dashboard at /_mock/ui asks for it once).
        #[arg(long, env = "SKYFLEET_MOCK_CONTROL_TOKEN", hide_env_values = true)]
        control_token: Option<ControlToken>,
    },
    /// Run a fleet from a config file until SIGINT or SIGTERM, then release
    /// its leases and stop.
    Run {
        /// The fleet config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Store URL, overriding the config's `fleet.store`.
        #[arg(long, env = "SKYFLEET_STORE", hide_env_values = true)]
        store: Option<String>,
        /// Serve Prometheus metrics on this address (`/metrics`): workers
        /// per pool and phase, steps, step latency, API calls by class and
        /// status.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// Allow a non-loopback --metrics-listen address (the endpoint has
        /// no authentication).
        #[arg(long, requires = "metrics_listen")]
        metrics_public: bool,
        /// The worker API.
        #[command(flatten)]
        api: worker_api::ApiArgs,
    },
    /// One orphan sweep of a fleet config's providers, now: every resource
    /// carrying the config's manager id with its verdict (live, foreign,
    /// unclaimed, waiting, held back, would delete, deleted, adopted), and
    /// a summary. Exits 1 if a listing, deletion or adoption failed.
    Sweep {
        /// The fleet config (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Store URL, overriding the config's `fleet.store`.
        #[arg(long)]
        store: Option<String>,
        /// Change nothing: print what would be deleted (or adopted).
        #[arg(long)]
        dry_run: bool,
        /// Tag unclaimed resources (no store id) of this store's live
        /// workers with the store's id; delete nothing.
        #[arg(long)]
        adopt: bool,
    },
    /// List workers in a store: phase, last transition and removal reason.
    Workers {
        /// Store URL.
        #[arg(
            long,
            env = "SKYFLEET_STORE",
            hide_env_values = true,
            default_value = "sqlite:skyfleet.db"
        )]
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
    /// A pool's errors: counts by kind over the last hour, then the most
    /// recent entries.
    Errors {
        /// Store URL.
        #[arg(
            long,
            env = "SKYFLEET_STORE",
            hide_env_values = true,
            default_value = "sqlite:skyfleet.db"
        )]
        store: String,
        /// The pool.
        #[arg(long)]
        pool: String,
        /// At most this many recent entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A fleet at a glance: per pool its bounds, target and workers by
    /// state, errors of the last hour, avoided launch configs and the oldest
    /// requested worker; with --metrics, scanner lag and API calls per
    /// minute from the replicas.
    Status {
        /// Store URL.
        #[arg(
            long,
            env = "SKYFLEET_STORE",
            hide_env_values = true,
            default_value = "sqlite:skyfleet.db"
        )]
        store: String,
        /// One JSON object (one per line with --watch).
        #[arg(long)]
        json: bool,
        /// Redraw every --interval seconds until interrupted.
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
        /// A replica's metrics endpoint (`http://host:port`, as given to
        /// `run --metrics-listen`); repeat for several replicas.
        #[arg(long = "metrics", value_name = "URL", num_args = 1..)]
        metrics: Vec<String>,
        /// Seconds a one-shot status samples the metrics endpoints for.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        sample: u64,
    },
    /// Mark workers for removal (reason `operator`); the fleet stepping them
    /// tears them down.
    Remove {
        /// Store URL.
        #[arg(
            long,
            env = "SKYFLEET_STORE",
            hide_env_values = true,
            default_value = "sqlite:skyfleet.db"
        )]
        store: String,
        /// The workers.
        #[arg(required = true)]
        worker_ids: Vec<String>,
    },
    /// Run a benchmark scenario and print one JSON object.
    Bench {
        #[command(subcommand)]
        scenario: bench::Scenario,
    },
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
    let default_level = match cli.command {
        Command::Run { .. } | Command::Mock { .. } => LogLevel::Info,
        Command::Demo { .. } | Command::Bench { .. } => LogLevel::Error,
        _ => LogLevel::Warn,
    };
    logging::init(cli.log_level.unwrap_or(default_level), cli.log_format);
    let code = rt.block_on(dispatch(cli.command));
    // A task still stuck in a cloud or store call must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
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
                    if let Some(failures) = summary.failures() {
                        eprintln!("skyfleet demo: {failures}");
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
            control_token,
        } => mock(listen, tls, cert_out, allow_non_loopback, control_token).await,
        Command::Run {
            config,
            store,
            metrics_listen,
            metrics_public,
            api,
        } => {
            let metrics = run::MetricsArgs {
                listen: metrics_listen,
                public: metrics_public,
            };
            run::run(&config, store, metrics, api).await
        }
        Command::Sweep {
            config,
            store,
            dry_run,
            adopt,
        } => sweep::run(&config, store, dry_run, adopt).await,
        Command::Workers {
            store,
            pool,
            phase,
            json,
        } => inspect::workers(&store, pool, phase, json).await,
        Command::Errors {
            store,
            pool,
            limit,
            json,
        } => inspect::errors(&store, &pool, limit, json).await,
        Command::Status {
            store,
            json,
            watch,
            interval,
            metrics,
            sample,
        } => {
            status::run(status::StatusArgs {
                store,
                json,
                watch,
                interval: Duration::from_secs(interval),
                metrics,
                sample: Duration::from_secs(sample),
            })
            .await
        }
        Command::Remove { store, worker_ids } => inspect::remove(&store, &worker_ids).await,
        Command::Bench { scenario } => bench::run(scenario).await,
    }
}

/// The mock's control token from the command line; `Debug` never shows it.
#[derive(Clone)]
struct ControlToken(String);

impl std::str::FromStr for ControlToken {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ControlToken(s.to_string()))
    }
}

impl std::fmt::Debug for ControlToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

async fn mock(
    listen: SocketAddr,
    tls: bool,
    cert_out: Option<PathBuf>,
    allow: bool,
    token: Option<ControlToken>,
) -> ExitCode {
    let mut builder = skyfleet_mock::MockCloud::builder()
        .listen(listen)
        .tls(tls)
        .allow_non_loopback(allow);
    if let Some(ControlToken(token)) = token {
        builder = builder.control_token(token);
    }
    let mock = match builder.start().await {
        Ok(m) => m,
        Err(
            e @ (skyfleet_mock::MockError::NonLoopback(_)
            | skyfleet_mock::MockError::ControlTokenRequired
            | skyfleet_mock::MockError::Config(_)),
        ) => {
            eprintln!("skyfleet mock: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("skyfleet mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Some(pem)) = (&cert_out, mock.cert_pem()) {
        if let Err(e) = private_file::replace(path, pem.as_bytes()) {
            eprintln!("skyfleet mock: writing {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!("{}", mock.url());
    eprintln!("skyfleet mock: dashboard at {}", mock.dashboard_url());
    let _ = tokio::signal::ctrl_c().await;
    mock.shutdown().await;
    ExitCode::SUCCESS
}
