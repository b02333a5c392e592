//! `skyfleet-mock`: the mock cloud as a standalone server.
//!
//! ```text
//! skyfleet-mock --listen 127.0.0.1:8600 [--tls --cert-out PATH] [--config FILE] [--seed N]
//!               [--trust-keys DIR] [--allow-non-loopback --control-token TOKEN]
//!               [--state FILE]
//! skyfleet-mock --write-trust-keys DIR
//! ```
//!
//! The dashboard is at `URL/_mock/ui`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use skyfleet_mock::{MockCloud, MockConfig, MockError, TrustKeys};

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
    /// Allow listening on a non-loopback address. Requires
    /// --control-token.
    #[arg(long)]
    allow_non_loopback: bool,
    /// Sign identity documents with the PEM keys in DIR (aws.key.pem,
    /// google.key.pem, azure-root.key.pem; optionally
    /// azure-intermediate.key.pem, azure-signer.key.pem) instead of fresh
    /// ones.
    #[arg(long, value_name = "DIR")]
    trust_keys: Option<PathBuf>,
    /// Write a fresh set of trust keys to DIR (for --trust-keys) and exit.
    #[arg(long, value_name = "DIR", conflicts_with = "trust_keys")]
    write_trust_keys: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on every control API call
    /// (`/_mock/...`; the dashboard asks for it once). 16 to 512 visible
    /// ASCII characters. Prefer the environment variable: a command line is
    /// visible to other users of the machine.
    #[arg(long, env = "SKYFLEET_MOCK_CONTROL_TOKEN", hide_env_values = true)]
    control_token: Option<Token>,
    /// Start from the snapshot in FILE (a missing file: start empty), and
    /// write a snapshot to it on SIGTERM or Ctrl-C before exiting.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

/// The control token from the command line; `Debug` never shows it.
#[derive(Clone)]
struct Token(String);

impl std::str::FromStr for Token {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Token(s.to_string()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
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

    if let Some(dir) = &args.write_trust_keys {
        return match TrustKeys::generate().and_then(|k| k.write(dir)) {
            Ok(()) => {
                println!("{}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("skyfleet-mock: cannot write trust keys: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if !args.listen.ip().is_loopback() && !args.allow_non_loopback {
        eprintln!(
            "skyfleet-mock: refusing to listen on {}: not a loopback address. Pass --allow-non-loopback with --control-token to do it anyway.",
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
    let stop = StopSignal::install();
    let mut builder = MockCloud::builder()
        .listen(args.listen)
        .tls(args.tls)
        .seed(args.seed)
        .allow_non_loopback(args.allow_non_loopback)
        .config(config);
    if let Some(Token(token)) = args.control_token {
        builder = builder.control_token(token);
    }
    if let Some(dir) = &args.trust_keys {
        builder = builder.trust_keys(dir);
    }
    if let Some(path) = &args.state {
        builder = builder.state_file(path);
    }
    let mock = match builder.start().await {
        Ok(m) => m,
        Err(MockError::ControlTokenRequired) => {
            eprintln!(
                "skyfleet-mock: --allow-non-loopback requires --control-token TOKEN (or SKYFLEET_MOCK_CONTROL_TOKEN): without it anyone who can reach the mock could reset it"
            );
            return ExitCode::from(2);
        }
        Err(
            e @ (MockError::NonLoopback(_)
            | MockError::Config(_)
            | MockError::Trust(_)
            | MockError::State(_)),
        ) => {
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
    // The URL on stdout, alone on its line, for scripts that start us; the
    // metadata services' (plain HTTP) URL on the next line. Written, not
    // `println!`ed: a script that reads the first line and closes the pipe
    // must not kill the mock (`println!` panics on a broken pipe).
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}\n{}", mock.url(), mock.imds_url()).and_then(|()| out.flush());
    }
    tracing::info!(url = %mock.url(), imds_url = %mock.imds_url(), dashboard = %mock.dashboard_url(), "skyfleet-mock listening");
    stop.wait().await;
    let mut code = ExitCode::SUCCESS;
    if let Some(path) = &args.state {
        match mock.save_state(path) {
            Ok(()) => tracing::info!(path = %path.display(), "state written"),
            Err(e) => {
                eprintln!("skyfleet-mock: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    mock.shutdown().await;
    code
}

/// Ctrl-C (SIGINT) or, on unix, SIGTERM. Made before the mock prints its
/// URL, so that a script which sends SIGTERM as soon as it reads the URL
/// still gets a saved state and exit status 0.
struct StopSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    /// Installs the handlers.
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate())
                .map_err(|e| eprintln!("skyfleet-mock: cannot wait for SIGTERM: {e}"))
                .ok();
            StopSignal { term }
        }
        #[cfg(not(unix))]
        StopSignal {}
    }

    /// Waits for either signal.
    async fn wait(self) {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                eprintln!("skyfleet-mock: cannot wait for Ctrl-C: {e}");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        if let Some(mut term) = self.term {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        ctrl_c.await;
    }
}
