//! `skyfleet run`: a fleet from a config file, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use skyfleet_core::fleet::{Demand, FixedDemand, Fleet};
use skyfleet_demand::{HttpDemand, TaskclusterDemand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, DemandSection};
use crate::providers;
use crate::store_url;

/// Builds the demand source a config names.
fn demand(section: &DemandSection) -> Result<Arc<dyn Demand>, String> {
    Ok(match section {
        DemandSection::Fixed { pending } => {
            let d = FixedDemand::new();
            for (pool, n) in pending {
                d.set_pending(pool, *n);
            }
            Arc::new(d)
        }
        DemandSection::Http { url } => Arc::new(HttpDemand::new(url).map_err(|e| e.to_string())?),
        // Signed with Hawk when TASKCLUSTER_CLIENT_ID and
        // TASKCLUSTER_ACCESS_TOKEN are set, as Taskcluster's clients do.
        DemandSection::Taskcluster { root_url } => Arc::new(
            TaskclusterDemand::new(root_url)
                .and_then(|d| d.with_env_credentials())
                .map_err(|e| e.to_string())?,
        ),
    })
}

/// Validates the config and builds the fleet, answering it with the store
/// URL used; errors are configuration errors (exit 2). `skyfleet sweep`
/// builds its fleet with it too.
pub(crate) async fn build(
    path: &Path,
    store_override: Option<String>,
) -> Result<(Fleet, String), String> {
    let file = config::load(path).map_err(|e| e.to_string())?;
    let origin = path.display();
    let settings = file
        .fleet
        .to_config()
        .map_err(|e| format!("{origin} at {e}"))?;
    let root_url = file
        .fleet
        .root_url()
        .map_err(|e| format!("{origin} at {e}"))?;
    let mut builder = Fleet::builder().config(settings);
    for (id, section) in &file.providers {
        let p = providers::from_config(id, section, root_url.as_deref())
            .await
            .map_err(|e| format!("{origin} at `providers.{id}`: {e}"))?;
        builder = builder.provider(p);
    }
    for pool in file.pools {
        builder = builder.pool(pool);
    }
    builder =
        builder.demand(demand(&file.demand).map_err(|e| format!("{origin} at `demand`: {e}"))?);
    let url = store_override.unwrap_or(file.fleet.store.0);
    crate::private_file::create_sqlite_store(&url).map_err(|e| {
        format!(
            "store {}: creating the file: {e}",
            store_url::redacted(&url)
        )
    })?;
    let store = skyfleet_core::store::open(&url)
        .await
        .map_err(|e| format!("store {}: {e}", store_url::redacted(&url)))?;
    builder = builder.store(store);
    let fleet = builder.build().map_err(|e| match e.kind() {
        skyfleet_core::ErrorKind::InvalidConfig { field } => {
            format!("{origin} at `{field}`: {}", e.message())
        }
        _ => format!("{origin}: {e}"),
    })?;
    Ok((fleet, url))
}

/// Histogram buckets (seconds) of every histogram `/metrics` serves: from a
/// few milliseconds (an API call) to minutes (a scanner far behind).
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Serves Prometheus metrics on `addr` (`/metrics`).
fn serve_metrics(addr: SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .map_err(|e| e.to_string())?
        .with_http_listener(addr)
        .install()
        .map_err(|e| e.to_string())
}

