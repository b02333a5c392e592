//! `skyfleet-agent [OPTIONS] -- COMMAND [ARGS...]`: registers this worker
//! with its manager and runs COMMAND as its work (see the library docs).
//!
//! Exit codes: 0 when drained, terminated or stopped by a signal; 1 on an
//! error; 2 on bad usage; 3 when the manager refused the worker's
//! credentials (401).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use skyfleet_agent::{Agent, AgentConfig, AgentError, Cloud, CommandWork, MetadataSource};
use tokio::signal::unix::{signal, SignalKind};

/// The skyfleet worker agent.
#[derive(Debug, Parser)]
#[command(name = "skyfleet-agent", version, about)]
struct Args {
    /// The cloud (aws, gcp, azure, static); detected when not given.
    #[arg(long, env = "SKYFLEET_CLOUD")]
    cloud: Option<Cloud>,
    /// The metadata service's base URL (default: the cloud's link-local
    /// address), e.g. a mock's per-VM metadata URL.
    #[arg(long, env = "SKYFLEET_METADATA_URL")]
    metadata_url: Option<String>,
    /// Static machines: the bootstrap document (JSON).
    #[arg(long, required_if_eq("cloud", "static"))]
    bootstrap_file: Option<PathBuf>,
    /// Static machines: the file holding the worker's static secret.
    #[arg(long, required_if_eq("cloud", "static"))]
    secret_file: Option<PathBuf>,
    /// Where to write the worker config and secret (mode 0600); default:
    /// a private directory under the temporary directory, removed at exit.
    #[arg(long)]
    config_out: Option<PathBuf>,
    /// The status file the command writes (`idle`, `busy`, or JSON).
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when stopping the command.
    #[arg(long, default_value_t = 60)]
    drain_grace: u64,
    /// Seconds between reads of the cloud's interruption notice (spot
    /// `instance-action`, GCE `preempted`, Azure `Preempt` event); 0 never
    /// reads it.
    #[arg(long, default_value_t = 5)]
    notice_interval: u64,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    command: Vec<String>,
}

fn main() {
    let args = Args::parse();
    init_logs(args.log_json);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(&format!("cannot start the runtime: {e}"), 1),
    };
    let code = runtime.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let source = match (args.cloud, &args.bootstrap_file, &args.secret_file) {
        (Some(Cloud::Static), Some(b), Some(s)) => Some(MetadataSource::Static {
            bootstrap: b.clone(),
            secret: s.clone(),
        }),
        (Some(cloud), _, _) => match MetadataSource::for_cloud(cloud, args.metadata_url.as_deref())
        {
            Ok(s) => Some(s),
            Err(e) => fail(&e.to_string(), 2),
        },
        (None, _, _) => None,
    };
    let (config_path, private_dir) = match &args.config_out {
        Some(p) => (p.clone(), None),
        None => match private_dir() {
            Ok(dir) => (dir.join("worker-config.json"), Some(dir)),
            Err(e) => fail(
                &format!("cannot create a private directory for the worker config: {e}"),
                1,
            ),
        },
    };
    let (program, rest) = match args.command.split_first() {
        Some(x) => x,
        None => fail(
            "no command given (skyfleet-agent [OPTIONS] -- COMMAND [ARGS...])",
            2,
        ),
    };
    let mut work = CommandWork::new(program, rest, &config_path);
    if let Some(p) = &args.status_file {
        work = work.with_status_file(p);
    }
    let agent = Agent::new(AgentConfig {
        source,
        metadata_url: args.metadata_url.clone(),
        drain_grace: Duration::from_secs(args.drain_grace),
        notice_interval: (args.notice_interval > 0)
            .then(|| Duration::from_secs(args.notice_interval)),
        ..AgentConfig::default()
    });
    let result = agent.run_until(work, stop_signal()).await;
    if let Some(dir) = private_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    match result {
        Ok(outcome) => {
            tracing::info!(?outcome, "done");
            0
        }
        Err(e) => report(&e),
    }
}

fn report(e: &AgentError) -> i32 {
    tracing::error!(error = %e, "stopping");
    eprintln!("skyfleet-agent: error: {e}");
    e.exit_code()
}

fn fail(message: &str, code: i32) -> ! {
    eprintln!("skyfleet-agent: error: {message}");
    std::process::exit(code)
}

/// A new directory only this user can enter.
fn private_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("skyfleet-agent-{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}

/// Completes on SIGTERM or SIGINT.
async fn stop_signal() {
    let (term, int) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::warn!("cannot listen for signals; only the manager can stop the agent");
            std::future::pending::<()>().await
        }
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
