//! `skyfleet run`: a fleet from a config file, until SIGINT or SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use skyfleet_core::fleet::{Demand, FixedDemand, Fleet};
use skyfleet_demand::{HttpDemand, TaskclusterDemand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, DemandSection};
use crate::providers;

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
        DemandSection::Taskcluster { root_url } => {
            Arc::new(TaskclusterDemand::new(root_url).map_err(|e| e.to_string())?)
        }
    })
}

/// Validates the config and builds the fleet; errors are configuration
/// errors (exit 2).
pub async fn build(path: &Path, store_override: Option<String>) -> Result<Fleet, String> {
    let file = config::load(path).map_err(|e| e.to_string())?;
    let origin = path.display();
    let settings = file
        .fleet
        .to_config()
        .map_err(|e| format!("{origin} at {e}"))?;
    let mut builder = Fleet::builder().config(settings);
    for (id, section) in &file.providers {
        let p = providers::from_config(id, section)
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
        .map_err(|e| format!("store {url}: {e}"))?;
    builder = builder.store(store);
    builder.build().map_err(|e| match e.kind() {
        skyfleet_core::ErrorKind::InvalidConfig { field } => {
            format!("{origin} at `{field}`: {}", e.message())
        }
        _ => format!("{origin}: {e}"),
    })
}

/// Runs until a signal, then stops cleanly (leases released).
pub async fn run(path: &Path, store: Option<String>) -> ExitCode {
    let fleet = match build(path, store).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skyfleet run: {e}");
            return ExitCode::from(2);
        }
    };
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received: stopping");
        on_signal.cancel();
    });
    match fleet.run(cancel).await {
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
