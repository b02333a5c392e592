//! `skyfleet run`: a fleet from a config file, until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

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
    let url = store_override.unwrap_or(file.fleet.store);
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

/// Runs until a signal, then stops cleanly (leases released).
pub async fn run(
    path: &Path,
    store: Option<String>,
    metrics: Option<SocketAddr>,
    api: crate::worker_api::ApiArgs,
) -> ExitCode {
    if let Err(e) = api.validate() {
        eprintln!("skyfleet run: {e}");
        return ExitCode::from(2);
    }
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
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(target: "skyfleet::run", event = "shutdown", "signal received: stopping");
        on_signal.cancel();
    });
    let outcome = fleet.run(cancel).await;
    if let Some(server) = server {
        let _ = server.await;
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skyfleet run: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