/// The startup line: version, store kind and location (no password), pools,
/// providers with their partitions, and the addresses served.
fn log_startup(fleet: &Fleet, store: &str, metrics: Option<SocketAddr>, api: &str) {
    let (store_kind, store) = store_url::describe(store);
    let pools = fleet
        .pools()
        .iter()
        .map(|p| {
            format!(
                "{} (provider {}, capacity {}..{})",
                p.pool_id, p.provider_id, p.min_capacity, p.max_capacity
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let providers = fleet
        .provider_summaries()
        .iter()
        .map(|p| {
            let parts = if p.partitions.is_empty() {
                "-".to_string()
            } else {
                p.partitions.join(",")
            };
            format!("{} ({}, partitions {parts})", p.id, p.kind)
        })
        .collect::<Vec<_>>()
        .join("; ");
    let metrics = metrics.map_or_else(|| "none".to_string(), |a| format!("http://{a}/metrics"));
    tracing::info!(
        target: "skyfleet::run",
        event = "startup",
        version = env!("CARGO_PKG_VERSION"),
        store_kind,
        store = store.as_str(),
        replica = fleet.owner(),
        pools = pools.as_str(),
        providers = providers.as_str(),
        metrics = metrics.as_str(),
        api,
        "skyfleet run starting"
    );
}

/// `--metrics-listen` and `--metrics-public`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsArgs {
    /// Where to serve `/metrics`, if anywhere.
    pub listen: Option<SocketAddr>,
    /// Whether a non-loopback address is allowed.
    pub public: bool,
}

impl MetricsArgs {
    /// The address to serve on; a non-loopback one only with
    /// `--metrics-public` (the endpoint has no authentication and names
    /// pools, providers and regions).
    fn validate(&self) -> Result<Option<SocketAddr>, String> {
        match self.listen {
            Some(addr) if !addr.ip().is_loopback() && !self.public => Err(format!(
                "--metrics-listen {addr} is not a loopback address and /metrics has no \
                 authentication; pass --metrics-public to serve it there anyway"
            )),
            other => Ok(other),
        }
    }
}

/// Runs until a signal, then stops cleanly (leases released).
pub async fn run(
    path: &Path,
    store: Option<String>,
    metrics: MetricsArgs,
    api: crate::worker_api::ApiArgs,
) -> ExitCode {
    if let Err(e) = api.validate() {
        eprintln!("skyfleet run: {e}");
        return ExitCode::from(2);
    }
    let metrics = match metrics.validate() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skyfleet run: {e}");
            return ExitCode::from(2);
        }
    };
    let (fleet, url) = match build(path, store).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skyfleet run: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = metrics {
        if let Err(e) = serve_metrics(addr) {
            eprintln!("skyfleet run: --metrics-listen {addr}: {e}");
            return ExitCode::from(2);
        }
    }
    let cancel = CancellationToken::new();
    let server = match api.start(&fleet, cancel.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skyfleet run: {e}");
            return ExitCode::from(2);
        }
    };
    log_startup(&fleet, &url, metrics, &api.describe());
    let on_signal = cancel.clone();
    let mut signals = Signals::new();
    tokio::spawn(async move {
        if on_signals(&mut signals, &on_signal).await == SignalOutcome::SecondSignal {
            eprintln!("skyfleet run: second signal: exiting at once, leases left to expire");
            std::process::exit(EXIT_SECOND_SIGNAL);
        }
    });
    let stop = async {
        fleet.run(cancel.clone()).await?;
        if let Some(server) = server {
            let _ = server.await;
        }
        Ok::<(), skyfleet_core::Error>(())
    };
    // Once cancelled, the fleet must be gone within STOP_WITHIN, however a
    // cloud or the store behaves.
    let deadline = async {
        cancel.cancelled().await;
        tokio::time::sleep(STOP_WITHIN).await;
    };
    let outcome = tokio::select! {
        r = stop => r,
        _ = deadline => {
            tracing::error!(
                target: "skyfleet::run", event = "shutdown.deadline",
                "did not stop within {} s: exiting anyway (unreleased leases expire)",
                STOP_WITHIN.as_secs()
            );
            return ExitCode::FAILURE;
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skyfleet run: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long a stop may take after the first signal before the process
/// exits anyway, so it is gone within 10 s (well inside Kubernetes' 30 s
/// default grace period) whatever a cloud or the store does.
const STOP_WITHIN: Duration = Duration::from_secs(8);

/// The exit code after a second signal (128 + SIGINT, as shells report an
/// interrupted command).
const EXIT_SECOND_SIGNAL: i32 = 130;

/// What ended [`on_signals`].
#[derive(Debug, PartialEq, Eq)]
enum SignalOutcome {
    /// The second signal came: exit at once.
    SecondSignal,
    /// No more signals can come (the handlers could not be installed).
    NoMoreSignals,
}

/// Where signals come from (the process's, or a test's).
trait SignalSource {
    /// Waits for the next signal; `false` if none can come.
    async fn next(&mut self) -> bool;
}

/// Cancels `cancel` at the first signal (a clean stop: passes cancelled,
/// leases released) and answers at the second.
async fn on_signals(signals: &mut impl SignalSource, cancel: &CancellationToken) -> SignalOutcome {
    if !signals.next().await {
        return SignalOutcome::NoMoreSignals;
    }
    tracing::info!(
        target: "skyfleet::run", event = "shutdown",
        "signal received: stopping (a second signal exits at once)"
    );
    cancel.cancel();
    if signals.next().await {
        SignalOutcome::SecondSignal
    } else {
        SignalOutcome::NoMoreSignals
    }
}

/// SIGINT and SIGTERM, installed once so none is missed between the first
/// and the second.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!("cannot install the signal handlers: {e}");
                    None
                }
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }
}

