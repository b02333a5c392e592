//! `skyfleet-mock`: the mock cloud as a standalone server.
//!
//! ```text
//! skyfleet-mock --listen 127.0.0.1:8600 [--tls --cert-out PATH] [--config FILE] [--seed N] [--allow-non-loopback]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use skyfleet_mock::{MockCloud, MockConfig, MockError};

/// A mock cloud speaking the EC2 Query, Azure Resource Manager and Compute
/// Engine wire protocols on one address.
#[derive(Debug, Parser)]
#[command(name = "skyfleet-mock", version)]
struct Args {
    /// Address to listen on. Must be a loopback address unless
    /// --allow-non-loopback is given.
    #[arg(long, default_value = "127.0.0.1:8600")]
    listen: SocketAddr,
    /// Serve HTTPS with a fresh self-signed certificate for 127.0.0.1 and
    /// localhost.
    #[arg(long)]
    tls: bool,
    /// Write the certificate (PEM) here (with --tls).
    #[arg(long, requires = "tls")]
    cert_out: Option<PathBuf>,
    /// JSON configuration file, same shape as PUT /_mock/config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Seed for ids and probabilistic fault rules.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Allow listening on a non-loopback address (the mock has no
    /// authentication).
    #[arg(long)]
    allow_non_loopback: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        eprintln!(
            "skyfleet-mock: refusing to listen on {}: not a loopback address. The mock has no authentication; pass --allow-non-loopback to do it anyway.",
            args.listen
        );
        return ExitCode::from(2);
    }
    let config = match &args.config {
        None => MockConfig::default(),
        Some(path) => match load_config(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skyfleet-mock: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skyfleet-mock: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, config))
}

/// Reads and parses a configuration file; the error names the file and
/// the field.
fn load_config(path: &PathBuf) -> Result<MockConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    MockConfig::from_json(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

async fn run(args: Args, config: MockConfig) -> ExitCode {
    let started = MockCloud::builder()
        .listen(args.listen)
        .tls(args.tls)
        .seed(args.seed)
        .allow_non_loopback(args.allow_non_loopback)
        .config(config)
        .start()
        .await;
    let mock = match started {
        Ok(m) => m,
        Err(e @ (MockError::NonLoopback(_) | MockError::Config(_))) => {
            eprintln!("skyfleet-mock: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("skyfleet-mock: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(path), Some(pem)) = (&args.cert_out, mock.cert_pem()) {
        if let Err(e) = std::fs::write(path, pem) {
            eprintln!(
                "skyfleet-mock: cannot write the certificate to {}: {e}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    // The URL on stdout, alone on its line, for scripts that start us.
    println!("{}", mock.url());
    tracing::info!(url = %mock.url(), "skyfleet-mock listening");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("skyfleet-mock: cannot wait for Ctrl-C: {e}");
    }
    mock.shutdown().await;
    ExitCode::SUCCESS
}