impl SignalSource for Signals {
    /// Waits for the next SIGINT or SIGTERM; `false` if none can come.
    async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            let Some((int, term)) = self.streams.as_mut() else {
                return false;
            };
            tokio::select! {
                r = int.recv() => r.is_some(),
                r = term.recv() => r.is_some(),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A signal source: each call pops whether a signal came (`true`) or
    /// the source ended (`false`), and records whether `cancel` had fired.
    struct Scripted {
        answers: VecDeque<bool>,
        cancel: CancellationToken,
        seen: Vec<bool>,
    }

    impl SignalSource for Scripted {
        async fn next(&mut self) -> bool {
            self.seen.push(self.cancel.is_cancelled());
            self.answers.pop_front().unwrap_or(false)
        }
    }

    fn source(answers: &[bool], cancel: &CancellationToken) -> Scripted {
        Scripted {
            answers: answers.iter().copied().collect(),
            cancel: cancel.clone(),
            seen: Vec::new(),
        }
    }

    #[test]
    fn a_non_loopback_metrics_address_needs_metrics_public() {
        let args = |listen: &str, public| MetricsArgs {
            listen: Some(listen.parse().unwrap()),
            public,
        };
        for addr in ["0.0.0.0:9000", "10.1.2.3:9000", "[::]:9000"] {
            let e = args(addr, false).validate().unwrap_err();
            assert!(
                e.contains("--metrics-listen")
                    && e.contains("--metrics-public")
                    && e.contains(addr),
                "{e}"
            );
            assert_eq!(args(addr, true).validate(), Ok(Some(addr.parse().unwrap())));
        }
        for addr in ["127.0.0.1:9000", "127.8.0.1:9000", "[::1]:9000"] {
            assert_eq!(
                args(addr, false).validate(),
                Ok(Some(addr.parse().unwrap()))
            );
        }
        let none = MetricsArgs {
            listen: None,
            public: false,
        };
        assert_eq!(none.validate(), Ok(None));
    }

    #[tokio::test]
    async fn the_first_signal_cancels_and_the_second_asks_to_exit_at_once() {
        let cancel = CancellationToken::new();
        let mut signals = source(&[true, true], &cancel);
        assert_eq!(
            on_signals(&mut signals, &cancel).await,
            SignalOutcome::SecondSignal
        );
        assert!(cancel.is_cancelled());
        // Not cancelled while waiting for the first; cancelled before the second.
        assert_eq!(signals.seen, [false, true]);
    }

    #[tokio::test]
    async fn without_signal_handlers_nothing_is_cancelled() {
        let cancel = CancellationToken::new();
        let mut signals = source(&[false], &cancel);
        assert_eq!(
            on_signals(&mut signals, &cancel).await,
            SignalOutcome::NoMoreSignals
        );
        assert!(!cancel.is_cancelled());
    }
}
